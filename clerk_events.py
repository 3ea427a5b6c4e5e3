"""Clerk webhook events: parsing and normalization into the values the sync functions take. No Flask here.

Clerk wraps every change in an envelope, {"data": {...}, "object": "event", "type": "user.created", "timestamp": ms,
"instance_id": "ins_..."}, and sends times as milliseconds since the epoch. This module turns an event into a
`Change`: which named query (sql/webhooks/clerk.sql) applies it, with which parameters. Roles are normalized as
session tokens' are, the primary email is picked out of the user's addresses, and data Clerk always sends is
required, so a malformed event is refused rather than half-applied.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from clerk_tokens import normalize_role

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
INVITATION_STATUSES = {"pending", "accepted", "revoked", "expired"}


class InvalidEvent(ValueError):
    """A handled event lacks data Clerk always sends; the message says which."""


class MalformedEvent(InvalidEvent):
    """The body is not JSON, or not an event envelope."""


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict
    object_id: str | None  # data.id: the user, organization, membership or invitation the event is about
    timestamp: datetime | None  # when Clerk emitted it
    raw: dict


@dataclass(frozen=True, slots=True)
class Change:
    query: str  # the name of the query in sql/webhooks/clerk.sql that applies it
    params: dict


def parse_event(body: bytes) -> Event:
    """The event in a (verified) request body. Raises MalformedEvent when it is not JSON or not an event envelope."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise MalformedEvent("The body is not valid JSON.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not raw["type"]:
        raise MalformedEvent("The body is not a Clerk event: it needs a 'type'.")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent("The event's 'data' must be an object.")
    object_id = data.get("id") if isinstance(data.get("id"), str) else None
    timestamp = raw.get("timestamp")
    return Event(raw["type"], data, object_id, from_ms(timestamp) if _is_ms(timestamp) else None, raw)


def change_for(event: Event) -> Change | None:
    """What applying `event` takes, or None for a type we do not sync. Raises InvalidEvent when a handled event
    lacks data Clerk always sends."""
    build = _BUILDERS.get(event.type)
    return build(event.type, event.data) if build else None


def is_handled(event_type: str) -> bool:
    return event_type in _BUILDERS


def from_ms(ms: int) -> datetime:
    """Clerk's milliseconds since the epoch as an aware UTC datetime, exactly (no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)


def primary_email(user: dict) -> str | None:
    """The address whose id is primary_email_address_id, or None (phone-only and username-only users have none)."""
    primary_id = user.get("primary_email_address_id")
    for address in user.get("email_addresses") or []:
        if isinstance(address, dict) and primary_id is not None and address.get("id") == primary_id:
            return _text(address.get("email_address"))
    return None


def _user(event_type: str, data: dict) -> Change:
    clerk_id = _required_str(data, "id")
    if event_type == "user.deleted":
        return Change("delete_user", {"clerk_id": clerk_id})
    return Change("sync_user", {
        "clerk_id": clerk_id,
        "email": primary_email(data),
        "first_name": _text(data.get("first_name")),
        "last_name": _text(data.get("last_name")),
        # profile_image_url is the deprecated name of the same picture.
        "image_url": _text(data.get("image_url")) or _text(data.get("profile_image_url")),
        "updated_at": _required_ms(data, "updated_at"),
    })


def _organization(event_type: str, data: dict) -> Change:
    clerk_id = _required_str(data, "id")
    if event_type == "organization.deleted":
        return Change("delete_organization", {"clerk_id": clerk_id})
    return Change("sync_organization", {"clerk_id": clerk_id, **_organization_snapshot(data, "data")})


def _organization_snapshot(data: dict, where: str) -> dict:
    return {
        "name": _required_str(data, "name", where),
        "slug": _text(data.get("slug")),  # Clerk can be set up without slugs
        "image_url": _text(data.get("image_url")) or _text(data.get("logo_url")),
        "created_by": _text(data.get("created_by")),
        "metadata": json.dumps(data.get("public_metadata") if isinstance(data.get("public_metadata"), dict) else {}),
        "updated_at": _required_ms(data, "updated_at", where),
    }


def _membership(event_type: str, data: dict) -> Change:
    organization = data.get("organization")
    user = data.get("public_user_data")
    if not isinstance(organization, dict) or not isinstance(user, dict):
        raise InvalidEvent("A membership event needs 'data.organization' and 'data.public_user_data' objects.")
    deleted = event_type == "organizationMembership.deleted"
    # The organization as the event saw it is a snapshot with its own updated_at: applied by the usual rule.
    has_snapshot = isinstance(organization.get("name"), str) and _is_ms(organization.get("updated_at"))
    snapshot = _organization_snapshot(organization, "data.organization") if has_snapshot else {
        "name": None, "slug": None, "image_url": None, "created_by": None, "metadata": None, "updated_at": None}
    identifier = _text(user.get("identifier"))
    role = data.get("role")
    if not deleted and not isinstance(role, str):
        raise InvalidEvent("A membership event needs 'data.role'.")
    return Change("sync_membership", {
        "clerk_id": _required_str(data, "id"),
        "clerk_org_id": _required_str(organization, "id", "data.organization"),
        "clerk_user_id": _required_str(user, "user_id", "data.public_user_data"),
        "role": normalize_role(role) if isinstance(role, str) else None,
        "created_at": _required_ms(data, "created_at"),
        # A deletion is final whatever its time, so only the other events need one.
        "updated_at": _required_ms(data, "updated_at") if not deleted or "updated_at" in data else None,
        "deleted": deleted,
        # The identifier is the email, or a phone number or username for users without one.
        "user_email": identifier if identifier and "@" in identifier else None,
        "user_first_name": _text(user.get("first_name")),
        "user_last_name": _text(user.get("last_name")),
        "user_image_url": _text(user.get("image_url")) or _text(user.get("profile_image_url")),
        **{f"org_{key}": value for key, value in snapshot.items()},
    })


def _invitation(event_type: str, data: dict) -> Change:
    status = data.get("status")
    if status not in INVITATION_STATUSES:
        # The event says what happened when the data does not.
        status = {"organizationInvitation.accepted": "accepted",
                  "organizationInvitation.revoked": "revoked"}.get(event_type, "pending")
    return Change("sync_invitation", {
        "clerk_id": _required_str(data, "id"),
        "clerk_org_id": _required_str(data, "organization_id"),
        "email_address": _required_str(data, "email_address"),
        "role": normalize_role(_required_str(data, "role")),
        "status": status,
        "updated_at": _required_ms(data, "updated_at"),
    })


_BUILDERS = {
    **dict.fromkeys(("user.created", "user.updated", "user.deleted"), _user),
    **dict.fromkeys(("organization.created", "organization.updated", "organization.deleted"), _organization),
    **dict.fromkeys(("organizationMembership.created", "organizationMembership.updated",
                     "organizationMembership.deleted"), _membership),
    **dict.fromkeys(("organizationInvitation.created", "organizationInvitation.accepted",
                     "organizationInvitation.revoked"), _invitation),
}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _is_ms(value) -> bool:
    # bool is an int subclass; True is not a time.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**14


def _required_str(data: dict, key: str, where: str = "data") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"'{where}.{key}' must be a non-empty string.")
    return value


def _required_ms(data: dict, key: str, where: str = "data") -> datetime:
    value = data.get(key)
    if not _is_ms(value):
        raise InvalidEvent(f"'{where}.{key}' must be a time in milliseconds since the epoch.")
    return from_ms(value)
