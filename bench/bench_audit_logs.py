"""audit_logs at scale: retention by moving partitions vs the seed's INSERT ... SELECT + DELETE, and listing one
organization's recent audits at 50,000 rows and at 5,000,000 rows. Figures are ratios measured in one run.

    .venv/bin/python bench/bench_audit_logs.py [--rows 5000000] [--small 50000]
"""
from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from common import scratch_database
from psycopg.rows import dict_row

ORGS = 1000
LIST = """SELECT id, user_id, context, formula_count, findings_count, risk_score, created_at
          FROM audit_logs WHERE organization_id = %s ORDER BY created_at DESC, id DESC LIMIT 50"""


def fill(conn, rows: int) -> None:
    """`rows` audits spread over the last 360 days and ORGS organizations."""
    conn.execute("""
        INSERT INTO audit_logs (organization_id, formula_count, findings_count, findings_summary, risk_score,
                                context, created_at)
        SELECT o.ids[1 + (n %% %(orgs)s)], 10, 3, '{"high": 1, "low": 2}', 40, '{"sheetName": "Bench"}',
               now() - (random() * interval '360 days')
        FROM generate_series(1, %(rows)s) AS n,
             (SELECT array_agg(id) AS ids FROM organizations) AS o""", {"rows": rows, "orgs": ORGS})
    conn.execute("ANALYZE audit_logs")


def list_latency_ms(conn, runs: int = 300) -> float:
    orgs = [r["id"] for r in conn.execute("SELECT id FROM organizations ORDER BY random() LIMIT %s", (runs,))]
    times = []
    for org in orgs:
        started = time.perf_counter()
        conn.execute(LIST, (org,)).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=50_000)
    args = parser.parse_args()
    with scratch_database() as url, psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO organizations (name, slug) SELECT 'Org ' || n, 'org-' || n "
                     "FROM generate_series(1, %s) AS n", (ORGS,))
        conn.execute("SELECT ensure_audit_log_partitions(2)")
        conn.execute("SELECT ensure_audit_log_partition((now() - make_interval(months => n))::date) "
                     "FROM generate_series(1, 13) AS n")

        fill(conn, args.small)
        small_ms = list_latency_ms(conn)
        started = time.perf_counter()
        fill(conn, args.rows - args.small)
        fill_s = time.perf_counter() - started
        large_ms = list_latency_ms(conn)
        total = conn.execute("SELECT count(*) AS n FROM audit_logs").fetchone()["n"]
        old = conn.execute("SELECT count(*) AS n FROM audit_logs WHERE created_at < "
                           "date_trunc('month', now() - interval '90 days')").fetchone()["n"]
        partitions = conn.execute("SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass"
                                  ).fetchone()["n"]
        print(f"rows: {total:,} in {partitions} partitions (filled in {fill_s:.0f} s); {old:,} in whole months older "
              "than 90 days")
        print(f"list one organization's 50 newest audits, median of 300: {small_ms:.3f} ms at {args.small:,} rows, "
              f"{large_ms:.3f} ms at {total:,} rows; ratio large/small = {large_ms / small_ms:.2f}")

        # The seed's way, on the same rows, rolled back so the partition move below sees the same data.
        started = time.perf_counter()
        with conn.transaction(force_rollback=True):
            conn.execute("INSERT INTO audit_logs_archive SELECT * FROM audit_logs"
                         " WHERE created_at < date_trunc('month', now() - interval '90 days')")
            conn.execute("DELETE FROM audit_logs WHERE created_at < date_trunc('month', now() - interval '90 days')")
        copy_delete_s = time.perf_counter() - started

        started = time.perf_counter()
        with conn.transaction():
            moved = conn.execute("SELECT * FROM archive_audit_logs('90 days')").fetchall()
        move_s = time.perf_counter() - started
        moved_rows = sum(m["rows_moved"] for m in moved)
        print(f"archive {moved_rows:,} rows: INSERT...SELECT + DELETE {copy_delete_s:.2f} s, partition move "
              f"{move_s:.3f} s; ratio {copy_delete_s / move_s:.0f}x faster")
        after_ms = list_latency_ms(conn)
        print(f"list latency after archiving: {after_ms:.3f} ms (ratio to {args.small:,} rows: {after_ms / small_ms:.2f})")


if __name__ == "__main__":
    main()
