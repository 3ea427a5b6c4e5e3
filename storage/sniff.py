"""Content types from the bytes themselves (magic numbers), never from what the client says.

`sniff(head)` looks at the first HEAD_BYTES of an upload. Binary formats are recognised by `filetype`; JSON by its
first significant character (and checked in full by `is_valid_json` when a bucket admits it only as JSON); text that
is valid UTF-8 without NULs is `text/plain`; anything else is `application/octet-stream`. SVG and HTML are
deliberately never recognised: served from our origin they could run scripts, so they count as plain text.
"""
from __future__ import annotations

import json
from pathlib import Path

import filetype

HEAD_BYTES = 8192
OCTET_STREAM = "application/octet-stream"

# filetype's names for fonts predate the font/* registrations (RFC 8081).
_ALIASES = {
    "application/font-woff": None,  # decided by the signature below: woff or woff2
    "application/font-sfnt": None,  # ttf or otf
}


def _font_type(head: bytes) -> str | None:
    if head.startswith(b"wOF2"):
        return "font/woff2"
    if head.startswith(b"wOFF"):
        return "font/woff"
    if head.startswith(b"OTTO"):
        return "font/otf"
    # A JSON document can start with "true" too; a TrueType header has binary table counts right after it.
    if head.startswith(b"\x00\x01\x00\x00") or (head.startswith(b"true") and b"\x00" in head[4:12]):
        return "font/ttf"
    return None


def sniff(head: bytes) -> str:
    """The content type of data that starts with `head` (pass at least HEAD_BYTES when there are that many)."""
    font = _font_type(head)
    if font:
        return font
    kind = filetype.guess(head)
    if kind is not None and kind.mime not in _ALIASES:
        return kind.mime
    if b"\x00" in head:
        return OCTET_STREAM
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the end of the head is still text.
        if exc.start < len(head) - 3:
            return OCTET_STREAM
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        return "application/json"
    return "text/plain"


def is_allowed(content_type: str, allowed: list[str] | None) -> bool:
    """Whether a bucket whose allowed types are `allowed` (None: any; 'image/*' wildcards) accepts `content_type`."""
    if allowed is None:
        return True
    major = content_type.split("/", 1)[0]
    return any(rule == content_type or (rule.endswith("/*") and rule[:-2] == major) for rule in allowed)


def is_valid_json(path: Path) -> bool:
    """Whether the whole file parses as JSON (UTF-8, optionally with a BOM). Reads it into memory: only called for
    buckets whose size limit keeps that small. JSON nested too deeply to parse counts as invalid."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            json.load(handle)
        return True
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
