"""Policies: ingest with rules read from prose, list, read, edit, delete; logged and tenant-scoped."""
from __future__ import annotations

import pytest

from tests.conftest import signed_in

SEED_POLICY = {"title": "Test Policy", "content": "This is a test policy for formula compliance.", "department": "IT"}


def test_the_seeds_ingest_example_stores_the_policy_and_logs_it(api, db_conn):
    response = api.post("/api/ingest", json=SEED_POLICY, headers=signed_in())
    assert response.status_code == 201
    policy = response.json
    assert (policy["title"], policy["department"], policy["is_active"]) == ("Test Policy", "IT", True)
    assert policy["rules"] == {} and policy["rules_from_content"] == []
    [log] = db_conn.execute("SELECT * FROM ingestion_logs").fetchall()
    assert (log["status"], log["rules_found"], str(log["policy_id"])) == ("succeeded", 0, policy["id"])
    assert log["content_bytes"] == len(SEED_POLICY["content"]) and log["duration_ms"] >= 0
    assert log["user_id"] is not None and log["request_id"] == response.headers["X-Request-ID"]


def test_rules_are_read_from_the_prose_and_shown_with_their_sentences(api):
    content = "Lookups must use exact match. Do not use INDIRECT or OFFSET. Keep it tidy."
    policy = api.post("/api/ingest", json={"title": "Lookups", "content": content}, headers=signed_in()).json
    assert policy["rules"] == {"require_exact_lookup": True, "forbid_functions": ["INDIRECT", "OFFSET"]}
    assert [(r["rule"], r["sentence"]) for r in policy["rules_from_content"]] == [
        ("require_exact_lookup", "Lookups must use exact match."),
        ("forbid_functions", "Do not use INDIRECT or OFFSET.")]


def test_explicit_rules_win_over_the_prose(api):
    body = {"title": "Nesting", "content": "No more than 3 nested IFs.", "rules": {"max_if_depth": 2}}
    policy = api.post("/api/ingest", json=body, headers=signed_in()).json
    assert policy["rules"]["max_if_depth"] == 2
    assert policy["explicit_rules"] == {"max_if_depth": 2}


@pytest.mark.parametrize("body, status, field", [
    ({"title": "   ", "content": "x"}, 422, "title"),
    ({"content": "x"}, 422, "title"),
    ({"title": "t", "content": "x", "rules": {"forbid_everything": True}}, 422, "rules"),
    ({"title": "t", "content": "x", "rules": {"max_if_depth": "deep"}}, 422, "rules"),
    ({"title": "t", "content": "x", "owner": "me"}, 422, "owner"),
    ({"title": "t", "content": "x" * (200 * 1024 + 1)}, 413, None),
])
def test_bad_policies_are_refused_stored_nowhere_and_logged_as_failed(api, db_conn, body, status, field):
    response = api.post("/api/ingest", json=body, headers=signed_in())
    assert response.status_code == status
    if field:
        assert field in response.json["error"]["details"]
    assert db_conn.execute("SELECT count(*) AS n FROM policies").fetchone()["n"] == 0
    [log] = db_conn.execute("SELECT * FROM ingestion_logs").fetchall()
    assert (log["status"], log["policy_id"], log["rules_found"]) == ("failed", None, 0)
    assert (field or "payload_too_large") in log["error"]
    assert log["request_id"] == response.headers["X-Request-ID"] and log["content_bytes"] > 0


def test_content_of_exactly_200_kb_is_accepted(api):
    assert api.post("/api/ingest", json={"title": "t", "content": "x" * 200 * 1024},
                    headers=signed_in()).status_code == 201


def test_policies_list_newest_first_with_filters_and_keyset_pages(api):
    for n in range(7):
        body = {"title": f"P{n}", "content": "x", "department": "IT" if n % 2 else "Finance"}
        api.post("/api/ingest", json=body, headers=signed_in())
    first = api.get("/api/policies?limit=3", headers=signed_in()).json
    assert [p["title"] for p in first["items"]] == ["P6", "P5", "P4"]
    titles = [p["title"] for p in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api.get(f"/api/policies?limit=3&cursor={cursor}", headers=signed_in()).json
        titles += [p["title"] for p in page["items"]]
        cursor = page["next_cursor"]
    assert titles == [f"P{n}" for n in range(6, -1, -1)]
    it = api.get("/api/policies?department=IT", headers=signed_in()).json["items"]
    assert [p["title"] for p in it] == ["P5", "P3", "P1"]


def test_a_bad_cursor_is_422(api):
    assert api.get("/api/policies?cursor=garbage", headers=signed_in()).status_code == 422


def test_edit_rereads_rules_and_deactivation_filters(api):
    policy = api.post("/api/ingest", json={"title": "t", "content": "Avoid volatile functions."},
                      headers=signed_in()).json
    assert policy["rules"] == {"forbid_volatile": True}
    edited = api.patch(f"/api/policies/{policy['id']}", json={"content": "No hard-coded numbers.", "is_active": False},
                       headers=signed_in())
    assert edited.status_code == 200
    assert "forbid_hardcoded_constants" in edited.json["rules"] and "forbid_volatile" not in edited.json["rules"]
    assert api.get("/api/policies?active=false", headers=signed_in()).json["items"][0]["id"] == policy["id"]
    assert api.get("/api/policies?active=true", headers=signed_in()).json["items"] == []


def test_delete_then_get_is_404(api):
    policy = api.post("/api/ingest", json={"title": "t", "content": "x"}, headers=signed_in()).json
    assert api.delete(f"/api/policies/{policy['id']}", headers=signed_in()).status_code == 204
    assert api.get(f"/api/policies/{policy['id']}", headers=signed_in()).status_code == 404
    assert api.delete(f"/api/policies/{policy['id']}", headers=signed_in()).status_code == 404


def test_another_organizations_policy_is_404_for_every_verb(api):
    theirs = api.post("/api/ingest", json={"title": "theirs", "content": "x"},
                      headers=signed_in("user_globex", "org_globex")).json
    mine = signed_in("user_acme", "org_acme")
    assert api.get(f"/api/policies/{theirs['id']}", headers=mine).status_code == 404
    assert api.patch(f"/api/policies/{theirs['id']}", json={"title": "mine now"}, headers=mine).status_code == 404
    assert api.delete(f"/api/policies/{theirs['id']}", headers=mine).status_code == 404
    assert api.get("/api/policies", headers=mine).json["items"] == []
    assert api.get("/api/policies/not-a-uuid", headers=mine).status_code == 404


def test_members_can_read_but_not_write_policies(api):
    policy = api.post("/api/ingest", json={"title": "t", "content": "x"}, headers=signed_in()).json
    member = signed_in("user_member", role="org:member")
    assert api.get(f"/api/policies/{policy['id']}", headers=member).status_code == 200
    assert api.post("/api/ingest", json={"title": "t", "content": "x"}, headers=member).status_code == 403
    assert api.patch(f"/api/policies/{policy['id']}", json={"title": "x"}, headers=member).status_code == 403
    assert api.delete(f"/api/policies/{policy['id']}", headers=member).status_code == 403
