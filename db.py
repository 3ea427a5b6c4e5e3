"""One connection pool per process, and the transactions views run in.

Connections are autocommit: a unit of work is always an explicit `with db.transaction() as conn:` block, which
commits when the block ends normally and rolls back when it raises. Nothing commits in a teardown hook (Flask calls
teardown with `error=None` after a handled 4xx, which would commit half-done work).

Every transaction starts with one preamble statement that sets its local settings with `set_config(..., true)`, never
`SET`, so no session state outlives the transaction: the same code is safe behind a transaction-mode pooler.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from flask import Flask, current_app, g
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from queries import q


class Database:
    """An app's connection pool: one per process, opened on first use (after gunicorn forks), never before."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        connect_kwargs = {
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": config["DB_CONNECT_TIMEOUT"],
            "application_name": "sheetbrain",
        }
        if config["DB_TRANSACTION_POOLER"]:
            # A transaction-mode pooler hands each transaction a different server connection, so a statement
            # prepared on one is unknown on the next.
            connect_kwargs["prepare_threshold"] = None
        self.statement_timeout_ms = config["DB_STATEMENT_TIMEOUT_MS"]
        self._open_lock = threading.Lock()
        self._opened = False
        self.pool = ConnectionPool(
            config["DATABASE_URL"],
            min_size=config["DB_POOL_MIN_SIZE"],
            max_size=max(config["DB_POOL_MAX_SIZE"], config["DB_POOL_MIN_SIZE"]),
            timeout=config["DB_POOL_TIMEOUT"],
            kwargs=connect_kwargs,
            check=ConnectionPool.check_connection,
            # Statements outside an explicit transaction (sign-in, rate limiting) get the timeout from the session.
            # Behind a transaction-mode pooler a session setting would leak to other clients: there, set it on the
            # database role instead (README).
            configure=None if config["DB_TRANSACTION_POOLER"] else self._configure_session,
            open=False,
            name="app",
        )
        app.extensions["db"] = self
        app.teardown_appcontext(self._release_request_connection)

    def _configure_session(self, conn: psycopg.Connection) -> None:
        conn.execute(q.db.set_session_statement_timeout, {"statement_timeout": f"{self.statement_timeout_ms}ms"})

    def open(self) -> ConnectionPool:
        """Open the pool once, in the process that uses it (never before gunicorn forks)."""
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    self.pool.open(wait=False)
                    self._opened = True
        return self.pool

    def close(self) -> None:
        if self._opened:
            self.pool.close()
            self._opened = False

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A connection of its own from the pool, returned when the block ends (for work outside a request)."""
        with self.open().connection(timeout=timeout) as conn:
            yield conn

    def request_connection(self) -> psycopg.Connection:
        """The connection this app context holds, checked out on first use and returned at teardown.

        Raises psycopg_pool.PoolTimeout when the database cannot be reached in DB_POOL_TIMEOUT seconds.
        """
        conn = g.get("_db_conn")
        if conn is None or conn.closed:
            conn = self.open().getconn()
            g._db_conn = conn
        return conn

    def release_request_connection(self) -> None:
        """Return this app context's connection to the pool now, before a long wait that needs none (an upload's
        body streaming in); the next transaction of the request checks out a fresh one."""
        conn = g.pop("_db_conn", None)
        if conn is not None:
            # putconn rolls back anything left open and discards a broken connection.
            self.pool.putconn(conn)

    def _release_request_connection(self, _error: BaseException | None) -> None:
        self.release_request_connection()

    @contextmanager
    def transaction(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """One transaction as the connecting (owner) role, on the request's connection or `conn`: commit on
        normal exit, roll back on error. For work that spans organizations: webhooks, sign-in, maintenance."""
        conn = conn if conn is not None else self.request_connection()
        with conn.transaction():
            conn.execute(q.db.begin_transaction, {"statement_timeout": f"{self.statement_timeout_ms}ms"})
            yield conn

    @contextmanager
    def tenant_transaction(self, organization_id, conn: psycopg.Connection | None = None
                           ) -> Iterator[psycopg.Connection]:
        """One transaction confined to `organization_id`: it runs as the tenant role, so row-level security hides
        every other organization's rows even from a query that forgets its filter."""
        conn = conn if conn is not None else self.request_connection()
        with conn.transaction():
            conn.execute(q.db.begin_tenant_transaction, {
                "statement_timeout": f"{self.statement_timeout_ms}ms", "organization_id": str(organization_id)})
            yield conn


def get_db() -> Database:
    """The Database bound to the current app."""
    return current_app.extensions["db"]


def connect_once(config) -> psycopg.Connection:
    """A connection outside the pool, for start-up and command-line work; the caller closes it."""
    return psycopg.connect(
        config["DATABASE_URL"],
        autocommit=True,
        row_factory=dict_row,
        connect_timeout=config["DB_CONNECT_TIMEOUT"],
        prepare_threshold=None,
        application_name="sheetbrain-admin",
    )
