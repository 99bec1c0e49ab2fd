-- older servers: keep running: a new table, a column with a default, and the sweep's body (the answers they keep are not budgeted: outside the budget, neither counted nor freed)
-- The bytes of the answers each workspace's idempotency keys keep, which the server
-- bounds (idempotency.Options.AnswerBudget, --idempotency-budget): an answer that
-- would take its workspace over the budget is kept without its body, as 410
-- IDEMPOTENCY_ANSWER_NOT_KEPT. Upserts answering 1 MB each, sent with fresh keys,
-- kept 465 MB in 45 s, for a day, in the database every workspace shares.
--
-- One row per workspace that kept an answer: bytes is the sum of octet_length(body)
-- of its keys whose budgeted is true. The statement that stores an answer
-- (store.FinishIdempotencyKey) locks the row, stores the answer or the 410 in its
-- place, marks the key budgeted and adds its body's length, all at once; the sweep
-- below subtracts the bodies of the budgeted keys it deletes in the same statement.
-- So the counter is exact, and no statement is added to a request. Keys kept
-- before this migration, or by older servers beside it, are not budgeted: they are
-- neither counted nor subtracted, and expire within a day as before.
--
-- A new table, empty, and a column with a constant default (no rewrite): no
-- statement here reads a big table.
CREATE TABLE idempotency_budgets (
    workspace_id bigint NOT NULL PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    bytes        bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);
ALTER TABLE idempotency_budgets ENABLE ROW LEVEL SECURITY;
-- As every tenant table's (20261205000002: the new rows' check reads the setting once
-- a statement).
CREATE POLICY workspace_isolation ON idempotency_budgets
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
-- The finish reads its workspace's row FOR UPDATE and inserts or updates it; only the
-- sweep (as the owner) and a workspace's deletion (a cascade) delete rows.
GRANT SELECT, INSERT, UPDATE ON idempotency_budgets TO segments_app;

ALTER TABLE idempotency_keys ADD COLUMN budgeted boolean NOT NULL DEFAULT false;

-- The sweep (20261214000001, whose 24-hour floor it keeps) gives the budget back:
-- what the budgeted keys it deletes kept, per workspace. Two sweeps at once delete
-- disjoint keys (the second waits for the first's rows, then skips them).
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
