"""Policies: POST /api/ingest and /api/policies.

A policy is prose plus rules. The engine reads rules from the prose deterministically and returns what it read with
the sentence each came from, so the author sees what the text will enforce; rules given explicitly win over rules
read from the text.
"""
from __future__ import annotations

import time

from flask import Blueprint, g, request
from marshmallow import Schema, ValidationError, fields, validate
from psycopg.types.json import Jsonb
from werkzeug.exceptions import HTTPException

import formula_audit
from auth import current_caller, require_role
from db import get_db
from errors import ApiError, NotFound, PayloadTooLarge, uuid_or_404
from pagination import PageSchema, page, page_params
from queries import q

bp = Blueprint("policies", __name__, url_prefix="/api")

MAX_CONTENT_BYTES = 200 * 1024


class PolicySchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    content = fields.String(required=True)
    department = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    rules = fields.Dict(keys=fields.String(), load_default=dict)
    is_active = fields.Boolean(load_default=True)


class PolicyPatchSchema(Schema):
    """Only what the request names changes, so no field has a default."""

    title = fields.String(validate=validate.Length(min=1, max=300))
    content = fields.String()
    department = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    rules = fields.Dict(keys=fields.String())
    is_active = fields.Boolean()


class PolicyListSchema(PageSchema):
    department = fields.String(load_default=None)
    active = fields.Boolean(load_default=None)


def _load(schema: Schema) -> dict:
    # A body over the limit is refused before it is read, so an oversized upload never reaches the JSON parser.
    request.max_content_length = MAX_CONTENT_BYTES * 2 + 64 * 1024
    body = schema.load(request.get_json())
    if "title" in body:
        body["title"] = body["title"].strip()
        if not body["title"]:
            raise ValidationError({"title": ["The title cannot be blank."]})
    if "content" in body and len(body["content"].encode()) > MAX_CONTENT_BYTES:
        raise PayloadTooLarge(f"Policy content is limited to {MAX_CONTENT_BYTES // 1024} KB.")
    return body


def effective_rules(content: str, explicit: dict) -> tuple[dict, list[dict]]:
    """The rules a policy enforces (read from `content`, overridden by `explicit`) and what was read from the text.

    Raises ValidationError (422) naming an unknown rule or a bad value among the explicit rules.
    """
    try:
        explicit = formula_audit.validate_rules(explicit)
    except formula_audit.PolicyError as exc:
        raise ValidationError({"rules": [str(exc)]}) from None
    extracted = formula_audit.rules_from_prose(content)
    return {**formula_audit.merge_rules(extracted), **explicit}, [rule.to_dict() for rule in extracted]


def _policy_json(row: dict, extracted: list[dict] | None = None) -> dict:
    """The policy as the API shows it, with the rules read from its content and the sentences they came from."""
    if extracted is None:
        extracted = [rule.to_dict() for rule in formula_audit.rules_from_prose(row["content"])]
    return {**row, "rules_from_content": extracted}


@bp.post("/ingest")
@require_role("admin")
def ingest():
    """Store a policy and log the ingestion. Raises 413 over 200 KB of content, 422 for a blank title or a bad rule;
    a refused ingestion stores no policy but is logged as failed, with the reason."""
    started = time.perf_counter()
    caller = current_caller()
    try:
        body = _load(PolicySchema())
        rules, extracted = effective_rules(body["content"], body["rules"])
    except (ValidationError, ApiError, HTTPException) as exc:
        _log_ingestion(caller, started, status="failed", error=_reason(exc), content_bytes=request.content_length or 0)
        raise
    with get_db().tenant_transaction(caller.organization_id) as conn:
        policy = conn.execute(q.policies.insert_policy, {
            "organization_id": caller.organization_id, "title": body["title"], "content": body["content"],
            "department": body["department"], "rules": Jsonb(rules), "explicit_rules": Jsonb(body["rules"]),
            "created_by": caller.user_id}).fetchone()
        _log_ingestion(caller, started, status="succeeded", policy_id=policy["id"], rules_found=len(rules),
                       content_bytes=len(body["content"].encode()), conn=conn)
    return _policy_json(policy, extracted), 201


def _log_ingestion(caller, started: float, *, status: str, content_bytes: int, policy_id=None, rules_found: int = 0,
                   error: str | None = None, conn=None) -> None:
    """Write one ingestion_logs row: in `conn`'s transaction (with the policy it records), or in its own."""
    params = {"organization_id": caller.organization_id, "policy_id": policy_id, "user_id": caller.user_id,
              "request_id": g.request_id, "status": status, "rules_found": rules_found, "content_bytes": content_bytes,
              "duration_ms": round((time.perf_counter() - started) * 1000), "error": error}
    if conn is not None:
        conn.execute(q.policies.insert_ingestion_log, params)
        return
    with get_db().tenant_transaction(caller.organization_id) as own:
        own.execute(q.policies.insert_ingestion_log, params)


def _reason(exc: Exception) -> str:
    """Why an ingestion was refused, as the log keeps it: the error code and the fields at fault."""
    if isinstance(exc, ValidationError):
        return f"validation_failed: {', '.join(sorted(exc.normalized_messages()))}"
    if isinstance(exc, ApiError):
        fields_at_fault = f": {', '.join(sorted(exc.details))}" if isinstance(exc.details, dict) else ""
        return f"{exc.code}{fields_at_fault}"
    return f"http_{exc.code}"


@bp.get("/policies")
def list_policies():
    """A page of policies, newest first; `department`, `active`, `limit` and `cursor` query parameters."""
    caller = current_caller()
    args = PolicyListSchema().load(request.args)
    with get_db().tenant_transaction(caller.organization_id) as conn:
        rows = conn.execute(q.policies.list_policies, {
            "organization_id": caller.organization_id, "department": args["department"],
            "is_active": args["active"], **page_params(args)}).fetchall()
    return page(rows, args["limit"])


@bp.get("/policies/<policy_id>")
def get_policy(policy_id: str):
    """One policy with its effective rules. Raises NotFound (404), also for another organization's policy."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        row = conn.execute(q.policies.get_policy, {"organization_id": caller.organization_id,
                                                   "id": uuid_or_404(policy_id, "policy")}).fetchone()
    if row is None:
        raise NotFound("The policy does not exist.")
    return _policy_json(row)


@bp.patch("/policies/<policy_id>")
@require_role("admin")
def update_policy(policy_id: str):
    """Change a policy's title, content, department, rules or active flag; the rules are read again from the
    content. Raises NotFound (404), PayloadTooLarge (413), ValidationFailed (422)."""
    caller = current_caller()
    changes = _load(PolicyPatchSchema())
    with get_db().tenant_transaction(caller.organization_id) as conn:
        key = {"organization_id": caller.organization_id, "id": uuid_or_404(policy_id, "policy")}
        current = conn.execute(q.policies.get_policy_for_update, key).fetchone()
        if current is None:
            raise NotFound("The policy does not exist.")
        merged = {**current, **changes}
        explicit = changes.get("rules", current["explicit_rules"])
        rules, extracted = effective_rules(merged["content"], explicit)
        row = conn.execute(q.policies.update_policy, {
            **key, "title": merged["title"], "content": merged["content"], "department": merged["department"],
            "rules": Jsonb(rules), "explicit_rules": Jsonb(explicit), "is_active": merged["is_active"]}).fetchone()
    return _policy_json(row, extracted)


@bp.delete("/policies/<policy_id>")
@require_role("admin")
def delete_policy(policy_id: str):
    """Delete a policy. Raises NotFound (404)."""
    caller = current_caller()
    with get_db().tenant_transaction(caller.organization_id) as conn:
        deleted = conn.execute(q.policies.delete_policy, {"organization_id": caller.organization_id,
                                                          "id": uuid_or_404(policy_id, "policy")}).rowcount
    if not deleted:
        raise NotFound("The policy does not exist.")
    return "", 204
