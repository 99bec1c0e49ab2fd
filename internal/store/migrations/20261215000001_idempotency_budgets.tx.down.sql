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

ALTER TABLE idempotency_keys DROP COLUMN budgeted;
DROP TABLE idempotency_budgets;
