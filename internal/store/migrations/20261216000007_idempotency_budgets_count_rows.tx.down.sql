CREATE OR REPLACE FUNCTION segments_delete_expired_idempotency_keys(p_older_than_us bigint, p_limit int)
RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$
    WITH d AS (
        DELETE FROM idempotency_keys
         WHERE (workspace_id, key) IN (
               SELECT workspace_id, key FROM idempotency_keys
                WHERE created_at < now() - greatest(p_older_than_us, 86400000000) * interval '1 microsecond'
                ORDER BY created_at
                LIMIT p_limit)
        RETURNING workspace_id, CASE WHEN budgeted THEN octet_length(body) END AS bytes
    ), freed AS (
        UPDATE idempotency_budgets AS b
           SET bytes = greatest(b.bytes - f.bytes, 0)
          FROM (SELECT workspace_id, sum(bytes) AS bytes FROM d GROUP BY workspace_id HAVING sum(bytes) > 0) AS f
         WHERE b.workspace_id = f.workspace_id
    )
    SELECT count(*) FROM d
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_delete_expired_idempotency_keys(bigint, int) SET search_path = %I, pg_temp', current_schema());
END $$;

-- The counters go back to what the older sweep gives back: the bodies of the
-- budgeted keys, the rows no longer counted.
UPDATE idempotency_budgets AS b
   SET bytes = coalesce((SELECT sum(octet_length(k.body)) FROM idempotency_keys AS k
                          WHERE k.workspace_id = b.workspace_id AND k.budgeted), 0);

ALTER TABLE idempotency_keys DROP COLUMN budget_bytes;
