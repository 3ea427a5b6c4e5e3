"""`flask maintenance run`: each periodic job runs once, says what it did, and steps aside for another server."""
from __future__ import annotations

from tests import pg


def test_maintenance_run_deletes_expired_buckets_and_reports_it(runner, db_conn):
    db_conn.execute("""INSERT INTO rate_limit_buckets (bucket_key, request_count, window_reset_at) VALUES
                       ('old', 1, now() - interval '1 minute'), ('live', 1, now() + interval '1 minute')""")
    result = runner.invoke(args=["maintenance", "run"])
    assert result.exit_code == 0, result.output
    assert "rate-limit-buckets" in result.output and "deleted 1 expired rate-limit buckets" in result.output
    assert [r["bucket_key"] for r in db_conn.execute("SELECT bucket_key FROM rate_limit_buckets")] == ["live"]


def test_a_job_running_on_another_server_is_skipped_here(runner, database_url, db_conn):
    db_conn.execute("INSERT INTO rate_limit_buckets (bucket_key, request_count, window_reset_at)"
                    " VALUES ('old', 1, now() - interval '1 minute')")
    with pg.connect(database_url) as other_server, other_server.transaction():
        other_server.execute("SELECT pg_advisory_xact_lock(hashtext('sheetbrain:maintenance'),"
                             " hashtext('rate-limit-buckets'))")
        result = runner.invoke(args=["maintenance", "run"])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    assert db_conn.execute("SELECT count(*) AS n FROM rate_limit_buckets").fetchone()["n"] == 1


def test_maintenance_run_forgets_webhook_deliveries_older_than_30_days(runner, db_conn):
    db_conn.execute("""INSERT INTO webhook_events (svix_id, event_type, handled, received_at) VALUES
                       ('msg_old', 'user.created', true, now() - interval '31 days'),
                       ('msg_new', 'user.created', true, now() - interval '29 days')""")
    result = runner.invoke(args=["maintenance", "run"])
    assert "forgot 1 webhook deliveries" in result.output, result.output
    assert [r["svix_id"] for r in db_conn.execute("SELECT svix_id FROM webhook_events")] == ["msg_new"]
