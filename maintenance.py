"""Periodic jobs: `flask maintenance run` runs each one and prints what it did.

Safe from cron on several servers at once: each job runs in its own transaction under a transaction-level advisory
lock taken with pg_try_advisory_xact_lock, so a job another server is running right now is skipped here, not run
twice. A job that fails is reported and the others still run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import click
import psycopg
from flask import current_app
from flask.cli import AppGroup

from db import connect_once
from queries import q


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[psycopg.Connection], str]  # does the work in the caller's transaction; returns a summary


def _cleanup_rate_limits(conn: psycopg.Connection) -> str:
    deleted = conn.execute(q.maintenance.cleanup_expired_rate_limits).fetchone()["deleted"]
    return f"deleted {deleted} expired rate-limit buckets"


JOBS: list[Job] = [
    Job("rate-limit-buckets", _cleanup_rate_limits),
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
        except psycopg.Error as exc:
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
