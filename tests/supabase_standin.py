"""A local stand-in for Supabase Storage's REST API (the cloud service is outside our machine).

An http.server on 127.0.0.1 that answers the endpoints the official Python client (storage3) calls, under
`/storage/v1/`, the way Supabase Storage answers them: buckets (list, get, create, update, delete), objects (upload
POST with x-upsert, update PUT, download, info, remove with `prefixes`, list by folder, copy, move), signed URLs
(create and serve) and public URLs. It keeps Supabase's quirks that the backend has to handle: errors come back as
HTTP 400 with the real status in the body's `statusCode` (a string), and bucket limits (size, MIME types) are
enforced on upload. Objects are kept in memory; the tests send small files.

`fail_next(method, path_part, status)` makes the next matching request fail, to test what our side does then.
"""
from __future__ import annotations

import io
import json
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header

PREFIX = "/storage/v1"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class StandInError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class SupabaseStandIn:
    def __init__(self, service_key: str = "service-role-key-for-tests") -> None:
        self.service_key = service_key
        self.buckets: dict[str, dict] = {}
        self.objects: dict[tuple[str, str], dict] = {}
        self.tokens: dict[str, tuple[str, str, float]] = {}
        self.requests: list[tuple[str, str]] = []
        self._failures: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                standin._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's naming

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail_next(self, method: str, path_part: str, status: int) -> None:
        """The next `method` request whose path contains `path_part` answers `status` (Supabase-style, as 400)."""
        self._failures.append((method, path_part, status))

    def object_data(self, bucket: str, key: str) -> bytes | None:
        entry = self.objects.get((bucket, key))
        return None if entry is None else entry["data"]

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        method = handler.command
        body = _read_body(handler)
        self.requests.append((method, path))
        try:
            if not path.startswith(PREFIX + "/"):
                raise StandInError(404, "not_found", "Route not found")
            route = path[len(PREFIX) + 1:]
            for index, (f_method, part, status) in enumerate(self._failures):
                if f_method == method and part in route:
                    del self._failures[index]
                    raise StandInError(status, "injected", "Injected failure")
            public = route.startswith(("object/public/", "object/sign/")) and method in ("GET", "HEAD")
            if not public:
                self._authorize(handler)
            with self._lock:
                status, payload, headers = self._route(method, route, query, body, handler)
        except StandInError as exc:
            # Supabase Storage's habit: HTTP 400, the real status in the body.
            status, headers = 400, {"Content-Type": "application/json"}
            payload = json.dumps({"statusCode": str(exc.status), "error": exc.error, "message": exc.message}).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(payload)

    def _authorize(self, handler) -> None:
        bearer = handler.headers.get("Authorization", "")
        if bearer != f"Bearer {self.service_key}" or handler.headers.get("apikey") != self.service_key:
            raise StandInError(403, "Unauthorized", "invalid signature")

    def _route(self, method: str, route: str, query: dict, body: bytes, handler):
        parts = [unquote(p) for p in route.split("/")]
        if parts[0] == "bucket":
            return self._bucket_route(method, parts[1:], body)
        if parts[0] != "object":
            raise StandInError(404, "not_found", "Route not found")
        rest = parts[1:]
        if method == "POST" and rest[:1] == ["list"]:
            return self._json(self._list(rest[1], json.loads(body or b"{}")))
        if method == "POST" and rest[:1] in (["copy"], ["move"]):
            return self._json(self._copy_or_move(rest[0], json.loads(body)))
        if rest[:1] == ["sign"] and method == "POST":
            return self._json(self._sign(rest[1], "/".join(rest[2:]), json.loads(body or b"{}")))
        if rest[:1] == ["sign"]:
            return self._download(rest[1], "/".join(rest[2:]), query, signed=True)
        if rest[:1] == ["public"]:
            bucket = self._bucket(rest[1])
            if not bucket["public"]:
                raise StandInError(400, "InvalidRequest", "Bucket is not public")
            return self._download(rest[1], "/".join(rest[2:]), query)
        if rest[:1] == ["info"]:
            return self._json(self._info(rest[1], "/".join(rest[2:])))
        if method == "DELETE" and len(rest) == 1:
            return self._json(self._remove(rest[0], json.loads(body)["prefixes"]))
        bucket_id, key = rest[0], "/".join(rest[1:])
        if method in ("POST", "PUT"):
            return self._json(self._upload(method, bucket_id, key, body, handler))
        if method in ("GET", "HEAD"):
            return self._download(bucket_id, key, query)
        raise StandInError(404, "not_found", "Route not found")

    @staticmethod
    def _json(value, status: int = 200):
        return status, json.dumps(value).encode(), {"Content-Type": "application/json"}

    # -- buckets ----------------------------------------------------------------------------------------------

    def _bucket(self, bucket_id: str) -> dict:
        bucket = self.buckets.get(bucket_id)
        if bucket is None:
            raise StandInError(404, "Bucket not found", "Bucket not found")
        return bucket

    def _bucket_route(self, method: str, rest: list[str], body: bytes):
        data = json.loads(body) if body else {}
        if method == "GET" and not rest:
            return self._json(list(self.buckets.values()))
        if method == "GET":
            return self._json(self._bucket(rest[0]))
        if method == "POST" and not rest:
            if data["id"] in self.buckets:
                raise StandInError(409, "Duplicate", "The resource already exists")
            self.buckets[data["id"]] = {
                "id": data["id"], "name": data.get("name") or data["id"], "owner": "", "public": bool(data.get("public")),
                "file_size_limit": data.get("file_size_limit"), "allowed_mime_types": data.get("allowed_mime_types"),
                "created_at": _now(), "updated_at": _now()}
            return self._json({"name": data["id"]})
        if method == "PUT" and rest:
            bucket = self._bucket(rest[0])
            for field in ("public", "file_size_limit", "allowed_mime_types"):
                if field in data:
                    bucket[field] = data[field]
            bucket["updated_at"] = _now()
            return self._json({"message": "Successfully updated"})
        if method == "DELETE" and rest:
            self._bucket(rest[0])
            if any(b == rest[0] for b, _ in self.objects):
                raise StandInError(409, "InvalidRequest", "The bucket you tried to delete is not empty")
            del self.buckets[rest[0]]
            return self._json({"message": "Successfully deleted"})
        raise StandInError(404, "not_found", "Route not found")

    # -- objects ----------------------------------------------------------------------------------------------

    def _upload(self, method: str, bucket_id: str, key: str, body: bytes, handler):
        bucket = self._bucket(bucket_id)
        mimetype, options = parse_options_header(handler.headers.get("Content-Type", ""))
        if mimetype == "multipart/form-data":
            _form, files = MultiPartParser().parse(io.BytesIO(body), options["boundary"].encode(), len(body))
            upload = files["file"]
            data, content_type = upload.read(), upload.mimetype
            for part in files.values():
                part.close()
        else:
            data, content_type = body, mimetype or "application/octet-stream"
        exists = (bucket_id, key) in self.objects
        if method == "POST" and exists and handler.headers.get("x-upsert") != "true":
            raise StandInError(409, "Duplicate", "The resource already exists")
        if method == "PUT" and not exists:
            raise StandInError(404, "not_found", "Object not found")
        limit = bucket.get("file_size_limit")
        if limit and len(data) > limit:
            raise StandInError(413, "Payload too large", "The object exceeded the maximum allowed size")
        allowed = bucket.get("allowed_mime_types")
        if allowed and not any(rule == content_type or (rule.endswith("/*") and content_type.startswith(rule[:-1]))
                               for rule in allowed):
            raise StandInError(415, "invalid_mime_type", f"mime type {content_type} is not supported")
        entry = self.objects.get((bucket_id, key)) or {"id": str(uuid.uuid4()), "created_at": _now()}
        entry.update(data=data, content_type=content_type, updated_at=_now(), mtime=time.time())
        self.objects[(bucket_id, key)] = entry
        return {"Key": f"{bucket_id}/{key}", "Id": entry["id"]}

    def _object(self, bucket_id: str, key: str) -> dict:
        self._bucket(bucket_id)
        entry = self.objects.get((bucket_id, key))
        if entry is None:
            raise StandInError(404, "not_found", "Object not found")
        return entry

    def _info(self, bucket_id: str, key: str) -> dict:
        entry = self._object(bucket_id, key)
        return {"id": entry["id"], "name": key, "bucket_id": bucket_id, "size": len(entry["data"]),
                "content_type": entry["content_type"], "created_at": entry["created_at"],
                "last_modified": entry["updated_at"], "metadata": {"size": len(entry["data"])}}

    def _download(self, bucket_id: str, key: str, query: dict, signed: bool = False):
        if signed:
            grant = self.tokens.get(query.get("token", ""))
            if grant is None or grant[:2] != (bucket_id, key):
                raise StandInError(400, "InvalidSignature", "Invalid signature")
            if grant[2] < time.time():
                raise StandInError(400, "InvalidJWT", "jwt expired")
        entry = self._object(bucket_id, key)
        headers = {"Content-Type": entry["content_type"], "ETag": f'"{entry["id"]}"'}
        if "download" in query:
            headers["Content-Disposition"] = f'attachment; filename="{query["download"] or key.rsplit("/", 1)[-1]}"'
        return 200, entry["data"], headers

    def _sign(self, bucket_id: str, key: str, data: dict) -> dict:
        self._object(bucket_id, key)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (bucket_id, key, time.time() + int(data.get("expiresIn", 60)))
        return {"signedURL": f"/object/sign/{bucket_id}/{key}?token={token}"}

    def _remove(self, bucket_id: str, keys: list[str]) -> list[dict]:
        self._bucket(bucket_id)
        removed = []
        for key in keys:
            entry = self.objects.pop((bucket_id, key), None)
            if entry is not None:
                removed.append({"name": key, "bucket_id": bucket_id, "id": entry["id"]})
        return removed

    def _list(self, bucket_id: str, options: dict) -> list[dict]:
        self._bucket(bucket_id)
        folder = (options.get("prefix") or "").strip("/")
        start = f"{folder}/" if folder else ""
        entries: dict[str, dict] = {}
        for (bucket, key), entry in self.objects.items():
            if bucket != bucket_id or not key.startswith(start):
                continue
            name, slash, _rest = key[len(start):].partition("/")
            if slash:
                entries.setdefault(name, {"name": name, "id": None, "updated_at": None, "created_at": None,
                                          "last_accessed_at": None, "metadata": None})
            else:
                entries[name] = {"name": name, "id": entry["id"], "updated_at": entry["updated_at"],
                                 "created_at": entry["created_at"], "last_accessed_at": entry["updated_at"],
                                 "metadata": {"size": len(entry["data"]), "mimetype": entry["content_type"]}}
        ordered = [entries[name] for name in sorted(entries)]
        offset, limit = int(options.get("offset", 0)), int(options.get("limit", 100))
        return ordered[offset:offset + limit]

    def _copy_or_move(self, action: str, data: dict) -> dict:
        bucket_id, source, dest = data["bucketId"], data["sourceKey"], data["destinationKey"]
        entry = self._object(bucket_id, source)
        if (bucket_id, dest) in self.objects:
            raise StandInError(409, "Duplicate", "The resource already exists")
        self.objects[(bucket_id, dest)] = {**entry, "id": str(uuid.uuid4())}
        if action == "move":
            del self.objects[(bucket_id, source)]
            return {"message": "Successfully moved"}
        return {"Key": f"{bucket_id}/{dest}"}


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""
