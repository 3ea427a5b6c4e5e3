"""The storage job of `flask maintenance run`: expired objects (the temp bucket's, after 24 hours) and abandoned
uploads (tus uploads past Upload-Expires, direct uploads whose process died before committing)."""
from __future__ import annotations

import logging
from collections import defaultdict

import psycopg
from flask import current_app

from queries import q
from storage.backends import StorageBackend
from storage.paths import object_key

log = logging.getLogger(__name__)

BATCH = 1000


def delete_expired_temp_objects(conn: psycopg.Connection, backend: StorageBackend | None = None) -> str:
    """Delete expired objects and abandoned uploads in the caller's transaction; returns a summary.

    Rows are deleted first (locked, uncommitted), then the bytes; the caller commits after. If the backend fails,
    the exception rolls the rows back and the next run tries again; if the commit fails after the bytes went, the
    rows are still expired and the next run deletes them (deleting missing bytes is a no-op).
    An abandoned write is undone: the previous version of a replaced object is restored, bytes placed for an object
    that was never committed are removed, and a tus upload's partial file is deleted.
    """
    backend = backend or current_app.extensions["storage"]
    expired = conn.execute(q.storage.take_expired_storage_objects, {"limit": BATCH}).fetchall()
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for row in expired:
        by_bucket[row["bucket_id"]].append(object_key(row["organization_id"], row["path"]))
    for bucket_id, keys in by_bucket.items():
        backend.delete(bucket_id, keys)

    abandoned = conn.execute(q.storage.take_expired_uploads, {"limit": BATCH}).fetchall()
    undone = defaultdict(int)
    for upload in abandoned:
        outcome = backend.recover(upload["bucket_id"], object_key(upload["organization_id"], upload["path"]),
                                  str(upload["id"]), object_exists=upload["object_exists"])
        undone[outcome] += 1
        backend.upload_part_path(upload["id"]).unlink(missing_ok=True)
    freed = sum(row["size_bytes"] for row in expired)
    summary = f"deleted {len(expired)} expired objects ({freed} bytes) and {len(abandoned)} abandoned uploads"
    if undone.get("restored") or undone.get("removed"):
        summary += f" (restored {undone['restored']} replaced objects, removed {undone['removed']} orphans)"
    return summary
