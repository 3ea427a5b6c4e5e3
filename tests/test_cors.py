"""Cross-origin calls from a frontend on another origin, as a browser makes them: a preflight, then the request."""
from __future__ import annotations

import pytest

from app import create_app
from cors import parse_origins
from tests.clerk_keys import ISSUER
from tests.conftest import CLERK_KEY, running_app, signed_in

FRONTEND = "https://app.example.com"


@pytest.fixture
def cors_app(database_url):
    with running_app(database_url, CLERK_JWT_KEY=CLERK_KEY.public_pem, CLERK_ISSUER=ISSUER,
                     CORS_ALLOWED_ORIGINS=f"{FRONTEND}, http://localhost:3000/") as app:
        yield app


def preflight(client, path: str, origin: str, method: str = "POST", headers: str = "authorization,content-type"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": headers})


def test_a_preflight_from_the_frontend_is_answered_without_credentials(cors_app, db_conn):
    response = preflight(cors_app.test_client(), "/api/audit", FRONTEND)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert "Origin" in response.headers["Vary"]
    # Neither authentication nor the rate limiter saw it: no organization's budget was spent.
    assert db_conn.execute("SELECT count(*) AS n FROM rate_limit_buckets").fetchone()["n"] == 0


def test_tus_preflights_allow_the_upload_headers(cors_app):
    response = preflight(cors_app.test_client(), "/api/storage/upload/resumable/abc", "http://localhost:3000",
                         method="PATCH", headers="tus-resumable,upload-offset,content-type,authorization")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    assert "upload-offset" in response.headers["Access-Control-Allow-Headers"]


def test_other_origins_get_no_cors_headers(cors_app):
    client = cors_app.test_client()
    response = preflight(client, "/api/me", "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers

    response = client.get("/api/me", headers={**signed_in(), "Origin": "https://evil.example.net"})
    assert response.status_code == 200  # the server answers; the browser withholds it from the other origin's script
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_responses_to_the_frontend_expose_the_headers_its_scripts_need(cors_app):
    response = cors_app.test_client().get("/api/me", headers={**signed_in(), "Origin": FRONTEND})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "X-RateLimit-Remaining", "Retry-After", "Upload-Offset", "Location"} <= exposed
    assert "X-RateLimit-Remaining" in response.headers


def test_errors_carry_cors_headers_so_the_frontend_can_read_them(cors_app):
    response = cors_app.test_client().get("/api/me", headers={"Origin": FRONTEND})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.json["error"]["code"] == "unauthorized"


def test_the_authorized_parties_are_the_default_origins(database_url):
    with running_app(database_url, CLERK_JWT_KEY=CLERK_KEY.public_pem, CLERK_ISSUER=ISSUER,
                     CLERK_AUTHORIZED_PARTIES=(FRONTEND,)) as app:
        response = preflight(app.test_client(), "/api/me", FRONTEND, method="GET")
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND


def test_without_origins_nothing_cross_origin_is_allowed(api):
    response = api.get("/api/me", headers={**signed_in(), "Origin": FRONTEND})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert api.options("/api/me", headers={"Origin": FRONTEND, "Access-Control-Request-Method": "GET"}) \
        .headers.get("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("setting", ["*", "app.example.com", "https://app.example.com/path", "ftp://files.example.com"])
def test_a_setting_that_is_not_a_list_of_origins_stops_the_start(setting, database_url):
    with pytest.raises(ValueError, match="CORS_ALLOWED_ORIGINS"):
        create_app({"DATABASE_URL": database_url, "AUTO_MIGRATE": False, "CORS_ALLOWED_ORIGINS": setting})


def test_origins_are_compared_as_browsers_send_them():
    assert parse_origins("HTTPS://App.Example.com/, http://localhost:5173") == {
        "https://app.example.com", "http://localhost:5173"}
    assert parse_origins("") == frozenset()
