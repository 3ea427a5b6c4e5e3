-- name: insert_audit_log
-- Records one audit with its full results; returns its id and time.
INSERT INTO audit_logs (organization_id, user_id, request_id, context, formula_count, findings_count,
                        findings_summary, risk_score, results, duration_ms)
VALUES (%(organization_id)s, %(user_id)s, %(request_id)s, %(context)s, %(formula_count)s, %(findings_count)s,
        %(findings_summary)s, %(risk_score)s, %(results)s, %(duration_ms)s)
RETURNING id, created_at;

-- name: list_audits
-- A page of the organization's audits, newest first, optionally by user and time range; without results.
SELECT id, user_id, request_id, context, formula_count, findings_count, findings_summary, risk_score, duration_ms,
       created_at
FROM audit_logs
WHERE organization_id = %(organization_id)s
  AND (%(user_id)s::uuid IS NULL OR user_id = %(user_id)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(after_created_at)s::timestamptz IS NULL OR (created_at, id) < (%(after_created_at)s, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: get_audit
-- One audit of the organization with its full results, or no row.
SELECT id, user_id, request_id, context, formula_count, findings_count, findings_summary, risk_score, duration_ms,
       results, created_at
FROM audit_logs
WHERE organization_id = %(organization_id)s AND id = %(id)s;
