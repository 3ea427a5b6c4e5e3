"""Plans and subscriptions: GET and POST /api/billing.

No payment provider is required: an admin picks the plan. The subscriptions table keeps a provider's status and
ids (a Stripe webhook would update them), which is the seam where billing plugs in.
"""
from __future__ import annotations

from flask import Blueprint, request
from marshmallow import Schema, ValidationError, fields

from auth import current_caller, require_role
from db import get_db
from errors import Conflict
from queries import q

bp = Blueprint("billing", __name__, url_prefix="/api")


class ChoosePlanSchema(Schema):
    plan = fields.String(required=True)


@bp.get("/billing")
def get_billing():
    """The organization's plan, subscription status, current period, this month's usage and the plan's limits."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        return _billing(conn, caller.organization_id)


@bp.post("/billing")
@require_role("admin")
def choose_plan():
    """Create or change the organization's subscription (admins only). Raises ValidationFailed (422) for an
    unknown plan, Conflict (409) when a payment provider manages the subscription."""
    caller = current_caller()
    body = ChoosePlanSchema().load(request.get_json())
    with get_db().tenant_transaction(caller.organization_id) as conn:
        plans = [row["id"] for row in conn.execute(q.billing.list_plan_ids)]
        if body["plan"] not in plans:
            raise ValidationError({"plan": [f"Unknown plan; choose one of: {', '.join(plans)}."]})
        provider = conn.execute(q.billing.get_subscription_provider,
                                {"organization_id": caller.organization_id}).fetchone()
        if provider is not None and provider["provider"] is not None:
            # Its status and plan follow the provider's webhooks; changing them here would be overwritten or,
            # worse, hand out a plan nobody pays for.
            raise Conflict(f"This subscription is managed by {provider['provider']}; change the plan there.",
                           code="managed_by_provider")
        created = conn.execute(q.billing.upsert_subscription,
                               {"organization_id": caller.organization_id, "plan_id": body["plan"]}).fetchone()["created"]
        billing = _billing(conn, caller.organization_id)
    return billing, 201 if created else 200


def _billing(conn, organization_id) -> dict:
    row = conn.execute(q.billing.get_billing, {"organization_id": organization_id}).fetchone()
    return {
        "plan": row["plan"],
        "plan_name": row["plan_name"],
        "status": row["status"],
        "provider": row["provider"],
        "cancel_at_period_end": bool(row["cancel_at_period_end"]),
        "current_period": {"start": row["current_period_start"].isoformat(),
                           "end": row["current_period_end"].isoformat()},
        "usage": {"audits": row["audits_used"], "seats": row["seats_used"]},
        "limits": {"audits_per_month": row["monthly_audit_quota"],
                   "requests_per_minute": row["requests_per_minute"],
                   "storage_bytes": row["storage_quota_bytes"], "seats": row["seats"]},
    }
