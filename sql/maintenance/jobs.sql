-- name: try_lock_job
-- True when this transaction now holds the job's lock; false when another server is running the job.
SELECT pg_try_advisory_xact_lock(hashtext('sheetbrain:maintenance'), hashtext(%(job)s)) AS locked;

-- name: cleanup_expired_rate_limits
-- Deletes rate-limit buckets whose window has ended.
SELECT cleanup_expired_rate_limits() AS deleted;

-- name: prune_webhook_events
-- Forgets processed webhook deliveries older than 30 days (Svix retries for about a day).
SELECT prune_webhook_events() AS deleted;

-- name: ensure_audit_log_partitions
-- Creates the audit log partitions of this month and the next two, and of any month waiting in the default one.
SELECT ensure_audit_log_partitions(2) AS created;

-- name: archive_audit_logs
-- Moves whole months older than the interval from audit_logs to audit_logs_archive; one row per month moved.
SELECT partition_name, rows_moved FROM archive_audit_logs(%(older_than)s::interval);
