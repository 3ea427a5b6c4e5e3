"""Object paths: what a client may name, and the keys the backends store them under.

A client names an object by a path below its organization's folder (`proj_1/source/1700000000_intro.mp4`); the
backend key is always `{organization_id}/{path}`, with the organization taken from the session, never from the
request. A path that tries to leave its folder (`..`, an absolute path, a backslash, NUL or any control character)
is refused with 422. Anything else is sanitised into the character set Supabase Storage accepts for keys, so both
backends store the same name: accents are folded to ASCII and other unsafe characters become `_`.

The seed's naming conventions are built by the helpers at the end.
"""
from __future__ import annotations

import re
import unicodedata
from uuid import UUID

from marshmallow import ValidationError

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# Segments the server keeps for itself (backups of replaced objects in the Supabase backend).
RESERVED_PREFIX = ".sheetbrain"
# Supabase Storage's key rule (ASCII word characters and a few punctuation marks) without `*`, `:` and `?`, which
# break URLs or Windows file systems, and without `%`, which its client unquotes a second time.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.!'()&$@=;+, ]")
_SPACES = re.compile(r"\s+")


def _refuse(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _check_traversal(raw: str, field: str) -> None:
    """Raises ValidationError for anything that could name a place outside the organization's folder."""
    if any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise _refuse(field, "Control characters (including NUL) are not allowed in a path.")
    if "\\" in raw:
        raise _refuse(field, "Backslashes are not allowed in a path; separate folders with '/'.")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise _refuse(field, "The path must be relative to your organization's folder, not absolute.")
    if any(segment in (".", "..") for segment in raw.split("/")):
        raise _refuse(field, "'.' and '..' are not allowed as path segments.")


def _sanitize_segment(segment: str) -> str:
    folded = unicodedata.normalize("NFKD", segment)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    cleaned = _UNSAFE.sub("_", _SPACES.sub(" ", folded)).strip(" ")
    return cleaned


def clean_path(raw: str | None, field: str = "path") -> str:
    """The sanitised object path for `raw`.

    Raises ValidationError (422) for an empty path, a traversal attempt, an empty or reserved segment, a folder
    (trailing '/'), or a path longer than 1024 bytes or with a segment over 255.
    """
    if not raw:
        raise _refuse(field, "A path is required.")
    _check_traversal(raw, field)
    if raw.endswith("/"):
        raise _refuse(field, "The path names a folder; add a file name.")
    segments = [_sanitize_segment(s) for s in raw.split("/")]
    for segment in segments:
        if not segment or segment in (".", ".."):
            raise _refuse(field, "Empty path segments are not allowed.")
        if segment.startswith(RESERVED_PREFIX):
            raise _refuse(field, f"Path segments starting with {RESERVED_PREFIX!r} are reserved.")
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise _refuse(field, f"A path segment is limited to {MAX_SEGMENT_BYTES} bytes.")
    path = "/".join(segments)
    if len(path.encode()) > MAX_PATH_BYTES:
        raise _refuse(field, f"A path is limited to {MAX_PATH_BYTES} bytes.")
    return path


def clean_project_id(raw: str | None, field: str) -> str | None:
    """The sanitised project id (one path segment) named by `field`, or None when absent. Raises ValidationError
    (422) as clean_path does, and for more than one segment."""
    if not raw:
        return None
    cleaned = clean_path(raw, field)
    if "/" in cleaned:
        raise _refuse(field, "Must be a single path segment.")
    return cleaned


def clean_prefix(raw: str | None) -> str:
    """A listing prefix, sanitised like a path; empty means everything, and a trailing '/' is kept.

    Raises ValidationError (422) for a traversal attempt.
    """
    if not raw:
        return ""
    folder = raw.endswith("/")
    body = raw.rstrip("/")
    if not body:
        return ""
    _check_traversal(body, "prefix")
    segments = [_sanitize_segment(s) for s in body.split("/")]
    if any(not s for s in segments[:-1]):
        raise _refuse("prefix", "Empty path segments are not allowed.")
    return "/".join(segments) + ("/" if folder else "")


def object_key(organization_id: UUID | str, path: str) -> str:
    """The backend key of an organization's object: its folder, then the (already clean) path."""
    return f"{organization_id}/{path}"


def split_key(key: str) -> tuple[UUID, str]:
    """(organization id, path) of a backend key. Raises ValueError when the key is not an organization's."""
    folder, _, path = key.partition("/")
    organization_id = UUID(folder)
    if str(organization_id) != folder or not path:
        raise ValueError(f"not an organization key: {key!r}")
    return organization_id, path


def safe_filename(name: str, default: str = "file") -> str:
    """A file name for a path or a download: the last component of `name`, sanitised, at most 200 bytes with its
    extension kept; `default` when nothing usable is left."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) != "Cc")
    cleaned = _sanitize_segment(base).lstrip(".")
    if not cleaned:
        return default
    if len(cleaned.encode()) > 200:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        cleaned = (stem if ext else cleaned)[: 200 - len(ext) - 1].rstrip() + (f".{ext}" if ext else "")
    return cleaned


def _segment(value: str, field: str) -> str:
    cleaned = clean_path(str(value), field)
    if "/" in cleaned:
        raise _refuse(field, "Must be a single path segment.")
    return cleaned


# The seed's naming conventions, below the organization's folder.

def source_video_path(project_id: str, filename: str, timestamp_ms: int) -> str:
    """`{projectId}/source/{timestamp}_{filename}`."""
    return f"{_segment(project_id, 'project_id')}/source/{int(timestamp_ms)}_{safe_filename(filename, 'video.mp4')}"


def processed_clip_path(project_id: str, clip_id: str, variant: str) -> str:
    """`{projectId}/processed/{clipId}_{variant}.mp4`."""
    return (f"{_segment(project_id, 'project_id')}/processed/"
            f"{_segment(clip_id, 'clip_id')}_{_segment(variant, 'variant')}.mp4")


def thumbnail_path(project_id: str, clip_id: str) -> str:
    """`{projectId}/{clipId}_thumb.jpg`."""
    return f"{_segment(project_id, 'project_id')}/{_segment(clip_id, 'clip_id')}_thumb.jpg"


def brand_kit_path(kind: str, name: str) -> str:
    """`logos/{assetId}.png`, `fonts/{fontName}.ttf` or `templates/{templateId}.json`: `kind` is the folder."""
    if kind not in ("logos", "fonts", "templates"):
        raise _refuse("kind", "Must be one of logos, fonts, templates.")
    return f"{kind}/{safe_filename(name)}"
