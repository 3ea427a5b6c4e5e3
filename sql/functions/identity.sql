-- Identity provisioning shared by the Clerk webhook and by sign-in: whichever sees a user first creates them, once.

-- A ULID (26 Crockford base32 characters, lower case): 48 bits of milliseconds then 80 random bits, so values sort
-- by creation time and never collide in practice.
CREATE OR REPLACE FUNCTION gen_ulid()
RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    alphabet constant text := '0123456789abcdefghjkmnpqrstvwxyz';
    millis bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
    bytes bytea := decode(md5(random()::text || clock_timestamp()::text), 'hex');
    result text := '';
    random_bits numeric := 0;
    i integer;
BEGIN
    FOR i IN REVERSE 9..0 LOOP
        result := result || substr(alphabet, ((millis >> (i * 5)) & 31)::int + 1, 1);
    END LOOP;
    FOR i IN 0..9 LOOP  -- 10 bytes = 80 bits
        random_bits := random_bits * 256 + get_byte(bytes, i);
    END LOOP;
    FOR i IN REVERSE 15..0 LOOP
        result := result || substr(alphabet, (floor(random_bits / (32::numeric ^ i)) % 32)::int + 1, 1);
    END LOOP;
    RETURN result;
END
$$;

-- Returns the user's id, creating the user when the Clerk id is new. A new user gets a personal organization
-- (slug from a ULID), admin membership of it, and a free subscription, in the same transaction. Profile fields are
-- only used for a new row: updates go through the webhook's ordering rules, not through here.
CREATE OR REPLACE FUNCTION ensure_user(
    p_clerk_id text,
    p_email text DEFAULT NULL,
    p_first_name text DEFAULT NULL,
    p_last_name text DEFAULT NULL,
    p_image_url text DEFAULT NULL,
    p_clerk_updated_at timestamptz DEFAULT NULL)
RETURNS TABLE (user_id uuid, created boolean)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_user uuid;
    v_org uuid;
BEGIN
    INSERT INTO users (clerk_id, email, first_name, last_name, image_url, clerk_updated_at)
    VALUES (p_clerk_id, p_email, p_first_name, p_last_name, p_image_url, p_clerk_updated_at)
    ON CONFLICT (clerk_id) DO NOTHING
    RETURNING id INTO v_user;

    IF v_user IS NULL THEN
        SELECT u.id INTO v_user FROM users u WHERE u.clerk_id = p_clerk_id;
        user_id := v_user;
        created := false;
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO organizations (name, slug, is_personal, created_by_clerk_user_id)
    VALUES (coalesce(nullif(btrim(concat_ws(' ', p_first_name, p_last_name)), '') || '''s workspace',
                     'Personal workspace'),
            gen_ulid(), true, p_clerk_id)
    RETURNING id INTO v_org;
    INSERT INTO organization_memberships (organization_id, user_id, role) VALUES (v_org, v_user, 'admin');
    INSERT INTO subscriptions (organization_id, plan_id) VALUES (v_org, 'free');
    UPDATE users SET personal_organization_id = v_org WHERE id = v_user;

    user_id := v_user;
    created := true;
    RETURN NEXT;
END
$$;

-- Its result columns have changed before; CREATE OR REPLACE cannot change them, so the old one goes first.
DROP FUNCTION IF EXISTS resolve_session(text, text, text, text, text);

-- Everything a request needs to know about its caller, in one round trip: the user (created from the session token
-- if Clerk's webhook has not arrived yet), the active organization (the token's, else the user's personal one) and
-- the caller's membership of it. An organization or membership named by a valid token but not yet synced is
-- created from the token, so a fresh sign-in works before the webhooks land; the webhooks then fill in the rest.
-- A membership that exists but has ended is reported as ended, never revived: that is how a removed member holding
-- a still-valid token is refused. The organization's request rate comes along for the rate limiter.
CREATE OR REPLACE FUNCTION resolve_session(
    p_clerk_user_id text,
    p_email text DEFAULT NULL,
    p_clerk_org_id text DEFAULT NULL,
    p_org_slug text DEFAULT NULL,
    p_org_role text DEFAULT NULL)
RETURNS TABLE (user_id uuid, user_deleted boolean, organization_id uuid, organization_deleted boolean,
               role text, membership_ended boolean, requests_per_minute integer)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_personal uuid;
BEGIN
    SELECT e.user_id INTO user_id FROM ensure_user(p_clerk_user_id, p_email) e;
    SELECT u.deleted_at IS NOT NULL, u.personal_organization_id INTO user_deleted, v_personal
      FROM users u WHERE u.id = user_id;
    IF user_deleted THEN
        -- A deleted account is refused, and its token creates nothing on the way.
        RETURN NEXT;
        RETURN;
    END IF;

    IF p_clerk_org_id IS NULL THEN
        organization_id := v_personal;
    ELSE
        SELECT o.id INTO organization_id FROM organizations o WHERE o.clerk_id = p_clerk_org_id;
        IF organization_id IS NULL THEN
            BEGIN
                INSERT INTO organizations (clerk_id, name, slug)
                VALUES (p_clerk_org_id, coalesce(p_org_slug, p_clerk_org_id), coalesce(p_org_slug, gen_ulid()))
                ON CONFLICT (clerk_id) DO NOTHING;
            EXCEPTION WHEN unique_violation THEN
                -- The slug still belongs to an organization whose rename or deletion has not reached us; Clerk's
                -- organization.updated event brings the real slug once it is free.
                INSERT INTO organizations (clerk_id, name, slug)
                VALUES (p_clerk_org_id, coalesce(p_org_slug, p_clerk_org_id), gen_ulid())
                ON CONFLICT (clerk_id) DO NOTHING;
            END;
            SELECT o.id INTO organization_id FROM organizations o WHERE o.clerk_id = p_clerk_org_id;
            INSERT INTO subscriptions (organization_id, plan_id) VALUES (organization_id, 'free')
            ON CONFLICT ON CONSTRAINT subscriptions_pkey DO NOTHING;
        END IF;
        INSERT INTO organization_memberships (organization_id, user_id, role)
        VALUES (organization_id, user_id, coalesce(p_org_role, 'member'))
        ON CONFLICT ON CONSTRAINT organization_memberships_pkey DO NOTHING;
    END IF;

    SELECT o.deleted_at IS NOT NULL INTO organization_deleted FROM organizations o WHERE o.id = organization_id;
    SELECT m.role, m.ended_at IS NOT NULL INTO role, membership_ended
      FROM organization_memberships m
     WHERE m.organization_id = resolve_session.organization_id AND m.user_id = resolve_session.user_id;
    membership_ended := coalesce(membership_ended, true);
    -- The token's role is Clerk's current word (session tokens live about a minute); the stored one can lag
    -- behind a webhook, and a demoted admin must not keep admin rights until it lands.
    role := coalesce(p_org_role, role);
    requests_per_minute := (organization_plan(organization_id)).requests_per_minute;
    RETURN NEXT;
END
$$;
