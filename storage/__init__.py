"""File storage behind one thin helper: buckets and metadata in PostgreSQL, bytes in a backend (local or Supabase).

The order of a write, and what each failure leaves behind (metadata and bytes never disagree):

1. `receive` streams the request body into a staging file on the backend's disk, hashing (SHA-256) and counting as
   it writes, sniffing the type from the first bytes: over the bucket's limit is 413 at once, a refused type 415,
   and the staging file is deleted. No database transaction is open meanwhile, and no pooled connection is held.
2. `begin_storage_write` (one short transaction) holds the path with an upload row and reserves the bytes against
   the plan's quota atomically: 409 when a live object is there and no upsert was asked, another upload holds the
   path, or the path is a folder of another one or inside one (an expired object is replaced, whatever was asked);
   402 over the quota. Nothing is placed yet.
3. The backend places the bytes at `{organization_id}/{path}`, keeping the previous version aside when replacing
   (local disk: an atomic rename; a hard link when nothing may be replaced, which never overwrites). If this fails,
   the upload row is deleted (releasing the reservation): neither.
4. `complete_storage_write` (one short transaction) turns the upload row into the object row. If it fails, the
   placement is rolled back (the previous version restored, or the new bytes removed) and the upload row released.
5. The previous version is dropped.

A process killed between 3 and 4 leaves an upload row that expires; `flask maintenance run` then restores the kept
version or removes the orphan bytes, and `flask storage reconcile` repairs whatever else drifted. Deletes remove the
row and the bytes inside one transaction that commits after the bytes are gone.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import psycopg
from flask import Flask, current_app, has_request_context, request
from psycopg.types.json import Jsonb

from db import get_db
from errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
    StorageUnavailable,
    UnsupportedMediaType,
)
from queries import q
from storage import sniff, thumbnails
from storage.backends import BucketSpec, StorageBackend, make_backend
from storage.paths import object_key

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
QUOTA_WARNING_RATIO = 0.8
# How long a direct upload may hold its path between reservation and commit before maintenance may undo it.
DIRECT_UPLOAD_HOLD = timedelta(hours=1)


def init_storage(app: Flask) -> StorageBackend:
    """Create the configured backend (app.extensions["storage"]). Raises ValueError for a bad STORAGE_BACKEND."""
    backend = make_backend(app.config)
    app.extensions["storage"] = backend
    return backend


def get_backend() -> StorageBackend:
    return current_app.extensions["storage"]


@dataclass(frozen=True, slots=True)
class Bucket(BucketSpec):
    object_ttl: timedelta | None = None

    @classmethod
    def from_row(cls, row: dict) -> Bucket:
        return cls(row["id"], row["public"], row["file_size_limit"], row["allowed_mime_types"], row["object_ttl"])

    def to_dict(self) -> dict:
        return {"id": self.id, "public": self.public, "file_size_limit": self.file_size_limit,
                "allowed_mime_types": self.allowed_mime_types,
                "object_ttl_seconds": int(self.object_ttl.total_seconds()) if self.object_ttl else None}


def list_buckets(conn) -> list[Bucket]:
    return [Bucket.from_row(row) for row in conn.execute(q.storage.list_buckets)]


def get_bucket(conn, bucket_id: str) -> Bucket:
    """The bucket. Raises NotFound (404) for an unknown one."""
    row = conn.execute(q.storage.get_bucket, {"id": bucket_id}).fetchone()
    if row is None:
        raise NotFound(f"There is no bucket named {bucket_id!r}.", code="bucket_not_found")
    return Bucket.from_row(row)


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    raise AssertionError("unreachable")


# Receiving a body ------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class StagedFile:
    """Bytes received and checked, waiting on the backend's disk to be placed."""

    path: Path
    size: int
    sha256: str
    content_type: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def too_large(bucket: Bucket) -> PayloadTooLarge:
    return PayloadTooLarge(f"The {bucket.id} bucket takes objects of at most {human_bytes(bucket.file_size_limit)}.",
                           details={"bucket": bucket.id, "file_size_limit": bucket.file_size_limit})


def check_type(head: bytes, bucket: Bucket) -> str:
    """The sniffed content type of data starting with `head`. Raises UnsupportedMediaType (415) when the bucket
    does not take it."""
    content_type = sniff.sniff(head)
    if not sniff.is_allowed(content_type, bucket.allowed_mime_types):
        raise UnsupportedMediaType(
            f"The {bucket.id} bucket takes {', '.join(bucket.allowed_mime_types)}; this content is {content_type}.",
            details={"bucket": bucket.id, "detected": content_type, "allowed": bucket.allowed_mime_types})
    return content_type


def check_whole_file(staged_path: Path, content_type: str, bucket: Bucket) -> None:
    """Checks a type that the first bytes only suggest. Raises UnsupportedMediaType (415) for JSON that does not
    parse, in a bucket that takes JSON but not arbitrary text."""
    if content_type == "application/json" and bucket.allowed_mime_types is not None \
            and not sniff.is_valid_json(staged_path):
        raise UnsupportedMediaType("The content starts like JSON but is not valid JSON.",
                                   details={"bucket": bucket.id, "detected": "text/plain"})


def receive(stream: BinaryIO, bucket: Bucket, staging_dir: Path, content_length: int | None = None) -> StagedFile:
    """Stream `stream` into a new staging file, never holding more than one chunk in memory.

    Raises PayloadTooLarge (413) as soon as the bucket's limit is crossed (or at once, from Content-Length), and
    UnsupportedMediaType (415) as soon as the first bytes show a type the bucket refuses; nothing is kept then.
    A body shorter than its Content-Length is BadRequest (400), with nothing kept either.
    """
    if content_length is not None and content_length > bucket.file_size_limit:
        raise too_large(bucket)
    fd, name = tempfile.mkstemp(dir=staging_dir, prefix="body-")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    head = bytearray()
    content_type = None
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK_BYTES)
                if not chunk:
                    break
                size += len(chunk)
                if size > bucket.file_size_limit:
                    raise too_large(bucket)
                if content_type is None:
                    head += chunk[: sniff.HEAD_BYTES - len(head)]
                    if len(head) >= sniff.HEAD_BYTES:
                        content_type = check_type(bytes(head), bucket)
                digest.update(chunk)
                out.write(chunk)
            if content_length is not None and size != content_length:
                # Some servers (gunicorn) end the stream quietly when the client hangs up early.
                raise BadRequest("The body ended before Content-Length bytes arrived.", code="incomplete_body")
            if content_type is None:
                content_type = check_type(bytes(head), bucket)
            out.flush()
            # The metadata will say these bytes exist: make sure they do before it is committed.
            os.fsync(out.fileno())
        check_whole_file(path, content_type, bucket)
        return StagedFile(path, size, digest.hexdigest(), content_type)
    except OSError as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, ConnectionError | TimeoutError):
            raise BadRequest("The upload broke off; send it again.", code="incomplete_body") from None
        log.error("could not stage an upload: %s", exc)
        raise StorageUnavailable() from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# Quotas ----------------------------------------------------------------------------------------------------------

def quota_report(used: int, limit: int | None) -> dict:
    """The organization's storage use as the API shows it, with a warning from 80% of the quota."""
    percent = round(used * 100 / limit, 1) if limit else None
    warning = None
    if limit and used >= limit * QUOTA_WARNING_RATIO:
        warning = (f"Storage is {percent:g}% full: {human_bytes(used)} of {human_bytes(limit)}. Delete files or "
                   "upgrade the plan before uploads are refused.")
    return {"used_bytes": used, "limit_bytes": limit, "percent": percent, "warning": warning}


def current_quota(conn, organization_id) -> dict:
    row = conn.execute(q.storage.get_storage_quota, {"organization_id": organization_id}).fetchone()
    return quota_report(row["used_bytes"], row["quota_bytes"])


def quota_exceeded(needed: int, used: int, limit: int) -> PaymentRequired:
    left = max(0, limit - used)
    return PaymentRequired(
        f"This upload needs {human_bytes(needed)} and {human_bytes(left)} of the plan's {human_bytes(limit)} of "
        "storage is left. Delete files or upgrade the plan.",
        code="storage_quota_exceeded", details=quota_report(used, limit))


def precheck_write(conn, organization_id, bucket: Bucket, path: str, length: int | None, upsert: bool) -> None:
    """Refuse early, before a byte is read, what `begin_write` would refuse anyway. Raises Conflict (409) or
    PaymentRequired (402). Advisory only: begin_write decides, atomically."""
    existing = conn.execute(q.storage.get_object_to_replace, {
        "organization_id": organization_id, "bucket_id": bucket.id, "path": path}).fetchone()
    if existing is not None and not existing["expired"] and not upsert:
        raise _exists(bucket, path)
    if length is not None:
        row = conn.execute(q.storage.get_storage_quota, {"organization_id": organization_id}).fetchone()
        growth = length - (existing["size_bytes"] if existing else 0)
        if row["quota_bytes"] is not None and row["used_bytes"] + growth > row["quota_bytes"]:
            raise quota_exceeded(length, row["used_bytes"], row["quota_bytes"])


def _exists(bucket: Bucket, path: str) -> Conflict:
    return Conflict(f"An object already exists at {bucket.id}/{path}; send 'x-upsert: true' (or ?upsert=true) to "
                    "replace it.", code="object_exists")


# Writing ---------------------------------------------------------------------------------------------------------

def begin_write(organization_id, user_id, bucket: Bucket, path: str, *, length: int, upsert: bool, kind: str,
                expires_at: datetime, content_type: str | None = None, metadata: dict | None = None) -> dict:
    """Hold `path` and reserve `length` bytes (step 2). Returns the upload row's id, the usage, and whether the
    write replaces what is there (`upsert`: asked for, or the object there has expired).

    Raises Conflict (409) when an object is there and `upsert` is false, another upload holds the path, or an object
    or upload is a folder of the path or inside it; PaymentRequired (402) when the bytes do not fit in the plan's
    storage quota.
    """
    with get_db().tenant_transaction(organization_id) as conn:
        row = conn.execute(q.storage.begin_storage_write, {
            "organization_id": organization_id, "bucket_id": bucket.id, "path": path, "kind": kind,
            "length": length, "upsert": upsert, "created_by": user_id, "content_type": content_type,
            "metadata": Jsonb(metadata or {}), "expires_at": expires_at}).fetchone()
    if row["outcome"] == "exists":
        raise _exists(bucket, path)
    if row["outcome"] == "in_progress":
        raise Conflict(f"Another upload to {bucket.id}/{path} is in progress; it ends or expires by "
                       f"{row['busy_until'].isoformat()}.", code="upload_in_progress")
    if row["outcome"] == "path_clash":
        raise Conflict(f"{bucket.id}/{path} cannot be stored: {row['clash_path']} is there, and one path cannot be "
                       "both a file and a folder.", code="path_clash",
                       details={"bucket": bucket.id, "path": path, "clashes_with": row["clash_path"]})
    if row["outcome"] == "quota_exceeded":
        raise quota_exceeded(length, row["used_bytes"], row["quota_bytes"])
    return row


def release_upload(organization_id, upload_id) -> None:
    """Forget an upload and its reservation. Logs instead of raising: it runs while another error propagates, and
    an upload left behind expires and is cleaned up by maintenance."""
    try:
        with get_db().tenant_transaction(organization_id) as conn:
            conn.execute(q.storage.delete_upload, {"organization_id": organization_id, "id": upload_id})
    except Exception:  # noqa: BLE001 - best effort by design, see the docstring
        log.exception("could not release storage upload %s; maintenance will", upload_id)


def finish_write(organization_id, upload_id, bucket: Bucket, path: str, staged: StagedFile, *, upsert: bool,
                 metadata: dict | None = None) -> tuple[dict, bool]:
    """Place the staged bytes and commit the object (steps 3 to 5). Returns (object row, whether it is new).

    Raises StorageUnavailable (503) when the backend fails (a database outage is its own 503), Conflict (409) when
    the upload expired meanwhile or the backend holds bytes at the path that this write may not replace; then
    neither bytes nor metadata of this write remain, and the object that was there before (if any) is intact.
    """
    backend = get_backend()
    key = object_key(organization_id, path)
    try:
        placement = backend.place(bucket.id, key, staged.path, staged.content_type, replace=upsert,
                                  token=str(upload_id))
    except BaseException as exc:
        release_upload(organization_id, upload_id)
        if isinstance(exc, Conflict):  # bytes are there that we may not replace
            raise _exists(bucket, path) from None
        raise
    try:
        with get_db().tenant_transaction(organization_id) as conn:
            done = conn.execute(q.storage.complete_storage_write, {
                "organization_id": organization_id, "upload_id": upload_id, "sha256": staged.sha256,
                "content_type": staged.content_type, "metadata": Jsonb(metadata or {})}).fetchone()
            row = conn.execute(q.storage.get_object_by_id, {
                "organization_id": organization_id, "id": done["object_id"]}).fetchone()
    except BaseException as exc:
        try:
            placement.rollback()
        except Exception:  # noqa: BLE001 - the original error matters more; reconcile finds what is left
            log.exception("could not roll back the placement of %s/%s", bucket.id, key)
        release_upload(organization_id, upload_id)
        if isinstance(exc, psycopg.errors.NoDataFound):
            raise Conflict("The upload expired before it was finished; start again.", code="upload_expired") from None
        if isinstance(exc, psycopg.errors.UniqueViolation):
            raise _exists(bucket, path) from None
        raise
    try:
        placement.commit()
    except Exception:  # noqa: BLE001 - the write succeeded; a leftover backup is dropped by reconcile
        log.exception("could not drop the previous version of %s/%s", bucket.id, key)
    return row, done["created"]


@dataclass(slots=True)
class WriteResult:
    object: dict
    created: bool
    quota: dict
    thumbnail: dict | None


def store_object(caller, bucket: Bucket, path: str, staged: StagedFile, *, upsert: bool, project_id: str | None,
                 upload_id=None, metadata: dict | None = None) -> WriteResult:
    """Store staged bytes as `path` in `bucket` for the caller's organization, with a thumbnail when it is an image
    for a project or a brand kit. With `upload_id` the path is already held (a finished tus upload).

    Raises what begin_write and finish_write raise. A thumbnail that cannot be made or stored never fails the write:
    the result says why instead.
    """
    organization_id = caller.organization_id
    prepared = _prepare_thumbnail(bucket, path, staged, project_id)
    try:
        if upload_id is None:
            held = begin_write(organization_id, caller.user_id, bucket, path, length=staged.size, upsert=upsert,
                               kind="direct", expires_at=datetime.now(timezone.utc) + DIRECT_UPLOAD_HOLD)
            upload_id, upsert = held["upload_id"], held["upsert"]
        row, created = finish_write(organization_id, upload_id, bucket, path, staged, upsert=upsert,
                                    metadata=metadata)
        thumbnail = None
        if isinstance(prepared, PreparedThumbnail):
            thumbnail = _store_thumbnail(caller, bucket, row, prepared)
        elif prepared is not None:
            thumbnail = {"error": prepared}
        with get_db().tenant_transaction(organization_id) as conn:
            if thumbnail and "object" in thumbnail:
                row = conn.execute(q.storage.set_object_thumbnail, {
                    "organization_id": organization_id, "id": row["id"],
                    "thumbnail": Jsonb({"bucket": thumbnails.THUMBNAIL_BUCKET,
                                        "path": thumbnail["object"]["path"]})}).fetchone()
            quota = current_quota(conn, organization_id)
        return WriteResult(row, created, quota, thumbnail)
    finally:
        if isinstance(prepared, PreparedThumbnail):
            prepared.file.discard()


@dataclass(slots=True)
class PreparedThumbnail:
    path: str  # in the thumbnails bucket
    file: StagedFile


def _prepare_thumbnail(bucket: Bucket, path: str, staged: StagedFile,
                       project_id: str | None) -> PreparedThumbnail | str | None:
    """A staged thumbnail and its path, None when none is wanted, or the reason (a str) it could not be made."""
    if not thumbnails.wanted(bucket.id, staged.content_type, project_id):
        return None
    try:
        thumb_path = thumbnails.target_path(bucket.id, path, project_id)
    except thumbnails.ThumbnailError as exc:
        log.info("no thumbnail for %s/%s: %s", bucket.id, path, exc)
        return str(exc)
    fd, name = tempfile.mkstemp(dir=get_backend().staging_dir, prefix="thumb-", suffix=".jpg")
    os.close(fd)
    dest = Path(name)
    try:
        thumbnails.make_thumbnail(staged.path, dest)
    except thumbnails.ThumbnailError as exc:
        dest.unlink(missing_ok=True)
        log.info("no thumbnail for %s/%s: %s", bucket.id, path, exc)
        return str(exc)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return PreparedThumbnail(thumb_path, StagedFile(dest, dest.stat().st_size, hash_file(dest), "image/jpeg"))


def _store_thumbnail(caller, source_bucket: Bucket, source: dict, prepared: PreparedThumbnail) -> dict:
    """Store a thumbnail of the committed object `source`: {"object": ...}, or {"error": why} when it could not be.
    Never raises: the source is stored already, and a failed thumbnail must not make its upload look failed."""
    # Naming the source lets the write replace only an earlier thumbnail of the same object (never a file the
    # user put there), makes the thumbnail expire with its source, and deletes it with its source.
    metadata = {"source": {"bucket": source_bucket.id, "path": source["path"], "id": str(source["id"])}}
    try:
        with get_db().tenant_transaction(caller.organization_id) as conn:
            bucket = get_bucket(conn, thumbnails.THUMBNAIL_BUCKET)
        row, _created = finish_write(
            caller.organization_id,
            begin_write(caller.organization_id, caller.user_id, bucket, prepared.path, length=prepared.file.size,
                        upsert=True, kind="direct", metadata=metadata,
                        expires_at=datetime.now(timezone.utc) + DIRECT_UPLOAD_HOLD)["upload_id"],
            bucket, prepared.path, prepared.file, upsert=True, metadata=metadata)
    except Conflict as exc:
        if exc.code != "object_exists":
            raise
        message = f"Another file is at {bucket.id}/{prepared.path}; it is kept, and this image has no thumbnail."
        log.info("thumbnail of %s/%s not stored: %s", source_bucket.id, source["path"], message)
        return {"error": message}
    except ApiError as exc:
        log.info("thumbnail of %s/%s not stored: %s", source_bucket.id, source["path"], exc.message)
        return {"error": exc.message}
    except Exception:  # noqa: BLE001 - see the docstring; the cause is logged
        log.exception("thumbnail of %s/%s not stored", source_bucket.id, source["path"])
        return {"error": "The thumbnail could not be stored."}
    return {"object": object_json(row, bucket)}


# Deleting --------------------------------------------------------------------------------------------------------

def delete_objects(organization_id, bucket: Bucket, paths: list[str]) -> list[dict]:
    """Delete objects of the organization by path; returns one {path, outcome} per distinct path, outcome being
    "deleted", "not_found" or "busy" (an upload is writing there).

    The rows and the bytes go together: the rows are deleted in a transaction that commits only after the backend
    removed the bytes, so a backend failure (StorageUnavailable, 503) leaves both. The thumbnails of the deleted
    objects go with them.
    """
    with get_db().tenant_transaction(organization_id) as conn:
        rows = conn.execute(q.storage.delete_storage_objects, {
            "organization_id": organization_id, "bucket_id": bucket.id, "paths": paths}).fetchall()
        doomed: dict[str, list[str]] = {}
        for r in rows:
            if r["outcome"] in ("deleted", "thumbnail"):
                doomed.setdefault(r["bucket_id"], []).append(object_key(organization_id, r["path"]))
        for bucket_id, keys in doomed.items():
            get_backend().delete(bucket_id, keys)
    return [{"path": r["path"], "outcome": r["outcome"], "id": r["object_id"]} for r in rows
            if r["outcome"] != "thumbnail"]


# Presenting ------------------------------------------------------------------------------------------------------

def base_url() -> str:
    """Where this service is reached from outside: PUBLIC_BASE_URL, else the request's own host."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    if configured:
        return configured.rstrip("/")
    return request.host_url.rstrip("/") if has_request_context() else ""


def public_url(bucket_id: str, key: str, sha256: str) -> str:
    """The stable public link of an object in a public bucket. The `v` parameter names the content, so a CDN may
    keep the response forever; after an upsert the object gets a new link."""
    return f"{base_url()}/api/storage/public/{quote(bucket_id)}/{quote(key)}?v={sha256[:16]}"


def object_json(row: dict, bucket: Bucket) -> dict:
    key = object_key(row["organization_id"], row["path"])
    body = {"id": row["id"], "bucket": row["bucket_id"], "path": row["path"], "key": key,
            "size": row["size_bytes"], "content_type": row["content_type"], "sha256": row["sha256"],
            "metadata": row["metadata"], "uploaded_by": row["uploaded_by"], "created_at": row["created_at"],
            "updated_at": row["updated_at"], "expires_at": row["expires_at"]}
    if bucket.public:
        body["public_url"] = public_url(bucket.id, key, row["sha256"])
    return body
