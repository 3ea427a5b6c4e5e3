-- audit_logs partitions: one per calendar month (UTC), named audit_logs_yYYYYmMM, created at every migration run and
-- ahead of time by maintenance; rows for a month with no partition wait in audit_logs_default until it exists.
--
-- Every function here serialises on one advisory lock (two servers' maintenance jobs never create the same
-- partition at once), and waits at most five seconds for a table lock: a DETACH or ATTACH queued behind a long
-- reader would otherwise block every audit behind it. A job that times out fails and runs again next time.

CREATE OR REPLACE FUNCTION lock_audit_log_partitions()
RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_advisory_xact_lock(hashtext('sheetbrain:audit_log_partitions')),
           set_config('lock_timeout', '5s', true)
$$;

-- Makes sure the month containing p_month has its own partition; returns true when it had to be created. Rows of
-- that month already sitting in the default partition are moved into it first (attach would refuse otherwise),
-- with inserts into the default partition held off meanwhile so none slips in between.
CREATE OR REPLACE FUNCTION ensure_audit_log_partition(p_month date)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_from timestamptz := (date_trunc('month', p_month)::date)::timestamp AT TIME ZONE 'UTC';
    v_to   timestamptz := ((date_trunc('month', p_month) + interval '1 month')::date)::timestamp AT TIME ZONE 'UTC';
    v_name text := 'audit_logs_' || to_char(p_month, '"y"YYYY"m"MM');
BEGIN
    PERFORM lock_audit_log_partitions();
    IF to_regclass(v_name) IS NOT NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE audit_logs_default IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE audit_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    -- Queried directly a partition ignores its parent's policies: keep it closed to every non-owner role.
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', v_name);
    EXECUTE format('WITH moved AS (DELETE FROM audit_logs_default WHERE created_at >= $1 AND created_at < $2 '
                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', v_name) USING v_from, v_to;
    EXECUTE format('ALTER TABLE audit_logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_from, v_to);
    RETURN true;
END
$$;

-- Creates the partitions of this month and the next p_months_ahead, plus those of any month with rows waiting in
-- the default partition. Returns how many were created.
CREATE OR REPLACE FUNCTION ensure_audit_log_partitions(p_months_ahead integer DEFAULT 2)
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_month date;
    v_created integer := 0;
BEGIN
    PERFORM lock_audit_log_partitions();
    FOR v_month IN
        SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => n))::date
          FROM generate_series(0, p_months_ahead) AS n
        UNION
        SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM audit_logs_default
    LOOP
        IF ensure_audit_log_partition(v_month) THEN
            v_created := v_created + 1;
        END IF;
    END LOOP;
    RETURN v_created;
END
$$;

-- Moves every monthly partition that ends on or before now() - p_older_than from audit_logs to audit_logs_archive.
-- Returns one row per month moved, with its row count. Partitions are moved whole, so the cost does not grow with
-- the number of rows; a month is only moved once all of it is older than the cut-off. Stragglers of months archived
-- earlier (rows written late, which wait in the default partition) follow them row by row: there are few.
-- Everything slow (counting, stragglers) happens before the detaches, which hold audit_logs exclusively until the
-- transaction ends.
CREATE OR REPLACE FUNCTION archive_audit_logs(p_older_than interval)
RETURNS TABLE (partition_name text, rows_moved bigint)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_cutoff timestamptz := now() - p_older_than;
    v_parts record;
    v_stragglers bigint;
BEGIN
    PERFORM lock_audit_log_partitions();
    PERFORM ensure_audit_log_partitions(0);

    WITH moved AS (
        DELETE FROM audit_logs_default
         WHERE created_at < (date_trunc('month', v_cutoff AT TIME ZONE 'UTC')::timestamp AT TIME ZONE 'UTC')
        RETURNING *)
    INSERT INTO audit_logs_archive SELECT * FROM moved;
    GET DIAGNOSTICS v_stragglers = ROW_COUNT;

    DROP TABLE IF EXISTS archivable;
    CREATE TEMPORARY TABLE archivable ON COMMIT DROP AS
    SELECT c.relname AS name,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS lower_bound,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound,
           0::bigint AS row_count
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'audit_logs'::regclass AND c.relname <> 'audit_logs_default';
    DELETE FROM archivable WHERE upper_bound > v_cutoff;
    FOR v_parts IN SELECT name FROM archivable LOOP
        EXECUTE format('UPDATE archivable SET row_count = (SELECT count(*) FROM %I) WHERE name = $1', v_parts.name)
        USING v_parts.name;
    END LOOP;

    FOR v_parts IN SELECT * FROM archivable ORDER BY lower_bound LOOP
        EXECUTE format('ALTER TABLE audit_logs DETACH PARTITION %I', v_parts.name);
        EXECUTE format('ALTER TABLE audit_logs_archive ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       v_parts.name, v_parts.lower_bound, v_parts.upper_bound);
        partition_name := v_parts.name;
        rows_moved := v_parts.row_count;
        RETURN NEXT;
    END LOOP;
    IF v_stragglers > 0 THEN
        partition_name := 'audit_logs_default';
        rows_moved := v_stragglers;
        RETURN NEXT;
    END IF;
END
$$;
