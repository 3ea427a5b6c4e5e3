"""`flask storage ...`: create the backend's buckets, and reconcile metadata with the bytes."""
from __future__ import annotations

import time
from dataclasses import dataclass

import click
import psycopg
from flask import current_app
from flask.cli import AppGroup

from db import connect_once
from queries import q
from storage import list_buckets
from storage.backends import StorageBackend
from storage.paths import object_key

storage_cli = AppGroup("storage", help="File storage: buckets and consistency.")


@storage_cli.command("sync-buckets")
def sync_buckets_command() -> None:
    """Create or update the backend's buckets to match sql (public flag, size limit, allowed types)."""
    backend: StorageBackend = current_app.extensions["storage"]
    with connect_once(current_app.config) as conn:
        buckets = list_buckets(conn)
    for bucket_id, action in backend.sync_buckets(buckets):
        click.echo(f"{bucket_id:<12} {action}")


@dataclass(frozen=True, slots=True)
class Finding:
    bucket: str
    kind: str  # object_without_metadata, metadata_without_object, size_mismatch, stale_backup, stale_work_file
    key: str
    repaired: bool


def reconcile(conn: psycopg.Connection, backend: StorageBackend, *, bucket_ids: tuple[str, ...] = (),
              grace_seconds: float = 3600, dry_run: bool = False) -> list[Finding]:
    """Compare every object row with the backend's objects and repair what disagrees (unless `dry_run`).

    - Bytes without a row, older than the grace period and not being written by an upload: deleted (a write that
      died between placing the bytes and committing them; the client was never told it succeeded).
    - A row whose bytes are gone: deleted (after checking the object once more).
    - Size mismatches: reported only; they need a person.
    - Previous versions kept by finished writes, and staging or tus files no live upload owns: deleted.
    The database is read before the backend is listed, and uploads after it, so a write in progress is never taken
    for an orphan.
    """
    findings: list[Finding] = []
    buckets = [b for b in list_buckets(conn) if not bucket_ids or b.id in bucket_ids]
    cutoff = time.time() - grace_seconds
    for bucket in buckets:
        rows = {object_key(r["organization_id"], r["path"]): r["size_bytes"]
                for r in conn.execute(q.storage.list_object_sizes_in_bucket, {"bucket_id": bucket.id})}
        stored = {o.key: o for o in backend.iter_objects(bucket.id)}
        busy = {object_key(u["organization_id"], u["path"])
                for u in conn.execute(q.storage.list_upload_paths) if u["bucket_id"] == bucket.id}

        orphans = [key for key, obj in stored.items()
                   if key not in rows and key not in busy and obj.modified < cutoff]
        if orphans and not dry_run:
            backend.delete(bucket.id, orphans)
        findings += [Finding(bucket.id, "object_without_metadata", key, not dry_run) for key in sorted(orphans)]

        for key in sorted(set(rows) - set(stored) - busy):
            if backend.stat(bucket.id, key) is not None:
                continue
            repaired = False
            if not dry_run:
                organization_id, path = key.split("/", 1)
                repaired = conn.execute(q.storage.delete_object_without_bytes, {
                    "organization_id": organization_id, "bucket_id": bucket.id, "path": path}).rowcount == 1
            findings.append(Finding(bucket.id, "metadata_without_object", key, repaired))

        findings += [Finding(bucket.id, "size_mismatch", key, False) for key in sorted(set(rows) & set(stored))
                     if rows[key] != stored[key].size]

    live = {str(u["id"]) for u in conn.execute(q.storage.list_upload_paths)}
    findings += [Finding("-", "stale_backup", name, not dry_run)
                 for name in backend.cleanup_backups([b.id for b in buckets], live, grace_seconds, dry_run)]
    findings += [Finding("-", "stale_work_file", str(path), not dry_run)
                 for path in backend.cleanup_work_dir(grace_seconds, live, dry_run)]
    return findings


@storage_cli.command("reconcile")
@click.option("--dry-run", is_flag=True, help="Report what disagrees; change nothing.")
@click.option("--bucket", "bucket_ids", multiple=True, help="Only this bucket (repeatable).")
@click.option("--grace-minutes", default=60, show_default=True,
              help="Leave alone bytes younger than this: a write may be about to commit them.")
def reconcile_command(dry_run: bool, bucket_ids: tuple[str, ...], grace_minutes: int) -> None:
    """Find and repair disagreements between object metadata and stored bytes."""
    backend: StorageBackend = current_app.extensions["storage"]
    with connect_once(current_app.config) as conn:
        findings = reconcile(conn, backend, bucket_ids=bucket_ids, grace_seconds=grace_minutes * 60,
                             dry_run=dry_run)
    for f in findings:
        action = "would repair" if dry_run and f.kind != "size_mismatch" else (
            "repaired" if f.repaired else "left alone")
        click.echo(f"{f.bucket:<12} {f.kind:<24} {action:<12} {f.key}")
    click.echo(f"{len(findings)} findings" + (" (dry run: nothing changed)" if dry_run else ""))
