-- Monthly audit usage: counting and the quota check happen in one statement, so parallel requests from any number
-- of workers and servers can never push an organization past its plan's quota.

-- The plan in force for an organization: its subscription's plan while active or past due, otherwise free.
CREATE OR REPLACE FUNCTION organization_plan(p_organization_id uuid)
RETURNS plans
LANGUAGE sql STABLE
AS $$
    SELECT p.*
    FROM plans p
    WHERE p.id = coalesce(
        (SELECT s.plan_id FROM subscriptions s
          WHERE s.organization_id = p_organization_id AND s.status IN ('active', 'past_due')),
        'free')
$$;

-- Counts p_count audits for this month (UTC) if they fit in the quota; counts nothing otherwise.
-- Returns whether they were admitted, the month's usage after the call, the quota (NULL: unlimited), the month and
-- when the count resets.
CREATE OR REPLACE FUNCTION increment_audit_usage(p_organization_id uuid, p_count integer DEFAULT 1)
RETURNS TABLE (allowed boolean, used integer, quota integer, month_year date, resets_at timestamptz)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    v_quota integer;
    v_used  integer;
BEGIN
    IF p_count IS NULL OR p_count < 1 THEN
        RAISE EXCEPTION 'increment_audit_usage: p_count must be a positive integer, got %', p_count
            USING ERRCODE = '22023';
    END IF;
    v_quota := (organization_plan(p_organization_id)).monthly_audit_quota;

    -- The row lock taken by ON CONFLICT DO UPDATE serialises concurrent callers, and its WHERE is re-checked
    -- against the latest count, so the quota holds exactly.
    INSERT INTO audit_usage AS u (organization_id, month_year, count)
    SELECT p_organization_id, v_month, p_count
    WHERE v_quota IS NULL OR p_count <= v_quota
    ON CONFLICT ON CONSTRAINT audit_usage_pkey DO UPDATE
        SET count = u.count + excluded.count, updated_at = now()
        WHERE v_quota IS NULL OR u.count + excluded.count <= v_quota
    RETURNING u.count INTO v_used;

    allowed := v_used IS NOT NULL;
    IF NOT allowed THEN
        SELECT u.count INTO v_used FROM audit_usage u
         WHERE u.organization_id = p_organization_id AND u.month_year = v_month;
    END IF;
    used := coalesce(v_used, 0);
    quota := v_quota;
    month_year := v_month;
    resets_at := ((v_month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    RETURN NEXT;
END
$$;
