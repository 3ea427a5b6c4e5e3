"""Plans and subscriptions through /api/billing."""
from __future__ import annotations

import pytest

from tests.conftest import signed_in


def auth(user="user_admin", role="org:admin") -> dict:
    return signed_in(user, "org_billing", role)


def test_a_new_organization_is_on_the_free_plan(api):
    body = api.get("/api/billing", headers=auth()).json
    assert (body["plan"], body["status"]) == ("free", "active")
    assert body["limits"] == {"audits_per_month": 100, "requests_per_minute": 60,
                              "storage_bytes": 1073741824, "seats": 3}
    assert body["usage"] == {"audits": 0, "seats": 1}
    assert body["current_period"]["start"] < body["current_period"]["end"]


def test_the_seeds_example_body_works_verbatim_and_plans_change(api, db_conn):
    assert api.post("/api/billing", json={"plan": "free"}, headers=auth()).status_code == 200
    upgraded = api.post("/api/billing", json={"plan": "pro"}, headers=auth())
    assert upgraded.status_code == 200
    assert (upgraded.json["plan"], upgraded.json["limits"]["audits_per_month"]) == ("pro", 5000)
    assert api.get("/api/billing", headers=auth()).json["plan"] == "pro"
    rows = db_conn.execute("SELECT plan_id, status FROM subscriptions s JOIN organizations o"
                           " ON o.id = s.organization_id WHERE o.clerk_id = 'org_billing'").fetchall()
    assert rows == [{"plan_id": "pro", "status": "active"}]


def test_the_plan_rate_reaches_the_rate_limiter(api):
    assert api.get("/api/billing", headers=auth()).headers["X-RateLimit-Limit"] == "60"
    api.post("/api/billing", json={"plan": "enterprise"}, headers=auth())
    assert api.get("/api/billing", headers=auth()).headers["X-RateLimit-Limit"] == "3000"


@pytest.mark.parametrize("body, field", [
    ({"plan": "platinum"}, "plan"), ({}, "plan"), ({"plan": 3}, "plan"), ({"plan": "pro", "seats": 9}, "seats")])
def test_bad_plan_requests_are_422_and_change_nothing(api, body, field):
    api.get("/api/billing", headers=auth())
    response = api.post("/api/billing", json=body, headers=auth())
    assert response.status_code == 422
    assert field in response.json["error"]["details"]
    assert api.get("/api/billing", headers=auth()).json["plan"] == "free"


def test_members_cannot_change_the_plan(api):
    api.get("/api/billing", headers=auth())
    response = api.post("/api/billing", json={"plan": "pro"}, headers=auth("user_member", "org:member"))
    assert response.status_code == 403
    assert api.get("/api/billing", headers=auth()).json["plan"] == "free"


def test_a_subscription_managed_by_a_payment_provider_is_not_changed_here(api, db_conn):
    api.get("/api/billing", headers=auth())
    db_conn.execute("UPDATE subscriptions SET provider = 'stripe', status = 'past_due', plan_id = 'pro'")
    response = api.post("/api/billing", json={"plan": "enterprise"}, headers=auth())
    assert response.status_code == 409 and response.json["error"]["code"] == "managed_by_provider"
    body = api.get("/api/billing", headers=auth()).json
    assert (body["plan"], body["status"], body["provider"]) == ("pro", "past_due", "stripe")
