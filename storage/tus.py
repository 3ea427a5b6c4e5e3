"""Resumable uploads over tus 1.0 (core, creation, termination, expiration): what Uppy and Supabase Storage speak.

State lives in PostgreSQL (the storage_uploads row: length, offset, lease, expiry) and on the backend's disk (the
bytes received so far, `uploads/{id}` in STORAGE_LOCAL_DIR), so any worker on any server sharing that directory can
continue an upload another one started.

- POST with Upload-Length and Upload-Metadata (`bucketName`, `objectName`, optional `contentType`, `projectId`;
  `x-upsert: true` or an `upsert` entry to replace) holds the path and reserves the bytes against the quota up
  front, exactly as a direct upload does, and answers 201 with the upload's Location and Upload-Expires.
- HEAD answers the offset recorded so far.
- PATCH (application/offset+octet-stream, Upload-Offset equal to the recorded offset, else 409) appends. A PATCH
  holds a short lease, renewed while it streams: a second PATCH meanwhile gets 423. Progress is recorded every few
  seconds and when the body ends, also when the client breaks off mid-body: what arrived is kept, and HEAD tells the
  client where to resume. The type is sniffed as soon as the first 8 KiB are in (415 ends the upload). The PATCH
  that brings the last byte stores the object (hash, thumbnail, metadata) before it answers.
- DELETE ends the upload and releases its bytes. Expired uploads are removed by `flask maintenance run`.
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

from flask import Response, current_app, request
from marshmallow import ValidationError
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import http_date

import storage
from api_request import lift_body_limit, truthy
from db import get_db
from errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    StorageUnavailable,
    UnsupportedMediaType,
    uuid_or_404,
)
from queries import q
from storage import paths, sniff

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
ENDPOINT = "/api/storage/upload/resumable"
LEASE_SECONDS = 30
# Progress is recorded, and the lease renewed, before a chunk is written when the last renewal is older than this:
# well within the lease, so a PATCH never writes on a lease about to run out.
PROGRESS_EVERY_SECONDS = 5
FINALIZE_LEASE_SECONDS = 600
_INTEGER = re.compile(r"[0-9]{1,19}")


class Gone(ApiError):
    status, code, message = 410, "upload_expired", "The upload has expired; start a new one."


class Locked(ApiError):
    status, code, message = 423, "upload_locked", "Another request is writing to this upload; retry shortly."


def require_tus_version() -> None:
    """Raises 412 when the request does not speak tus 1.0.0."""
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApiError(f"This server speaks tus {TUS_VERSION}; send 'Tus-Resumable: {TUS_VERSION}'.",
                       code="tus_version_unsupported", status=412, headers={"Tus-Version": TUS_VERSION})


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata ("key base64value,key2 base64value2") as a dict. Raises BadRequest (400) when malformed."""
    result: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or key in result or " " in value.strip():
            raise BadRequest("Upload-Metadata is malformed.", code="bad_upload_metadata")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text.",
                             code="bad_upload_metadata") from None
    return result


def _int_header(name: str) -> int:
    """A non-negative integer header. Raises BadRequest (400) for anything else: ASCII digits only, and few enough
    for int() (str.isdigit() also passes '²' and 5000-digit strings)."""
    raw = request.headers.get(name, "")
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(f"The {name} header must be a non-negative integer.", code="bad_tus_header")
    return int(raw)


def _expiry_hours() -> int:
    return int(current_app.config.get("TUS_UPLOAD_EXPIRY_HOURS") or 24)


def _location(upload_id) -> str:
    return f"{storage.base_url()}{ENDPOINT}/{upload_id}"


def options() -> Response:
    """The server's tus capabilities (no authentication: browsers send OPTIONS without credentials)."""
    with get_db().transaction() as conn:
        largest = max(bucket.file_size_limit for bucket in storage.list_buckets(conn))
    return Response(status=204, headers={"Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION,
                                         "Tus-Extension": TUS_EXTENSIONS, "Tus-Max-Size": str(largest)})


def create(caller) -> Response:
    """POST: create an upload. Raises 400 (headers), 404 (bucket), 409, 402, 413, 415, 422 (names)."""
    require_tus_version()
    if "Upload-Defer-Length" in request.headers:
        raise BadRequest("Upload-Defer-Length is not supported; send Upload-Length.", code="bad_tus_header")
    length = _int_header("Upload-Length")
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    missing = {k: ["Required in Upload-Metadata."] for k in ("bucketName", "objectName") if not metadata.get(k)}
    if missing:
        raise ValidationError(missing)
    path = paths.clean_path(metadata["objectName"], "objectName")
    project_id = paths.clean_project_id(metadata.get("projectId"), "projectId")
    upsert = truthy(request.headers.get("x-upsert")) or truthy(metadata.get("upsert"))
    organization_id = caller.organization_id
    with get_db().tenant_transaction(organization_id) as conn:
        bucket = storage.get_bucket(conn, metadata["bucketName"])
    if length > bucket.file_size_limit:
        raise storage.too_large(bucket)

    expires_at = datetime.now(timezone.utc) + timedelta(hours=_expiry_hours())
    kept = {"project_id": project_id, "client_content_type": metadata.get("contentType"),
            "filename": metadata.get("filename") or metadata.get("name")}
    reserved = storage.begin_write(organization_id, caller.user_id, bucket, path, length=length, upsert=upsert,
                                   kind="tus", expires_at=expires_at,
                                   metadata={k: v for k, v in kept.items() if v})
    upload_id = reserved["upload_id"]
    part = storage.get_backend().upload_part_path(upload_id)
    try:
        part.touch(exist_ok=False)
    except OSError:
        storage.release_upload(organization_id, upload_id)
        log.exception("could not create the file of tus upload %s", upload_id)
        raise StorageUnavailable() from None
    headers = {"Location": _location(upload_id), "Upload-Expires": http_date(expires_at),
               "Tus-Resumable": TUS_VERSION}
    warning = storage.quota_report(reserved["used_bytes"], reserved["quota_bytes"])["warning"]
    if warning:
        headers["X-Storage-Quota-Warning"] = warning
    if length == 0:
        headers.update(_finish_empty(caller, upload_id))
    return Response(status=201, headers=headers)


def _finish_empty(caller, upload_id) -> dict:
    with get_db().tenant_transaction(caller.organization_id) as conn:
        row = conn.execute(q.storage.get_upload, {"organization_id": caller.organization_id,
                                                  "id": upload_id}).fetchone()
        bucket = storage.get_bucket(conn, row["bucket_id"])
    try:
        content_type = storage.check_type(b"", bucket)
    except UnsupportedMediaType:
        terminate_upload(caller.organization_id, upload_id)
        raise
    return _finalize(caller, row, bucket, content_type)


def status(caller, raw_id: str) -> Response:
    """HEAD: the offset recorded so far. Raises 404 (unknown, also another organization's) and 410 (expired)."""
    require_tus_version()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        row = conn.execute(q.storage.get_upload, {"organization_id": caller.organization_id,
                                                  "id": uuid_or_404(raw_id, "upload")}).fetchone()
    if row is None or row["kind"] != "tus":
        raise NotFound("The upload does not exist.")
    if row["expired"]:
        raise Gone()
    return Response(status=200, headers={
        "Upload-Offset": str(row["upload_offset"]), "Upload-Length": str(row["upload_length"]),
        "Upload-Expires": http_date(row["expires_at"]), "Cache-Control": "no-store", "Tus-Resumable": TUS_VERSION})


def append(caller, raw_id: str) -> Response:
    """PATCH: append the body at Upload-Offset; the last byte stores the object.

    Raises 400 (headers), 404, 409 (offset mismatch, with the right Upload-Offset), 410 (expired), 413 (more than
    Upload-Length), 415 (not application/offset+octet-stream, or content the bucket refuses: the upload ends),
    423 (another PATCH is running).
    """
    require_tus_version()
    if request.mimetype != "application/offset+octet-stream":
        raise UnsupportedMediaType("A PATCH body must be sent as application/offset+octet-stream.",
                                   code="bad_patch_content_type")
    offset = _int_header("Upload-Offset")
    upload_id = uuid_or_404(raw_id, "upload")
    organization_id = caller.organization_id
    lease = uuid.uuid4()
    with get_db().tenant_transaction(organization_id) as conn:
        row = conn.execute(q.storage.lock_tus_upload, {"organization_id": organization_id,
                                                       "id": upload_id}).fetchone()
        if row is None:
            raise NotFound("The upload does not exist.")
        if row["expired"]:
            raise Gone()
        if row["leased"]:
            raise Locked()
        if offset != row["upload_offset"]:
            raise Conflict(f"Upload-Offset {offset} does not match the {row['upload_offset']} bytes received; "
                           "resume from there.", code="offset_mismatch",
                           headers={"Upload-Offset": str(row["upload_offset"])})
        bucket = storage.get_bucket(conn, row["bucket_id"])
        expires_at = conn.execute(q.storage.take_upload_lease, {
            "organization_id": organization_id, "id": upload_id, "lease": lease, "seconds": LEASE_SECONDS,
            "expiry_hours": _expiry_hours()}).fetchone()["expires_at"]

    # The body may take minutes: hold no pooled connection while it streams (each progress record takes one).
    get_db().release_request_connection()
    length = row["upload_length"]
    if request.content_length is not None and offset + request.content_length > length:
        _record(organization_id, upload_id, lease, offset, None, release=True)
        raise PayloadTooLarge(f"This PATCH would take the upload past its Upload-Length of {length} bytes.")
    written, content_type = _receive(caller, row, bucket, lease)
    headers = {"Upload-Offset": str(written), "Upload-Expires": http_date(expires_at), "Tus-Resumable": TUS_VERSION}
    if written == length:
        headers.update(_finalize(caller, row, bucket, content_type))
    return Response(status=204, headers=headers)


def _record(organization_id, upload_id, lease, offset: int, content_type: str | None, *, release: bool,
            seconds: int = LEASE_SECONDS) -> bool:
    """Record progress under our lease (and renew or release it); False when the lease was lost. Returns the
    connection to the pool after: more of the body may be on its way."""
    db = get_db()
    try:
        with db.tenant_transaction(organization_id) as conn:
            return conn.execute(q.storage.record_upload_progress, {
                "organization_id": organization_id, "id": upload_id, "lease": lease, "offset": offset,
                "content_type": content_type, "release": release, "seconds": seconds}).fetchone() is not None
    finally:
        db.release_request_connection()


def _receive(caller, row: dict, bucket, lease) -> tuple[int, str | None]:
    """Append the request body to the upload's file; returns (offset now recorded, sniffed type or None)."""
    organization_id, upload_id = caller.organization_id, row["id"]
    length, written, content_type = row["upload_length"], row["upload_offset"], row["content_type"]
    part = storage.get_backend().upload_part_path(upload_id)
    lift_body_limit()  # the upload's declared length bounds the body, not the app-wide limit
    stream = request.stream
    failure: Exception | None = None
    last_record = time.monotonic()
    try:
        handle = open(part, "r+b")
    except FileNotFoundError:
        terminate_upload(organization_id, upload_id)
        raise Gone("The upload's data is gone; start a new one.") from None
    with handle:
        # Bytes past the recorded offset came from a PATCH that broke off before recording them: drop them.
        handle.seek(written)
        handle.truncate()
        try:
            while True:
                try:
                    chunk = stream.read(min(storage.CHUNK_BYTES, length - written + 1))
                except (ClientDisconnected, OSError, ValueError) as exc:  # the client went away mid-body
                    failure = exc
                    break
                if not chunk:
                    break
                if written + len(chunk) > length:
                    raise PayloadTooLarge(f"The body takes the upload past its Upload-Length of {length} bytes.")
                # Renew before writing, never only after: a body that stalled past the lease may have let another
                # PATCH take the upload over and truncate the file, and this one must then stop without writing.
                if time.monotonic() - last_record > PROGRESS_EVERY_SECONDS:
                    handle.flush()
                    os.fsync(handle.fileno())
                    if not _record(organization_id, upload_id, lease, written, content_type, release=False):
                        raise _lease_lost()
                    last_record = time.monotonic()
                handle.write(chunk)
                written += len(chunk)
                if content_type is None and written >= min(sniff.HEAD_BYTES, length):
                    handle.flush()
                    with open(part, "rb") as head:
                        content_type = storage.check_type(head.read(sniff.HEAD_BYTES), bucket)
        except UnsupportedMediaType:
            terminate_upload(organization_id, upload_id)
            raise
        except BaseException as exc:
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                _record(organization_id, upload_id, lease, written, content_type, release=True)
            if isinstance(exc, OSError):
                log.error("could not write tus upload %s: %s", upload_id, exc)
                raise StorageUnavailable() from None
            raise
        handle.flush()
        os.fsync(handle.fileno())
    if failure is not None:
        # Answered like any short PATCH: a client still listening learns the offset, one that is gone asks HEAD.
        log.info("tus upload %s broke off at %d of %d bytes: %s", upload_id, written, length,
                 type(failure).__name__)
    finished = written == length
    if not _record(organization_id, upload_id, lease, written, content_type, release=not finished,
                   seconds=FINALIZE_LEASE_SECONDS):
        raise _lease_lost()  # the file is another PATCH's now: neither record nor finish what we wrote
    return written, content_type


def _lease_lost() -> Conflict:
    return Conflict("This upload was taken over by another request; ask HEAD for the offset.", code="lease_lost")


def _finalize(caller, row: dict, bucket, content_type: str | None) -> dict:
    """Store the finished upload as its object; returns headers naming it (and the quota warning).

    Raises what storing raises (415 for content refused only now, 409, 503...); the upload ends then, whatever the
    error: its bytes are refused or already gone, so nothing could resume it, and its path and reserved bytes are
    released at once instead of staying held for the finalize lease.
    """
    try:
        return _store_upload(caller, row, bucket, content_type)
    except BaseException:
        terminate_upload(caller.organization_id, row["id"])
        raise


def _store_upload(caller, row: dict, bucket, content_type: str | None) -> dict:
    upload_id = row["id"]
    part = storage.get_backend().upload_part_path(upload_id)
    if content_type is None:
        with open(part, "rb") as head:
            content_type = storage.check_type(head.read(sniff.HEAD_BYTES), bucket)
    storage.check_whole_file(part, content_type, bucket)
    staged = storage.StagedFile(part, row["upload_length"], storage.hash_file(part), content_type)
    metadata = dict(row["metadata"] or {})
    project_id = metadata.pop("project_id", None)
    try:
        result = storage.store_object(caller, bucket, row["path"], staged, upsert=row["upsert"],
                                      project_id=project_id, upload_id=upload_id, metadata=metadata)
    finally:
        staged.discard()
    headers = {"X-Storage-Object-Id": str(result.object["id"])}
    if result.quota["warning"]:
        headers["X-Storage-Quota-Warning"] = result.quota["warning"]
    return headers


def terminate_upload(organization_id, upload_id) -> None:
    """Forget an upload: its row (releasing path and bytes) and its file."""
    storage.release_upload(organization_id, upload_id)
    storage.get_backend().upload_part_path(upload_id).unlink(missing_ok=True)


def terminate(caller, raw_id: str) -> Response:
    """DELETE: end an upload. Raises 404 (unknown) and 423 (a PATCH is running)."""
    require_tus_version()
    upload_id = uuid_or_404(raw_id, "upload")
    with get_db().tenant_transaction(caller.organization_id) as conn:
        row = conn.execute(q.storage.lock_tus_upload, {"organization_id": caller.organization_id,
                                                       "id": upload_id}).fetchone()
        if row is None:
            raise NotFound("The upload does not exist.")
        if row["leased"]:
            raise Locked()
        conn.execute(q.storage.delete_upload, {"organization_id": caller.organization_id, "id": upload_id})
    storage.get_backend().upload_part_path(upload_id).unlink(missing_ok=True)
    return Response(status=204, headers={"Tus-Resumable": TUS_VERSION})
