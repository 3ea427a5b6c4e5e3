"""The PostgreSQL functions, called directly as the seed's SQL examples call them."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import psycopg
import pytest

from tests import pg


def _org(conn, name="Acme", plan=None) -> str:
    org_id = conn.execute("INSERT INTO organizations (name, slug) VALUES (%s, %s) RETURNING id",
                          (name, f"{name.lower()}-{datetime.now().timestamp()}")).fetchone()["id"]
    if plan:
        conn.execute("INSERT INTO subscriptions (organization_id, plan_id) VALUES (%s, %s)", (org_id, plan))
    return org_id


def _this_month() -> date:
    now = datetime.now(timezone.utc)
    return date(now.year, now.month, 1)


def test_increment_audit_usage_counts_per_organization_per_month(db_conn):
    acme, globex = _org(db_conn, "Acme"), _org(db_conn, "Globex")
    first = db_conn.execute("SELECT * FROM increment_audit_usage(%s, 3)", (acme,)).fetchone()
    second = db_conn.execute("SELECT * FROM increment_audit_usage(%s)", (acme,)).fetchone()
    other = db_conn.execute("SELECT * FROM increment_audit_usage(%s, 2)", (globex,)).fetchone()
    assert (first["allowed"], first["used"]) == (True, 3)
    assert (second["allowed"], second["used"]) == (True, 4)
    assert (other["allowed"], other["used"]) == (True, 2)
    assert second["month_year"] == _this_month()
    assert second["quota"] == 100  # no subscription: the free plan
    rows = db_conn.execute("SELECT organization_id, month_year, count FROM audit_usage ORDER BY count").fetchall()
    assert [(r["organization_id"], r["count"]) for r in rows] == [(globex, 2), (acme, 4)]


def test_increment_audit_usage_refuses_past_the_quota_and_counts_nothing(db_conn):
    acme = _org(db_conn)
    db_conn.execute("SELECT * FROM increment_audit_usage(%s, 98)", (acme,))
    too_many = db_conn.execute("SELECT * FROM increment_audit_usage(%s, 3)", (acme,)).fetchone()
    assert (too_many["allowed"], too_many["used"], too_many["quota"]) == (False, 98, 100)
    fits = db_conn.execute("SELECT * FROM increment_audit_usage(%s, 2)", (acme,)).fetchone()
    assert (fits["allowed"], fits["used"]) == (True, 100)
    assert db_conn.execute("SELECT * FROM increment_audit_usage(%s, 1)", (acme,)).fetchone()["allowed"] is False
    month_start = _this_month()
    next_month = date(month_start.year + month_start.month // 12, month_start.month % 12 + 1, 1)
    assert fits["resets_at"] == datetime(next_month.year, next_month.month, 1, tzinfo=timezone.utc)


def test_a_first_request_larger_than_the_quota_is_refused(db_conn):
    acme = _org(db_conn)
    result = db_conn.execute("SELECT * FROM increment_audit_usage(%s, 101)", (acme,)).fetchone()
    assert (result["allowed"], result["used"]) == (False, 0)


def test_enterprise_usage_is_unlimited(db_conn):
    acme = _org(db_conn, plan="enterprise")
    result = db_conn.execute("SELECT * FROM increment_audit_usage(%s, 1000000)", (acme,)).fetchone()
    assert (result["allowed"], result["used"], result["quota"]) == (True, 1000000, None)


@pytest.mark.parametrize("count", [0, -1])
def test_increment_audit_usage_rejects_a_non_positive_count(db_conn, count):
    acme = _org(db_conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db_conn.execute("SELECT * FROM increment_audit_usage(%s, %s)", (acme, count))


def test_parallel_increments_never_exceed_the_quota(db_conn, database_url):
    acme = _org(db_conn)
    db_conn.execute("SELECT * FROM increment_audit_usage(%s, 95)", (acme,))

    def one(_):
        with pg.connect(database_url) as conn:
            return conn.execute("SELECT allowed FROM increment_audit_usage(%s, 1)", (acme,)).fetchone()["allowed"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        admitted = sum(pool.map(one, range(40)))
    assert admitted == 5
    assert db_conn.execute("SELECT count FROM audit_usage WHERE organization_id = %s", (acme,)).fetchone()["count"] == 100


def test_cleanup_expired_rate_limits_deletes_only_expired_buckets(db_conn):
    db_conn.execute("""
        INSERT INTO rate_limit_buckets (bucket_key, request_count, window_reset_at) VALUES
            ('expired-1', 5, now() - interval '1 minute'),
            ('expired-2', 1, now() - interval '1 hour'),
            ('live', 3, now() + interval '30 seconds')""")
    assert db_conn.execute("SELECT cleanup_expired_rate_limits() AS n").fetchone()["n"] == 2
    assert [r["bucket_key"] for r in db_conn.execute("SELECT bucket_key FROM rate_limit_buckets")] == ["live"]
    assert db_conn.execute("SELECT cleanup_expired_rate_limits() AS n").fetchone()["n"] == 0


def test_get_org_stats_describes_one_organization(db_conn):
    acme, globex = _org(db_conn, "Acme"), _org(db_conn, "Globex")
    user = db_conn.execute("INSERT INTO users (clerk_id, email) VALUES ('user_1', 'a@example.com') RETURNING id").fetchone()["id"]
    gone = db_conn.execute("INSERT INTO users (clerk_id) VALUES ('user_2') RETURNING id").fetchone()["id"]
    db_conn.execute("INSERT INTO organization_memberships (organization_id, user_id, role)"
                    " VALUES (%s, %s, 'admin')", (acme, user))
    db_conn.execute("INSERT INTO organization_memberships (organization_id, user_id, role, ended_at)"
                    " VALUES (%s, %s, 'member', now())", (acme, gone))
    db_conn.execute("INSERT INTO policies (organization_id, title, content)"
                    " VALUES (%s, 'P1', 'x'), (%s, 'P2', 'y')", (acme, acme))
    db_conn.execute("UPDATE policies SET is_active = false WHERE title = 'P2'")
    db_conn.execute("INSERT INTO policies (organization_id, title, content) VALUES (%s, 'Other', 'z')", (globex,))
    db_conn.execute("SELECT * FROM increment_audit_usage(%s, 2)", (acme,))
    db_conn.execute("""INSERT INTO audit_logs (organization_id, user_id, formula_count, findings_summary, created_at) VALUES
        (%s, %s, 2, '{"high": 2, "low": 1}', now() - interval '1 minute'),
        (%s, %s, 1, '{"high": 1, "critical": 1}', now())""", (acme, user, acme, user))
    db_conn.execute("""INSERT INTO audit_logs (organization_id, formula_count, findings_summary)
                       VALUES (%s, 9, '{"critical": 9}')""", (globex,))
    stats = db_conn.execute("SELECT * FROM get_org_stats(%s)", (acme,)).fetchone()["get_org_stats"]
    last = db_conn.execute("SELECT max(created_at) AS t FROM audit_logs WHERE organization_id = %s", (acme,)).fetchone()["t"]
    assert stats["members"] == 1
    assert (stats["policies"], stats["active_policies"]) == (2, 1)
    assert (stats["audits_this_month"], stats["audits_all_time"]) == (2, 2)
    assert stats["findings_by_severity"] == {"critical": 1, "high": 3, "medium": 0, "low": 1, "info": 0}
    assert datetime.fromisoformat(stats["last_audit_at"]) == last


def test_get_org_stats_of_an_empty_organization_is_all_zero(db_conn):
    stats = db_conn.execute("SELECT get_org_stats(%s) AS s", (_org(db_conn),)).fetchone()["s"]
    assert (stats["members"], stats["policies"], stats["audits_all_time"], stats["last_audit_at"]) == (0, 0, 0, None)
