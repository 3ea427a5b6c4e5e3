"""Keyset pagination: opaque cursors over (created_at, id), newest first, or over a path, in path order.

A cursor encodes the last row of a page; the next page starts strictly after it, so pages stay stable while rows
are added, and each page costs the same however deep it is.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

from marshmallow import Schema, ValidationError, fields, validate, validates


def _pack(key) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _unpack(cursor: str):
    """The key in `cursor`. Raises ValueError when it is not unpadded URL-safe base64 of JSON."""
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _not_a_cursor() -> ValidationError:
    return ValidationError({"cursor": ["Not a cursor from a previous page."]})


def encode_cursor(created_at: datetime, row_id) -> str:
    return _pack([created_at.isoformat(), str(row_id)])


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raises ValidationError (422) for a cursor this module did not make."""
    try:
        created_at, row_id = _unpack(cursor)
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise _not_a_cursor() from exc


def encode_path_cursor(path: str) -> str:
    return _pack({"after": path})


def decode_path_cursor(cursor: str) -> str:
    """The path a page in path order ends with. Raises ValidationError (422) for a cursor this module did not make."""
    try:
        after = _unpack(cursor)["after"]
    except (ValueError, TypeError, KeyError) as exc:
        raise _not_a_cursor() from exc
    if not isinstance(after, str):
        raise _not_a_cursor()
    return after


class PageSchema(Schema):
    """Query parameters every listing accepts."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None)

    @validates("cursor")
    def _valid_cursor(self, value, **_):
        if value is not None:
            decode_cursor(value)


def page_params(args: dict) -> dict:
    """SQL parameters for a page: the limit plus one (to know whether another page follows) and the cursor's key."""
    after_created_at, after_id = decode_cursor(args["cursor"]) if args.get("cursor") else (None, None)
    return {"limit": args["limit"] + 1, "after_created_at": after_created_at, "after_id": after_id}


def _created_at_cursor(row: dict) -> str:
    return encode_cursor(row["created_at"], row["id"])


def page(rows: list[dict], limit: int, cursor_of=_created_at_cursor) -> dict:
    """The page's items and the cursor of the next page (None on the last one). `rows` holds up to `limit` + 1
    rows; `cursor_of` makes the cursor from the last row of the page."""
    items = rows[:limit]
    more = len(rows) > limit
    return {"items": items, "next_cursor": cursor_of(items[-1]) if more else None}
