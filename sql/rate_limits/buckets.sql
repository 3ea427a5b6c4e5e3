-- name: hit_bucket
-- Adds `amount` to the bucket's current window, starting a new window if there is none or it has ended;
-- returns the count after the hit and the window's end (epoch seconds). The row lock makes it exact.
INSERT INTO rate_limit_buckets AS b (bucket_key, organization_id, request_count, window_reset_at)
VALUES (%(key)s, %(organization_id)s, %(amount)s, now() + make_interval(secs => %(expiry)s))
ON CONFLICT (bucket_key) DO UPDATE SET
    request_count = CASE WHEN b.window_reset_at <= now() THEN excluded.request_count
                         ELSE b.request_count + excluded.request_count END,
    window_reset_at = CASE WHEN b.window_reset_at <= now() THEN excluded.window_reset_at
                           ELSE b.window_reset_at END
RETURNING b.request_count, extract(epoch FROM b.window_reset_at) AS reset_at;

-- name: get_bucket
-- The live window of a bucket; no row when it has none.
SELECT request_count, extract(epoch FROM window_reset_at) AS reset_at
FROM rate_limit_buckets
WHERE bucket_key = %(key)s AND window_reset_at > now();

-- name: delete_bucket
-- Forgets one bucket.
DELETE FROM rate_limit_buckets WHERE bucket_key = %(key)s;

-- name: delete_all_buckets
-- Forgets every bucket.
DELETE FROM rate_limit_buckets;
