"""Fixtures: a real PostgreSQL database per test session, the app built by the factory, a client and a runner.

The session database is migrated once; after each test that used it, every table except the migration record and
the plan catalogue is truncated, so tests start from the same state and may commit freely (as concurrent tests must).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

import migrations
from app import create_app
from tests import pg

KEPT_TABLES = {"schema_migrations", "plans", "storage_buckets"}


@pytest.fixture(scope="session")
def server_url() -> str:
    try:
        url = pg.server_url()
        with psycopg.connect(pg.admin_url(), connect_timeout=5):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure here means no test can run
        pytest.exit(f"PostgreSQL is not reachable for the tests ({type(exc).__name__}: {exc}). Set "
                    "TEST_DATABASE_URL to a server where databases can be created.", returncode=3)
    return url


@pytest.fixture(scope="session")
def database_url(server_url: str):
    """A migrated database for the whole session, dropped at the end."""
    name = pg.create_database()
    url = pg.with_database(server_url, name)
    with pg.connect(url) as conn:
        migrations.upgrade(conn)
    yield url
    pg.drop_database(name)


@pytest.fixture
def empty_database_url(server_url: str):
    """A fresh database with nothing in it, dropped after the test."""
    name = pg.create_database()
    yield pg.with_database(server_url, name)
    pg.drop_database(name)


def _truncate_all(url: str) -> None:
    with pg.connect(url) as conn:
        tables = [row["relname"] for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )]
        doomed = [t for t in tables if t not in KEPT_TABLES]
        if doomed:
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in doomed)))


@pytest.fixture
def db_conn(database_url: str):
    """A direct connection to the session database (autocommit, dict rows), for testing SQL functions."""
    with pg.connect(database_url) as conn:
        yield conn
    _truncate_all(database_url)


def make_app(database_url: str, **overrides):
    config = {"TESTING": True, "DATABASE_URL": database_url, "LOG_FORMAT": "text", "AUTO_MIGRATE": False,
              "SECRET_KEY": "test-secret-key", "DB_POOL_TIMEOUT": 3, "DB_READY_TIMEOUT": 1}
    config.update(overrides)
    return create_app(config)


@contextmanager
def running_app(database_url: str, **overrides):
    """An app on the session database; afterwards its pool is closed and every table emptied."""
    app = make_app(database_url, **overrides)
    try:
        yield app
    finally:
        app.extensions["db"].close()
        _truncate_all(database_url)


@pytest.fixture
def app(database_url: str):
    with running_app(database_url) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(autouse=True)
def _quiet_pool_logs():
    # psycopg_pool logs every failed reconnect at WARNING; outage tests cause them on purpose.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


# Session tokens for API tests, signed with the tests' own key as Clerk would sign them (see tests/clerk_keys.py).
from tests.clerk_keys import ISSUER, SigningKey  # noqa: E402

CLERK_KEY = SigningKey("kid-tests")


def signed_in(user: str = "user_admin", org: str | None = "org_acme", role: str = "org:admin") -> dict:
    """Request headers of `user` signed in with `org` active (None: their personal organization)."""
    claims = {"org_id": org, "org_role": role} if org else {}
    return {"Authorization": f"Bearer {CLERK_KEY.token(user, **claims)}"}


@pytest.fixture
def api_app(database_url):
    """The app verifying session tokens signed by CLERK_KEY."""
    with running_app(database_url, CLERK_JWT_KEY=CLERK_KEY.public_pem, CLERK_ISSUER=ISSUER) as app:
        yield app


@pytest.fixture
def api(api_app):
    return api_app.test_client()
