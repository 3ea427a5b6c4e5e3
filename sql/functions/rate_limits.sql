-- Rate-limit bucket housekeeping.

-- Deletes buckets whose window has ended and returns how many were deleted.
CREATE OR REPLACE FUNCTION cleanup_expired_rate_limits()
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_deleted integer;
BEGIN
    DELETE FROM rate_limit_buckets WHERE window_reset_at <= now();
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
