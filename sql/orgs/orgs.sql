-- name: get_user_by_id
-- One user's public profile.
SELECT id, clerk_id, email, first_name, last_name, image_url, personal_organization_id, created_at
FROM users
WHERE id = %(user_id)s;

-- name: list_memberships_of_user
-- Every organization the user currently belongs to, personal one first, then by name.
SELECT o.id AS organization_id, o.clerk_id, o.name, o.slug, o.image_url, o.is_personal, m.role, m.created_at AS joined_at
FROM organization_memberships m
JOIN organizations o ON o.id = m.organization_id
WHERE m.user_id = %(user_id)s AND m.ended_at IS NULL AND o.deleted_at IS NULL
ORDER BY o.is_personal DESC, o.name, o.id;

-- name: get_organization
-- The organization with its plan; no row if it does not exist or was deleted.
SELECT o.id, o.clerk_id, o.name, o.slug, o.image_url, o.is_personal, o.created_at,
       coalesce(s.plan_id, 'free') AS plan, coalesce(s.status, 'active') AS subscription_status
FROM organizations o
LEFT JOIN subscriptions s ON s.organization_id = o.id
WHERE o.id = %(organization_id)s AND o.deleted_at IS NULL;

-- name: list_members
-- Current members with their profiles and roles, oldest membership first.
SELECT u.id AS user_id, u.clerk_id, u.email, u.first_name, u.last_name, u.image_url, m.role, m.created_at AS joined_at
FROM organization_memberships m
JOIN users u ON u.id = m.user_id
WHERE m.organization_id = %(organization_id)s AND m.ended_at IS NULL AND u.deleted_at IS NULL
ORDER BY m.created_at, u.id;

-- name: list_pending_invitations
-- Invitations still waiting for an answer, newest first.
SELECT id, clerk_id, email_address, role, status, created_at
FROM invitations
WHERE organization_id = %(organization_id)s AND status = 'pending'
ORDER BY created_at DESC, id;
