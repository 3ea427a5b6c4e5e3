"""The Clerk webhook, POST /api/auth/webhook: verification, exactly-once delivery, every event type, ordering."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql

import clerk_events
from tests import clerk_payloads as cp
from tests import pg
from tests.conftest import _truncate_all, make_app

URL = "/api/auth/webhook"
USER = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
ORG = "org_2Z8SvKpTLcN9S4rEbzfPQ0bWdKD"
MEMBERSHIP = "orgmem_2ZB1YMKbU5KW4KZsHqHgf6Ywm6q"
INVITATION = "orginv_2ZB2nmIgJ7dNJ6ZE6fTxDDCUsXt"


@pytest.fixture
def hook_app(database_url):
    app = make_app(database_url, CLERK_WEBHOOK_SECRET=cp.SECRET)
    yield app
    app.extensions["db"].close()
    _truncate_all(database_url)


@pytest.fixture
def hook(hook_app):
    return hook_app.test_client()


@pytest.fixture
def conn(database_url):
    with pg.connect(database_url) as connection:
        yield connection


def deliver(client, event_type: str, data: dict, **signing):
    body, headers = cp.signed(cp.event(event_type, data), **signing)
    return client.post(URL, data=body, headers=headers)


def ok(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def count(conn, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()["n"]


def user_row(conn, clerk_id: str = USER) -> dict | None:
    return conn.execute("SELECT * FROM users WHERE clerk_id = %s", (clerk_id,)).fetchone()


def org_row(conn, clerk_id: str = ORG) -> dict | None:
    return conn.execute("SELECT o.*, s.plan_id FROM organizations o LEFT JOIN subscriptions s"
                        " ON s.organization_id = o.id WHERE o.clerk_id = %s", (clerk_id,)).fetchone()


def membership_row(conn, org: str = ORG, user: str = USER) -> dict | None:
    return conn.execute("""
        SELECT m.* FROM organization_memberships m
        JOIN organizations o ON o.id = m.organization_id JOIN users u ON u.id = m.user_id
        WHERE o.clerk_id = %s AND u.clerk_id = %s""", (org, user)).fetchone()


def nothing_written(conn) -> bool:
    return count(conn, "webhook_events") == 0 and count(conn, "users") == 0 and count(conn, "organizations") == 0


# --- Verification ------------------------------------------------------------------------------------------------

def test_a_signed_user_created_creates_the_user_with_a_personal_organization_and_a_free_plan(hook, conn):
    response = deliver(hook, "user.created", cp.user_data(USER, updated_at=cp.T0 + 5))
    assert ok(response) == {"received": True, "duplicate": False, "handled": True, "applied": True}
    user = user_row(conn)
    assert (user["email"], user["first_name"], user["last_name"]) == ("ada@example.com", "Ada", "Lovelace")
    assert user["clerk_updated_at"] == clerk_events.from_ms(cp.T0 + 5)
    personal = conn.execute("SELECT o.*, s.plan_id FROM organizations o JOIN subscriptions s ON s.organization_id = o.id"
                            " WHERE o.id = %s", (user["personal_organization_id"],)).fetchone()
    assert personal["is_personal"] and personal["plan_id"] == "free" and len(personal["slug"]) == 26
    assert conn.execute("SELECT event_type, clerk_object_id, handled, payload FROM webhook_events").fetchall() == [
        {"event_type": "user.created", "clerk_object_id": USER, "handled": True, "payload": None}]


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_a_delivery_missing_a_svix_header_is_refused_and_writes_nothing(hook, conn, missing):
    body, headers = cp.signed(cp.event("user.created", cp.user_data(USER)))
    del headers[missing]
    response = hook.post(URL, data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert nothing_written(conn)


@pytest.mark.parametrize("case", ["other secret", "tampered body", "garbage header", "bad base64", "other version"])
def test_a_forged_signature_is_refused_and_writes_nothing(hook, conn, case):
    body, headers = cp.signed(cp.event("user.created", cp.user_data(USER)),
                              secret=cp.OTHER_SECRET if case == "other secret" else cp.SECRET)
    if case == "tampered body":
        body = body.replace(b"ada@example.com", b"eve@example.com")
    elif case == "garbage header":
        headers["svix-signature"] = "garbage"
    elif case == "bad base64":
        headers["svix-signature"] = "v1,!!!not-base64!!!"
    elif case == "other version":
        headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    response = hook.post(URL, data=body, headers=headers)
    assert response.status_code == 401
    assert nothing_written(conn)


@pytest.mark.parametrize("minutes_ago", [6, -6])
def test_a_timestamp_more_than_five_minutes_away_is_refused(hook, conn, minutes_ago):
    response = deliver(hook, "user.created", cp.user_data(USER), at=cp.minutes_ago(minutes_ago))
    assert response.status_code == 401
    assert nothing_written(conn)


@pytest.mark.parametrize("minutes_ago", [4, -4])
def test_a_timestamp_within_five_minutes_is_accepted(hook, minutes_ago):
    ok(deliver(hook, "user.created", cp.user_data(USER), at=cp.minutes_ago(minutes_ago)))


def test_during_a_secret_rotation_one_valid_signature_among_several_is_enough(hook, conn):
    ok(deliver(hook, "user.created", cp.user_data(USER), also_signed_with=(cp.OTHER_SECRET,)))
    assert user_row(conn) is not None
    body, headers = cp.signed(cp.event("user.created", cp.user_data("user_2other")), secret=cp.OTHER_SECRET,
                              also_signed_with=(cp.OTHER_SECRET,))
    assert hook.post(URL, data=body, headers=headers).status_code == 401


@pytest.mark.parametrize("secret", [None, "", "whsec_"])
def test_without_a_usable_secret_every_post_is_refused(database_url, conn, secret):
    app = make_app(database_url, CLERK_WEBHOOK_SECRET=secret)
    try:
        response = deliver(app.test_client(), "user.created", cp.user_data(USER))
    finally:
        app.extensions["db"].close()
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "webhook_not_configured"
    assert nothing_written(conn)
    _truncate_all(database_url)


def test_a_body_over_one_megabyte_is_refused_before_verifying(hook, conn):
    data = cp.user_data(USER)
    data["unsafe_metadata"] = {"blob": "x" * (1024 * 1024)}
    response = deliver(hook, "user.created", data)
    assert response.status_code == 413
    assert nothing_written(conn)


def test_a_signed_body_that_is_not_an_event_is_a_bad_request(hook, conn):
    body, headers = cp.signed(b"not json at all")
    assert hook.post(URL, data=body, headers=headers).status_code == 400
    body, headers = cp.signed(b'["an", "array"]')
    assert hook.post(URL, data=body, headers=headers).status_code == 400
    assert nothing_written(conn)


@pytest.mark.parametrize("event_type, data", [
    ("user.created", {k: v for k, v in cp.user_data(USER).items() if k != "id"}),
    ("user.updated", {**cp.user_data(USER), "updated_at": "yesterday"}),
    ("organization.created", {k: v for k, v in cp.organization_data(ORG).items() if k != "name"}),
    ("organizationMembership.created", {"id": MEMBERSHIP, "role": "org:admin", "created_at": cp.T0,
                                        "updated_at": cp.T0}),
    ("organizationInvitation.created", {k: v for k, v in cp.invitation_data(INVITATION, organization_id=ORG).items()
                                        if k != "email_address"}),
])
def test_a_handled_event_without_the_data_clerk_sends_is_refused_and_not_recorded(hook, conn, event_type, data):
    response = deliver(hook, event_type, data)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_event"
    assert nothing_written(conn)


def test_only_post_is_allowed(hook):
    assert hook.get(URL).status_code == 405


# --- Exactly once ------------------------------------------------------------------------------------------------

def test_a_redelivered_id_changes_nothing_and_is_acknowledged(hook, conn):
    created, created_id = cp.user_data(USER, updated_at=cp.T0), cp.msg_id()
    ok(deliver(hook, "user.created", created, message_id=created_id))
    ok(deliver(hook, "user.updated", cp.user_data(USER, first_name="Augusta", updated_at=cp.T0 + 1000)))
    # Svix re-signs a retry with a fresh timestamp but keeps the id and the body.
    again = ok(deliver(hook, "user.created", created, message_id=created_id, at=cp.minutes_ago(1)))
    assert again == {"received": True, "duplicate": True, "handled": True, "applied": False}
    assert user_row(conn)["first_name"] == "Augusta"
    assert count(conn, "webhook_events") == 2


def test_concurrent_deliveries_of_one_id_apply_it_once(hook_app, conn):
    body, headers = cp.signed(cp.event("user.created", cp.user_data(USER)))
    start = threading.Barrier(8)

    def post(_):
        client = hook_app.test_client()
        start.wait()
        return client.post(URL, data=body, headers=headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert sorted(r.get_json()["duplicate"] for r in responses) == [False] + [True] * 7
    assert (count(conn, "webhook_events"), count(conn, "users"), count(conn, "organizations")) == (1, 1, 1)


def wait_for_a_blocked_backend(database_url: str, seconds: float = 10) -> None:
    """Return once a session of the test database waits on a lock; raise AssertionError if none does in time."""
    deadline = time.monotonic() + seconds
    with pg.connect(database_url) as watcher:
        while time.monotonic() < deadline:
            blocked = watcher.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                                      " AND wait_event_type = 'Lock'").fetchone()["n"]
            if blocked:
                return
            time.sleep(0.02)
    raise AssertionError("no delivery waited on the lock")


@pytest.mark.parametrize("first_delivery_commits", [True, False])
def test_a_redelivery_waits_for_the_first_delivery_of_its_id(hook, conn, database_url, first_delivery_commits):
    """The id is recorded in the transaction that applies the event: a concurrent redelivery waits for it, then is a
    duplicate if it committed, or applies the event itself if it failed (rolled back)."""
    body, headers = cp.signed(cp.event("user.created", cp.user_data(USER)))
    results = []
    with conn.transaction():
        conn.execute("INSERT INTO webhook_events (svix_id, event_type, handled) VALUES (%s, 'user.created', true)",
                     (headers["svix-id"],))
        redelivery = threading.Thread(target=lambda: results.append(hook.post(URL, data=body, headers=headers)))
        redelivery.start()
        wait_for_a_blocked_backend(database_url)  # on the first delivery's uncommitted id
        assert not results
        if not first_delivery_commits:
            raise psycopg.Rollback()  # the first delivery failed
    redelivery.join(10)
    assert ok(results[0])["duplicate"] is first_delivery_commits
    assert (user_row(conn) is None) is first_delivery_commits


def test_a_failed_delivery_is_not_recorded_so_the_retry_applies_it(hook, conn):
    ok(deliver(hook, "organization.created", cp.organization_data("org_2holder", slug="acme", updated_at=cp.T0)))
    # The newcomer took "acme" after the holder moved to "acme-old", but the holder's update is late.
    newcomer = cp.event("organization.created", cp.organization_data(ORG, slug="acme", updated_at=cp.T0 + 10))
    body, headers = cp.signed(newcomer)
    response = hook.post(URL, data=body, headers=headers)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "slug_taken"
    assert count(conn, "webhook_events") == 1 and org_row(conn) is None
    ok(deliver(hook, "organization.updated", cp.organization_data("org_2holder", slug="acme-old",
                                                                   updated_at=cp.T0 + 5)))
    body, headers = cp.signed(newcomer, message_id=headers["svix-id"])  # Svix's retry
    assert ok(hook.post(URL, data=body, headers=headers))["duplicate"] is False
    assert org_row(conn)["slug"] == "acme"


def test_an_unknown_event_type_is_recorded_acknowledged_and_ignored(hook, conn):
    data = {"id": "sess_2ZB3", "object": "session", "user_id": USER, "status": "active", "created_at": cp.T0}
    assert ok(deliver(hook, "session.created", data)) == {
        "received": True, "duplicate": False, "handled": False, "applied": False}
    row = conn.execute("SELECT event_type, clerk_object_id, handled, payload FROM webhook_events").fetchone()
    assert (row["event_type"], row["clerk_object_id"], row["handled"]) == ("session.created", "sess_2ZB3", False)
    assert row["payload"]["data"] == data  # kept, to replay if we start handling the type
    assert count(conn, "users") == 0


def test_prune_webhook_events_deletes_only_ids_older_than_the_interval(db_conn):
    db_conn.execute("""
        INSERT INTO webhook_events (svix_id, event_type, handled, received_at) VALUES
            ('msg_old', 'user.created', true, now() - interval '31 days'),
            ('msg_older', 'session.created', false, now() - interval '90 days'),
            ('msg_recent', 'user.updated', true, now() - interval '29 days'),
            ('msg_now', 'user.updated', true, now())""")
    assert db_conn.execute("SELECT prune_webhook_events() AS n").fetchone()["n"] == 2
    assert db_conn.execute("SELECT prune_webhook_events('1 day') AS n").fetchone()["n"] == 1
    assert [r["svix_id"] for r in db_conn.execute("SELECT svix_id FROM webhook_events")] == ["msg_now"]
    assert db_conn.execute("SELECT prune_webhook_events() AS n").fetchone()["n"] == 0


# --- Users -------------------------------------------------------------------------------------------------------

def test_the_primary_email_is_the_one_primary_email_address_id_names(hook, conn):
    ok(deliver(hook, "user.created", cp.user_data(USER, email="ada@work.example", secondary_email="ada@home.example")))
    assert user_row(conn)["email"] == "ada@work.example"


def test_a_phone_only_user_is_valid_and_has_no_email(hook, conn):
    data = cp.user_data(USER, email=None, first_name=None, last_name=None, phone="+15555550100")
    assert data["email_addresses"] == [] and data["primary_email_address_id"] is None
    ok(deliver(hook, "user.created", data))
    user = user_row(conn)
    assert (user["email"], user["first_name"], user["personal_organization_id"] is not None) == (None, None, True)


def test_user_updated_applies_a_newer_profile(hook, conn):
    ok(deliver(hook, "user.created", cp.user_data(USER, updated_at=cp.T0)))
    response = deliver(hook, "user.updated", cp.user_data(USER, email="ada@new.example", first_name="Augusta",
                                                          image_url="https://img.clerk.com/new", updated_at=cp.T0 + 1))
    assert ok(response)["applied"] is True
    user = user_row(conn)
    assert (user["email"], user["first_name"], user["image_url"]) == (
        "ada@new.example", "Augusta", "https://img.clerk.com/new")


def test_an_update_that_arrives_before_the_create_wins_over_it(hook, conn):
    ok(deliver(hook, "user.updated", cp.user_data(USER, first_name="Augusta", updated_at=cp.T0 + 1000)))
    assert ok(deliver(hook, "user.created", cp.user_data(USER, updated_at=cp.T0)))["applied"] is False
    assert user_row(conn)["first_name"] == "Augusta"
    assert count(conn, "users") == 1 and count(conn, "organizations") == 1


def test_a_stale_update_is_ignored(hook, conn):
    ok(deliver(hook, "user.updated", cp.user_data(USER, first_name="Third", updated_at=cp.T0 + 3000)))
    assert ok(deliver(hook, "user.updated", cp.user_data(USER, first_name="Second", updated_at=cp.T0 + 2000)))[
        "applied"] is False
    assert user_row(conn)["first_name"] == "Third"


def test_user_created_after_sign_in_fills_in_the_profile_without_a_duplicate(hook, conn):
    # Sign-in saw the user first, from a session token: only the Clerk id and maybe an email.
    conn.execute("SELECT * FROM ensure_user(%s, %s)", (USER, "token@example.com"))
    ok(deliver(hook, "user.created", cp.user_data(USER, updated_at=cp.T0)))
    user = user_row(conn)
    assert (user["email"], user["first_name"], user["clerk_updated_at"]) == (
        "ada@example.com", "Ada", clerk_events.from_ms(cp.T0))
    assert count(conn, "users") == 1 and count(conn, "organizations") == 1


def test_user_deleted_soft_deletes_clears_the_profile_and_ends_every_membership(hook, conn):
    user = cp.user_data(USER)
    ok(deliver(hook, "user.created", user))
    ok(deliver(hook, "organizationMembership.created",
               cp.membership_data(MEMBERSHIP, organization=cp.organization_data(ORG), user=user)))
    assert ok(deliver(hook, "user.deleted", cp.deleted_user_data(USER)))["applied"] is True
    row = user_row(conn)
    assert row["deleted_at"] is not None
    assert (row["email"], row["first_name"], row["last_name"], row["image_url"]) == (None, None, None, None)
    ended = conn.execute("SELECT count(*) FILTER (WHERE ended_at IS NULL) AS live, count(*) AS n"
                         " FROM organization_memberships WHERE user_id = %s", (row["id"],)).fetchone()
    assert (ended["live"], ended["n"]) == (0, 2)  # the Clerk organization and the personal one
    personal = conn.execute("SELECT * FROM organizations WHERE id = %s", (row["personal_organization_id"],)).fetchone()
    assert personal["deleted_at"] is not None and personal["name"] == "Personal workspace"
    assert org_row(conn)["deleted_at"] is None  # the Clerk organization lives on
    assert ok(deliver(hook, "user.deleted", cp.deleted_user_data(USER)))["applied"] is False


def test_a_deleted_user_cannot_be_resurrected_by_a_late_create(hook, conn):
    ok(deliver(hook, "user.deleted", cp.deleted_user_data(USER)))
    assert user_row(conn)["deleted_at"] is not None  # a tombstone for a user never seen
    assert ok(deliver(hook, "user.created", cp.user_data(USER)))["applied"] is False
    row = user_row(conn)
    assert row["deleted_at"] is not None and row["email"] is None


def test_an_update_after_the_delete_is_ignored(hook, conn):
    ok(deliver(hook, "user.created", cp.user_data(USER, updated_at=cp.T0)))
    ok(deliver(hook, "user.deleted", cp.deleted_user_data(USER)))
    later = cp.user_data(USER, first_name="Zombie", updated_at=cp.T0 + 10**9)
    assert ok(deliver(hook, "user.updated", later))["applied"] is False
    row = user_row(conn)
    assert row["deleted_at"] is not None and row["first_name"] is None


# --- Organizations -----------------------------------------------------------------------------------------------

def test_organization_created_stores_it_with_a_free_subscription(hook, conn):
    ok(deliver(hook, "organization.created", cp.organization_data(
        ORG, name="Acme Inc", slug="acme-inc", created_by=USER, public_metadata={"tier": "gold"})))
    org = org_row(conn)
    assert (org["name"], org["slug"], org["created_by_clerk_user_id"], org["metadata"], org["is_personal"]) == (
        "Acme Inc", "acme-inc", USER, {"tier": "gold"}, False)
    assert org["plan_id"] == "free"


def test_an_organization_keeps_the_subscription_it_has(hook, conn):
    ok(deliver(hook, "organization.created", cp.organization_data(ORG, updated_at=cp.T0)))
    conn.execute("UPDATE subscriptions SET plan_id = 'pro' WHERE organization_id = %s", (org_row(conn)["id"],))
    ok(deliver(hook, "organization.updated", cp.organization_data(ORG, name="Acme Corp", updated_at=cp.T0 + 1)))
    assert (org_row(conn)["name"], org_row(conn)["plan_id"]) == ("Acme Corp", "pro")


def test_organization_updates_apply_by_updated_at(hook, conn):
    ok(deliver(hook, "organization.updated", cp.organization_data(ORG, name="Newest", slug="newest",
                                                                   updated_at=cp.T0 + 2)))
    assert ok(deliver(hook, "organization.created", cp.organization_data(ORG, updated_at=cp.T0)))["applied"] is False
    assert ok(deliver(hook, "organization.updated", cp.organization_data(ORG, name="Older", updated_at=cp.T0 + 1)))[
        "applied"] is False
    assert (org_row(conn)["name"], org_row(conn)["slug"]) == ("Newest", "newest")


def test_an_organization_without_a_slug_is_valid(hook, conn):
    ok(deliver(hook, "organization.created", cp.organization_data(ORG, slug=None)))
    assert org_row(conn)["slug"] == ORG


def test_organization_deleted_soft_deletes_it_ends_memberships_and_frees_its_slug(hook, conn):
    user = cp.user_data(USER)
    org = cp.organization_data(ORG, slug="acme")
    ok(deliver(hook, "organization.created", org))
    ok(deliver(hook, "organizationMembership.created", cp.membership_data(MEMBERSHIP, organization=org, user=user)))
    assert ok(deliver(hook, "organization.deleted", cp.deleted_organization_data(ORG)))["applied"] is True
    row = org_row(conn)
    assert row["deleted_at"] is not None and row["slug"] == ORG
    assert membership_row(conn)["ended_at"] is not None
    assert user_row(conn)["deleted_at"] is None
    # Clerk lets a new organization take the slug at once.
    ok(deliver(hook, "organization.created", cp.organization_data("org_2successor", slug="acme")))
    assert org_row(conn, "org_2successor")["slug"] == "acme"


def test_a_deleted_organization_cannot_be_resurrected(hook, conn):
    ok(deliver(hook, "organization.deleted", cp.deleted_organization_data(ORG)))
    assert org_row(conn)["deleted_at"] is not None
    assert ok(deliver(hook, "organization.created", cp.organization_data(ORG)))["applied"] is False
    assert ok(deliver(hook, "organization.updated", cp.organization_data(ORG, updated_at=cp.T0 + 10**9)))[
        "applied"] is False
    row = org_row(conn)
    assert row["deleted_at"] is not None and row["name"] == ORG
    # A late membership of the deleted organization is recorded as ended.
    ok(deliver(hook, "organizationMembership.created", cp.membership_data(
        MEMBERSHIP, organization=cp.organization_data(ORG), user=cp.user_data(USER))))
    assert membership_row(conn)["ended_at"] is not None


# --- Memberships -------------------------------------------------------------------------------------------------

def test_a_membership_before_its_user_and_organization_creates_both_from_the_event(hook, conn):
    user = cp.user_data(USER, first_name="Grace", last_name="Hopper", email="grace@example.com")
    org = cp.organization_data(ORG, name="Navy", slug="navy", created_by=USER, updated_at=cp.T0 + 7)
    ok(deliver(hook, "organizationMembership.created",
               cp.membership_data(MEMBERSHIP, organization=org, user=user, role="org:admin")))
    created = user_row(conn)
    assert (created["email"], created["first_name"], created["last_name"], created["clerk_updated_at"]) == (
        "grace@example.com", "Grace", "Hopper", None)
    assert created["personal_organization_id"] is not None
    assert (org_row(conn)["name"], org_row(conn)["slug"], org_row(conn)["plan_id"]) == ("Navy", "navy", "free")
    membership = membership_row(conn)
    assert (membership["role"], membership["clerk_id"], membership["ended_at"]) == ("admin", MEMBERSHIP, None)
    # The user's own events, arriving later, fill in the profile rather than duplicate the user.
    ok(deliver(hook, "user.created", cp.user_data(USER, first_name="Rear Admiral Grace", last_name="Hopper",
                                                  email="grace@example.com")))
    assert user_row(conn)["first_name"] == "Rear Admiral Grace"
    assert count(conn, "users") == 1 and count(conn, "organizations") == 2
    ok(deliver(hook, "organization.created", cp.organization_data(ORG, name="Old", created_by=USER, updated_at=cp.T0)))
    assert org_row(conn)["name"] == "Navy"


@pytest.mark.parametrize("clerk_role, stored", [
    ("org:admin", "admin"), ("admin", "admin"), ("org:member", "member"), ("basic_member", "member"),
    ("org:billing_manager", "org:billing_manager"), ("org:viewer", "org:viewer"),
])
def test_roles_are_normalized(hook, conn, clerk_role, stored):
    ok(deliver(hook, "organizationMembership.created", cp.membership_data(
        MEMBERSHIP, organization=cp.organization_data(ORG), user=cp.user_data(USER), role=clerk_role)))
    assert membership_row(conn)["role"] == stored


def test_membership_updates_apply_by_updated_at(hook, conn):
    org, user = cp.organization_data(ORG), cp.user_data(USER)
    ok(deliver(hook, "organizationMembership.created", cp.membership_data(
        MEMBERSHIP, organization=org, user=user, role="org:member", updated_at=cp.T0)))
    ok(deliver(hook, "organizationMembership.updated", cp.membership_data(
        MEMBERSHIP, organization=org, user=user, role="org:admin", updated_at=cp.T0 + 2)))
    stale = deliver(hook, "organizationMembership.updated", cp.membership_data(
        MEMBERSHIP, organization=org, user=user, role="org:viewer", updated_at=cp.T0 + 1))
    assert ok(stale)["applied"] is False
    assert membership_row(conn)["role"] == "admin"


def test_membership_deleted_ends_it_for_good_until_the_user_is_added_again(hook, conn):
    org, user = cp.organization_data(ORG), cp.user_data(USER)
    first = cp.membership_data(MEMBERSHIP, organization=org, user=user, created_at=cp.T0, updated_at=cp.T0 + 1)
    ok(deliver(hook, "organizationMembership.deleted", first))
    assert membership_row(conn)["ended_at"] is not None  # a tombstone: the membership was never seen
    assert ok(deliver(hook, "organizationMembership.created", {**first, "updated_at": cp.T0}))["applied"] is False
    assert ok(deliver(hook, "organizationMembership.updated", {**first, "updated_at": cp.T0 + 10**9}))[
        "applied"] is False
    assert membership_row(conn)["ended_at"] is not None
    # Added again later: Clerk makes a new membership, which revives the pair.
    again = cp.membership_data("orgmem_2again", organization=org, user=user, role="org:admin", created_at=cp.T0 + 50)
    ok(deliver(hook, "organizationMembership.created", again))
    row = membership_row(conn)
    assert (row["clerk_id"], row["role"], row["ended_at"]) == ("orgmem_2again", "admin", None)
    # The old membership's events stay ignored, whatever their order.
    assert ok(deliver(hook, "organizationMembership.updated", {**first, "role": "org:viewer", "updated_at": cp.T0 + 99}))[
        "applied"] is False
    assert membership_row(conn)["clerk_id"] == "orgmem_2again"


def test_a_membership_of_a_deleted_user_is_recorded_as_ended(hook, conn):
    ok(deliver(hook, "user.deleted", cp.deleted_user_data(USER)))
    ok(deliver(hook, "organizationMembership.created", cp.membership_data(
        MEMBERSHIP, organization=cp.organization_data(ORG), user=cp.user_data(USER))))
    assert membership_row(conn)["ended_at"] is not None
    assert user_row(conn)["first_name"] is None  # the membership's user data does not refill a deleted profile


def test_a_membership_of_a_phone_only_user_leaves_the_email_empty(hook, conn):
    user = cp.user_data(USER, email=None, phone="+15555550100")
    ok(deliver(hook, "organizationMembership.created", cp.membership_data(
        MEMBERSHIP, organization=cp.organization_data(ORG), user=user)))
    assert user_row(conn)["email"] is None


# --- Invitations -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("outcome", ["accepted", "revoked"])
def test_an_invitation_goes_from_pending_to_its_outcome(hook, conn, outcome):
    ok(deliver(hook, "organization.created", cp.organization_data(ORG)))
    pending = cp.invitation_data(INVITATION, organization_id=ORG, role="basic_member", updated_at=cp.T0)
    ok(deliver(hook, "organizationInvitation.created", pending))
    row = conn.execute("SELECT * FROM invitations").fetchone()
    assert (row["clerk_id"], row["email_address"], row["role"], row["status"]) == (
        INVITATION, "grace@example.com", "member", "pending")
    ok(deliver(hook, f"organizationInvitation.{outcome}", {**pending, "status": outcome, "updated_at": cp.T0 + 1}))
    assert conn.execute("SELECT status FROM invitations").fetchone()["status"] == outcome
    assert count(conn, "invitations") == 1


def test_a_late_invitation_created_does_not_reopen_an_accepted_one(hook, conn):
    pending = cp.invitation_data(INVITATION, organization_id=ORG, updated_at=cp.T0)
    ok(deliver(hook, "organizationInvitation.accepted", {**pending, "status": "accepted", "updated_at": cp.T0 + 1}))
    assert ok(deliver(hook, "organizationInvitation.created", pending))["applied"] is False
    assert conn.execute("SELECT status FROM invitations").fetchone()["status"] == "accepted"


def test_an_invitation_to_an_unknown_organization_creates_a_placeholder_filled_in_later(hook, conn):
    ok(deliver(hook, "organizationInvitation.created", cp.invitation_data(INVITATION, organization_id=ORG)))
    placeholder = org_row(conn)
    assert (placeholder["name"], placeholder["plan_id"], placeholder["clerk_updated_at"]) == (ORG, "free", None)
    ok(deliver(hook, "organization.created", cp.organization_data(ORG, name="Acme Inc", slug="acme-inc")))
    assert (org_row(conn)["name"], org_row(conn)["slug"]) == ("Acme Inc", "acme-inc")
    assert count(conn, "organizations") == 1


# --- Parsing -----------------------------------------------------------------------------------------------------

def test_clerk_milliseconds_convert_exactly():
    assert clerk_events.from_ms(1_654_012_591_835).isoformat() == "2022-05-31T15:56:31.835000+00:00"


def test_primary_email_of_a_user_without_addresses_is_none():
    assert clerk_events.primary_email({"email_addresses": [], "primary_email_address_id": None}) is None
    assert clerk_events.primary_email({"email_addresses": [{"id": "idn_1", "email_address": "a@b.c"}],
                                       "primary_email_address_id": "idn_2"}) is None
