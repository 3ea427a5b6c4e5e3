-- name: try_lock_job
-- True when this transaction now holds the job's lock; false when another server is running the job.
SELECT pg_try_advisory_xact_lock(hashtext('sheetbrain:maintenance'), hashtext(%(job)s)) AS locked;

-- name: cleanup_expired_rate_limits
-- Deletes rate-limit buckets whose window has ended.
SELECT cleanup_expired_rate_limits() AS deleted;
