-- name: resolve_session
-- The caller's user, active organization, role and whether either is gone; creates what a valid token implies.
SELECT * FROM resolve_session(%(clerk_user_id)s, %(email)s, %(clerk_org_id)s, %(org_slug)s, %(org_role)s);
