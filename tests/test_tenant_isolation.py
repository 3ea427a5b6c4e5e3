"""Row-level security: a request's tenant transaction sees its own organization and nothing else, even when a
query forgets its organization filter."""
from __future__ import annotations

import psycopg
import pytest
from flask import Blueprint

from auth import current_caller
from db import get_db
from tests.clerk_keys import ISSUER, SigningKey
from tests.conftest import running_app

KEY = SigningKey("kid-rls")


@pytest.fixture
def app(database_url):
    """The real app plus probe routes that run deliberately unfiltered SQL through the request's connection."""
    with running_app(database_url, CLERK_JWT_KEY=KEY.public_pem, CLERK_ISSUER=ISSUER) as app:
        yield _with_probe_routes(app)


def _with_probe_routes(app):
    probe = Blueprint("probe", __name__, url_prefix="/api/probe")

    @probe.get("/unfiltered")
    def unfiltered():
        with get_db().tenant_transaction(current_caller().organization_id) as conn:
            who = conn.execute("SELECT current_user AS role, r.rolsuper, r.rolbypassrls FROM pg_roles r"
                               " WHERE r.rolname = current_user").fetchone()
            return {
                "role": who,
                "policies": [r["title"] for r in conn.execute("SELECT title FROM policies ORDER BY title")],
                "organizations": [r["clerk_id"] for r in conn.execute("SELECT clerk_id FROM organizations")],
                "memberships": conn.execute("SELECT count(*) AS n FROM organization_memberships").fetchone()["n"],
                "users": [r["clerk_id"] for r in conn.execute("SELECT clerk_id FROM users ORDER BY clerk_id")],
                "stats_of_other": conn.execute(
                    "SELECT get_org_stats(id) AS s FROM organizations").fetchall(),
            }

    @probe.post("/write-elsewhere/<org_id>")
    def write_elsewhere(org_id):
        try:
            with get_db().tenant_transaction(current_caller().organization_id) as conn:
                conn.execute("INSERT INTO policies (organization_id, title, content) VALUES (%s, 'sneaky', 'x')",
                             (org_id,))
        except psycopg.errors.InsufficientPrivilege as exc:
            return {"written": False, "sqlstate": exc.sqlstate}
        return {"written": True}

    app.register_blueprint(probe)
    return app


def _sign_in(client, user: str, org: str) -> dict:
    headers = {"Authorization": f"Bearer {KEY.token(user, org_id=org, org_role='org:admin')}"}
    assert client.get("/api/orgs/current", headers=headers).status_code == 200
    return headers


def _org_id(db_conn, clerk_id: str):
    return db_conn.execute("SELECT id FROM organizations WHERE clerk_id = %s", (clerk_id,)).fetchone()["id"]


def test_an_unfiltered_select_sees_only_the_current_organization(client, db_conn):
    acme = _sign_in(client, "user_acme", "org_acme")
    _sign_in(client, "user_globex", "org_globex")
    for org, title in (("org_acme", "Acme rule"), ("org_globex", "Globex rule"), ("org_globex", "Globex other")):
        db_conn.execute("INSERT INTO policies (organization_id, title, content) VALUES (%s, %s, 'x')",
                        (_org_id(db_conn, org), title))

    seen = client.get("/api/probe/unfiltered", headers=acme).json
    assert seen["role"] == {"role": "sheetbrain_tenant", "rolsuper": False, "rolbypassrls": False}
    assert seen["policies"] == ["Acme rule"]
    assert seen["organizations"] == ["org_acme"]
    assert seen["memberships"] == 1
    assert seen["users"] == ["user_acme"]
    assert len(seen["stats_of_other"]) == 1


def test_a_tenant_cannot_write_into_another_organization(client, db_conn):
    acme = _sign_in(client, "user_acme", "org_acme")
    _sign_in(client, "user_globex", "org_globex")
    response = client.post(f"/api/probe/write-elsewhere/{_org_id(db_conn, 'org_globex')}", headers=acme)
    assert response.json == {"written": False, "sqlstate": "42501"}  # new row violates row-level security
    assert db_conn.execute("SELECT count(*) AS n FROM policies").fetchone()["n"] == 0


def test_a_reused_connection_without_an_organization_sees_nothing(database_url, db_conn):
    """current_setting returns '' (not NULL) once a transaction on the connection has set it; that must mean
    'no organization', not an error and not every row."""
    db_conn.execute("INSERT INTO organizations (name, slug, clerk_id) VALUES ('A', 'a', 'org_a')")
    db_conn.execute("INSERT INTO policies (organization_id, title, content) SELECT id, 'p', 'x' FROM organizations")
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('role', 'sheetbrain_tenant', true),"
                         " set_config('app.organization_id', %s, true)", (str(_org_id(db_conn, "org_a")),))
            assert conn.execute("SELECT count(*) FROM policies").fetchone()[0] == 1
        with conn.transaction():
            conn.execute("SELECT set_config('role', 'sheetbrain_tenant', true)")
            assert conn.execute("SELECT current_setting('app.organization_id', true)").fetchone()[0] == ""
            assert conn.execute("SELECT count(*) FROM policies").fetchone()[0] == 0


def test_members_of_another_organization_are_not_listed(client):
    acme = _sign_in(client, "user_acme", "org_acme")
    _sign_in(client, "user_globex", "org_globex")
    members = client.get("/api/orgs/current/members", headers=acme).json["members"]
    assert [m["clerk_id"] for m in members] == ["user_acme"]
