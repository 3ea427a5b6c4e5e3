-- name: lock_migrations
-- Serialises migration runs across workers and servers until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('sheetbrain:schema_migrations'));

-- name: create_migrations_table
-- The record of applied migrations and function files; created by the first run.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('migration', 'function')),
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: get_migrations_table
-- The table's regclass, or NULL before the first migration run.
SELECT to_regclass('schema_migrations') AS regclass;

-- name: list_applied
-- Every recorded version with the checksum of the text that was applied.
SELECT version, checksum FROM schema_migrations ORDER BY version;

-- name: record_applied
-- Marks a file applied; a re-applied function file gets its new checksum.
INSERT INTO schema_migrations (version, kind, checksum)
VALUES (%(version)s, %(kind)s, %(checksum)s)
ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum, applied_at = now();

-- name: ensure_audit_log_partitions
-- This month's audit log partition and the next two, created if missing (a no-op most of the time).
SELECT ensure_audit_log_partitions(2);
