"""Clerk webhook events shaped as Clerk sends them, signed with Svix's own signer.

The data builders follow the examples in Clerk's webhook documentation (every field Clerk sends, not only the ones we
read), so the parser meets what production will. `signed()` signs with `svix.webhooks.Webhook.sign`: the tests never
compute an HMAC themselves.
"""
from __future__ import annotations

import base64
import json
import secrets
import string
from datetime import datetime, timedelta, timezone

from svix.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"sheetbrain-tests-clerk-webhooks").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else-s-webhook-secret!!").decode()
INSTANCE_ID = "ins_2cQ9XxTrxkQ4gTyM5mZbBcWqkhL"
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z in Clerk's milliseconds
_BASE62 = string.digits + string.ascii_letters


def clerk_id(prefix: str) -> str:
    """A fresh id shaped like Clerk's: `user_2abc...` (27 base62 characters after the prefix)."""
    return f"{prefix}_2" + "".join(secrets.choice(_BASE62) for _ in range(26))


def msg_id() -> str:
    return clerk_id("msg")


def user_data(user_id: str, *, email: str | None = "ada@example.com", first_name: str | None = "Ada",
              last_name: str | None = "Lovelace", created_at: int = T0, updated_at: int | None = None,
              image_url: str | None = None, secondary_email: str | None = None, phone: str | None = None) -> dict:
    """A user as user.created / user.updated carry it. `email=None` makes a phone-only user."""
    addresses = []
    primary_id = None
    if email is not None:
        primary_id = f"idn_{user_id[5:]}e1"
        addresses.append(_email_address(primary_id, email))
    if secondary_email is not None:
        addresses.insert(0, _email_address(f"idn_{user_id[5:]}e2", secondary_email))  # primary is not always first
    phones = []
    if phone is not None:
        phones.append({"id": f"idn_{user_id[5:]}p1", "object": "phone_number", "phone_number": phone,
                       "reserved_for_second_factor": False, "default_second_factor": False, "linked_to": [],
                       "verification": {"status": "verified", "strategy": "phone_code", "attempts": 1,
                                        "expire_at": created_at + 600_000}})
    return {
        "backup_code_enabled": False,
        "banned": False,
        "create_organization_enabled": True,
        "created_at": created_at,
        "delete_self_enabled": True,
        "email_addresses": addresses,
        "external_accounts": [],
        "external_id": None,
        "first_name": first_name,
        "has_image": image_url is not None,
        "id": user_id,
        "image_url": image_url or "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
        "last_active_at": created_at,
        "last_name": last_name,
        "last_sign_in_at": None,
        "legal_accepted_at": None,
        "locked": False,
        "lockout_expires_in_seconds": None,
        "object": "user",
        "passkeys": [],
        "password_enabled": email is not None,
        "phone_numbers": phones,
        "primary_email_address_id": primary_id,
        "primary_phone_number_id": phones[0]["id"] if phones else None,
        "primary_web3_wallet_id": None,
        "private_metadata": {},
        "profile_image_url": "https://www.gravatar.com/avatar?d=mp",
        "public_metadata": {},
        "saml_accounts": [],
        "totp_enabled": False,
        "two_factor_enabled": False,
        "unsafe_metadata": {},
        "updated_at": updated_at if updated_at is not None else created_at,
        "username": None,
        "verification_attempts_remaining": 100,
        "web3_wallets": [],
    }


def _email_address(address_id: str, email: str) -> dict:
    return {"email_address": email, "id": address_id, "linked_to": [], "object": "email_address",
            "reserved": False, "matches_sso_connection": False,
            "verification": {"attempts": None, "expire_at": None, "status": "verified", "strategy": "email_code"}}


def deleted_user_data(user_id: str) -> dict:
    """user.deleted carries only the id."""
    return {"deleted": True, "id": user_id, "object": "user"}


def organization_data(org_id: str, *, name: str = "Acme Inc", slug: str | None = "acme-inc",
                      created_by: str | None = None, created_at: int = T0, updated_at: int | None = None,
                      image_url: str | None = None, public_metadata: dict | None = None) -> dict:
    """An organization as organization.created / .updated carry it (and as membership events embed it)."""
    return {
        "admin_delete_enabled": True,
        "created_at": created_at,
        "created_by": created_by,
        "has_image": image_url is not None,
        "id": org_id,
        "image_url": image_url or "https://img.clerk.com/eyJ0eXBlIjoib3JnIn0",
        "logo_url": None,
        "max_allowed_memberships": 5,
        "members_count": 1,
        "name": name,
        "object": "organization",
        "pending_invitations_count": 0,
        "private_metadata": {},
        "public_metadata": public_metadata if public_metadata is not None else {},
        "slug": slug,
        "updated_at": updated_at if updated_at is not None else created_at,
    }


def deleted_organization_data(org_id: str) -> dict:
    return {"deleted": True, "id": org_id, "object": "organization"}


def membership_data(membership_id: str, *, organization: dict, user: dict, role: str = "org:member",
                    created_at: int = T0, updated_at: int | None = None) -> dict:
    """A membership as organizationMembership.* carry it: the organization embedded whole, the user as
    public_user_data (whose identifier is the primary email, else the phone number)."""
    email = next((a["email_address"] for a in user["email_addresses"] if a["id"] == user["primary_email_address_id"]),
                 None)
    phone = user["phone_numbers"][0]["phone_number"] if user["phone_numbers"] else None
    return {
        "created_at": created_at,
        "id": membership_id,
        "object": "organization_membership",
        "organization": organization,
        "permissions": ["org:sys_memberships:read", "org:sys_profile:manage"] if role.endswith("admin") else [
            "org:sys_memberships:read"],
        "private_metadata": {},
        "public_metadata": {},
        "public_user_data": {
            "first_name": user["first_name"],
            "has_image": user["has_image"],
            "identifier": email or phone,
            "image_url": user["image_url"],
            "last_name": user["last_name"],
            "profile_image_url": user["profile_image_url"],
            "user_id": user["id"],
        },
        "role": role,
        "role_name": "Admin" if role.endswith("admin") else "Member",
        "updated_at": updated_at if updated_at is not None else created_at,
    }


def invitation_data(invitation_id: str, *, organization_id: str, email: str = "grace@example.com",
                    role: str = "org:member", status: str = "pending", created_at: int = T0,
                    updated_at: int | None = None) -> dict:
    return {
        "created_at": created_at,
        "email_address": email,
        "expires_at": created_at + 30 * 86_400_000,
        "id": invitation_id,
        "object": "organization_invitation",
        "organization_id": organization_id,
        "private_metadata": {},
        "public_metadata": {},
        "role": role,
        "role_name": "Admin" if role.endswith("admin") else "Member",
        "status": status,
        "updated_at": updated_at if updated_at is not None else created_at,
        "url": None,
    }


def event(event_type: str, data: dict, *, timestamp: int | None = None) -> dict:
    """The envelope Clerk wraps every change in."""
    return {
        "data": data,
        "event_attributes": {"http_request": {"client_ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (tests)"}},
        "instance_id": INSTANCE_ID,
        "object": "event",
        "timestamp": timestamp if timestamp is not None else data.get("updated_at", T0),
        "type": event_type,
    }


def signed(payload: dict | bytes, *, message_id: str | None = None, secret: str = SECRET,
           at: datetime | None = None, also_signed_with: tuple[str, ...] = ()) -> tuple[bytes, dict]:
    """(body, headers) as Svix delivers `payload`: the svix-id, -timestamp and -signature headers, the signature
    made by Svix's own signer with `secret` (and `also_signed_with`, as during a secret rotation)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    message_id = message_id or msg_id()
    at = at or datetime.now(timezone.utc)
    signatures = [Webhook(s).sign(message_id, at, body.decode()) for s in (*also_signed_with, secret)]
    return body, {"svix-id": message_id, "svix-timestamp": str(int(at.timestamp())),
                  "svix-signature": " ".join(signatures), "Content-Type": "application/json"}


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=minutes)
