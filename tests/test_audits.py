"""The audit API: the seed's call, policies by department, limits, quota, logs, listing and workbooks."""
from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest

from tests.conftest import CLERK_KEY, ISSUER, signed_in
from tests.servers import gunicorn_servers

SEED_AUDIT = {
    "formulas": ["=SUM(A1:A10)", "=VLOOKUP(B2, Sheet1!A:B, 2, FALSE)"],
    "context": {"sheetName": "Test Sheet", "range": "A1:B2"},
}


def _usage(db_conn) -> int:
    row = db_conn.execute("SELECT coalesce(sum(count), 0) AS n FROM audit_usage").fetchone()
    return int(row["n"])


def _audit_rows(db_conn) -> int:
    return db_conn.execute("SELECT count(*) AS n FROM audit_logs").fetchone()["n"]


def test_the_seeds_audit_example_answers_in_the_documented_shape_and_is_logged(api, db_conn):
    response = api.post("/api/audit", json=SEED_AUDIT, headers=signed_in())
    assert response.status_code == 201
    body = response.json
    assert set(body) >= {"audit_id", "summary", "results", "usage"}
    assert body["summary"]["formulas"] == 2
    assert set(body["summary"]["by_severity"]) == {"critical", "high", "medium", "low", "info"}
    assert body["summary"]["findings"] == sum(body["summary"]["by_severity"].values())
    assert [r["index"] for r in body["results"]] == [0, 1]
    assert body["results"][1]["formula"] == "=VLOOKUP(B2, Sheet1!A:B, 2, FALSE)"
    codes = {f["code"] for f in body["results"][1]["findings"]}
    assert "WHOLE_COLUMN_REFERENCE" in codes and "APPROXIMATE_LOOKUP" not in codes
    assert all(f["policy"] is None for r in body["results"] for f in r["findings"])
    assert body["usage"]["used"] == 1 and body["usage"]["limit"] == 100
    assert body["usage"]["month"] == datetime.now(timezone.utc).strftime("%Y-%m")
    [log] = db_conn.execute("SELECT * FROM audit_logs").fetchall()
    assert str(log["id"]) == body["audit_id"]
    assert log["formula_count"] == 2 and log["context"]["sheetName"] == "Test Sheet"
    assert log["request_id"] == response.headers["X-Request-ID"] and log["user_id"] is not None
    assert log["findings_summary"] == body["summary"]["by_severity"]


def test_formulas_with_cells_get_grid_checks(api):
    body = {"formulas": [{"cell": "C1", "formula": "=A1*B1"}, {"cell": "C2", "formula": "=A2*B2"},
                         {"cell": "C3", "formula": "=A3+B3"}, {"cell": "C4", "formula": "=A4*B4"},
                         {"cell": "D1", "formula": "=D1+1"}]}
    results = api.post("/api/audit", json=body, headers=signed_in()).json["results"]
    codes = {r["cell"]: {f["code"] for f in r["findings"]} for r in results}
    assert "INCONSISTENT_FORMULA" in codes["C3"]
    assert "SELF_REFERENCE" in codes["D1"]


def test_policies_apply_by_department(api):
    admin = signed_in()
    api.post("/api/ingest", json={"title": "No volatile", "content": "Avoid volatile functions."}, headers=admin)
    finance = api.post("/api/ingest", json={"title": "Finance lookups", "department": "Finance",
                                            "content": "Lookups must use exact match."}, headers=admin).json
    body = {"formulas": ["=VLOOKUP(A1,B1:C9,2)", "=TODAY()"], "context": {"department": "Finance"}}
    results = api.post("/api/audit", json=body, headers=admin).json["results"]
    violations = [(f["policy"]["title"], r["index"]) for r in results for f in r["findings"]
                  if f["code"] == "POLICY_VIOLATION"]
    assert sorted(violations) == [("Finance lookups", 0), ("No volatile", 1)]
    policy_of_lookup = next(f["policy"] for f in results[0]["findings"] if f["code"] == "POLICY_VIOLATION")
    assert policy_of_lookup == {"id": finance["id"], "title": "Finance lookups"}

    elsewhere = {"formulas": body["formulas"], "context": {"department": "Sales"}}
    results = api.post("/api/audit", json=elsewhere, headers=admin).json["results"]
    titles = {f["policy"]["title"] for r in results for f in r["findings"] if f["code"] == "POLICY_VIOLATION"}
    assert titles == {"No volatile"}


def test_an_inactive_policy_does_not_apply(api):
    policy = api.post("/api/ingest", json={"title": "t", "content": "Avoid volatile functions."},
                      headers=signed_in()).json
    api.patch(f"/api/policies/{policy['id']}", json={"is_active": False}, headers=signed_in())
    results = api.post("/api/audit", json={"formulas": ["=NOW()"]}, headers=signed_in()).json["results"]
    assert "POLICY_VIOLATION" not in {f["code"] for f in results[0]["findings"]}


@pytest.mark.parametrize("body, status", [
    ({"formulas": ["=1"] * 5001}, 413),
    ({"formulas": ["=" + "1+" * 4096 + "1"]}, 422),
    ({"formulas": []}, 422),
    ({"formulas": "=SUM(A1)"}, 422),
    ({"formulas": [42]}, 422),
    ({"formulas": [{"cell": "A1"}]}, 422),
    ({"formulas": ["=1"], "context": {"platform": "lotus"}}, 422),
    ({"formulas": [{"cell": "ZZZZZ99999999", "formula": "=1"}]}, 422),
])
def test_bad_audits_are_refused_and_nothing_is_counted(api, db_conn, body, status):
    response = api.post("/api/audit", json=body, headers=signed_in())
    assert response.status_code == status, response.json
    assert _usage(db_conn) == 0 and _audit_rows(db_conn) == 0


def test_5000_formulas_of_8192_characters_are_accepted(api):
    formula = "=" + "A1+" * 2729 + "A12"
    assert len(formula) <= 8192
    response = api.post("/api/audit", json={"formulas": [formula] * 3 + ["=1"] * 4997}, headers=signed_in())
    assert response.status_code == 201 and response.json["summary"]["formulas"] == 5000


def test_over_quota_is_402_before_the_engine_runs(api, db_conn, monkeypatch):
    api.get("/api/me", headers=signed_in())
    db_conn.execute("INSERT INTO audit_usage (organization_id, month_year, count) SELECT id, "
                    "date_trunc('month', now() AT TIME ZONE 'UTC')::date, 100 FROM organizations WHERE clerk_id = 'org_acme'")
    import formula_audit

    def engine_must_not_run(*args, **kwargs):
        raise AssertionError("the engine ran for an organization over its quota")

    monkeypatch.setattr(formula_audit, "audit_formulas", engine_must_not_run)
    assert api.post("/api/audit", json=SEED_AUDIT, headers=signed_in()).status_code == 402


def test_over_quota_is_402_naming_the_limit_and_reset_and_logs_nothing(api, db_conn):
    api.get("/api/me", headers=signed_in())
    db_conn.execute("INSERT INTO audit_usage (organization_id, month_year, count) SELECT id, "
                    "date_trunc('month', now() AT TIME ZONE 'UTC')::date, 100 FROM organizations WHERE clerk_id = 'org_acme'")
    response = api.post("/api/audit", json=SEED_AUDIT, headers=signed_in())
    assert response.status_code == 402
    message = response.json["error"]["message"]
    assert "100" in message and response.json["error"]["details"]["resets_at"][:10] in message
    assert _audit_rows(db_conn) == 0 and _usage(db_conn) == 100


def test_if_the_log_cannot_be_written_the_audit_is_not_counted(api, db_conn):
    db_conn.execute("""CREATE FUNCTION refuse_audit_log() RETURNS trigger LANGUAGE plpgsql AS
                       $$ BEGIN RAISE EXCEPTION 'disk full'; END $$""")
    db_conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION refuse_audit_log()")
    try:
        response = api.post("/api/audit", json=SEED_AUDIT, headers=signed_in())
        assert response.status_code == 500 and "disk full" not in response.get_data(as_text=True)
        assert _usage(db_conn) == 0
    finally:
        db_conn.execute("DROP TRIGGER refuse ON audit_logs")
        db_conn.execute("DROP FUNCTION refuse_audit_log()")


def test_audits_are_listed_newest_first_with_filters_and_read_back_whole(api, db_conn):
    alice, bob = signed_in("user_alice"), signed_in("user_bob")
    ids = [api.post("/api/audit", json={"formulas": [f"={n}+A1"]}, headers=alice if n % 2 else bob).json["audit_id"]
           for n in range(5)]
    listed = api.get("/api/audits?limit=2", headers=alice).json
    assert [a["id"] for a in listed["items"]] == ids[::-1][:2]
    second = api.get(f"/api/audits?limit=2&cursor={listed['next_cursor']}", headers=alice).json
    assert [a["id"] for a in second["items"]] == ids[::-1][2:4]
    assert "results" not in listed["items"][0]

    alice_id = api.get("/api/me", headers=alice).json["user"]["id"]
    mine = api.get(f"/api/audits?user_id={alice_id}", headers=alice).json["items"]
    assert [a["id"] for a in mine] == [ids[3], ids[1]]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert api.get("/api/audits", query_string={"since": future}, headers=alice).json["items"] == []
    assert len(api.get("/api/audits", query_string={"until": future}, headers=alice).json["items"]) == 5

    full = api.get(f"/api/audits/{ids[0]}", headers=bob).json
    assert full["results"][0]["formula"] == "=0+A1"


def test_another_organizations_audit_is_404(api):
    theirs = api.post("/api/audit", json=SEED_AUDIT, headers=signed_in("user_g", "org_globex")).json["audit_id"]
    assert api.get(f"/api/audits/{theirs}", headers=signed_in()).status_code == 404
    assert api.get("/api/audits", headers=signed_in()).json["items"] == []
    assert api.get("/api/audits/not-a-uuid", headers=signed_in()).status_code == 404


def _workbook_bytes() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    for row in range(1, 5):
        sheet.cell(row, 1, row * 10)
    sheet["B1"] = "=SUM(A1:A3)"
    sheet["B2"] = "=VLOOKUP(A1,D1:E9,2)"
    book.create_sheet("Notes")["A1"] = "=TODAY()"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_workbook_upload_is_audited_by_sheet_and_cell(api, db_conn):
    response = api.post("/api/audit/workbook", headers=signed_in(),
                        data={"file": (io.BytesIO(_workbook_bytes()), "budget.xlsx"), "department": "Finance"})
    assert response.status_code == 201, response.json
    by_cell = {(r["sheet"], r["cell"]): {f["code"] for f in r["findings"]} for r in response.json["results"]}
    assert "RANGE_OMITS_ADJACENT" in by_cell[("Budget", "B1")]
    assert "APPROXIMATE_LOOKUP" in by_cell[("Budget", "B2")]
    assert "VOLATILE_FUNCTION" in by_cell[("Notes", "A1")]
    assert _usage(db_conn) == 1


@pytest.mark.parametrize("data", [
    {"file": (io.BytesIO(b"%PDF-1.4 not a workbook"), "report.xlsx")},
    {"file": (io.BytesIO(b"PK\x03\x04 truncated zip"), "broken.xlsx")},
])
def test_a_file_that_is_not_a_workbook_is_415_and_not_counted(api, db_conn, data):
    response = api.post("/api/audit/workbook", headers=signed_in(), data=data)
    assert response.status_code == 415 and response.json["error"]["code"] == "not_a_workbook"
    assert _usage(db_conn) == 0


def test_a_workbook_over_5000_formulas_is_413_and_not_counted(api, db_conn):
    book = openpyxl.Workbook()
    for row in range(1, 5003):
        book.active.cell(row, 1, f"=B{row}+1")
    buffer = io.BytesIO()
    book.save(buffer)
    response = api.post("/api/audit/workbook", headers=signed_in(),
                        data={"file": (io.BytesIO(buffer.getvalue()), "big.xlsx")})
    assert response.status_code == 413 and "5000" in response.json["error"]["message"]
    assert _usage(db_conn) == 0


def test_a_workbook_request_without_a_file_is_422(api):
    assert api.post("/api/audit/workbook", headers=signed_in(), data={"department": "x"}).status_code == 422


@pytest.mark.slow
def test_200_parallel_requests_on_two_servers_against_5_left_admit_exactly_5(database_url, db_conn):
    db_conn.execute("INSERT INTO plans (id, name, monthly_audit_quota, requests_per_minute) "
                    "VALUES ('quota-test', 'Quota test', 100, 100000)")
    env = {"DATABASE_URL": database_url, "CLERK_JWT_KEY": CLERK_KEY.public_pem, "CLERK_ISSUER": ISSUER}
    headers = {**signed_in("user_q", "org_quota"), "Content-Type": "application/json"}
    try:
        with gunicorn_servers(2, env, workers=2, threads=8) as urls:
            _post(urls[0] + "/api/billing", {"plan": "free"}, headers)
            db_conn.execute("UPDATE subscriptions SET plan_id = 'quota-test' WHERE organization_id ="
                            " (SELECT id FROM organizations WHERE clerk_id = 'org_quota')")
            db_conn.execute("INSERT INTO audit_usage (organization_id, month_year, count) SELECT id, "
                            "date_trunc('month', now() AT TIME ZONE 'UTC')::date, 95 FROM organizations "
                            "WHERE clerk_id = 'org_quota'")
            start = threading.Barrier(50)

            def send(index: int) -> list[int]:
                start.wait()
                return [_post(urls[(index + n) % 2] + "/api/audit", SEED_AUDIT, headers) for n in range(4)]

            with ThreadPoolExecutor(max_workers=50) as pool:
                statuses = [s for batch in pool.map(send, range(50)) for s in batch]
        assert len(statuses) == 200
        assert statuses.count(201) == 5 and statuses.count(402) == 195
        assert _usage(db_conn) == 100 and _audit_rows(db_conn) == 5
    finally:
        db_conn.execute("DELETE FROM subscriptions WHERE plan_id = 'quota-test'")
        db_conn.execute("DELETE FROM plans WHERE id = 'quota-test'")


def _post(url: str, body: dict, headers: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
