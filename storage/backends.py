"""Where the bytes live: one interface, two implementations (local disk here, Supabase in supabase_backend.py).

Both backends keep the same work directory on local disk (STORAGE_LOCAL_DIR): `staging/` for request bodies being
received, `uploads/` for tus uploads in progress, and (local backend) `buckets/` for the objects themselves and
`backups/` for objects being replaced. Staging and objects share one file system, so a finished upload becomes an
object by an atomic rename. Several servers need STORAGE_LOCAL_DIR on a shared volume for the local backend, and for
tus uploads to continue on any server with either backend.

A write is `place()` then, once the metadata is committed, `Placement.commit()`; if the metadata cannot be
committed, `Placement.rollback()` puts back what was there before. See storage/__init__.py for the whole order.
"""
from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from flask import Response, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from errors import ApiError, Conflict, NotFound, StorageUnavailable

log = logging.getLogger(__name__)

BACKUP_SEGMENT = ".sheetbrain-backup"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    modified: float  # Unix time


@dataclass(frozen=True, slots=True)
class BucketSpec:
    id: str
    public: bool
    file_size_limit: int
    allowed_mime_types: list[str] | None


class Placement(ABC):
    """An object just placed at its key, whose metadata is not committed yet."""

    @abstractmethod
    def commit(self) -> None:
        """The metadata is committed: forget the previous version."""

    @abstractmethod
    def rollback(self) -> None:
        """The metadata was not committed: put back the previous version, or remove the new object (only the bytes
        this placement put there)."""


class StorageBackend(ABC):
    name: str

    def __init__(self, work_dir: str | os.PathLike) -> None:
        self.work_dir = Path(work_dir)
        self.staging_dir = self.work_dir / "staging"
        self.uploads_dir = self.work_dir / "uploads"
        for directory in (self.staging_dir, self.uploads_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def upload_part_path(self, upload_id) -> Path:
        """Where the bytes of tus upload `upload_id` accumulate."""
        return self.uploads_dir / str(upload_id)

    @abstractmethod
    def place(self, bucket: str, key: str, source: Path, content_type: str, *, replace: bool,
              token: str) -> Placement:
        """Move (or upload) the file `source` to `key`. With `replace`, the current object is kept aside under
        `token` until the placement is committed or rolled back; without, an object already at `key` is never
        overwritten. Raises Conflict (409) for that, StorageUnavailable when the backend fails."""

    @abstractmethod
    def delete(self, bucket: str, keys: list[str]) -> None:
        """Delete objects; keys that do not exist are ignored. Raises StorageUnavailable when the backend fails."""

    @abstractmethod
    def stat(self, bucket: str, key: str) -> int | None:
        """The object's size, or None when there is no object at `key`."""

    @abstractmethod
    def iter_objects(self, bucket: str) -> Iterator[StoredObject]:
        """Every object of the bucket (backups of objects being replaced excluded)."""

    @abstractmethod
    def cleanup_backups(self, buckets: list[str], live_tokens: set[str], older_than_seconds: float,
                        dry_run: bool) -> list[str]:
        """Previous versions kept aside by writes that are over (their token is not a live upload) and older than
        the cut-off; deleted unless `dry_run`. Returns their names."""

    @abstractmethod
    def recover(self, bucket: str, key: str, token: str, *, object_exists: bool) -> str:
        """Undo an abandoned write whose placement may or may not have happened: restore the version kept under
        `token` if there is one; otherwise, when no object row exists, remove whatever was placed at `key`.
        Returns what it did ("restored", "removed" or "nothing")."""

    @abstractmethod
    def serve(self, bucket: BucketSpec, key: str, *, content_type: str, etag: str, last_modified,
              download_name: str | None, cache_control: str, ttl_seconds: int) -> Response:
        """The HTTP response that delivers the object: the bytes (with Range and conditional requests) or a
        redirect to where they are. Raises NotFound when the bytes are missing."""

    @abstractmethod
    def sync_buckets(self, buckets: list[BucketSpec]) -> list[tuple[str, str]]:
        """Create or update the backend's buckets to match; returns (bucket id, what was done)."""

    def cleanup_work_dir(self, older_than_seconds: float, live_uploads: set[str], dry_run: bool) -> list[Path]:
        """Staging files and tus parts older than the cut-off that no live upload owns; deleted unless `dry_run`."""
        cutoff = time.time() - older_than_seconds
        doomed = []
        for directory in (self.staging_dir, self.uploads_dir):
            for entry in directory.iterdir():
                if entry.name in live_uploads or not entry.is_file():
                    continue
                if _older_than(entry, cutoff):
                    doomed.append(entry)
                    if not dry_run:
                        entry.unlink(missing_ok=True)
        return doomed


def _older_than(entry: Path, cutoff: float) -> bool:
    """Whether `entry` last changed before the Unix time `cutoff`; False when it is gone, as a file can be between
    listing its directory and looking at it (its request finished, or its write was committed)."""
    try:
        return entry.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


@contextmanager
def disk_errors(action: str):
    """A failing disk (full, read-only, permissions) is an outage to the client (503), not a bug (500)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        log.error("local storage could not %s: %s", action, exc)
        raise StorageUnavailable() from None


class _LocalPlacement(Placement):
    def __init__(self, final: Path, backup: Path | None) -> None:
        self.final = final
        self.backup = backup
        # Which file we placed: a rollback removes it and nothing else.
        placed = final.stat()
        self.placed = (placed.st_dev, placed.st_ino)

    def commit(self) -> None:
        if self.backup is not None:
            self.backup.unlink(missing_ok=True)

    def rollback(self) -> None:
        if self.backup is not None:
            os.replace(self.backup, self.final)
            return
        try:
            current = self.final.stat()
        except FileNotFoundError:
            return
        if (current.st_dev, current.st_ino) == self.placed:
            self.final.unlink(missing_ok=True)


def _link_new(source: Path, final: Path) -> None:
    """Move `source` to `final`, which must not exist. Raises Conflict (409) when it does: unlike a rename, a hard
    link never replaces a file, so a write that may not replace cannot destroy another write's bytes."""
    try:
        os.link(source, final)
    except FileExistsError:
        raise Conflict("The object already exists in storage.", code="object_exists") from None
    source.unlink()


class LocalBackend(StorageBackend):
    """Objects as files under STORAGE_LOCAL_DIR/buckets/{bucket}/{organization_id}/{path}."""

    name = "local"

    def __init__(self, work_dir: str | os.PathLike) -> None:
        super().__init__(work_dir)
        self.objects_dir = self.work_dir / "buckets"
        self.backups_dir = self.work_dir / "backups"
        for directory in (self.objects_dir, self.backups_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def path_of(self, bucket: str, key: str) -> Path:
        """The file of an object. Raises ValueError for a key that would leave the bucket's directory (keys are
        clean already; this is the second wall)."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
            raise ValueError(f"unsafe object key {key!r}")
        if "/" in bucket or bucket in (".", ".."):
            raise ValueError(f"unsafe bucket {bucket!r}")
        return self.objects_dir.joinpath(bucket, *parts)

    def place(self, bucket, key, source, content_type, *, replace, token):
        final = self.path_of(bucket, key)
        with disk_errors("place an object"):
            final.parent.mkdir(parents=True, exist_ok=True)
            if not replace:
                _link_new(source, final)
                return _LocalPlacement(final, None)
            # A hard link keeps the current version at no cost; the rename below then swaps in the new one.
            backup = self.backups_dir / token
            try:
                os.link(final, backup)
            except FileNotFoundError:
                backup = None
            os.replace(source, final)
            return _LocalPlacement(final, backup)

    def delete(self, bucket, keys):
        with disk_errors("delete objects"):
            for key in keys:
                self.path_of(bucket, key).unlink(missing_ok=True)

    def stat(self, bucket, key):
        try:
            return self.path_of(bucket, key).stat().st_size
        except FileNotFoundError:
            return None

    def iter_objects(self, bucket):
        root = self.objects_dir / bucket
        for directory, _dirs, files in os.walk(root):
            for name in files:
                path = Path(directory, name)
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                yield StoredObject(path.relative_to(root).as_posix(), info.st_size, info.st_mtime)

    def cleanup_backups(self, buckets, live_tokens, older_than_seconds, dry_run):
        cutoff = time.time() - older_than_seconds
        doomed = [entry for entry in self.backups_dir.iterdir()
                  if entry.name not in live_tokens and _older_than(entry, cutoff)]
        if not dry_run:
            for entry in doomed:
                entry.unlink(missing_ok=True)
        return [entry.name for entry in doomed]

    def recover(self, bucket, key, token, *, object_exists):
        backup = self.backups_dir / token
        if backup.exists():
            os.replace(backup, self.path_of(bucket, key))
            return "restored"
        if not object_exists and self.stat(bucket, key) is not None:
            self.delete(bucket, [key])
            return "removed"
        return "nothing"

    def serve(self, bucket, key, *, content_type, etag, last_modified, download_name, cache_control, ttl_seconds):
        try:
            with disk_errors("read an object"):
                handle = open(self.path_of(bucket.id, key), "rb")
        except FileNotFoundError:
            log.warning("object bytes missing for %s/%s; run flask storage reconcile", bucket.id, key)
            raise NotFound("The object's bytes are missing.") from None
        try:
            # Sized from the open file, not the path, so a concurrent replace cannot mismatch length and bytes.
            size = os.fstat(handle.fileno()).st_size
            response = Response(wrap_file(request.environ, handle), mimetype=content_type, direct_passthrough=True)
            response.content_length = size
            response.set_etag(etag)
            response.last_modified = last_modified
            response.headers["Content-Disposition"] = content_disposition(
                download_name or key.rsplit("/", 1)[-1], attachment=download_name is not None)
            response.headers["Cache-Control"] = cache_control
            return response.make_conditional(request.environ, accept_ranges=True, complete_length=size)
        except RequestedRangeNotSatisfiable:
            handle.close()
            raise ApiError("The requested range is outside the object.", code="range_not_satisfiable", status=416,
                           headers={"Content-Range": f"bytes */{size}"}) from None
        except BaseException:
            handle.close()
            raise

    def sync_buckets(self, buckets):
        done = []
        for bucket in buckets:
            directory = self.objects_dir / bucket.id
            existed = directory.exists()
            directory.mkdir(parents=True, exist_ok=True)
            done.append((bucket.id, "exists" if existed else "created"))
        return done


def content_disposition(filename: str, *, attachment: bool) -> str:
    """A Content-Disposition value for `filename` (already sanitised): an ASCII fallback plus the RFC 5987 form."""
    disposition = "attachment" if attachment else "inline"
    ascii_name = filename.encode("ascii", "ignore").decode().replace("\\", "_").replace('"', "_") or "file"
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def make_backend(config) -> StorageBackend:
    """The backend STORAGE_BACKEND names ("local" or "supabase"). Raises ValueError for an unknown name or missing
    Supabase settings."""
    kind = (config.get("STORAGE_BACKEND") or "local").lower()
    work_dir = config["STORAGE_LOCAL_DIR"]
    if kind == "local":
        return LocalBackend(work_dir)
    if kind == "supabase":
        from storage.supabase_backend import SupabaseBackend

        if not config.get("SUPABASE_URL") or not config.get("SUPABASE_SERVICE_ROLE_KEY"):
            raise ValueError("STORAGE_BACKEND=supabase needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
        return SupabaseBackend(work_dir, config["SUPABASE_URL"], config["SUPABASE_SERVICE_ROLE_KEY"])
    raise ValueError(f"STORAGE_BACKEND must be 'local' or 'supabase', not {kind!r}")
