"""File storage: /api/storage/...

Every object lives in the caller's organization folder: paths in these routes are below it, and the organization
comes from the session. Signed links (/signed/...) and public objects (/public/...) need no session; everything
else does. See storage/__init__.py for how writes and deletes keep metadata and bytes in agreement.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, fields, validate

import storage
from api_request import lift_body_limit, truthy
from auth import current_caller, public
from db import get_db
from errors import Conflict, NotFound, uuid_or_404
from pagination import decode_path_cursor, encode_path_cursor, page
from queries import q
from storage import paths, signing, tus
from storage.paths import object_key

bp = Blueprint("storage", __name__, url_prefix="/api/storage")


@bp.record_once
def _exempt_tus_chunks(state) -> None:
    # The chunks of an upload the POST already admitted (and counted) would otherwise spend the organization's
    # per-minute request budget: a 500 MB video in 5 MB chunks is a hundred requests.
    for limiter in state.app.extensions.get("limiter", ()):
        limiter.exempt(tus_append)
        limiter.exempt(tus_status)


@bp.after_request
def _tus_resumable_header(response):
    if request.path.startswith(tus.ENDPOINT):
        response.headers.setdefault("Tus-Resumable", tus.TUS_VERSION)
    return response


class SignSchema(Schema):
    expires_in = fields.Integer(load_default=None, validate=validate.Range(min=1, max=signing.MAX_TTL_SECONDS))
    download = fields.String(load_default=None, validate=validate.Length(max=255))


class DeleteManySchema(Schema):
    prefixes = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=1000))


class ListSchema(Schema):
    prefix = fields.String(load_default="")
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(load_default=None)


def _json_body() -> dict:
    """The JSON body, or {} when there is none. Raises BadRequest (400) for malformed JSON."""
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return {}
    return request.get_json() or {}


def _find(conn, organization_id, bucket_id: str, path: str):
    """(bucket, object row). Raises NotFound (404) for an unknown bucket or object."""
    bucket = storage.get_bucket(conn, bucket_id)
    row = conn.execute(q.storage.get_object_by_path, {"organization_id": organization_id, "bucket_id": bucket.id,
                                                      "path": path}).fetchone()
    if row is None:
        raise NotFound(f"There is no object at {bucket.id}/{path}.")
    return bucket, row


def _serve(bucket, row, *, cache_control: str, ttl_seconds: int):
    """The object's bytes (or a redirect to them), with `?download[=name]` making it an attachment."""
    download = request.args.get("download")
    basename = row["path"].rsplit("/", 1)[-1]
    name = None if download is None else paths.safe_filename(download or basename, default=basename)
    response = storage.get_backend().serve(
        bucket, object_key(row["organization_id"], row["path"]), content_type=row["content_type"],
        etag=row["sha256"], last_modified=row["updated_at"], download_name=name, cache_control=cache_control,
        ttl_seconds=ttl_seconds)
    # Whatever an uploader managed to store is never run as a page of ours.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def _write_response(result: storage.WriteResult, bucket):
    response = jsonify({"object": storage.object_json(result.object, bucket), "quota": result.quota,
                        "thumbnail": result.thumbnail})
    response.status_code = 201 if result.created else 200
    if result.quota["warning"]:
        response.headers["X-Storage-Quota-Warning"] = result.quota["warning"]
    return response


@bp.get("/buckets")
def list_buckets():
    """The buckets with their size limits, accepted types and object lifetimes."""
    with get_db().tenant_transaction(current_caller().organization_id) as conn:
        return {"buckets": [b.to_dict() for b in storage.list_buckets(conn)]}


@bp.get("/usage")
def usage():
    """The organization's storage use against its plan's quota, with a warning from 80%."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        return storage.current_quota(conn, caller.organization_id)


@bp.route("/object/<bucket_id>/<path:path>", methods=["POST", "PUT"])
def upload_object(bucket_id: str, path: str):
    """Store the raw request body at `path`. PUT, `?upsert=true` or `x-upsert: true` replace an existing object;
    `?project_id=` makes an image get a thumbnail. 201 when created, 200 when replaced.

    Raises 404 (bucket), 409 (exists, or an upload in progress), 402 (quota), 413 (bucket size limit, as soon as
    crossed), 415 (content type by sniffing), 422 (path).
    """
    caller = current_caller()
    path = paths.clean_path(path)
    upsert = request.method == "PUT" or truthy(request.args.get("upsert")) or truthy(request.headers.get("x-upsert"))
    project_id = paths.clean_project_id(request.args.get("project_id"), "project_id")
    with get_db().tenant_transaction(caller.organization_id) as conn:
        bucket = storage.get_bucket(conn, bucket_id)
        storage.precheck_write(conn, caller.organization_id, bucket, path, request.content_length, upsert)
    # No transaction is open while the body streams in, and no pooled connection is held: a slow client holds no
    # locks and does not starve other requests of connections. The bucket's own size limit applies while
    # streaming, not the app-wide limit on request bodies.
    get_db().release_request_connection()
    lift_body_limit()
    staged = storage.receive(request.stream, bucket, storage.get_backend().staging_dir, request.content_length)
    metadata = {"client_content_type": request.mimetype} if request.mimetype else {}
    try:
        result = storage.store_object(caller, bucket, path, staged, upsert=upsert, project_id=project_id,
                                      metadata=metadata)
    finally:
        staged.discard()
    return _write_response(result, bucket)


@bp.get("/object/<bucket_id>/<path:path>")
def download_object(bucket_id: str, path: str):
    """The object's bytes: Range (206/416), ETag and If-None-Match (304), `?download[=name]`. Raises 404."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        bucket, row = _find(conn, caller.organization_id, bucket_id, paths.clean_path(path))
    return _serve(bucket, row, cache_control="private, no-cache", ttl_seconds=60)


@bp.get("/object/info/<bucket_id>/<path:path>")
def object_info(bucket_id: str, path: str):
    """The object's metadata. Raises 404."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        bucket, row = _find(conn, caller.organization_id, bucket_id, paths.clean_path(path))
    return storage.object_json(row, bucket)


@bp.get("/objects/<object_id>")
def object_info_by_id(object_id: str):
    """The object's metadata by id. Raises 404, also for another organization's object."""
    bucket, row = _object_by_id(object_id)
    return storage.object_json(row, bucket)


def _object_by_id(object_id: str):
    """(bucket, metadata row) of the caller's organization's object. Raises 404, also for another's object."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        row = conn.execute(q.storage.get_object_by_id, {"organization_id": caller.organization_id,
                                                        "id": uuid_or_404(object_id, "object")}).fetchone()
        if row is None:
            raise NotFound("The object does not exist.")
        return storage.get_bucket(conn, row["bucket_id"]), row


def _delete_one(bucket, path: str) -> dict:
    [result] = storage.delete_objects(current_caller().organization_id, bucket, [path])
    if result["outcome"] == "not_found":
        raise NotFound(f"There is no object at {bucket.id}/{path}.")
    if result["outcome"] == "busy":
        raise Conflict(f"An upload to {bucket.id}/{path} is in progress; delete it after.", code="upload_in_progress")
    return {"deleted": True, "id": result["id"], "bucket": bucket.id, "path": path}


@bp.delete("/object/<bucket_id>/<path:path>")
def delete_object(bucket_id: str, path: str):
    """Delete one object, bytes and metadata. Raises 404, and 409 while an upload writes to the same path."""
    with get_db().tenant_transaction(current_caller().organization_id) as conn:
        bucket = storage.get_bucket(conn, bucket_id)
    return _delete_one(bucket, paths.clean_path(path))


@bp.delete("/objects/<object_id>")
def delete_object_by_id(object_id: str):
    """Delete one object by id. Raises 404 (also for another organization's object) and 409 as above."""
    bucket, row = _object_by_id(object_id)
    return _delete_one(bucket, row["path"])


@bp.delete("/object/<bucket_id>")
def delete_objects(bucket_id: str):
    """Delete many objects of one bucket: {"prefixes": [path, ...]} as Supabase's remove() sends. Answers each
    path's outcome: deleted, not_found or busy. Raises 404 (bucket), 422 (paths)."""
    caller = current_caller()
    body = DeleteManySchema().load(_json_body())
    wanted = [paths.clean_path(p, "prefixes") for p in body["prefixes"]]
    with get_db().tenant_transaction(caller.organization_id) as conn:
        bucket = storage.get_bucket(conn, bucket_id)
    results = storage.delete_objects(caller.organization_id, bucket, wanted)
    return {"results": results, "deleted": sum(r["outcome"] == "deleted" for r in results)}


@bp.get("/buckets/<bucket_id>/objects")
def list_objects(bucket_id: str):
    """A page of the bucket's objects whose path starts with `prefix`, in path order; `limit` and `cursor` page
    through (keyset: each page costs the same however deep). Raises 404 (bucket), 422 (prefix, cursor)."""
    caller = current_caller()
    args = ListSchema().load(request.args)
    prefix = paths.clean_prefix(args["prefix"])
    after = decode_path_cursor(args["cursor"]) if args["cursor"] else None
    with get_db().tenant_transaction(caller.organization_id) as conn:
        bucket = storage.get_bucket(conn, bucket_id)
        rows = conn.execute(q.storage.list_objects, {
            "organization_id": caller.organization_id, "bucket_id": bucket.id, "prefix": prefix, "after": after,
            "limit": args["limit"] + 1}).fetchall()
    result = page(rows, args["limit"], cursor_of=lambda row: encode_path_cursor(row["path"]))
    return {**result, "items": [storage.object_json(r, bucket) for r in result["items"]]}


@bp.post("/object/sign/<bucket_id>/<path:path>")
def sign_object(bucket_id: str, path: str):
    """A signed link to the object, valid `expires_in` seconds (SIGNED_URL_TTL_SECONDS by default, at most a
    week); `download` makes the link an attachment under that name. Raises 404, 422."""
    caller = current_caller()
    body = SignSchema().load(_json_body())
    with get_db().tenant_transaction(caller.organization_id) as conn:
        bucket, row = _find(conn, caller.organization_id, bucket_id, paths.clean_path(path))
    ttl = body["expires_in"] or current_app.config.get("SIGNED_URL_TTL_SECONDS") or 3600
    link, expires = signing.signed_path(current_app.config["SECRET_KEY"], bucket.id,
                                        object_key(caller.organization_id, row["path"]), ttl,
                                        download=body["download"])
    return {"signed_url": f"{storage.base_url()}{link}", "bucket": bucket.id, "path": row["path"],
            "expires_at": datetime.fromtimestamp(expires, timezone.utc)}


def _find_by_key(bucket_id: str, key: str):
    """(bucket, metadata row) for a link's backend key, `{organizationId}/{path}`, with no session. Raises 404."""
    try:
        organization_id, path = paths.split_key(key)
    except ValueError:
        raise NotFound("The object does not exist.") from None
    with get_db().tenant_transaction(organization_id) as conn:
        return _find(conn, organization_id, bucket_id, path)


@bp.get("/signed/<bucket_id>/<path:key>")
@public
def signed_object(bucket_id: str, key: str):
    """Serve an object through a signed link (no session). Raises 403 (tampered or expired link), 404."""
    expires = signing.verify(current_app.config["SECRET_KEY"], bucket_id, key, request.args.get("expires"),
                             request.args.get("token"))
    bucket, row = _find_by_key(bucket_id, key)
    remaining = max(1, int(expires - time.time()))
    return _serve(bucket, row, cache_control=f"private, max-age={min(remaining, 3600)}", ttl_seconds=remaining)


@bp.get("/public/<bucket_id>/<path:key>")
@public
def public_object(bucket_id: str, key: str):
    """Serve an object of a public bucket (no session). With `?v=` naming the current content (as the API's
    public_url does) it may be cached for a year; without, for five minutes. Raises 404, also for private buckets."""
    bucket, row = _find_by_key(bucket_id, key)
    if not bucket.public:
        raise NotFound(f"There is no object at {bucket_id}/{key}.")
    version = request.args.get("v") or ""
    immutable = len(version) >= 16 and row["sha256"].startswith(version)
    cache = "public, max-age=31536000, immutable" if immutable else "public, max-age=300"
    return _serve(bucket, row, cache_control=cache, ttl_seconds=3600)


@bp.route("/upload/resumable", methods=["OPTIONS"])
@public
def tus_options():
    """tus discovery: versions, extensions and the largest size any bucket takes."""
    return tus.options()


@bp.route("/upload/resumable", methods=["POST"], provide_automatic_options=False)
def tus_create():
    """tus creation: see storage/tus.py."""
    return tus.create(current_caller())


@bp.route("/upload/resumable/<upload_id>", methods=["HEAD"])
def tus_status(upload_id: str):
    """tus offset query: see storage/tus.py."""
    return tus.status(current_caller(), upload_id)


@bp.route("/upload/resumable/<upload_id>", methods=["PATCH"])
def tus_append(upload_id: str):
    """tus append: see storage/tus.py."""
    return tus.append(current_caller(), upload_id)


@bp.route("/upload/resumable/<upload_id>", methods=["DELETE"])
def tus_terminate(upload_id: str):
    """tus termination: see storage/tus.py."""
    return tus.terminate(current_caller(), upload_id)

