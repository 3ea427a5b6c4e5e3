"""The Clerk webhook: POST /api/auth/webhook, Clerk's identity changes delivered through Svix.

Each delivery is verified on its raw body before anything is parsed, then recorded by its svix-id and applied in
one transaction: a redelivery (Svix delivers at least once) finds its id and changes nothing, and a delivery that
fails leaves no trace, so Svix's retry applies it. Svix does not keep order either; the sync functions in
sql/functions/clerk_sync.sql make the outcome independent of it. Nothing here calls the network, so an answer takes
a few milliseconds, far inside Svix's 15-second timeout.
"""
from __future__ import annotations

import json
import logging

import psycopg
from flask import Blueprint, current_app, request
from svix.webhooks import Webhook, WebhookVerificationError

import clerk_events
from auth import public
from db import get_db
from errors import BadRequest, Conflict, PayloadTooLarge, ServiceUnavailable, Unauthorized, ValidationFailed
from queries import q

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/api")

# Clerk's largest events (a user with many addresses and metadata) are a few kilobytes; Clerk caps metadata at 8 KB.
MAX_BODY_BYTES = 1024 * 1024
SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


@bp.post("/auth/webhook")
@public
def clerk_webhook():
    """Verify, record and apply one Clerk event, exactly once. Answers 200 {"received": true, "duplicate", "handled",
    "applied"}: `handled` is false for an event type we do not sync (recorded and acknowledged), `applied` is false
    when the event was older than what is stored.

    Raises ServiceUnavailable (503) when CLERK_WEBHOOK_SECRET is not set; PayloadTooLarge (413) for a body over
    1 MB; Unauthorized (401) when the svix headers are missing, the signature is forged or the timestamp is more than
    five minutes away; BadRequest (400) for a signed body that is not an event; ValidationFailed (422) for a handled
    event without the data Clerk always sends; Conflict (409) when an organization's new slug is still held by
    another organization whose own update has not arrived yet (Svix retries, and by then it has).
    """
    body = _verified_body()
    try:
        event = clerk_events.parse_event(body)
        change = clerk_events.change_for(event)
    except clerk_events.MalformedEvent as exc:
        raise BadRequest(str(exc), code="malformed_event") from None
    except clerk_events.InvalidEvent as exc:
        raise ValidationFailed(str(exc), code="invalid_event") from None

    svix_id = request.headers["svix-id"]
    try:
        with get_db().transaction() as conn:
            recorded = conn.execute(q.webhooks.record_event, {
                "svix_id": svix_id, "event_type": event.type, "clerk_object_id": event.object_id,
                "handled": change is not None, "event_timestamp": event.timestamp,
                # Kept for ignored types only (see the migration): replayable later, no second copy of synced data.
                "payload": None if change is not None else json.dumps(event.raw),
            }).fetchone()
            if recorded is None:
                first = conn.execute(q.webhooks.get_event_by_svix_id, {"svix_id": svix_id}).fetchone()
                log.info("clerk webhook redelivered", extra={"svix_id": svix_id, "event_type": event.type})
                handled = first["handled"] if first is not None else change is not None  # None: pruned just now
                return {"received": True, "duplicate": True, "handled": handled, "applied": False}
            applied = False
            if change is not None:
                applied = conn.execute(getattr(q.webhooks, change.query), change.params).fetchone()["applied"]
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "organizations_slug_key":
            raise
        raise Conflict("The organization's slug is still held by another organization; retry later.",
                       code="slug_taken") from None
    log.info("clerk webhook", extra={"svix_id": svix_id, "event_type": event.type, "clerk_object_id": event.object_id,
                                     "handled": change is not None, "applied": applied})
    return {"received": True, "duplicate": False, "handled": change is not None, "applied": applied}


def _verified_body() -> bytes:
    """The raw body, once its Svix signature checks out. Raises ServiceUnavailable, PayloadTooLarge or
    Unauthorized (see clerk_webhook)."""
    secret = current_app.config.get("CLERK_WEBHOOK_SECRET")
    if not secret:
        # Never trust an unsigned post: without the secret nothing can be verified, so nothing is accepted.
        raise ServiceUnavailable("The Clerk webhook is not configured: set CLERK_WEBHOOK_SECRET.",
                                 code="webhook_not_configured")
    try:
        webhook = Webhook(secret)
    except Exception:  # whatever fails to decode the secret, it is the same misconfiguration
        log.error("CLERK_WEBHOOK_SECRET is not a valid whsec_ secret")
        raise ServiceUnavailable("The Clerk webhook is misconfigured.", code="webhook_not_configured") from None

    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"A webhook body is at most {MAX_BODY_BYTES} bytes.")
    # Read at most one byte past the limit: a chunked body declares no length up front.
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"A webhook body is at most {MAX_BODY_BYTES} bytes.")

    headers = {name: request.headers.get(name, "") for name in SVIX_HEADERS}
    try:
        webhook.verify(body, headers)
    # svix raises ValueError (not its own error) for a signature without a comma, bad base64 or a body that is not
    # UTF-8; all of them are a delivery we cannot trust.
    except (WebhookVerificationError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, WebhookVerificationError) else "Malformed signature headers"
        log.warning("clerk webhook refused: %s", reason)
        raise Unauthorized(f"The webhook signature could not be verified: {reason}.",
                           code="invalid_signature") from None
    return body
