-- name: insert_policy
-- Stores a new policy of the organization and returns it.
INSERT INTO policies (organization_id, title, content, department, rules, explicit_rules, created_by)
VALUES (%(organization_id)s, %(title)s, %(content)s, %(department)s, %(rules)s, %(explicit_rules)s, %(created_by)s)
RETURNING id, title, content, department, rules, explicit_rules, is_active, created_by, created_at, updated_at;

-- name: insert_ingestion_log
-- Records one ingestion: its outcome, how many rules it yielded, its size, how long it took and who did it.
INSERT INTO ingestion_logs (organization_id, policy_id, user_id, request_id, status, rules_found, content_bytes,
                            duration_ms, error)
VALUES (%(organization_id)s, %(policy_id)s, %(user_id)s, %(request_id)s, %(status)s, %(rules_found)s,
        %(content_bytes)s, %(duration_ms)s, %(error)s);

-- name: get_policy
-- One policy of the organization, or no row.
SELECT id, title, content, department, rules, explicit_rules, is_active, created_by, created_at, updated_at
FROM policies
WHERE organization_id = %(organization_id)s AND id = %(id)s;

-- name: get_policy_for_update
-- One policy of the organization, locked until the transaction ends; no row if absent.
SELECT id, title, content, department, rules, explicit_rules, is_active, created_by, created_at, updated_at
FROM policies
WHERE organization_id = %(organization_id)s AND id = %(id)s
FOR UPDATE;

-- name: list_policies
-- A page of the organization's policies, newest first, optionally by department and active flag.
SELECT id, title, department, rules, is_active, created_by, created_at, updated_at
FROM policies
WHERE organization_id = %(organization_id)s
  AND (%(department)s::text IS NULL OR department = %(department)s)
  AND (%(is_active)s::boolean IS NULL OR is_active = %(is_active)s)
  AND (%(after_created_at)s::timestamptz IS NULL OR (created_at, id) < (%(after_created_at)s, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: update_policy
-- Replaces a policy's editable fields and returns it.
UPDATE policies
SET title = %(title)s, content = %(content)s, department = %(department)s, rules = %(rules)s,
    explicit_rules = %(explicit_rules)s, is_active = %(is_active)s, updated_at = now()
WHERE organization_id = %(organization_id)s AND id = %(id)s
RETURNING id, title, content, department, rules, explicit_rules, is_active, created_by, created_at, updated_at;

-- name: delete_policy
-- Deletes one policy of the organization; the row count says whether it existed.
DELETE FROM policies WHERE organization_id = %(organization_id)s AND id = %(id)s;

-- name: list_applicable_policies
-- The active policies that apply to an audit: those without a department, and those of the audit's department.
SELECT id, title, rules
FROM policies
WHERE organization_id = %(organization_id)s AND is_active
  AND (department IS NULL OR department = %(department)s)
ORDER BY created_at, id;
