-- 0006 audits and policies.
--
-- Audit log retention: whole monthly partitions move from audit_logs to audit_logs_archive (DETACH then ATTACH: no
-- row is copied or deleted), so retention never runs a long DELETE against the live table.
CREATE TABLE audit_logs_archive (LIKE audit_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (created_at);
ALTER TABLE audit_logs_archive ADD PRIMARY KEY (organization_id, id, created_at);
CREATE INDEX audit_logs_archive_org_created_idx ON audit_logs_archive (organization_id, created_at DESC, id DESC);
-- Late rows of a month that is already archived land here.
CREATE TABLE audit_logs_archive_default PARTITION OF audit_logs_archive DEFAULT;

-- Policies keep the rules their author wrote apart from the effective rules (those plus what the engine read from
-- the prose), so editing the text re-reads it without losing the explicit ones.
ALTER TABLE policies ADD COLUMN explicit_rules jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX policies_org_created_idx ON policies (organization_id, created_at DESC, id DESC);
