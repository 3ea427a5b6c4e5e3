"""The caller and their organization: /api/me and /api/orgs/current/..."""
from __future__ import annotations

from flask import Blueprint

from auth import current_caller, require_role
from db import get_db
from errors import NotFound
from queries import q

bp = Blueprint("orgs", __name__, url_prefix="/api")


@bp.get("/me")
def me():
    """The signed-in user, every organization they belong to, and the active one with their role in it."""
    caller = current_caller()
    # The caller's own memberships span organizations, so this reads as the owner role, filtered by user.
    with get_db().transaction() as conn:
        user = conn.execute(q.orgs.get_user_by_id, {"user_id": caller.user_id}).fetchone()
        memberships = conn.execute(q.orgs.list_memberships_of_user, {"user_id": caller.user_id}).fetchall()
    return {
        "user": user,
        "memberships": memberships,
        "active_organization_id": caller.organization_id,
        "role": caller.role,
    }


@bp.get("/orgs/current")
def current_organization():
    """The active organization, its plan and the caller's role in it. Raises NotFound if it is gone."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        organization = conn.execute(q.orgs.get_organization, {"organization_id": caller.organization_id}).fetchone()
    if organization is None:
        raise NotFound("The organization does not exist.")
    return {**organization, "role": caller.role}


@bp.get("/orgs/current/members")
def members():
    """Current members of the active organization, oldest first."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        rows = conn.execute(q.orgs.list_members, {"organization_id": caller.organization_id}).fetchall()
    return {"members": rows}


@bp.get("/orgs/current/invitations")
@require_role("admin")
def invitations():
    """Pending invitations of the active organization (admins only: they carry people's email addresses)."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        rows = conn.execute(q.orgs.list_pending_invitations, {"organization_id": caller.organization_id}).fetchall()
    return {"invitations": rows}
