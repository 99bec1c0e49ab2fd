-- older servers: keep running: a nullable column and the sweep's body (the keys they keep are counted by their answers' bodies alone, as they count them, and given back alike)
-- A workspace's idempotency_budgets counter now counts each kept key's row beside its
-- answer's body (store.FinishIdempotencyKey: store.IdempotencyRowBytes plus three
-- bytes per byte of the key), and the server refuses a new key of a workspace whose
-- keys keep twice its budget (429 IDEMPOTENCY_BUDGET_EXHAUSTED). Counting bodies
-- alone, a workspace over its budget still kept a row of about 640 bytes for each
-- key (key, request hash, the 410 in the answer's place, two index entries), a day
-- each: a client sending fresh keys as fast as its rate limit allows kept 1.3 GB a
-- day of them.
--
-- budget_bytes is what the finish counted for the key, which the sweep gives back
-- exactly, whatever a later release counts a row for: a key budgeted by an older
-- server (budgeted, but budget_bytes NULL) gives back its body's length, what that
-- server counted. A nullable column without a default: no rewrite.
ALTER TABLE idempotency_keys ADD COLUMN budget_bytes int CHECK (budget_bytes >= 0);

CREATE OR REPLACE FUNCTION segments_delete_expired_idempotency_keys(p_older_than_us bigint, p_limit int)
RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$
    WITH d AS (
        DELETE FROM idempotency_keys
         WHERE (workspace_id, key) IN (
               SELECT workspace_id, key FROM idempotency_keys
                WHERE created_at < now() - greatest(p_older_than_us, 86400000000) * interval '1 microsecond'
                ORDER BY created_at
                LIMIT p_limit)
        RETURNING workspace_id, CASE WHEN budgeted THEN coalesce(budget_bytes, octet_length(body)) END AS bytes
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
