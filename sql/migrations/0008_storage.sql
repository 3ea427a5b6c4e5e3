-- 0008 storage: buckets, object metadata, uploads in flight and per-organization usage.
--
-- Bytes live in a backend (local disk or Supabase Storage) under the key '{organization_id}/{path}'; this schema is
-- the source of truth for listing, quotas and metrics. A write first records an upload (which reserves its bytes
-- against the plan's quota and holds the path), then places the bytes, then turns the upload into an object row in
-- one transaction; see storage/__init__.py for the order and what each failure leaves behind.

-- Buckets are global, like plans: the same four for every organization, with their limits in one place.
CREATE TABLE storage_buckets (
    id                  text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    public              boolean NOT NULL DEFAULT false,
    file_size_limit     bigint NOT NULL CHECK (file_size_limit > 0),
    allowed_mime_types  text[],                 -- NULL: any type; 'video/*' matches every video type
    object_ttl          interval,               -- NULL: objects never expire
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

INSERT INTO storage_buckets (id, public, file_size_limit, allowed_mime_types, object_ttl) VALUES
    ('videos',     false, 524288000, '{video/*}',                              NULL),
    ('thumbnails', true,  5242880,   '{image/jpeg,image/png,image/webp}',      NULL),
    ('brand-kits', false, 10485760,  '{image/*,font/*,application/json}',      NULL),
    ('temp',       false, 524288000, NULL,                                     interval '24 hours');

-- One row per stored object. path is below the organization's folder and byte-ordered (COLLATE "C"), so a prefix is
-- one contiguous index range and keyset pages follow the same order on every server.
CREATE TABLE storage_objects (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    bucket_id         text NOT NULL REFERENCES storage_buckets (id),
    path              text COLLATE "C" NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
    size_bytes        bigint NOT NULL CHECK (size_bytes >= 0),
    content_type      text NOT NULL,            -- as sniffed from the bytes, never as the client claimed
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    uploaded_by       uuid REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz,              -- set from the bucket's object_ttl; maintenance deletes after it
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, bucket_id, path)
);
CREATE INDEX storage_objects_expires_idx ON storage_objects (expires_at) WHERE expires_at IS NOT NULL;
-- A thumbnail names the object it was made from (metadata.source.id), and is deleted with it.
CREATE INDEX storage_objects_source_idx ON storage_objects (organization_id, ((metadata->'source'->>'id')))
    WHERE metadata ? 'source';

-- Writes in flight: a direct upload between reservation and commit, or a tus upload between creation and its last
-- PATCH. The unique key makes it the lock on its path: one write per path at a time. reserved_bytes count against
-- the quota until the upload becomes an object or is abandoned.
CREATE TABLE storage_uploads (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    bucket_id         text NOT NULL REFERENCES storage_buckets (id),
    path              text COLLATE "C" NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
    kind              text NOT NULL CHECK (kind IN ('direct', 'tus')),
    upload_length     bigint NOT NULL CHECK (upload_length >= 0),
    upload_offset     bigint NOT NULL DEFAULT 0,
    reserved_bytes    bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
    upsert            boolean NOT NULL DEFAULT false,
    content_type      text,                     -- sniffed once the first bytes are in
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by        uuid REFERENCES users (id),
    -- A PATCH holds a short lease, renewed while it streams, so two requests never append to one upload at once
    -- and a worker that died mid-PATCH blocks the upload for seconds, not until it expires.
    lease_token       uuid,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, bucket_id, path),
    CHECK (upload_offset BETWEEN 0 AND upload_length)
);
CREATE INDEX storage_uploads_expires_idx ON storage_uploads (expires_at);

-- Bytes per organization, kept exact by the triggers below: live objects plus reservations of uploads in flight.
-- The quota check locks this row, so concurrent uploads of one organization are admitted one at a time.
CREATE TABLE storage_usage (
    organization_id   uuid PRIMARY KEY REFERENCES organizations (id),
    object_bytes      bigint NOT NULL DEFAULT 0 CHECK (object_bytes >= 0),
    reserved_bytes    bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION storage_usage_track()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_objects constant boolean := TG_TABLE_NAME = 'storage_objects';
    v_old bigint := 0;
    v_new bigint := 0;
    v_org uuid;
BEGIN
    -- Each field is read in its own branch: PL/pgSQL resolves a record field when the statement runs, and the two
    -- tables name their byte column differently.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_org := OLD.organization_id;
        IF v_objects THEN v_old := OLD.size_bytes; ELSE v_old := OLD.reserved_bytes; END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_org := NEW.organization_id;
        IF v_objects THEN v_new := NEW.size_bytes; ELSE v_new := NEW.reserved_bytes; END IF;
    END IF;
    IF v_new = v_old THEN
        RETURN NULL;
    END IF;
    INSERT INTO storage_usage AS u (organization_id, object_bytes, reserved_bytes)
    VALUES (v_org, CASE WHEN v_objects THEN greatest(v_new - v_old, 0) ELSE 0 END,
                   CASE WHEN v_objects THEN 0 ELSE greatest(v_new - v_old, 0) END)
    ON CONFLICT ON CONSTRAINT storage_usage_pkey DO UPDATE
        SET object_bytes = u.object_bytes + CASE WHEN v_objects THEN v_new - v_old ELSE 0 END,
            reserved_bytes = u.reserved_bytes + CASE WHEN v_objects THEN 0 ELSE v_new - v_old END,
            updated_at = now();
    RETURN NULL;
END
$$;

CREATE TRIGGER storage_objects_usage AFTER INSERT OR DELETE OR UPDATE OF size_bytes ON storage_objects
    FOR EACH ROW EXECUTE FUNCTION storage_usage_track();
CREATE TRIGGER storage_uploads_usage AFTER INSERT OR DELETE OR UPDATE OF reserved_bytes ON storage_uploads
    FOR EACH ROW EXECUTE FUNCTION storage_usage_track();

GRANT SELECT ON storage_buckets TO sheetbrain_tenant;
-- Global like plans, yet locked like every table in public (Supabase grants public tables to its API roles): the
-- tenant role reads every bucket, nobody else but the owner anything.
ALTER TABLE storage_buckets ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable_by_tenants ON storage_buckets FOR SELECT TO sheetbrain_tenant USING (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON storage_objects, storage_uploads TO sheetbrain_tenant;
GRANT SELECT, INSERT, UPDATE ON storage_usage TO sheetbrain_tenant;

ALTER TABLE storage_objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON storage_objects TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());

ALTER TABLE storage_uploads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON storage_uploads TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());

ALTER TABLE storage_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON storage_usage TO sheetbrain_tenant
    USING (organization_id = current_organization_id())
    WITH CHECK (organization_id = current_organization_id());
