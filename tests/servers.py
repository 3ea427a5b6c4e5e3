"""Real app servers for tests that need several processes: gunicorn on free localhost ports."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn_servers(count: int, env: dict, *, workers: int = 1, threads: int = 8):
    """Start `count` gunicorn servers (separate process trees) with `env` added; yields their base URLs."""
    processes, urls, logs = [], [], []
    try:
        for _ in range(count):
            port = free_port()
            process_env = {**os.environ, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING", "AUTO_MIGRATE": "0",
                           "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads),
                           "GUNICORN_ACCESS_LOG": "", "GUNICORN_BIND": f"127.0.0.1:{port}", **env}
            # A file, not a pipe: nobody reads a pipe while the test runs, and a full one would stall the server.
            logs.append(tempfile.TemporaryFile())
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT, env=process_env, stdout=subprocess.DEVNULL, stderr=logs[-1]))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process, log in zip(urls, processes, logs, strict=True):
            _wait_until_up(url, process, log)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _wait_until_up(url: str, process: subprocess.Popen, log, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited: {log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up in {seconds}s")
