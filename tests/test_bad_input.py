"""Input PostgreSQL cannot store, or JSON too deep to parse: a clear 4xx, never a 500, and nothing written."""
from __future__ import annotations

import io

import pytest

from tests.conftest import signed_in


@pytest.mark.parametrize("path, body", [
    ("/api/ingest", {"title": "a\u0000b", "content": "x"}),
    ("/api/ingest", {"title": "t", "content": "x", "department": "I\u0000T"}),
    ("/api/ingest", {"title": "t", "content": "x", "rules": {"forbid_functions": ["SUM\u0000"]}}),
    ("/api/audit", {"formulas": ["=\u0000"]}),
    ("/api/audit", {"formulas": ["=1"], "context": {"sheetName": "S\u0000"}}),
])
def test_nul_characters_are_422(api, db_conn, path, body):
    response = api.post(path, json=body, headers=signed_in())
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_text"
    assert db_conn.execute("SELECT count(*) AS n FROM policies").fetchone()["n"] == 0
    assert db_conn.execute("SELECT count(*) AS n FROM audit_logs").fetchone()["n"] == 0


@pytest.mark.parametrize("raw", [b'{"formulas": ["=\\ud800"]}', b'{"formulas": ["=1"], "context": {"range": "\\udfff"}}'])
def test_lone_surrogates_are_422(api, raw):
    response = api.post("/api/audit", data=raw, content_type="application/json", headers=signed_in())
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_text"


def test_a_nul_in_the_query_string_is_422(api):
    response = api.get("/api/policies?department=%00", headers=signed_in())
    assert response.status_code == 422


def test_json_nested_too_deeply_is_400(api):
    response = api.post("/api/audit", data=b"[" * 100000, content_type="application/json", headers=signed_in())
    assert response.status_code == 400 and response.json["error"]["code"] == "malformed_json"


def test_a_workbook_named_with_a_nul_is_422(api):
    response = api.post("/api/audit/workbook", headers=signed_in(),
                        data={"file": (io.BytesIO(b"PK"), "bad\u0000name.xlsx")})
    assert response.status_code == 422
