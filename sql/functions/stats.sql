-- Organization statistics for dashboards and admin views.

-- One JSON document describing an organization: active members, policies, audits this month and all time,
-- findings by severity over all audits, when the last audit ran, and the bytes its stored objects take.
CREATE OR REPLACE FUNCTION get_org_stats(p_organization_id uuid)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'organization_id', p_organization_id,
        'members', (SELECT count(*) FROM organization_memberships m
                     WHERE m.organization_id = p_organization_id AND m.ended_at IS NULL),
        'policies', (SELECT count(*) FROM policies p WHERE p.organization_id = p_organization_id),
        'active_policies', (SELECT count(*) FROM policies p
                             WHERE p.organization_id = p_organization_id AND p.is_active),
        'audits_this_month', coalesce((SELECT u.count FROM audit_usage u
                                        WHERE u.organization_id = p_organization_id
                                          AND u.month_year = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0),
        'audits_all_time', coalesce((SELECT sum(u.count) FROM audit_usage u
                                      WHERE u.organization_id = p_organization_id), 0),
        'findings_by_severity', (
            SELECT jsonb_build_object(
                'critical', coalesce(sum((a.findings_summary ->> 'critical')::int), 0),
                'high',     coalesce(sum((a.findings_summary ->> 'high')::int), 0),
                'medium',   coalesce(sum((a.findings_summary ->> 'medium')::int), 0),
                'low',      coalesce(sum((a.findings_summary ->> 'low')::int), 0),
                'info',     coalesce(sum((a.findings_summary ->> 'info')::int), 0))
            FROM audit_logs a WHERE a.organization_id = p_organization_id),
        'last_audit_at', (SELECT max(a.created_at) FROM audit_logs a WHERE a.organization_id = p_organization_id),
        'storage_bytes', coalesce((SELECT sum(o.size_bytes) FROM storage_objects o
                                    WHERE o.organization_id = p_organization_id), 0)
    )
$$;
