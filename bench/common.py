"""Shared by the benchmarks: a scratch database on the configured server, and a load generator."""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER_URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or \
    "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_database(prefix: str = "sheetbrain_bench"):
    """A migrated database created for the benchmark and dropped afterwards; yields its URL."""
    from psycopg.conninfo import make_conninfo
    from psycopg.rows import dict_row

    import migrations

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(SERVER_URL, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            migrations.upgrade(conn)
        yield url
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                         " AND pid <> pg_backend_pid()", (name,))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def load(base_url: str, method: str, path: str, *, body=None, headers=None, clients: int = 16,
         seconds: float = 5.0) -> dict:
    """Send requests from `clients` threads (keep-alive connections) for `seconds`; returns rate and statuses."""
    host, port = base_url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode() if body is not None else None
    headers = {**(headers or {}), **({"Content-Type": "application/json"} if payload else {})}
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: dict[int, int] = {}
        while time.monotonic() < deadline:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            mine[response.status] = mine.get(response.status, 0) + 1
        conn.close()
        with lock:
            for status, n in mine.items():
                statuses[status] = statuses.get(status, 0) + n

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {"rps": sum(statuses.values()) / elapsed, "statuses": statuses}
