-- Object storage bookkeeping: reserving a path and its bytes, turning an upload into an object, deleting objects.
--
-- Lock order, the same in every function so concurrent writers cannot deadlock: the object row (an image before its
-- thumbnail), then the organization's storage_usage row (taken explicitly or by the usage triggers), then the upload
-- row.

-- Bytes used (live objects plus uploads in flight) and the plan's storage quota (NULL: unlimited).
CREATE OR REPLACE FUNCTION storage_quota(p_organization_id uuid)
RETURNS TABLE (used_bytes bigint, quota_bytes bigint)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- plpgsql, not sql: its body is resolved at call time, so this file may load before usage.sql defines
    -- organization_plan().
    RETURN QUERY
    SELECT coalesce((SELECT u.object_bytes + u.reserved_bytes FROM storage_usage u
                      WHERE u.organization_id = p_organization_id), 0)::bigint,
           (organization_plan(p_organization_id)).storage_quota_bytes;
END
$$;

-- Whether a write may replace the object `o` at its path: any write may replace an expired object (it is gone as far
-- as clients can tell, only not deleted yet); otherwise only an upsert may, and a thumbnail (p_metadata names its
-- source) replaces only a thumbnail of the same source, never a file someone else put there.
CREATE OR REPLACE FUNCTION storage_write_may_replace(o storage_objects, p_upsert boolean, p_metadata jsonb)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(o.expires_at <= now(), false)
        OR p_upsert AND (NOT coalesce(p_metadata ? 'source', false)
                         OR o.metadata->'source'->>'id' IS NOT DISTINCT FROM p_metadata->'source'->>'id')
$$;

-- The paths of a bucket's objects and uploads in flight that cannot live next to p_path: a folder of it ('a' for
-- 'a/b') or one inside it ('a/b' for 'a'). A file system cannot hold both, so neither backend is given both.
CREATE OR REPLACE FUNCTION storage_path_clash(p_organization_id uuid, p_bucket_id text, p_path text)
RETURNS text
LANGUAGE sql STABLE
AS $$
    -- Four index range scans: the folders by equality, what is inside by the byte range of 'path/' ('0' follows
    -- '/' in byte order).
    WITH folders AS (
        SELECT ARRAY(SELECT array_to_string(s.parts[1:n], '/')
                       FROM (SELECT string_to_array(p_path, '/') AS parts) s,
                            generate_series(1, cardinality(s.parts) - 1) n) AS paths
    )
    SELECT c.path FROM (
        SELECT o.path::text FROM storage_objects o, folders f
         WHERE o.organization_id = p_organization_id AND o.bucket_id = p_bucket_id AND o.path = ANY (f.paths)
        UNION ALL
        SELECT o.path::text FROM storage_objects o
         WHERE o.organization_id = p_organization_id AND o.bucket_id = p_bucket_id
           AND o.path >= (p_path || '/') COLLATE "C" AND o.path < (p_path || '0') COLLATE "C"
        UNION ALL
        SELECT u.path::text FROM storage_uploads u, folders f
         WHERE u.organization_id = p_organization_id AND u.bucket_id = p_bucket_id AND u.path = ANY (f.paths)
        UNION ALL
        SELECT u.path::text FROM storage_uploads u
         WHERE u.organization_id = p_organization_id AND u.bucket_id = p_bucket_id
           AND u.path >= (p_path || '/') COLLATE "C" AND u.path < (p_path || '0') COLLATE "C"
    ) c
    LIMIT 1
$$;

-- Its result columns have changed before; CREATE OR REPLACE cannot change them, so the old one goes first.
DROP FUNCTION IF EXISTS begin_storage_write(uuid, text, text, text, bigint, boolean, uuid, text, jsonb, timestamptz);

-- Starts a write of p_length bytes to one path: holds the path and reserves the bytes, or explains why not.
-- outcome is 'reserved' (upload_id is the new upload), 'exists' (an object is there that the write may not
-- replace: see storage_write_may_replace), 'in_progress' (another upload holds the path until busy_until),
-- 'path_clash' (clash_path, an object or upload, is a folder of the path or inside it) or 'quota_exceeded'.
-- Replacing an object reserves only the growth. upsert says whether the upload replaces what is there: asked for,
-- or an expired object is there. The checks run under the organization's usage row lock, so concurrent callers on
-- any number of servers are admitted one at a time and never pass the quota together.
CREATE OR REPLACE FUNCTION begin_storage_write(
    p_organization_id uuid,
    p_bucket_id text,
    p_path text,
    p_kind text,
    p_length bigint,
    p_upsert boolean,
    p_created_by uuid,
    p_content_type text,
    p_metadata jsonb,
    p_expires_at timestamptz)
RETURNS TABLE (outcome text, upload_id uuid, used_bytes bigint, quota_bytes bigint, replaced_bytes bigint,
               busy_until timestamptz, clash_path text, upsert boolean)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_reserve bigint;
    v_current storage_objects;
BEGIN
    -- Locking the current object (if any) first makes a concurrent delete of it either finish before we look, or
    -- wait for this transaction and then see our upload row.
    SELECT * INTO v_current FROM storage_objects o
     WHERE o.organization_id = p_organization_id AND o.bucket_id = p_bucket_id AND o.path = p_path
       FOR UPDATE;
    IF FOUND THEN
        IF NOT storage_write_may_replace(v_current, p_upsert, p_metadata) THEN
            outcome := 'exists';
            RETURN NEXT;
            RETURN;
        END IF;
        replaced_bytes := v_current.size_bytes;
    END IF;
    upsert := p_upsert OR coalesce(v_current.expires_at <= now(), false);

    INSERT INTO storage_usage (organization_id) VALUES (p_organization_id)
    ON CONFLICT ON CONSTRAINT storage_usage_pkey DO NOTHING;
    PERFORM 1 FROM storage_usage u WHERE u.organization_id = p_organization_id FOR UPDATE;
    SELECT q.used_bytes, q.quota_bytes INTO used_bytes, quota_bytes FROM storage_quota(p_organization_id) q;

    -- This statement and the ones below take a fresh snapshot (READ COMMITTED), so they see what another writer
    -- committed while we waited for the lock: an object that appeared after our first look is refused here, never
    -- overwritten. (An upsert that finds one reserves its whole length: exact again once the upload ends.)
    IF replaced_bytes IS NULL AND EXISTS (
            SELECT 1 FROM storage_objects o
             WHERE o.organization_id = p_organization_id AND o.bucket_id = p_bucket_id AND o.path = p_path
               AND NOT storage_write_may_replace(o, p_upsert, p_metadata)) THEN
        outcome := 'exists';
        RETURN NEXT;
        RETURN;
    END IF;

    SELECT u.expires_at INTO busy_until FROM storage_uploads u
     WHERE u.organization_id = p_organization_id AND u.bucket_id = p_bucket_id AND u.path = p_path;
    IF FOUND THEN
        outcome := 'in_progress';
        RETURN NEXT;
        RETURN;
    END IF;

    clash_path := storage_path_clash(p_organization_id, p_bucket_id, p_path);
    IF clash_path IS NOT NULL THEN
        outcome := 'path_clash';
        RETURN NEXT;
        RETURN;
    END IF;

    v_reserve := greatest(p_length - coalesce(replaced_bytes, 0), 0);
    IF quota_bytes IS NOT NULL AND used_bytes + v_reserve > quota_bytes THEN
        outcome := 'quota_exceeded';
        RETURN NEXT;
        RETURN;
    END IF;

    -- Two writers that both found the path free are serialised by the usage row lock above, so the second one
    -- found the first one's upload or object; the unique key stays the last word all the same.
    INSERT INTO storage_uploads (organization_id, bucket_id, path, kind, upload_length, reserved_bytes, upsert,
                                 content_type, metadata, created_by, expires_at)
    VALUES (p_organization_id, p_bucket_id, p_path, p_kind, p_length, v_reserve, upsert, p_content_type,
            coalesce(p_metadata, '{}'::jsonb), p_created_by, p_expires_at)
    RETURNING id INTO upload_id;
    used_bytes := used_bytes + v_reserve;
    outcome := 'reserved';
    RETURN NEXT;
END
$$;

-- Turns a finished upload into an object: the upload row goes (releasing its reservation) and the object row is
-- inserted, or replaced when the upload was an upsert. Returns the object's id and whether it is new. Raises
-- no_data_found when the upload no longer exists (abandoned and cleaned up), unique_violation when an object
-- appeared at a path the upload may not replace, and foreign_key_violation when the source of a thumbnail is gone:
-- the caller rolls back and removes the bytes it placed.
-- A thumbnail (p_metadata names its source) expires with its source: a temporary image's thumbnail goes with it.
CREATE OR REPLACE FUNCTION complete_storage_write(
    p_organization_id uuid,
    p_upload_id uuid,
    p_sha256 text,
    p_content_type text,
    p_metadata jsonb)
RETURNS TABLE (object_id uuid, created boolean)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_upload storage_uploads;
    v_expires_at timestamptz;
BEGIN
    IF coalesce(p_metadata ? 'source', false) THEN
        -- The source first, then the thumbnail's own row: the order delete_storage_objects takes them in.
        SELECT o.expires_at INTO v_expires_at FROM storage_objects o
         WHERE o.organization_id = p_organization_id AND o.id = (p_metadata->'source'->>'id')::uuid
           FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the source of this thumbnail no longer exists' USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    SELECT * INTO v_upload FROM storage_uploads u
     WHERE u.organization_id = p_organization_id AND u.id = p_upload_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'storage upload % no longer exists', p_upload_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT coalesce(p_metadata ? 'source', false) THEN
        SELECT now() + b.object_ttl INTO v_expires_at FROM storage_buckets b WHERE b.id = v_upload.bucket_id;
    END IF;

    IF v_upload.upsert THEN
        -- An expired object is not replaced in place but deleted: what this write stores is a new object.
        DELETE FROM storage_objects o
         WHERE o.organization_id = p_organization_id AND o.bucket_id = v_upload.bucket_id
           AND o.path = v_upload.path AND o.expires_at <= now();
        INSERT INTO storage_objects AS o (organization_id, bucket_id, path, size_bytes, content_type, sha256,
                                          metadata, uploaded_by, expires_at)
        VALUES (p_organization_id, v_upload.bucket_id, v_upload.path, v_upload.upload_length, p_content_type,
                p_sha256, coalesce(p_metadata, '{}'::jsonb), v_upload.created_by, v_expires_at)
        ON CONFLICT (organization_id, bucket_id, path) DO UPDATE
            SET size_bytes = excluded.size_bytes, content_type = excluded.content_type, sha256 = excluded.sha256,
                metadata = excluded.metadata, uploaded_by = excluded.uploaded_by, updated_at = now(),
                expires_at = excluded.expires_at
        RETURNING o.id, o.xmax = 0 INTO object_id, created;
    ELSE
        INSERT INTO storage_objects (organization_id, bucket_id, path, size_bytes, content_type, sha256, metadata,
                                     uploaded_by, expires_at)
        VALUES (p_organization_id, v_upload.bucket_id, v_upload.path, v_upload.upload_length, p_content_type,
                p_sha256, coalesce(p_metadata, '{}'::jsonb), v_upload.created_by, v_expires_at)
        RETURNING id, true INTO object_id, created;
    END IF;

    DELETE FROM storage_uploads u WHERE u.organization_id = p_organization_id AND u.id = p_upload_id;
    RETURN NEXT;
END
$$;

-- Its result columns have changed before; CREATE OR REPLACE cannot change them, so the old one goes first.
DROP FUNCTION IF EXISTS delete_storage_objects(uuid, text, text[]);

-- Deletes the named objects of one bucket and reports each path: 'deleted' (with the row's id and size),
-- 'not_found' (also for an expired object, which maintenance deletes), or 'busy' when an upload is writing to that
-- path right now. The thumbnails of the deleted objects (their metadata.source) go with them: one more row each,
-- with outcome 'thumbnail' and their own bucket. The rows stay locked until the caller commits, which it does only
-- after removing the bytes, so a new upload to a deleted path starts after the bytes are gone and never loses its
-- own.
CREATE OR REPLACE FUNCTION delete_storage_objects(p_organization_id uuid, p_bucket_id text, p_paths text[])
RETURNS TABLE (bucket_id text, path text, outcome text, object_id uuid, size_bytes bigint)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    -- Lock first; look for uploads in a later statement, whose fresh snapshot sees any upload committed while we
    -- waited for a lock.
    PERFORM 1 FROM storage_objects o
     WHERE o.organization_id = p_organization_id AND o.bucket_id = p_bucket_id AND o.path = ANY (p_paths)
       AND (o.expires_at IS NULL OR o.expires_at > now())
       FOR UPDATE;
    RETURN QUERY
    WITH wanted AS (
        SELECT DISTINCT w.path COLLATE "C" AS path FROM unnest(p_paths) AS w (path)
    ), busy AS (
        SELECT u.path FROM storage_uploads u
         WHERE u.organization_id = p_organization_id AND u.bucket_id = p_bucket_id AND u.path = ANY (p_paths)
    ), deleted AS (
        DELETE FROM storage_objects o
         WHERE o.organization_id = p_organization_id AND o.bucket_id = p_bucket_id AND o.path = ANY (p_paths)
           AND (o.expires_at IS NULL OR o.expires_at > now()) AND o.path NOT IN (SELECT b.path FROM busy b)
        RETURNING o.path, o.id, o.size_bytes
    ), thumbnails AS (
        DELETE FROM storage_objects t
         WHERE t.organization_id = p_organization_id AND t.metadata ? 'source'
           AND t.metadata->'source'->>'id' IN (SELECT d.id::text FROM deleted d)
           AND NOT EXISTS (SELECT 1 FROM storage_uploads u
                            WHERE u.organization_id = t.organization_id AND u.bucket_id = t.bucket_id
                              AND u.path = t.path)
        RETURNING t.bucket_id, t.path, t.id, t.size_bytes
    )
    SELECT p_bucket_id,
           w.path::text,
           CASE WHEN d.id IS NOT NULL THEN 'deleted'
                WHEN w.path IN (SELECT b.path FROM busy b) THEN 'busy'
                ELSE 'not_found' END,
           d.id, d.size_bytes
      FROM wanted w LEFT JOIN deleted d ON d.path = w.path
    UNION ALL
    SELECT t.bucket_id, t.path::text, 'thumbnail', t.id, t.size_bytes FROM thumbnails t
     ORDER BY 1, 2;
END
$$;

-- Deletes up to p_limit expired objects of any organization and returns them, so the caller can remove their
-- bytes before committing. Objects locked by another transaction or with an upload in flight are left for the
-- next run.
CREATE OR REPLACE FUNCTION take_expired_storage_objects(p_limit integer)
RETURNS TABLE (organization_id uuid, bucket_id text, path text, size_bytes bigint)
LANGUAGE sql VOLATILE
AS $$
    -- SKIP LOCKED passes over rows an upload is about to replace; an upload that locks a row after us waits for
    -- our commit and then finds it gone.
    DELETE FROM storage_objects o
     USING (SELECT x.organization_id, x.id FROM storage_objects x
             WHERE x.expires_at <= now()
             ORDER BY x.expires_at
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED) e
     WHERE o.organization_id = e.organization_id AND o.id = e.id
       AND NOT EXISTS (SELECT 1 FROM storage_uploads u
                        WHERE u.organization_id = o.organization_id AND u.bucket_id = o.bucket_id
                          AND u.path = o.path)
    RETURNING o.organization_id, o.bucket_id, o.path::text, o.size_bytes
$$;
