-- 0003 row-level security: the second wall between tenants.
--
-- Requests run their tenant work as the role sheetbrain_tenant, switched to per transaction with
-- set_config('role', ..., true) next to set_config('app.organization_id', ..., true). That role owns nothing and
-- cannot bypass RLS, so even a query that forgets its organization filter sees only the current organization's rows.
-- Webhook sync, sign-in provisioning, rate limiting and maintenance run as the connecting (owner) role.

DO $$
BEGIN
    CREATE ROLE sheetbrain_tenant NOLOGIN NOBYPASSRLS;
EXCEPTION
    -- Roles are cluster-wide: another database on this server (or a concurrent migration) may have made it.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- The connecting role must be able to SET ROLE to it (a superuser can anyway; Supabase's postgres role needs this).
DO $$
BEGIN
    EXECUTE format('GRANT sheetbrain_tenant TO %I', current_user);
EXCEPTION
    WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE NOTICE 'could not grant sheetbrain_tenant to %: grant it by hand', current_user;
END
$$;

-- The organization of the current transaction, or NULL. current_setting(..., true) gives NULL on a connection that
-- never set it but '' on one where an earlier transaction did: both mean "no organization".
CREATE FUNCTION current_organization_id()
RETURNS uuid
LANGUAGE sql STABLE
AS $$ SELECT nullif(current_setting('app.organization_id', true), '')::uuid $$;

GRANT USAGE ON SCHEMA public TO sheetbrain_tenant;
GRANT SELECT ON plans TO sheetbrain_tenant;
GRANT SELECT ON organizations, users, organization_memberships, invitations, subscriptions, audit_usage
    TO sheetbrain_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON policies, audit_logs, ingestion_logs TO sheetbrain_tenant;
GRANT INSERT, UPDATE ON audit_usage TO sheetbrain_tenant;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations TO sheetbrain_tenant
    USING (id = current_organization_id());

-- A tenant sees the users who belong to its organization, and nobody else.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users TO sheetbrain_tenant
    USING (EXISTS (SELECT 1 FROM organization_memberships m
                    WHERE m.user_id = users.id AND m.organization_id = current_organization_id()));

ALTER TABLE organization_memberships ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organization_memberships TO sheetbrain_tenant
    USING (organization_id = current_organization_id());

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations TO sheetbrain_tenant
    USING (organization_id = current_organization_id());

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscriptions TO sheetbrain_tenant
    USING (organization_id = current_organization_id());

ALTER TABLE policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policies TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());

ALTER TABLE audit_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_usage TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_logs TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());

ALTER TABLE ingestion_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ingestion_logs TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());
