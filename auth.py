"""Who is calling, and for which organization: authentication for every /api/ route.

Every endpoint under /api/ requires a Clerk session unless its view is marked `@public` (the webhook, public storage
links). The token comes from `Authorization: Bearer <jwt>` or the `__session` cookie. In development only, with
AUTH_DEV_HEADERS=1, the seed's `x-user-id` / `x-user-org` headers stand in for a token.

The caller's user, active organization and role are resolved in the database in one call (resolve_session), and the
membership is what decides: a removed member with a still-valid token is refused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import wraps
from uuid import UUID

from flask import Flask, current_app, g, request

from clerk_tokens import InvalidToken, SessionTokenVerifier, normalize_role
from db import get_db
from errors import Forbidden, Unauthorized
from queries import q

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: UUID
    clerk_user_id: str
    organization_id: UUID
    role: str
    via: str  # "token" or "dev-headers"
    requests_per_minute: int  # the organization's plan rate, for the rate limiter

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def public(view):
    """Mark a view as reachable without authentication."""
    view.is_public = True
    return view


def current_caller() -> Caller:
    """The authenticated caller of this request. Raises Unauthorized outside an authenticated request."""
    caller = g.get("caller")
    if caller is None:
        raise Unauthorized()
    return caller


def require_role(*roles: str):
    """Allow the view only to callers whose role in the active organization is one of `roles`; others get 403."""
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            caller = current_caller()
            if caller.role not in roles:
                raise Forbidden(f"This action needs the {' or '.join(roles)} role in the organization.",
                                code="role_required")
            return view(*args, **kwargs)
        return wrapper
    return decorator


def init_auth(app: Flask) -> None:
    config = app.config
    if config["CLERK_JWT_KEY"] and not config["CLERK_ISSUER"]:
        # Every token's iss is checked; without the issuer that check would silently be skipped, and a server that
        # refuses to start is louder than one that checks less than it claims.
        raise RuntimeError("CLERK_JWT_KEY is set but CLERK_ISSUER is not: set both (see README, Authentication)")
    if config["CLERK_JWT_KEY"] or config["CLERK_ISSUER"]:
        app.extensions["clerk_verifier"] = SessionTokenVerifier(
            jwt_key=config["CLERK_JWT_KEY"], issuer=config["CLERK_ISSUER"], jwks_url=config["CLERK_JWKS_URL"],
            authorized_parties=config["CLERK_AUTHORIZED_PARTIES"], leeway=config["CLERK_CLOCK_SKEW_SECONDS"],
            jwks_refresh_cooldown=config["CLERK_JWKS_REFRESH_COOLDOWN"])
    if config["AUTH_DEV_HEADERS"]:
        log.warning("AUTH_DEV_HEADERS is on: x-user-id / x-user-org headers are trusted WITHOUT any verification. "
                    "Never enable this on a server reachable by anyone else.")
    app.before_request(_authenticate)


def _authenticate() -> None:
    if not request.path.startswith("/api/") or request.endpoint is None:
        return
    view = current_app.view_functions[request.endpoint]
    if getattr(view, "is_public", False):
        return
    g.caller = _resolve(*_identify())


def _identify() -> tuple[str, str | None, str | None, str | None, str | None, str]:
    """(clerk user id, email, clerk org id, org slug, org role, via) from the token or the dev headers."""
    token = _bearer_token() or request.cookies.get("__session")
    if token:
        verifier: SessionTokenVerifier | None = current_app.extensions.get("clerk_verifier")
        if verifier is None:
            raise Unauthorized("Session tokens cannot be verified: CLERK_JWT_KEY or CLERK_ISSUER is not set.",
                               code="auth_not_configured")
        try:
            claims = verifier.verify(token)
        except InvalidToken as exc:
            raise Unauthorized(str(exc), code="invalid_token") from None
        return claims.user_id, claims.email, claims.org_id, claims.org_slug, claims.org_role, "token"
    dev_user = request.headers.get("x-user-id")
    if dev_user and current_app.config["AUTH_DEV_HEADERS"]:
        dev_org = request.headers.get("x-user-org") or None
        # In development the named organization is created on first use, with the caller as its admin.
        return dev_user, None, dev_org, None, "admin" if dev_org else None, "dev-headers"
    raise Unauthorized("Sign in first: send a Clerk session token as 'Authorization: Bearer <token>'.")


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _resolve(clerk_user_id, email, clerk_org_id, org_slug, org_role, via) -> Caller:
    conn = get_db().request_connection()
    # One autocommit statement: atomic on its own, and one round trip.
    row = conn.execute(q.auth.resolve_session, {
        "clerk_user_id": clerk_user_id, "email": email, "clerk_org_id": clerk_org_id,
        "org_slug": org_slug, "org_role": normalize_role(org_role)}).fetchone()
    if row["user_deleted"]:
        raise Unauthorized("This account has been deleted.", code="account_deleted")
    if row["organization_id"] is None or row["organization_deleted"]:
        raise Forbidden("This organization no longer exists.", code="organization_deleted")
    if row["membership_ended"]:
        raise Forbidden("You are not a member of this organization.", code="not_a_member")
    return Caller(row["user_id"], clerk_user_id, row["organization_id"], row["role"], via,
                  row["requests_per_minute"])
