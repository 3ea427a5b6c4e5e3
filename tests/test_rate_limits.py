"""Per-organization rate limits, counted in PostgreSQL and shared by every worker and server."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from psycopg.conninfo import make_conninfo

import rate_limits
from tests import pg
from tests.conftest import CLERK_KEY, ISSUER, _truncate_all, make_app, signed_in
from tests.servers import gunicorn_servers
from tests.tcp_proxy import CuttableProxy


@pytest.fixture
def tiny_plan(db_conn):
    """A plan allowing 20 requests a minute, removed again after the test (plans survive truncation)."""
    db_conn.execute("INSERT INTO plans (id, name, monthly_audit_quota, requests_per_minute) "
                    "VALUES ('tiny', 'Tiny', 10, 20)")
    yield "tiny"
    db_conn.execute("DELETE FROM subscriptions WHERE plan_id = 'tiny'")
    db_conn.execute("DELETE FROM plans WHERE id = 'tiny'")


def auth(org: str, user: str = "user_rl") -> dict:
    return signed_in(user, org)


def _put_on_plan(db_conn, clerk_org: str, plan: str) -> None:
    db_conn.execute("UPDATE subscriptions SET plan_id = %s WHERE organization_id ="
                    " (SELECT id FROM organizations WHERE clerk_id = %s)", (plan, clerk_org))


def test_responses_carry_the_standard_headers(api):
    first = api.get("/api/me", headers=auth("org_h"))
    second = api.get("/api/me", headers=auth("org_h"))
    assert first.headers["X-RateLimit-Limit"] == "60"
    assert int(first.headers["X-RateLimit-Remaining"]) == 59
    assert int(second.headers["X-RateLimit-Remaining"]) == 58
    assert int(second.headers["X-RateLimit-Reset"]) >= int(first.headers["X-RateLimit-Reset"]) - 1


def test_health_checks_are_not_rate_limited(api):
    assert "X-RateLimit-Limit" not in api.get("/healthz").headers


def test_past_the_limit_the_api_answers_429_with_retry_after_and_other_organizations_are_unaffected(
        api, db_conn, tiny_plan):
    api.get("/api/me", headers=auth("org_busy"))  # signs in, counted under the free plan's limit
    _put_on_plan(db_conn, "org_busy", tiny_plan)
    statuses = [api.get("/api/me", headers=auth("org_busy")).status_code for _ in range(25)]
    assert statuses == [200] * 20 + [429] * 5
    limited = api.get("/api/me", headers=auth("org_busy"))
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "rate_limited"
    assert "20 per 1 minute" in limited.json["error"]["message"]
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert api.get("/api/me", headers=auth("org_calm", "user_other")).status_code == 200


def test_rate_limiting_costs_at_most_one_round_trip(api, monkeypatch):
    executed = []
    real_conn = rate_limits.PostgresStorage._conn

    class CountingConnection:
        def __init__(self, conn):
            self._conn = conn

        def execute(self, *args, **kwargs):
            executed.append(args[0].split("\n", 1)[0])
            return self._conn.execute(*args, **kwargs)

    monkeypatch.setattr(rate_limits.PostgresStorage, "_conn", lambda self: CountingConnection(real_conn(self)))
    for expected in (1, 2, 3):
        response = api.get("/api/me", headers=auth("org_trips"))
        assert response.headers["X-RateLimit-Remaining"]
        assert len(executed) == expected, executed


def test_a_database_outage_is_503_not_500(database_url):
    proxy = CuttableProxy(pg.tcp_address(database_url))
    app = make_app(make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port)),
                   CLERK_JWT_KEY=CLERK_KEY.public_pem, CLERK_ISSUER=ISSUER, DB_POOL_TIMEOUT=1)
    try:
        client = app.test_client()
        assert client.get("/api/me", headers=auth("org_down")).status_code == 200
        proxy.cut()
        response = client.get("/api/me", headers=auth("org_down"))
        assert response.status_code == 503
        assert response.json["error"]["code"] == "database_unavailable"
    finally:
        app.extensions["db"].close()
        proxy.close()
        _truncate_all(database_url)


@pytest.mark.slow
def test_64_concurrent_clients_on_two_servers_never_exceed_the_limit(database_url, db_conn, tiny_plan):
    env = {"DATABASE_URL": database_url, "CLERK_JWT_KEY": CLERK_KEY.public_pem, "CLERK_ISSUER": ISSUER}
    headers = auth("org_shared_limit")
    with gunicorn_servers(2, env, workers=2, threads=8) as urls:
        _get(urls[0] + "/api/me", headers)  # signs in: creates the organization
        _put_on_plan(db_conn, "org_shared_limit", tiny_plan)
        start = threading.Barrier(64)

        def client(index: int) -> list[int]:
            start.wait()
            return [_get(urls[(index + n) % 2] + "/api/me", headers) for n in range(3)]

        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = [s for batch in pool.map(client, range(64)) for s in batch]
    _truncate_all(database_url)
    assert len(statuses) == 192
    assert set(statuses) <= {200, 429}
    # The sign-in request counted under the free plan's limit, so the tiny plan's 20 are all there.
    assert statuses.count(200) == 20


def _get(url: str, headers: dict) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            json.load(response)
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
