"""Test databases on a real PostgreSQL server.

The server is TEST_DATABASE_URL, else DATABASE_URL, else an embedded one (pgserver) under .pytest-pgdata/. A test run
only ever touches databases it created itself, named `sheetbrain_test_*`, and drops them when it ends.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parent.parent


def server_url() -> str:
    """The URL of the server tests create their databases on."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    from embedded_pg import embedded_database_url

    return embedded_database_url(str(ROOT / ".pytest-pgdata"))


def admin_url() -> str:
    """Where databases are created and dropped: TEST_ADMIN_DATABASE_URL (a direct connection, useful when tests
    run through a pooler), else the server URL."""
    return os.environ.get("TEST_ADMIN_DATABASE_URL") or server_url()


def with_database(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def direct_url(url: str) -> str:
    """The database of `url` over a direct connection (admin_url's server): session settings hold only there, not
    through a transaction-mode pooler, where each transaction may run on another server connection."""
    return with_database(admin_url(), conninfo_to_dict(url)["dbname"])


def create_database(prefix: str = "sheetbrain_test") -> str:
    """Create an empty database and return its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row, prepare_threshold=None)


def tcp_address(url: str) -> tuple[str, int] | str:
    """Where the server listens: (host, port), or a Unix socket path."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "/var/run/postgresql"
    port = int(params.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
