-- Clerk → database sync: one function per kind of Clerk event, called by the webhook (blueprints/webhooks.py).
--
-- Svix delivers events in any order, so every function decides on its own whether the event is news:
--   * An update applies only when Clerk's updated_at is newer than the stored clerk_updated_at (or none is stored:
--     a row made by sign-in or from another event's embedded data is filled in by the first real event).
--   * A deletion is final and leaves a tombstone: the row stays, marked deleted (deleted_at; clerk_deleted for a
--     membership), and no later event about the object applies, whatever its updated_at. A deletion for an object
--     never seen inserts the tombstone, so a late create cannot resurrect it. A deleted user's or organization's
--     Clerk-sourced fields are cleared, so the tombstone is the same whether or not the object was seen before.
--   * An event that names a user or organization not synced yet creates it from the data the event carries.
-- Each function runs inside the webhook's transaction, which also records the svix-id; the row locks taken by
-- INSERT ... ON CONFLICT and UPDATE re-check the ordering condition against the latest committed row, so two events
-- about the same object racing each other end as if applied one after the other.
-- Every function returns true when it changed the row, false when the event was stale.

-- Creates the user through ensure_user (shared with sign-in: a new user gets a personal organization and a free
-- subscription) or, for a known one, updates the profile when updated_at is newer than the stored one.
CREATE OR REPLACE FUNCTION clerk_sync_user(
    p_clerk_id text,
    p_email text,
    p_first_name text,
    p_last_name text,
    p_image_url text,
    p_updated_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_user uuid;
    v_created boolean;
BEGIN
    SELECT e.user_id, e.created INTO v_user, v_created
      FROM ensure_user(p_clerk_id, p_email, p_first_name, p_last_name, p_image_url, p_updated_at) e;
    IF v_created THEN
        RETURN true;
    END IF;
    UPDATE users u
       SET email = p_email, first_name = p_first_name, last_name = p_last_name, image_url = p_image_url,
           clerk_updated_at = p_updated_at, updated_at = now()
     WHERE u.id = v_user AND u.deleted_at IS NULL
       AND (u.clerk_updated_at IS NULL OR u.clerk_updated_at < p_updated_at);
    RETURN FOUND;
END
$$;

-- Soft-deletes the user (inserting a tombstone for one never seen), clears their profile, ends every membership
-- and soft-deletes their personal organization, which nobody else can reach. A second deletion changes nothing.
CREATE OR REPLACE FUNCTION clerk_delete_user(p_clerk_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_user uuid;
    v_personal uuid;
BEGIN
    -- Through ensure_user, so a tombstone looks like a user created then deleted: with its personal organization.
    SELECT e.user_id INTO v_user FROM ensure_user(p_clerk_id) e;
    UPDATE users u
       SET email = NULL, first_name = NULL, last_name = NULL, image_url = NULL,
           clerk_updated_at = NULL, deleted_at = now(), updated_at = now()
     WHERE u.id = v_user AND u.deleted_at IS NULL
    RETURNING u.personal_organization_id INTO v_personal;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE organization_memberships m SET ended_at = now(), updated_at = now()
     WHERE m.user_id = v_user AND m.ended_at IS NULL;
    -- The default name: the one ensure_user derived from the user's name would keep it after the profile is gone.
    UPDATE organizations o SET name = 'Personal workspace', deleted_at = now(), updated_at = now()
     WHERE o.id = v_personal AND o.deleted_at IS NULL;
    RETURN true;
END
$$;

-- The id of a Clerk organization's row, inserting a placeholder when it is not known yet: named by its Clerk id,
-- which also serves as its slug (unique, and unlike any slug a person would choose). Every Clerk organization has a subscription: a free one
-- unless it has one already.
CREATE OR REPLACE FUNCTION clerk_ensure_organization(p_clerk_id text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_org uuid;
BEGIN
    INSERT INTO organizations (clerk_id, name, slug) VALUES (p_clerk_id, p_clerk_id, p_clerk_id)
    ON CONFLICT (clerk_id) DO NOTHING
    RETURNING id INTO v_org;
    IF v_org IS NULL THEN
        SELECT o.id INTO v_org FROM organizations o WHERE o.clerk_id = p_clerk_id;
    END IF;
    INSERT INTO subscriptions (organization_id, plan_id) VALUES (v_org, 'free')
    ON CONFLICT ON CONSTRAINT subscriptions_pkey DO NOTHING;
    RETURN v_org;
END
$$;

-- Creates or updates a Clerk organization from a snapshot of it (an organization event's data, or the copy a
-- membership event embeds), when the snapshot's updated_at is newer than the stored one. A slug still held by
-- another organization raises unique_violation on organizations_slug_key: only reordering can cause that (Clerk
-- keeps slugs unique), and the other organization's own event frees it, so the caller should have it retried.
CREATE OR REPLACE FUNCTION clerk_sync_organization(
    p_clerk_id text,
    p_name text,
    p_slug text,
    p_image_url text,
    p_created_by text,
    p_metadata jsonb,
    p_updated_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_org uuid := clerk_ensure_organization(p_clerk_id);
BEGIN
    UPDATE organizations o
       SET name = p_name, slug = coalesce(p_slug, p_clerk_id), image_url = p_image_url,
           -- Never changes in Clerk; a snapshot without it must not erase it.
           created_by_clerk_user_id = coalesce(p_created_by, o.created_by_clerk_user_id),
           metadata = coalesce(p_metadata, '{}'::jsonb), clerk_updated_at = p_updated_at, updated_at = now()
     WHERE o.id = v_org AND o.deleted_at IS NULL
       AND (o.clerk_updated_at IS NULL OR o.clerk_updated_at < p_updated_at);
    RETURN FOUND;
END
$$;

-- Soft-deletes a Clerk organization (inserting a tombstone for one never seen) and ends its memberships. Its slug
-- becomes its Clerk id: Clerk lets a new organization take the old slug at once.
CREATE OR REPLACE FUNCTION clerk_delete_organization(p_clerk_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_org uuid := clerk_ensure_organization(p_clerk_id);
BEGIN
    UPDATE organizations o
       SET name = p_clerk_id, slug = p_clerk_id, image_url = NULL, created_by_clerk_user_id = NULL,
           metadata = '{}'::jsonb, clerk_updated_at = NULL, deleted_at = now(), updated_at = now()
     WHERE o.id = v_org AND o.deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE organization_memberships m SET ended_at = now(), updated_at = now()
     WHERE m.organization_id = v_org AND m.ended_at IS NULL;
    RETURN true;
END
$$;

-- Applies a membership event (p_deleted for organizationMembership.deleted). The organization snapshot the event
-- embeds is synced first, and a user not seen yet is created from the event's public user data (with no
-- clerk_updated_at, so the user's own events fill the profile in whatever their order).
--
-- The row of an (organization, user) pair holds the membership created last in Clerk (by created_at, then id):
-- an event about an older membership of the pair is ignored, one about a newer membership replaces the row. Within
-- one membership the usual rules hold: newer updated_at wins, and a deletion is final (its data is the last word).
-- The membership is ended when it was deleted or when its user or organization is.
CREATE OR REPLACE FUNCTION clerk_sync_membership(
    p_clerk_id text,
    p_clerk_org_id text,
    p_clerk_user_id text,
    p_role text,
    p_created_at timestamptz,
    p_updated_at timestamptz,
    p_deleted boolean DEFAULT false,
    p_user_email text DEFAULT NULL,
    p_user_first_name text DEFAULT NULL,
    p_user_last_name text DEFAULT NULL,
    p_user_image_url text DEFAULT NULL,
    p_org_name text DEFAULT NULL,
    p_org_slug text DEFAULT NULL,
    p_org_image_url text DEFAULT NULL,
    p_org_created_by text DEFAULT NULL,
    p_org_metadata jsonb DEFAULT NULL,
    p_org_updated_at timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_org uuid;
    v_user uuid;
    v_org_gone boolean;
    v_user_gone boolean;
BEGIN
    IF p_org_name IS NOT NULL AND p_org_updated_at IS NOT NULL THEN
        PERFORM clerk_sync_organization(p_clerk_org_id, p_org_name, p_org_slug, p_org_image_url, p_org_created_by,
                                        p_org_metadata, p_org_updated_at);
    END IF;
    v_org := clerk_ensure_organization(p_clerk_org_id);
    SELECT e.user_id INTO v_user
      FROM ensure_user(p_clerk_user_id, p_user_email, p_user_first_name, p_user_last_name, p_user_image_url) e;

    -- Share locks until commit: a concurrent deletion of the user or organization waits for this membership to be
    -- written (then ends it), or this waits for the deletion (then sees it and writes the membership ended).
    SELECT o.deleted_at IS NOT NULL INTO v_org_gone FROM organizations o WHERE o.id = v_org FOR SHARE;
    SELECT u.deleted_at IS NOT NULL INTO v_user_gone FROM users u WHERE u.id = v_user FOR SHARE;

    INSERT INTO organization_memberships AS m
           (organization_id, user_id, clerk_id, role, clerk_created_at, clerk_updated_at, clerk_deleted, ended_at)
    VALUES (v_org, v_user, p_clerk_id, coalesce(p_role, 'member'), p_created_at, p_updated_at, p_deleted,
            CASE WHEN p_deleted OR v_org_gone OR v_user_gone THEN now() END)
    ON CONFLICT ON CONSTRAINT organization_memberships_pkey DO UPDATE
       SET clerk_id = EXCLUDED.clerk_id,
           role = coalesce(p_role, m.role),
           clerk_created_at = EXCLUDED.clerk_created_at,
           clerk_updated_at = EXCLUDED.clerk_updated_at,
           clerk_deleted = EXCLUDED.clerk_deleted,
           ended_at = CASE WHEN EXCLUDED.ended_at IS NULL THEN NULL ELSE coalesce(m.ended_at, EXCLUDED.ended_at) END,
           updated_at = now()
     WHERE CASE
               WHEN m.clerk_id IS NOT DISTINCT FROM EXCLUDED.clerk_id THEN
                   NOT m.clerk_deleted
                   AND (p_deleted OR m.clerk_updated_at IS NULL OR m.clerk_updated_at < EXCLUDED.clerk_updated_at)
               -- Another membership of the pair (or ownership of a row made at sign-in, with no Clerk id).
               ELSE m.clerk_created_at IS NULL
                    OR (m.clerk_created_at, m.clerk_id) < (EXCLUDED.clerk_created_at, EXCLUDED.clerk_id)
           END;
    RETURN FOUND;
END
$$;

-- Creates or updates an invitation (pending, accepted, revoked) when updated_at is newer than the stored one; the
-- organization is created as a placeholder when it is not known yet.
CREATE OR REPLACE FUNCTION clerk_sync_invitation(
    p_clerk_id text,
    p_clerk_org_id text,
    p_email_address text,
    p_role text,
    p_status text,
    p_updated_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_org uuid := clerk_ensure_organization(p_clerk_org_id);
BEGIN
    INSERT INTO invitations AS i (organization_id, clerk_id, email_address, role, status, clerk_updated_at)
    VALUES (v_org, p_clerk_id, p_email_address, p_role, p_status, p_updated_at)
    ON CONFLICT (organization_id, clerk_id) DO UPDATE
       SET email_address = EXCLUDED.email_address, role = EXCLUDED.role, status = EXCLUDED.status,
           clerk_updated_at = EXCLUDED.clerk_updated_at, updated_at = now()
     WHERE i.clerk_updated_at IS NULL OR i.clerk_updated_at < EXCLUDED.clerk_updated_at;
    RETURN FOUND;
END
$$;

-- Deletes the record of webhook deliveries received longer ago than p_older_than; returns how many. Svix stops
-- retrying after a few days, and a redelivery older than the record would be stale by updated_at anyway.
CREATE OR REPLACE FUNCTION prune_webhook_events(p_older_than interval DEFAULT '30 days')
RETURNS integer
LANGUAGE sql VOLATILE
AS $$
    WITH pruned AS (
        DELETE FROM webhook_events WHERE received_at < now() - p_older_than RETURNING 1
    )
    SELECT count(*)::integer FROM pruned
$$;
