"""audit_logs is partitioned by month; retention moves whole months to audit_logs_archive."""
from __future__ import annotations

from tests.conftest import signed_in


def _insert_audits(db_conn, org_id, days_ago: list[int]) -> None:
    for days in days_ago:
        db_conn.execute("INSERT INTO audit_logs (organization_id, formula_count, created_at)"
                        " VALUES (%s, 1, now() - make_interval(days => %s))", (org_id, days))


def _org_id(db_conn, clerk_id="org_acme"):
    return db_conn.execute("SELECT id FROM organizations WHERE clerk_id = %s", (clerk_id,)).fetchone()["id"]


def test_archive_moves_only_whole_months_older_than_the_cutoff(api, api_app, db_conn):
    api.get("/api/me", headers=signed_in())
    _insert_audits(db_conn, _org_id(db_conn), [0, 1, 40, 130, 131, 200, 400])
    result = api_app.test_cli_runner().invoke(args=["maintenance", "archive-audit-logs", "--older-than", "90d"])
    assert result.exit_code == 0, result.output
    live = db_conn.execute("SELECT created_at FROM audit_logs").fetchall()
    archived = db_conn.execute("SELECT created_at FROM audit_logs_archive").fetchall()
    assert len(live) + len(archived) == 7
    cutoff = db_conn.execute("SELECT now() - interval '90 days' AS t").fetchone()["t"]
    # Archived rows all belong to months that ended before the cut-off; live ones may be older than it only when
    # their month straddles it.
    assert archived and all(row["created_at"] < cutoff for row in archived)
    assert {0, 1, 40} <= {(db_conn.execute("SELECT now()").fetchone()["now"] - r["created_at"]).days for r in live}
    assert "months archived" in result.output
    assert db_conn.execute("SELECT count(*) AS n FROM audit_logs_default").fetchone()["n"] == 0


def test_archived_audits_leave_the_api(api, api_app, db_conn):
    api.get("/api/me", headers=signed_in())
    _insert_audits(db_conn, _org_id(db_conn), [200, 201])
    assert len(api.get("/api/audits", headers=signed_in()).json["items"]) == 2
    api_app.test_cli_runner().invoke(args=["maintenance", "archive-audit-logs", "--older-than", "90d"])
    assert api.get("/api/audits", headers=signed_in()).json["items"] == []


def test_archiving_twice_moves_nothing_more(api, api_app, db_conn):
    api.get("/api/me", headers=signed_in())
    _insert_audits(db_conn, _org_id(db_conn), [300])
    runner = api_app.test_cli_runner()
    runner.invoke(args=["maintenance", "archive-audit-logs", "--older-than", "90d"])
    again = runner.invoke(args=["maintenance", "archive-audit-logs", "--older-than", "90d"])
    assert again.exit_code == 0 and "0 months archived" in again.output


def test_a_bad_age_is_refused(api_app):
    result = api_app.test_cli_runner().invoke(args=["maintenance", "archive-audit-logs", "--older-than", "soon"])
    assert result.exit_code != 0 and "90d" in result.output


def test_maintenance_run_creates_partitions_ahead_and_archives(api_app, db_conn):
    result = api_app.test_cli_runner().invoke(args=["maintenance", "run"])
    assert result.exit_code == 0, result.output
    assert "audit-log-partitions" in result.output and "audit-log-archive" in result.output
    partitions = db_conn.execute("SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass"
                                 ).fetchone()["n"]
    assert partitions >= 4  # default + this month + two ahead


def test_archiving_gives_up_rather_than_queue_behind_a_reader_and_block_every_audit(api, api_app, db_conn,
                                                                                   database_url):
    """A DETACH waiting for a lock would make every new audit wait behind it; the job gives up after 5 s instead."""
    import time

    from tests import pg

    api.get("/api/me", headers=signed_in())
    # A month no other test touches, with a live partition of its own: archiving it needs a DETACH.
    db_conn.execute("SELECT ensure_audit_log_partition('2001-03-01')")
    db_conn.execute("INSERT INTO audit_logs (organization_id, formula_count, created_at)"
                    " VALUES (%s, 1, '2001-03-15T12:00:00Z')", (_org_id(db_conn),))
    with pg.connect(database_url) as reader, reader.transaction():
        reader.execute("SELECT count(*) FROM audit_logs")  # a long report holding its lock
        started = time.monotonic()
        result = api_app.test_cli_runner().invoke(args=["maintenance", "run"])
        waited = time.monotonic() - started
    assert "audit-log-archive" in result.output and "failed" in result.output and "lock timeout" in result.output
    assert waited < 15
    assert db_conn.execute("SELECT count(*) AS n FROM audit_logs").fetchone()["n"] == 1  # nothing half-moved
    again = api_app.test_cli_runner().invoke(args=["maintenance", "run"])
    assert again.exit_code == 0, again.output
    assert db_conn.execute("SELECT count(*) AS n FROM audit_logs_archive").fetchone()["n"] == 1
