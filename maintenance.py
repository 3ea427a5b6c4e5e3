"""Periodic jobs: `flask maintenance run` runs each one and prints what it did.

Safe from cron on several servers at once: each job runs in its own transaction under a transaction-level advisory
lock taken with pg_try_advisory_xact_lock, so a job another server is running right now is skipped here, not run
twice. A job that fails (its transaction rolls back) is reported and the others still run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click
import psycopg
from flask import current_app
from flask.cli import AppGroup

from db import connect_once
from queries import q
from storage.maintenance import delete_expired_temp_objects


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[psycopg.Connection], str]  # does the work in the caller's transaction; returns a summary


def _cleanup_rate_limits(conn: psycopg.Connection) -> str:
    deleted = conn.execute(q.maintenance.cleanup_expired_rate_limits).fetchone()["deleted"]
    return f"deleted {deleted} expired rate-limit buckets"


def _prune_webhook_events(conn: psycopg.Connection) -> str:
    deleted = conn.execute(q.maintenance.prune_webhook_events).fetchone()["deleted"]
    return f"forgot {deleted} webhook deliveries older than 30 days"


def _audit_log_partitions(conn: psycopg.Connection) -> str:
    created = conn.execute(q.maintenance.ensure_audit_log_partitions).fetchone()["created"]
    return f"created {created} audit log partitions"


def archive_audit_logs(conn: psycopg.Connection, older_than: str) -> list[dict]:
    """Move whole months of audit logs older than `older_than` (a PostgreSQL interval) to audit_logs_archive."""
    return conn.execute(q.maintenance.archive_audit_logs, {"older_than": older_than}).fetchall()


def _archive_audit_logs(conn: psycopg.Connection) -> str:
    moved = archive_audit_logs(conn, current_app.config["AUDIT_LOG_RETENTION"])
    rows = sum(m["rows_moved"] for m in moved)
    return f"archived {len(moved)} months ({rows} audits) older than {current_app.config['AUDIT_LOG_RETENTION']}"


JOBS: list[Job] = [
    Job("rate-limit-buckets", _cleanup_rate_limits),
    Job("webhook-events", _prune_webhook_events),
    Job("audit-log-partitions", _audit_log_partitions),
    Job("audit-log-archive", _archive_audit_logs),
    Job("storage-expired-objects", delete_expired_temp_objects),
]


def run_jobs(conn: psycopg.Connection, jobs: list[Job] = JOBS) -> list[tuple[str, str, str]]:
    """Run every job; returns (name, outcome, summary) with outcome "done", "skipped" or "failed"."""
    results = []
    for job in jobs:
        try:
            with conn.transaction():
                locked = conn.execute(q.maintenance.try_lock_job, {"job": job.name}).fetchone()["locked"]
                if not locked:
                    results.append((job.name, "skipped", "running on another server"))
                    continue
                results.append((job.name, "done", job.run(conn)))
        except Exception as exc:  # noqa: BLE001 - a failed job (database or storage backend) must not stop the others
            results.append((job.name, "failed", f"{type(exc).__name__}: {exc}".strip()))
    return results


maintenance_cli = AppGroup("maintenance", help="Periodic housekeeping jobs.")


@maintenance_cli.command("run")
def run_command() -> None:
    """Run every periodic job once (from cron, on any number of servers)."""
    with connect_once(current_app.config) as conn:
        results = run_jobs(conn)
    for name, outcome, summary in results:
        click.echo(f"{name:<24} {outcome:<8} {summary}")
    if any(outcome == "failed" for _, outcome, _ in results):
        raise SystemExit(1)


def _interval(text: str) -> str:
    """'90d', '12w', '6m' or a PostgreSQL interval ('90 days') → a PostgreSQL interval. Raises click.BadParameter."""
    units = {"d": "days", "w": "weeks", "m": "months", "y": "years"}
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in units:
        return f"{int(text[:-1])} {units[text[-1]]}"
    if text.split(" ", 1)[0].isdigit():
        return text
    raise click.BadParameter("use a number of days, weeks, months or years: 90d, 12w, 6m, 1y")


@maintenance_cli.command("archive-audit-logs")
@click.option("--older-than", "older_than", default="90d", show_default=True,
              help="Archive whole months older than this (90d, 12w, 6m, 1y).")
def archive_command(older_than: str) -> None:
    """Move old months of audit logs into audit_logs_archive (whole partitions: no long DELETE)."""
    interval = _interval(older_than)
    with connect_once(current_app.config) as conn, conn.transaction():
        moved = archive_audit_logs(conn, interval)
    for month in moved:
        click.echo(f"archived {month['partition_name']}: {month['rows_moved']} audits")
    click.echo(f"{len(moved)} months archived")
