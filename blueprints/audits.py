"""Formula audits: POST /api/audit, POST /api/audit/workbook, GET /api/audits[/<id>].

An audit runs the engine over the formulas with the organization's applicable policies, then, in one transaction,
counts it against the monthly quota and writes its audit_logs row: if the row cannot be written the audit is not
counted, and an audit over quota writes nothing. The engine runs before that transaction, so no lock is held while
formulas are analysed.
"""
from __future__ import annotations

import time

from flask import Blueprint, g, request
from marshmallow import Schema, ValidationError, fields, validate, validates
from psycopg.types.json import Jsonb

import formula_audit
from api_request import refuse_unstorable
from auth import current_caller
from db import get_db
from errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, uuid_or_404
from pagination import PageSchema, page, page_params
from queries import q
from quotas import charge_audits, require_audits_left

bp = Blueprint("audits", __name__, url_prefix="/api")

MAX_FORMULAS = 5000
MAX_FORMULA_CHARS = 8192  # Excel's own limit on a formula's length
MAX_WORKBOOK_BYTES = 20 * 1024 * 1024
SEVERITIES = ("critical", "high", "medium", "low", "info")


class ContextSchema(Schema):
    sheetName = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))  # noqa: N815
    range = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    department = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    platform = fields.String(load_default="excel", validate=validate.OneOf(["excel", "sheets"]))


class FormulaField(fields.Field):
    """A formula string, or {"cell": "C5", "formula": "=..."}."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            formula = value
        elif isinstance(value, dict) and set(value) <= {"cell", "formula"} and isinstance(value.get("formula"), str) \
                and isinstance(value.get("cell"), (str, type(None))):
            formula = value["formula"]
        else:
            raise ValidationError('Each formula is a string or {"cell": "C5", "formula": "=..."}.')
        if len(formula) > MAX_FORMULA_CHARS:
            raise ValidationError(f"A formula is limited to {MAX_FORMULA_CHARS} characters (Excel's limit).")
        return value


class AuditSchema(Schema):
    formulas = fields.List(FormulaField(), required=True)
    context = fields.Nested(ContextSchema, load_default=lambda: ContextSchema().load({}))

    @validates("formulas")
    def _not_empty(self, value, **_):
        if not value:
            raise ValidationError("Give at least one formula.")


class WorkbookFormSchema(Schema):
    department = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    platform = fields.String(load_default="excel", validate=validate.OneOf(["excel", "sheets"]))


class AuditListSchema(PageSchema):
    user_id = fields.UUID(load_default=None)
    since = fields.AwareDateTime(load_default=None, default_timezone=None)
    until = fields.AwareDateTime(load_default=None, default_timezone=None)


def _applicable_policies(caller, department: str | None) -> list[formula_audit.Policy]:
    """The organization's active policies for an audit in `department` (its own short transaction).

    Raises PaymentRequired (402) first when the month's quota is already used up: no point running the engine.
    """
    with get_db().tenant_transaction(caller.organization_id) as conn:
        require_audits_left(conn, caller.organization_id, 1)
        rows = conn.execute(q.policies.list_applicable_policies,
                            {"organization_id": caller.organization_id, "department": department}).fetchall()
    # String ids: findings carry them into the JSON response and the audit_logs row.
    return [formula_audit.Policy(str(row["id"]), row["title"], row["rules"]) for row in rows]


def _summary(results: list[formula_audit.FormulaResult]) -> dict:
    by_severity = dict.fromkeys(SEVERITIES, 0)
    for result in results:
        for finding in result.findings:
            by_severity[finding.severity.label] += 1
    return {"formulas": len(results), "findings": sum(by_severity.values()), "by_severity": by_severity,
            # The audit is as risky as its riskiest formula; a sum would grow with the sheet's size alone.
            "risk_score": max((result.risk_score for result in results), default=0)}


def _result_json(index: int, result: formula_audit.FormulaResult, with_sheet: bool) -> dict:
    item = {"index": index, "cell": result.cell, "formula": result.formula,
            "findings": [{key: value for key, value in finding.to_dict().items() if key != "rule"}
                         for finding in result.findings]}
    if with_sheet:
        item["sheet"] = result.sheet
    return item


def _record(caller, context: dict, results: list[formula_audit.FormulaResult], started: float,
            with_sheet: bool) -> dict:
    """Charge the quota and write the audit log in one transaction; returns the API response.

    Raises PaymentRequired (402) over quota, and then nothing is written.
    """
    summary = _summary(results)
    items = [_result_json(index, result, with_sheet) for index, result in enumerate(results)]
    with get_db().tenant_transaction(caller.organization_id) as conn:
        usage = charge_audits(conn, caller.organization_id, 1)
        row = conn.execute(q.audits.insert_audit_log, {
            "organization_id": caller.organization_id, "user_id": caller.user_id, "request_id": g.request_id,
            "context": Jsonb(context), "formula_count": summary["formulas"], "findings_count": summary["findings"],
            "findings_summary": Jsonb(summary["by_severity"]), "risk_score": summary["risk_score"],
            "results": Jsonb(items), "duration_ms": round((time.perf_counter() - started) * 1000)}).fetchone()
    return {"audit_id": row["id"], "created_at": row["created_at"], "summary": summary, "results": items,
            "usage": usage.to_dict()}


@bp.post("/audit")
def audit_formulas():
    """Audit up to 5,000 formulas. Raises 413 past that, 422 for a formula over 8,192 characters or bad input,
    402 over the monthly quota; nothing is counted or logged then."""
    started = time.perf_counter()
    caller = current_caller()
    request.max_content_length = MAX_FORMULAS * (MAX_FORMULA_CHARS + 64) + 64 * 1024
    payload = request.get_json()
    if isinstance(payload, dict) and isinstance(payload.get("formulas"), list) and len(payload["formulas"]) > MAX_FORMULAS:
        raise PayloadTooLarge(f"An audit is limited to {MAX_FORMULAS} formulas; this one has "
                              f"{len(payload['formulas'])}.")
    body = AuditSchema().load(payload)
    context = body["context"]
    policies = _applicable_policies(caller, context["department"])
    try:
        results = formula_audit.audit_formulas(body["formulas"], platform=context["platform"], policies=policies,
                                               sheet=context["sheetName"])
    except formula_audit.InputError as exc:
        raise ValidationFailed(details={"formulas": [str(exc)]}) from None
    return _record(caller, context, results, started, with_sheet=False), 201


@bp.post("/audit/workbook")
def audit_workbook():
    """Audit every formula of an uploaded .xlsx (multipart field `file`). Raises 415 for a file that is not a
    workbook, 413 past 20 MB or 5,000 formulas, 402 over quota."""
    started = time.perf_counter()
    caller = current_caller()
    request.max_content_length = MAX_WORKBOOK_BYTES + 64 * 1024
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed(details={"file": ["Upload the workbook as the multipart field 'file'."]})
    refuse_unstorable([upload.filename or "", *request.form.values()], "form")
    form = WorkbookFormSchema().load({k: v for k, v in request.form.items()})
    context = {"fileName": upload.filename, "department": form["department"], "platform": form["platform"]}
    policies = _applicable_policies(caller, form["department"])
    try:
        results = formula_audit.audit_workbook(upload.stream, platform=form["platform"], policies=policies,
                                               max_formulas=MAX_FORMULAS)
    except formula_audit.TooManyFormulas:
        raise PayloadTooLarge(f"An audit is limited to {MAX_FORMULAS} formulas; this workbook has more.") from None
    except formula_audit.WorkbookError as exc:
        raise UnsupportedMediaType(f"The file is not a readable .xlsx workbook: {exc}", code="not_a_workbook") from None
    return _record(caller, context, results, started, with_sheet=True), 201


@bp.get("/audits")
def list_audits():
    """A page of audits, newest first; `user_id`, `since`, `until` (ISO 8601 with offset), `limit`, `cursor`."""
    caller = current_caller()
    args = AuditListSchema().load(request.args)
    with get_db().tenant_transaction(caller.organization_id) as conn:
        rows = conn.execute(q.audits.list_audits, {
            "organization_id": caller.organization_id, "user_id": args["user_id"], "since": args["since"],
            "until": args["until"], **page_params(args)}).fetchall()
    return page(rows, args["limit"])


@bp.get("/audits/<audit_id>")
def get_audit(audit_id: str):
    """One audit with its full results. Raises NotFound (404), also for another organization's audit."""
    caller = current_caller()
    key = uuid_or_404(audit_id, "audit")
    with get_db().tenant_transaction(caller.organization_id) as conn:
        row = conn.execute(q.audits.get_audit, {"organization_id": caller.organization_id, "id": key}).fetchone()
    if row is None:
        raise NotFound("The audit does not exist.")
    return row
