"""Objects in Supabase Storage, through the official client (`supabase.create_client(url, key).storage`).

The service role key bypasses Supabase's own storage policies: isolation is ours (keys always start with the
caller's organization id, and metadata in our database decides who sees what).

Quirks of the client handled here:
- it streams an upload from a file path or a real file object, never from BytesIO: we hand it the staged file;
- it sends `text/plain` unless told otherwise: we always pass the sniffed content type;
- Storage answers most errors with HTTP 400 and the real status in the body's `statusCode`: `_translate` maps that
  status onto our errors (404, 409, 413, 415; credentials or outages become 503);
- `download()` holds the whole object in memory: we never call it (serving redirects, thumbnails are made from the
  staged upload).

Serving redirects (302) to a short-lived Supabase signed URL, or to the public URL for public buckets, instead of
streaming through this process: Supabase's CDN then does Range, ETag and caching, and a worker is not tied up for
the length of a video.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
from flask import Response, redirect

from errors import Conflict, NotFound, PayloadTooLarge, StorageUnavailable, UnsupportedMediaType
from storage.backends import BACKUP_SEGMENT, BucketSpec, Placement, StorageBackend, StoredObject

log = logging.getLogger(__name__)

LIST_PAGE = 1000
REMOVE_BATCH = 1000


@contextmanager
def _translate(action: str):
    """Turn the client's exceptions into our ApiErrors."""
    from storage3.exceptions import StorageApiError
    from storage3.utils import StorageException

    try:
        yield
    except StorageApiError as exc:
        status = _status(exc.status)
        if status == 404:
            raise NotFound("The object does not exist in storage.") from exc
        if status == 409:
            raise Conflict("The object already exists in storage.") from exc
        if status == 413:
            raise PayloadTooLarge("Supabase Storage refused the object as too large.") from exc
        if status == 415:
            raise UnsupportedMediaType("Supabase Storage refused the object's content type.") from exc
        log.error("supabase storage %s failed: %s %s", action, status, exc.code)
        raise StorageUnavailable() from exc
    except (httpx.HTTPError, StorageException) as exc:
        log.error("supabase storage %s failed: %s", action, type(exc).__name__)
        raise StorageUnavailable() from exc


def _modified(entry: dict) -> float:
    """An entry's last change as a Unix time (0 when the listing does not say)."""
    stamp = entry.get("updated_at") or entry.get("created_at")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


def _status(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 500


class _SupabasePlacement(Placement):
    def __init__(self, backend: SupabaseBackend, bucket: str, key: str, backup_key: str | None) -> None:
        self.backend, self.bucket, self.key, self.backup_key = backend, bucket, key, backup_key

    def commit(self) -> None:
        if self.backup_key is not None:
            self.backend.delete(self.bucket, [self.backup_key])

    def rollback(self) -> None:
        api = self.backend.client.from_(self.bucket)
        with _translate("rollback"):
            api.remove([self.key])
            if self.backup_key is not None:
                api.move(self.backup_key, self.key)


class SupabaseBackend(StorageBackend):
    name = "supabase"

    def __init__(self, work_dir, url: str, service_role_key: str, *, timeout: float = 60.0) -> None:
        super().__init__(work_dir)
        from supabase import ClientOptions, create_client

        # Our own HTTP client: the library's default one is built with a deprecated timeout argument and
        # HTTP/2, and we want long write and read timeouts for large objects.
        http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True)
        self.client = create_client(url, service_role_key, options=ClientOptions(httpx_client=http)).storage

    @staticmethod
    def backup_key(key: str, token: str) -> str:
        return f"{key.split('/', 1)[0]}/{BACKUP_SEGMENT}/{token}"

    def place(self, bucket, key, source, content_type, *, replace, token):
        api = self.client.from_(bucket)
        backup = None
        if replace:
            backup = self.backup_key(key, token)
            try:
                with _translate("backup"):
                    api.copy(key, backup)
            except NotFound:
                backup = None
        with _translate("upload"), open(source, "rb") as handle:
            # Upsert only when replacing: a write that may not replace gets 409 from Supabase rather than destroy
            # another write's bytes.
            api.upload(key, handle, {"content-type": content_type, "upsert": "true" if replace else "false",
                                     "cache-control": "3600"})
        return _SupabasePlacement(self, bucket, key, backup)

    def delete(self, bucket, keys):
        api = self.client.from_(bucket)
        for start in range(0, len(keys), REMOVE_BATCH):
            with _translate("remove"):
                api.remove(keys[start:start + REMOVE_BATCH])

    def stat(self, bucket, key):
        try:
            with _translate("info"):
                info = self.client.from_(bucket).info(key)
        except NotFound:
            return None
        size = info.get("size")
        if size is None:
            size = (info.get("metadata") or {}).get("size")
        return int(size or 0)

    def _walk(self, bucket: str, prefix: str) -> Iterator[dict]:
        api = self.client.from_(bucket)
        offset = 0
        while True:
            with _translate("list"):
                entries = api.list(prefix.rstrip("/") or None,
                                   {"limit": LIST_PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}})
            for entry in entries:
                name = f"{prefix}{entry['name']}"
                if entry.get("id") is None:  # a folder
                    yield from self._walk(bucket, f"{name}/")
                else:
                    yield {**entry, "key": name}
            if len(entries) < LIST_PAGE:
                return
            offset += LIST_PAGE

    def iter_objects(self, bucket):
        for entry in self._walk(bucket, ""):
            if f"/{BACKUP_SEGMENT}/" in f"/{entry['key']}":
                continue
            yield StoredObject(entry["key"], int((entry.get("metadata") or {}).get("size") or 0), _modified(entry))

    def cleanup_backups(self, buckets, live_tokens, older_than_seconds, dry_run):
        cutoff = time.time() - older_than_seconds
        doomed = []
        for bucket in buckets:
            stale = []
            for entry in self._walk(bucket, ""):
                parts = entry["key"].split("/")
                if len(parts) != 3 or parts[1] != BACKUP_SEGMENT or parts[2] in live_tokens:
                    continue
                if _modified(entry) >= cutoff:
                    continue
                stale.append(entry["key"])
            if stale and not dry_run:
                self.delete(bucket, stale)
            doomed += [f"{bucket}/{key}" for key in stale]
        return doomed

    def recover(self, bucket, key, token, *, object_exists):
        api = self.client.from_(bucket)
        backup = self.backup_key(key, token)
        if self.stat(bucket, backup) is not None:
            with _translate("restore"):
                api.remove([key])
                api.move(backup, key)
            return "restored"
        if not object_exists and self.stat(bucket, key) is not None:
            self.delete(bucket, [key])
            return "removed"
        return "nothing"

    def signed_url(self, bucket: str, key: str, ttl_seconds: int, download_name: str | None = None) -> str:
        """A Supabase signed URL for the object, valid `ttl_seconds`. Raises NotFound or StorageUnavailable."""
        options = {"download": download_name} if download_name else None
        with _translate("sign"):
            signed = self.client.from_(bucket).create_signed_url(key, max(1, int(ttl_seconds)), options)
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise NotFound("The object does not exist in storage.")
        return url

    def serve(self, bucket: BucketSpec, key, *, content_type, etag, last_modified, download_name, cache_control,
              ttl_seconds) -> Response:
        if bucket.public:
            options = {"download": download_name} if download_name else None
            target = self.client.from_(bucket.id).get_public_url(key, options)
        else:
            target = self.signed_url(bucket.id, key, ttl_seconds, download_name)
        response = redirect(target, code=302)
        # The redirect carries a short-lived credential for private objects: never cache it.
        response.headers["Cache-Control"] = cache_control if bucket.public else "private, no-store"
        response.headers["ETag"] = f'"{etag}"'
        return response

    def sync_buckets(self, buckets):
        done = []
        with _translate("list buckets"):
            existing = {b.id: b for b in self.client.list_buckets()}
        for bucket in buckets:
            options = {"public": bucket.public, "file_size_limit": bucket.file_size_limit,
                       "allowed_mime_types": bucket.allowed_mime_types}
            current = existing.get(bucket.id)
            with _translate("sync bucket"):
                if current is None:
                    self.client.create_bucket(bucket.id, options=options)
                    done.append((bucket.id, "created"))
                elif (current.public, current.file_size_limit, current.allowed_mime_types) != (
                        bucket.public, bucket.file_size_limit, bucket.allowed_mime_types):
                    self.client.update_bucket(bucket.id, options)
                    done.append((bucket.id, "updated"))
                else:
                    done.append((bucket.id, "unchanged"))
        return done

