-- name: record_event
-- Records a delivery by its svix-id; returns the id when it is new, no row when it was recorded before (a
-- redelivery). A concurrent delivery of the same id waits here until the first one commits or rolls back.
INSERT INTO webhook_events (svix_id, event_type, clerk_object_id, handled, payload, event_timestamp)
VALUES (%(svix_id)s, %(event_type)s, %(clerk_object_id)s, %(handled)s, %(payload)s::jsonb, %(event_timestamp)s)
ON CONFLICT (svix_id) DO NOTHING
RETURNING svix_id;

-- name: get_event_by_svix_id
-- The recorded delivery with this svix-id, or no row.
SELECT svix_id, event_type, handled, received_at FROM webhook_events WHERE svix_id = %(svix_id)s;

-- name: sync_user
-- user.created / user.updated: creates the user (with a personal organization) or updates a newer profile.
SELECT clerk_sync_user(%(clerk_id)s, %(email)s, %(first_name)s, %(last_name)s, %(image_url)s,
                       %(updated_at)s) AS applied;

-- name: delete_user
-- user.deleted: soft-deletes the user (a tombstone if never seen) and ends their memberships.
SELECT clerk_delete_user(%(clerk_id)s) AS applied;

-- name: sync_organization
-- organization.created / organization.updated: creates the organization or applies a newer snapshot.
SELECT clerk_sync_organization(%(clerk_id)s, %(name)s, %(slug)s, %(image_url)s, %(created_by)s,
                               %(metadata)s::jsonb, %(updated_at)s) AS applied;

-- name: delete_organization
-- organization.deleted: soft-deletes the organization (a tombstone if never seen) and ends its memberships.
SELECT clerk_delete_organization(%(clerk_id)s) AS applied;

-- name: sync_membership
-- organizationMembership.*: applies the membership, creating its user and organization from the event if needed.
SELECT clerk_sync_membership(
    p_clerk_id => %(clerk_id)s, p_clerk_org_id => %(clerk_org_id)s, p_clerk_user_id => %(clerk_user_id)s,
    p_role => %(role)s, p_created_at => %(created_at)s, p_updated_at => %(updated_at)s, p_deleted => %(deleted)s,
    p_user_email => %(user_email)s, p_user_first_name => %(user_first_name)s,
    p_user_last_name => %(user_last_name)s, p_user_image_url => %(user_image_url)s,
    p_org_name => %(org_name)s, p_org_slug => %(org_slug)s, p_org_image_url => %(org_image_url)s,
    p_org_created_by => %(org_created_by)s, p_org_metadata => %(org_metadata)s::jsonb,
    p_org_updated_at => %(org_updated_at)s) AS applied;

-- name: sync_invitation
-- organizationInvitation.*: creates or updates the invitation when the event is newer than what is stored.
SELECT clerk_sync_invitation(%(clerk_id)s, %(clerk_org_id)s, %(email_address)s, %(role)s, %(status)s,
                             %(updated_at)s) AS applied;
