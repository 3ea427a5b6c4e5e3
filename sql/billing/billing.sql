-- name: increment_audit_usage
-- Counts audits for this month if they fit the plan's quota (one row: allowed, used, quota, month_year, resets_at).
SELECT * FROM increment_audit_usage(%(organization_id)s, %(count)s);

-- name: get_audit_usage
-- This month's audit count, the plan's quota (NULL: unlimited), the month and when it resets; counts nothing.
SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date AS month_year,
       coalesce((SELECT u.count FROM audit_usage u
                  WHERE u.organization_id = %(organization_id)s
                    AND u.month_year = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0) AS used,
       (organization_plan(%(organization_id)s)).monthly_audit_quota AS quota,
       (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' AS resets_at;

-- name: get_billing
-- The organization's plan, subscription and this month's usage; the free plan when it has no subscription.
SELECT p.id AS plan, p.name AS plan_name, p.monthly_audit_quota, p.requests_per_minute, p.storage_quota_bytes,
       p.seats,
       coalesce(s.status, 'active') AS status,
       s.provider, s.cancel_at_period_end,
       -- Without a payment provider the period is the calendar month (UTC), the same one quotas count in;
       -- a provider's webhooks keep its own periods in the row.
       CASE WHEN s.provider IS NOT NULL THEN s.current_period_start
            ELSE date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END AS current_period_start,
       CASE WHEN s.provider IS NOT NULL THEN s.current_period_end
            ELSE (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
       END AS current_period_end,
       coalesce((SELECT u.count FROM audit_usage u
                  WHERE u.organization_id = %(organization_id)s
                    AND u.month_year = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0) AS audits_used,
       (SELECT count(*) FROM organization_memberships m
         WHERE m.organization_id = %(organization_id)s AND m.ended_at IS NULL) AS seats_used
FROM plans p
LEFT JOIN subscriptions s ON s.organization_id = %(organization_id)s
WHERE p.id = coalesce(s.plan_id, 'free');

-- name: upsert_subscription
-- Puts the organization on `plan_id`, active; the current period is kept when it already has one.
INSERT INTO subscriptions AS s (organization_id, plan_id, status)
VALUES (%(organization_id)s, %(plan_id)s, 'active')
ON CONFLICT (organization_id) DO UPDATE
    SET plan_id = excluded.plan_id, status = 'active', cancel_at_period_end = false, updated_at = now()
RETURNING (xmax = 0) AS created;

-- name: get_subscription_provider
-- The payment provider managing the organization's subscription (NULL: none); no row without a subscription.
SELECT provider FROM subscriptions WHERE organization_id = %(organization_id)s;

-- name: list_plan_ids
-- Every plan a subscription may name.
SELECT id FROM plans ORDER BY sort_order;
