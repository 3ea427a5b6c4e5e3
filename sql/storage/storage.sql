-- name: list_buckets
-- Every bucket with its limits, by name.
SELECT id, public, file_size_limit, allowed_mime_types, object_ttl FROM storage_buckets ORDER BY id;

-- name: get_bucket
-- One bucket with its limits, or no row.
SELECT id, public, file_size_limit, allowed_mime_types, object_ttl FROM storage_buckets WHERE id = %(id)s;

-- name: get_storage_quota
-- The organization's bytes in use (objects plus uploads in flight) and its plan's quota (NULL: unlimited).
SELECT used_bytes, quota_bytes FROM storage_quota(%(organization_id)s);

-- name: begin_storage_write
-- Holds a path and reserves its bytes; outcome says whether it did ('reserved') or why not.
SELECT outcome, upload_id, used_bytes, quota_bytes, replaced_bytes, busy_until, clash_path, upsert
FROM begin_storage_write(%(organization_id)s, %(bucket_id)s, %(path)s, %(kind)s, %(length)s, %(upsert)s,
                         %(created_by)s, %(content_type)s, %(metadata)s, %(expires_at)s);

-- name: complete_storage_write
-- Turns a finished upload into its object row; returns the object's id and whether it is new.
SELECT object_id, created
FROM complete_storage_write(%(organization_id)s, %(upload_id)s, %(sha256)s, %(content_type)s, %(metadata)s);

-- name: delete_storage_objects
-- Deletes objects of one bucket by path, and their thumbnails; one row per distinct path with its outcome, one per
-- thumbnail (outcome 'thumbnail'). Commit after the bytes go.
SELECT bucket_id, path, outcome, object_id
FROM delete_storage_objects(%(organization_id)s, %(bucket_id)s, %(paths)s);

-- name: get_object_by_path
-- One live object of the organization by bucket and path, or no row. An expired object is gone to clients at once,
-- though maintenance deletes it later.
SELECT organization_id, id, bucket_id, path, size_bytes, content_type, sha256, metadata, uploaded_by, created_at,
       updated_at, expires_at
FROM storage_objects
WHERE organization_id = %(organization_id)s AND bucket_id = %(bucket_id)s AND path = %(path)s
  AND (expires_at IS NULL OR expires_at > now());

-- name: get_object_to_replace
-- The size of the object a write to this path would replace, live or expired, and whether it has expired; or no row.
SELECT size_bytes, coalesce(expires_at <= now(), false) AS expired
FROM storage_objects
WHERE organization_id = %(organization_id)s AND bucket_id = %(bucket_id)s AND path = %(path)s;

-- name: get_object_by_id
-- One live object of the organization by id, or no row.
SELECT organization_id, id, bucket_id, path, size_bytes, content_type, sha256, metadata, uploaded_by, created_at,
       updated_at, expires_at
FROM storage_objects
WHERE organization_id = %(organization_id)s AND id = %(id)s AND (expires_at IS NULL OR expires_at > now());

-- name: list_objects
-- A page of the organization's live objects in one bucket whose path starts with the prefix, in path order, after
-- the cursor's path.
SELECT organization_id, id, bucket_id, path, size_bytes, content_type, sha256, metadata, uploaded_by, created_at,
       updated_at, expires_at
FROM storage_objects
WHERE organization_id = %(organization_id)s AND bucket_id = %(bucket_id)s
  AND path >= %(prefix)s AND starts_with(path, %(prefix)s)
  AND (%(after)s::text IS NULL OR path > %(after)s)
  AND (expires_at IS NULL OR expires_at > now())
ORDER BY path
LIMIT %(limit)s;

-- name: set_object_thumbnail
-- Records where an object's thumbnail is; returns the object.
UPDATE storage_objects
SET metadata = metadata || jsonb_build_object('thumbnail', %(thumbnail)s::jsonb), updated_at = now()
WHERE organization_id = %(organization_id)s AND id = %(id)s
RETURNING organization_id, id, bucket_id, path, size_bytes, content_type, sha256, metadata, uploaded_by,
          created_at, updated_at, expires_at;

-- name: delete_upload
-- Forgets an upload, releasing its path and its reserved bytes.
DELETE FROM storage_uploads WHERE organization_id = %(organization_id)s AND id = %(id)s;

-- name: get_upload
-- One upload of the organization, or no row.
SELECT organization_id, id, bucket_id, path, kind, upload_length, upload_offset, upsert, content_type, metadata,
       lease_token, lease_expires_at, expires_at, expires_at <= now() AS expired,
       lease_expires_at > now() AS leased
FROM storage_uploads
WHERE organization_id = %(organization_id)s AND id = %(id)s;

-- name: lock_tus_upload
-- One tus upload of the organization, locked until the transaction ends, or no row.
SELECT organization_id, id, bucket_id, path, kind, upload_length, upload_offset, upsert, content_type, metadata,
       lease_token, expires_at, expires_at <= now() AS expired,
       coalesce(lease_expires_at > now(), false) AS leased
FROM storage_uploads
WHERE organization_id = %(organization_id)s AND id = %(id)s AND kind = 'tus'
FOR UPDATE;

-- name: take_upload_lease
-- Gives a tus upload to one request for a while, and pushes its expiry back.
UPDATE storage_uploads
SET lease_token = %(lease)s, lease_expires_at = now() + make_interval(secs => %(seconds)s::double precision),
    expires_at = greatest(expires_at, now() + make_interval(hours => %(expiry_hours)s::int)), updated_at = now()
WHERE organization_id = %(organization_id)s AND id = %(id)s
RETURNING expires_at;

-- name: record_upload_progress
-- Records the bytes received so far under our lease and renews it; no row when the lease was lost.
UPDATE storage_uploads
SET upload_offset = %(offset)s, content_type = coalesce(%(content_type)s, content_type),
    lease_expires_at = CASE WHEN %(release)s THEN NULL ELSE now() + make_interval(secs => %(seconds)s::double precision) END,
    lease_token = CASE WHEN %(release)s THEN NULL ELSE lease_token END,
    updated_at = now()
WHERE organization_id = %(organization_id)s AND id = %(id)s AND lease_token = %(lease)s
RETURNING upload_offset, expires_at;

-- name: take_expired_storage_objects
-- Deletes up to `limit` expired objects of every organization and returns them; commit after their bytes go.
SELECT organization_id, bucket_id, path, size_bytes FROM take_expired_storage_objects(%(limit)s);

-- name: take_expired_uploads
-- Deletes up to `limit` expired uploads nobody is writing to and returns them, with whether an object row exists
-- at their path; commit after their leftovers are cleaned up.
DELETE FROM storage_uploads u
USING (SELECT x.organization_id, x.id FROM storage_uploads x
        WHERE x.expires_at <= now() AND (x.lease_expires_at IS NULL OR x.lease_expires_at <= now())
        ORDER BY x.expires_at
        LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED) e
WHERE u.organization_id = e.organization_id AND u.id = e.id
RETURNING u.organization_id, u.id, u.bucket_id, u.path, u.kind,
          EXISTS (SELECT 1 FROM storage_objects o WHERE o.organization_id = u.organization_id
                     AND o.bucket_id = u.bucket_id AND o.path = u.path) AS object_exists;

-- name: list_object_sizes_in_bucket
-- Every object of one bucket, all organizations: its organization, path and size (for reconcile).
SELECT organization_id, path, size_bytes FROM storage_objects WHERE bucket_id = %(bucket_id)s;

-- name: list_upload_paths
-- Every upload in flight: its id, bucket, organization and path (for reconcile).
SELECT organization_id, id, bucket_id, path FROM storage_uploads;

-- name: delete_object_without_bytes
-- Deletes an object row whose bytes are gone, unless an upload is writing to its path.
DELETE FROM storage_objects o
WHERE o.organization_id = %(organization_id)s AND o.bucket_id = %(bucket_id)s AND o.path = %(path)s
  AND NOT EXISTS (SELECT 1 FROM storage_uploads u WHERE u.organization_id = o.organization_id
                     AND u.bucket_id = o.bucket_id AND u.path = o.path);
