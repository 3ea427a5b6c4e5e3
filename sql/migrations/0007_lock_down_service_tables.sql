-- 0007 row-level security on every table in public, tenant-owned or not.
--
-- On Supabase, tables created in the public schema are granted to the API roles (anon, authenticated), so a table
-- without row-level security is readable and writable with the public anon key. Enabling RLS with no policy for a
-- role denies it everything; the owner (the app's connecting role) is not subject to RLS, and sheetbrain_tenant
-- only reads these tables through their partitioned parents or the policies below.
ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable_by_tenants ON plans FOR SELECT TO sheetbrain_tenant USING (true);

ALTER TABLE rate_limit_buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs_archive ENABLE ROW LEVEL SECURITY;

-- Partitions are tables of their own: queried directly, they do not inherit the parent's policies.
DO $$
DECLARE
    v_partition regclass;
BEGIN
    FOR v_partition IN
        SELECT inhrelid::regclass FROM pg_inherits
         WHERE inhparent IN ('audit_logs'::regclass, 'audit_logs_archive'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_partition);
    END LOOP;
END
$$;
