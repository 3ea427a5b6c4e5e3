"""Production defaults for `gunicorn wsgi:app`; every value can be overridden by the environment or the CLI.

Workers are not preloaded: each one builds its own app after the fork, so each opens its own connection pool and
no socket is ever shared between processes.
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Threaded workers: requests mostly wait on PostgreSQL, so a few processes with several threads each go further
# than many single-threaded processes, and need fewer database connections.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(4, multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
preload_app = False
# Svix gives up on a webhook after 15 seconds; nothing we serve should take longer than 30.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak in any library cannot grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))  # 0 turns recycling off
max_requests_jitter = max_requests // 10
# An empty GUNICORN_ACCESS_LOG turns the access log off (benchmarks, tests).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
# The request id rather than the full query string, which could carry a signed URL's token.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
# Each worker's pool needs at least one connection per thread.
raw_env = [f"DB_POOL_MAX_SIZE={os.environ.get('DB_POOL_MAX_SIZE') or threads + 1}"]


def on_starting(server):
    """With no DATABASE_URL, start the embedded PostgreSQL once in the master so workers share one server."""
    if not os.environ.get("DATABASE_URL"):
        from dotenv import load_dotenv

        load_dotenv(override=False)
    if not os.environ.get("DATABASE_URL"):
        from embedded_pg import embedded_database_url

        data_dir = os.environ.get("EMBEDDED_PG_DIR") or os.path.join(os.path.dirname(__file__), "instance", "pgdata")
        os.environ["DATABASE_URL"] = embedded_database_url(data_dir)
