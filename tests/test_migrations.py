"""Schema migrations: applied in order, once, recorded, repeatable, and safe when many workers start together."""
from __future__ import annotations

import multiprocessing

import pytest

import migrations
from tests import pg
from tests.conftest import make_app

SEED_TABLES = {"organizations", "users", "organization_memberships", "invitations", "subscriptions", "policies",
               "audit_usage", "rate_limit_buckets", "audit_logs", "ingestion_logs", "plans", "schema_migrations"}
SEED_FUNCTIONS = {"increment_audit_usage", "get_org_stats", "cleanup_expired_rate_limits"}


def test_upgrade_on_an_empty_database_applies_every_file_in_order(empty_database_url):
    with pg.connect(empty_database_url) as conn:
        applied = migrations.upgrade(conn)
        tables = {r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        functions = {r["proname"] for r in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")}
        recorded = [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY applied_at, version")]
    expected = [f.version for f in migrations.discover()]
    assert applied == expected
    assert sorted(recorded) == sorted(expected)
    assert SEED_TABLES <= tables
    assert SEED_FUNCTIONS <= functions


def test_a_second_upgrade_applies_nothing(empty_database_url):
    with pg.connect(empty_database_url) as conn:
        migrations.upgrade(conn)
        assert migrations.upgrade(conn) == []
        assert migrations.is_current(conn)
        assert {s.state for s in migrations.status(conn)} == {"applied"}


def test_status_before_any_migration_lists_everything_pending(empty_database_url):
    with pg.connect(empty_database_url) as conn:
        states = migrations.status(conn)
        assert not migrations.is_current(conn)
    assert [s.state for s in states] == ["pending"] * len(migrations.discover())


def test_a_changed_function_file_is_reapplied_and_a_changed_migration_is_not(empty_database_url):
    with pg.connect(empty_database_url) as conn:
        migrations.upgrade(conn)
        conn.execute("UPDATE schema_migrations SET checksum = 'stale' WHERE version IN ('function:usage', %s)",
                     (migrations.discover()[0].version,))
        states = {s.file.version: s.state for s in migrations.status(conn)}
        assert states["function:usage"] == "outdated"
        assert states[migrations.discover()[0].version] == "changed"
        assert not migrations.is_current(conn)
        assert migrations.upgrade(conn) == ["function:usage"]
        assert migrations.is_current(conn)


def test_the_seed_indexes_exist(database_url):
    with pg.connect(database_url) as conn:
        indexdefs = [r["indexdef"] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_logs'")]
    assert any("(user_id, created_at DESC)" in d for d in indexdefs)
    assert any("(organization_id, created_at DESC" in d for d in indexdefs)


def test_every_tenant_table_keys_on_organization_id(database_url):
    """Distributable by organization: organization_id leads every primary and unique key of a tenant table."""
    with pg.connect(database_url) as conn:
        keys = conn.execute("""
            SELECT c.conrelid::regclass::text AS tbl, c.conname,
                   (SELECT a.attname FROM pg_attribute a
                     WHERE a.attrelid = c.conrelid AND a.attnum = c.conkey[1]) AS first_column
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.conrelid
            WHERE c.contype IN ('p', 'u') AND t.relnamespace = 'public'::regnamespace AND NOT t.relispartition
              AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.conrelid
                           AND a.attname = 'organization_id' AND NOT a.attisdropped)
              AND c.conrelid::regclass::text NOT IN ('rate_limit_buckets', 'users', 'organizations')
        """).fetchall()
    assert keys, "expected tenant tables"
    assert {k["first_column"] for k in keys} == {"organization_id"}, keys


def _start_app(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        make_app(url, AUTO_MIGRATE=True)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which asserts on it
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_workers_starting_together_apply_each_migration_once(empty_database_url):
    context = multiprocessing.get_context("spawn")
    workers = 4
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_start_app, args=(empty_database_url, barrier, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert outcomes == ["ok"] * workers
    with pg.connect(empty_database_url) as conn:
        counts = conn.execute("SELECT version, count(*) AS n FROM schema_migrations GROUP BY version").fetchall()
        assert migrations.is_current(conn)
    assert {r["version"] for r in counts} == {f.version for f in migrations.discover()}
    assert {r["n"] for r in counts} == {1}


def test_a_migration_numbered_below_an_applied_one_is_refused(empty_database_url, monkeypatch, tmp_path):
    with pg.connect(empty_database_url) as conn:
        migrations.upgrade(conn)
        late = migrations.SqlFile("0000_forgotten", "migration", tmp_path / "0000_forgotten.sql", "x")
        shipped = migrations.discover()
        monkeypatch.setattr(migrations, "discover", lambda: (late, *shipped))
        with pytest.raises(migrations.MigrationError, match="0000_forgotten"):
            migrations.upgrade(conn)
        assert conn.execute("SELECT count(*) AS n FROM schema_migrations WHERE version = '0000_forgotten'"
                            ).fetchone()["n"] == 0


def test_an_older_release_leaves_a_newer_releases_functions_alone(empty_database_url):
    with pg.connect(empty_database_url) as conn:
        migrations.upgrade(conn)
        # A newer release applied a migration this code does not know, and its own text of a function file.
        conn.execute("INSERT INTO schema_migrations (version, kind, checksum) VALUES ('9999_future', 'migration', 'x')")
        conn.execute("UPDATE schema_migrations SET checksum = 'newer' WHERE version = 'function:usage'")
        assert migrations.upgrade(conn) == []
        assert conn.execute("SELECT checksum FROM schema_migrations WHERE version = 'function:usage'"
                            ).fetchone()["checksum"] == "newer"


def test_every_run_leaves_this_month_and_the_next_two_partitioned(empty_database_url):
    with pg.connect(empty_database_url) as conn:
        migrations.upgrade(conn)
        names = {r["relname"] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit_logs'::regclass")}
        months = {r["m"] for r in conn.execute(
            "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => n),"
            " '\"audit_logs_y\"YYYY\"m\"MM') AS m FROM generate_series(0, 2) AS n")}
    assert months <= names


def test_every_table_in_public_has_row_level_security(database_url):
    """On Supabase the API roles can reach every table in public: none may be left open."""
    with pg.connect(database_url) as conn:
        open_tables = [r["relname"] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
            " AND NOT relrowsecurity ORDER BY relname")]
    assert open_tables == []
