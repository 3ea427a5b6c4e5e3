"""Keyset pagination: opaque cursors over (created_at, id), newest first.

A cursor encodes the last row of a page; the next page starts strictly after it, so pages stay stable while rows
are added, and each page costs the same however deep it is.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

from marshmallow import Schema, ValidationError, fields, validate, validates


def encode_cursor(created_at: datetime, row_id) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raises ValidationError (422) for a cursor this module did not make."""
    try:
        created_at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise ValidationError({"cursor": ["Not a cursor from a previous page."]}) from exc


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


def page(rows: list[dict], limit: int) -> dict:
    """The page's items and the cursor of the next page (None on the last one)."""
    items = rows[:limit]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor(items[-1]["created_at"], items[-1]["id"]) if more else None}
