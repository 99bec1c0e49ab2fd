-- older servers: keep running: a function's body (they sweep keys older than 24 hours, which it still deletes)
-- segments_delete_expired_idempotency_keys, the sweep of every workspace's expired
-- idempotency keys (20261129000001_rls), runs as the owner and took the age of the
-- keys it deletes from its caller: the server's role, or any SQL run as it, could
-- pass a negative age and delete every workspace's keys, records of mutations whose
-- retries would then run twice. The age is now at least the 24 hours the server
-- keeps keys (idempotency.Options.Retention), whatever the caller asks.
--
-- CREATE OR REPLACE keeps the function's owner and grants but not its settings: its
-- search_path is set again, as 20261129000001_rls set it.
CREATE OR REPLACE FUNCTION segments_delete_expired_idempotency_keys(p_older_than_us bigint, p_limit int)
RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$
    WITH d AS (
        DELETE FROM idempotency_keys
         WHERE (workspace_id, key) IN (
               SELECT workspace_id, key FROM idempotency_keys
                WHERE created_at < now() - greatest(p_older_than_us, 86400000000) * interval '1 microsecond'
                ORDER BY created_at
                LIMIT p_limit)
        RETURNING 1
    )
    SELECT count(*) FROM d
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_delete_expired_idempotency_keys(bigint, int) SET search_path = %I, pg_temp', current_schema());
END $$;
