"""Liveness and readiness, including a database that goes away and comes back."""
from __future__ import annotations

import time

import pytest
from psycopg.conninfo import make_conninfo

from tests import pg
from tests.conftest import make_app
from tests.tcp_proxy import CuttableProxy


def test_healthz_answers_without_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_ready_when_the_database_answers_and_migrations_are_current(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "database": "ok", "migrations": "current"}


def test_readyz_reports_pending_migrations(empty_database_url):
    app = make_app(empty_database_url)
    try:
        response = app.test_client().get("/readyz")
    finally:
        app.extensions["db"].close()
    assert response.status_code == 503
    assert response.json["error"]["code"] == "not_ready"
    assert response.json["error"]["details"] == {"database": "ok", "migrations": "pending"}


@pytest.fixture
def proxied_app(database_url):
    proxy = CuttableProxy(pg.tcp_address(database_url))
    url = make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port))
    app = make_app(url, DB_CONNECT_TIMEOUT=2)
    yield app, proxy
    app.extensions["db"].close()
    proxy.close()


def _wait_until_ready(client, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    status = 0
    while time.monotonic() < deadline:
        status = client.get("/readyz").status_code
        if status == 200:
            break
        time.sleep(0.2)
    return status


def test_readyz_says_503_while_the_database_is_gone_and_recovers_without_a_restart(proxied_app):
    app, proxy = proxied_app
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    proxy.cut()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json["error"]["details"] == {"database": "unreachable"}
    assert down.headers["Retry-After"] == "5"
    assert "Traceback" not in down.get_data(as_text=True)

    proxy.restore()
    assert _wait_until_ready(client, seconds=15) == 200


def test_a_sslmode_require_url_is_honoured_not_stripped(database_url):
    """The test server speaks no TLS, so an app told sslmode=require must refuse to talk to it."""
    with pg.connect(database_url) as conn:
        assert conn.execute("SHOW ssl").fetchone()["ssl"] == "off", "this check needs a server without TLS"
    # Through the proxy so the URL is TCP even when the test server is the embedded one on a Unix socket.
    proxy = CuttableProxy(pg.tcp_address(database_url))
    app = make_app(make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port), sslmode="require"))
    plain = make_app(make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port), sslmode="disable"))
    try:
        assert app.test_client().get("/readyz").status_code == 503
        assert plain.test_client().get("/readyz").status_code == 200
    finally:
        app.extensions["db"].close()
        plain.extensions["db"].close()
        proxy.close()


def test_statements_outside_a_transaction_have_the_statement_timeout(database_url):
    app = make_app(pg.direct_url(database_url), DB_STATEMENT_TIMEOUT_MS=1234, DB_TRANSACTION_POOLER=False)
    try:
        with app.app_context():
            conn = app.extensions["db"].request_connection()
            assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "1234ms"
    finally:
        app.extensions["db"].close()
