"""Clerk session tokens: what is accepted, what attackers try, and who the caller turns out to be."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.clerk_keys import AUTHORIZED_PARTY, ISSUER, JwksServer, SigningKey
from tests.conftest import make_app, running_app

KEY = SigningKey("kid-1")
OTHER_KEY = SigningKey("kid-other")


@pytest.fixture
def app(database_url):
    with running_app(database_url, CLERK_JWT_KEY=KEY.public_pem, CLERK_ISSUER=ISSUER,
                     CLERK_AUTHORIZED_PARTIES=(AUTHORIZED_PARTY,)) as app:
        yield app


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_signs_in_and_creates_the_user_with_a_personal_organization(client):
    response = client.get("/api/me", headers=bearer(KEY.token("user_new", email="new@example.com")))
    assert response.status_code == 200
    body = response.json
    assert body["user"]["clerk_id"] == "user_new"
    assert body["user"]["email"] == "new@example.com"
    assert body["role"] == "admin"
    [personal] = body["memberships"]
    assert personal["is_personal"] and personal["organization_id"] == body["active_organization_id"]
    assert len(personal["slug"]) == 26  # a ULID


def test_the_session_cookie_works_like_the_header(client):
    client.set_cookie("__session", KEY.token("user_cookie"))
    assert client.get("/api/me").json["user"]["clerk_id"] == "user_cookie"


def test_repeated_and_concurrent_first_calls_create_one_user(app, db_conn):
    from concurrent.futures import ThreadPoolExecutor

    token = KEY.token("user_race")

    def call(_):
        return app.test_client().get("/api/me", headers=bearer(token)).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(call, range(16))) == {200}
    assert db_conn.execute("SELECT count(*) AS n FROM users WHERE clerk_id = 'user_race'").fetchone()["n"] == 1
    assert db_conn.execute("SELECT count(*) AS n FROM organizations WHERE is_personal").fetchone()["n"] == 1


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "user_admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none() -> str:
    return jwt.encode({"sub": "user_x", "iss": ISSUER, "iat": int(time.time()), "exp": int(time.time()) + 60},
                      None, algorithm="none")


def _hs256_with_public_key() -> str:
    # The classic confusion attack: HMAC keyed with the RSA public key, which every client can read.
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    now = int(time.time())
    payload = base64.urlsafe_b64encode(json.dumps(
        {"sub": "user_x", "iss": ISSUER, "iat": now, "exp": now + 60}).encode()).rstrip(b"=")
    import hashlib
    import hmac
    signature = hmac.new(KEY.public_pem.encode(), header + b"." + payload, hashlib.sha256).digest()
    return b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()


ATTACKS = {
    "expired": lambda: KEY.token(issued_ago=120, lifetime=60),
    "not yet valid": lambda: KEY.token(nbf=int(time.time()) + 120),
    "wrong issuer": lambda: KEY.token(iss="https://evil.example"),
    "wrong azp": lambda: KEY.token(azp="https://evil.example"),
    "wrong key": lambda: OTHER_KEY.token(),
    "alg none": _alg_none,
    "hs256 with the public key": _hs256_with_public_key,
    "tampered payload": lambda: _tamper(KEY.token("user_victim")),
    "pending session": lambda: KEY.token(sts="pending"),
    "no expiry": lambda: KEY.token(exp=None),
    "garbage": lambda: "not-a-jwt",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_refused_with_401_and_create_nobody(client, db_conn, attack):
    response = client.get("/api/me", headers=bearer(ATTACKS[attack]()))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"
    assert db_conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 0


def test_a_few_seconds_of_clock_skew_are_tolerated(client):
    skewed = KEY.token(iat=int(time.time()) + 3, nbf=int(time.time()) + 3)
    assert client.get("/api/me", headers=bearer(skewed)).status_code == 200


def test_no_credentials_is_401(client):
    response = client.get("/api/me")
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"


def test_dev_headers_alone_are_refused_unless_enabled(client):
    assert client.get("/api/me", headers={"x-user-id": "user_dev", "x-user-org": "org_dev"}).status_code == 401


def test_dev_headers_work_when_enabled(database_url):
    app = make_app(database_url, AUTH_DEV_HEADERS=True)
    try:
        response = app.test_client().get("/api/orgs/current", headers={"x-user-id": "user_dev", "x-user-org": "org_dev"})
        assert response.status_code == 200
        assert (response.json["clerk_id"], response.json["role"]) == ("org_dev", "admin")
    finally:
        app.extensions["db"].close()


@pytest.mark.parametrize("claims, role", [
    ({"org_id": "org_v1", "org_role": "org:admin", "org_slug": "acme"}, "admin"),
    ({"org_id": "org_v1", "org_role": "org:member", "org_slug": "acme"}, "member"),
    ({"v": 2, "o": {"id": "org_v2", "rol": "admin", "slg": "acme"}}, "admin"),
    ({"v": 2, "o": {"id": "org_v2", "rol": "member", "slg": "acme"}}, "member"),
    ({"v": 2, "o": {"id": "org_v2", "rol": "billing_manager", "slg": "acme"}}, "org:billing_manager"),
])
def test_both_organization_claim_formats_select_the_active_organization(client, claims, role):
    response = client.get("/api/orgs/current", headers=bearer(KEY.token("user_o", **claims)))
    assert response.status_code == 200
    expected_org = claims.get("org_id") or claims["o"]["id"]
    assert (response.json["clerk_id"], response.json["role"]) == (expected_org, role)


def test_a_removed_member_with_a_valid_token_gets_403(client, db_conn):
    token = KEY.token("user_gone", org_id="org_team", org_role="org:member")
    assert client.get("/api/orgs/current", headers=bearer(token)).status_code == 200
    db_conn.execute("""UPDATE organization_memberships SET ended_at = now()
                       WHERE organization_id = (SELECT id FROM organizations WHERE clerk_id = 'org_team')""")
    response = client.get("/api/orgs/current", headers=bearer(token))
    assert response.status_code == 403 and response.json["error"]["code"] == "not_a_member"


def test_a_deleted_organization_is_unreachable(client, db_conn):
    token = KEY.token("user_x", org_id="org_doomed", org_role="org:admin")
    assert client.get("/api/orgs/current", headers=bearer(token)).status_code == 200
    db_conn.execute("UPDATE organizations SET deleted_at = now() WHERE clerk_id = 'org_doomed'")
    assert client.get("/api/orgs/current", headers=bearer(token)).status_code == 403


def test_a_deleted_user_is_refused(client, db_conn):
    token = KEY.token("user_deleted")
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    db_conn.execute("UPDATE users SET deleted_at = now() WHERE clerk_id = 'user_deleted'")
    assert client.get("/api/me", headers=bearer(token)).json["error"]["code"] == "account_deleted"


def test_members_are_listed_and_invitations_are_for_admins_only(client, db_conn):
    admin = KEY.token("user_admin", org_id="org_shared", org_role="org:admin")
    member = KEY.token("user_member", org_id="org_shared", org_role="org:member")
    assert client.get("/api/orgs/current", headers=bearer(admin)).status_code == 200
    assert client.get("/api/orgs/current", headers=bearer(member)).status_code == 200
    listed = client.get("/api/orgs/current/members", headers=bearer(member)).json["members"]
    assert {(m["clerk_id"], m["role"]) for m in listed} == {("user_admin", "admin"), ("user_member", "member")}
    db_conn.execute("""INSERT INTO invitations (organization_id, clerk_id, email_address, role, status)
                       SELECT id, 'orginv_1', 'new@example.com', 'member', 'pending' FROM organizations
                       WHERE clerk_id = 'org_shared'""")
    refused = client.get("/api/orgs/current/invitations", headers=bearer(member))
    assert refused.status_code == 403 and refused.json["error"]["code"] == "role_required"
    invitations = client.get("/api/orgs/current/invitations", headers=bearer(admin)).json["invitations"]
    assert [i["email_address"] for i in invitations] == ["new@example.com"]


def test_jwks_keys_are_fetched_once_and_again_only_for_an_unknown_kid(database_url):
    old, new = SigningKey("kid-old"), SigningKey("kid-new")
    jwks = JwksServer([old])
    app = make_app(database_url, CLERK_ISSUER=ISSUER, CLERK_JWKS_URL=jwks.url, CLERK_JWKS_REFRESH_COOLDOWN=0)
    client = app.test_client()
    try:
        for _ in range(3):
            assert client.get("/api/me", headers=bearer(old.token("user_j"))).status_code == 200
        assert jwks.fetches == 1
        jwks.keys.append(new)  # Clerk rotates its signing key
        assert client.get("/api/me", headers=bearer(new.token("user_j"))).status_code == 200
        assert jwks.fetches == 2
        assert client.get("/api/me", headers=bearer(OTHER_KEY.token("user_j"))).status_code == 401
        assert jwks.fetches == 3  # one refresh for the unknown kid, then refused
    finally:
        app.extensions["db"].close()
        jwks.close()


def test_unknown_kids_within_the_cooldown_do_not_refetch(database_url):
    jwks = JwksServer([KEY])
    app = make_app(database_url, CLERK_ISSUER=ISSUER, CLERK_JWKS_URL=jwks.url, CLERK_JWKS_REFRESH_COOLDOWN=60)
    try:
        client = app.test_client()
        assert client.get("/api/me", headers=bearer(KEY.token("user_k"))).status_code == 200
        for _ in range(5):
            assert client.get("/api/me", headers=bearer(OTHER_KEY.token("user_k"))).status_code == 401
        assert jwks.fetches == 1
    finally:
        app.extensions["db"].close()
        jwks.close()


@pytest.mark.parametrize("demoted", [{"org_id": "org_dm", "org_role": "org:member"},
                                     {"v": 2, "o": {"id": "org_dm", "rol": "member", "slg": "dm"}}])
def test_a_demoted_admin_loses_admin_rights_with_the_next_token(client, demoted):
    admin = KEY.token("user_dm", org_id="org_dm", org_role="org:admin")
    assert client.post("/api/billing", json={"plan": "pro"}, headers=bearer(admin)).status_code == 200
    response = client.post("/api/billing", json={"plan": "enterprise"}, headers=bearer(KEY.token("user_dm", **demoted)))
    assert response.status_code == 403
    assert client.get("/api/billing", headers=bearer(admin)).json["plan"] == "pro"


def test_a_deleted_users_token_creates_nothing(client, db_conn):
    assert client.get("/api/me", headers=bearer(KEY.token("user_del"))).status_code == 200
    db_conn.execute("UPDATE users SET deleted_at = now() WHERE clerk_id = 'user_del'")
    response = client.get("/api/orgs/current", headers=bearer(KEY.token("user_del", org_id="org_new", org_role="org:admin")))
    assert response.status_code == 401
    assert db_conn.execute("SELECT count(*) AS n FROM organizations WHERE clerk_id = 'org_new'").fetchone()["n"] == 0


def test_an_organization_whose_slug_is_still_taken_can_sign_in(client, db_conn):
    first = KEY.token("user_s1", org_id="org_old", org_role="org:admin", org_slug="acme")
    second = KEY.token("user_s2", org_id="org_reuses_slug", org_role="org:admin", org_slug="acme")
    assert client.get("/api/orgs/current", headers=bearer(first)).json["slug"] == "acme"
    response = client.get("/api/orgs/current", headers=bearer(second))
    assert response.status_code == 200
    assert response.json["clerk_id"] == "org_reuses_slug" and response.json["slug"] != "acme"


def test_a_jwt_key_without_an_issuer_refuses_to_start(database_url):
    with pytest.raises(RuntimeError, match="CLERK_ISSUER"):
        make_app(database_url, CLERK_JWT_KEY=KEY.public_pem, CLERK_ISSUER=None)
