-- older servers: keep running: functions' bodies
-- The counters count a statement's changed rows before they meet a table under
-- row-level security.
--
-- Each counter joined its transition table's counts to a table under the policy on
-- workspace_id (segments, or workspaces in the EXISTS), and PostgreSQL carries a
-- join's equality over to the other side: the policy's test on workspace_id, asked of
-- the transition table, ran once for every changed row, and the planner took the rows
-- for 0.5% of their number. For a bulk assignment's 100,000 memberships, the
-- memberships' counter then sorted them on disk to count them, where it hashes them in
-- memory: 40-60 ms a request instead of 15 (as the application's role; the owner, whom
-- the policy does not hold, always got the hash), 0.35-0.45 s of W7's ten requests.
--
-- A materialized CTE counts first: the policy's test, carried over, meets the counted
-- rows (one per segment, or per workspace), and the count is planned for the real
-- number of changed rows. The counts are the same.
CREATE OR REPLACE FUNCTION memberships_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS MATERIALIZED (SELECT workspace_id, segment_id, count(*) AS n FROM inserted GROUP BY 1, 2)
    UPDATE segments s
       SET contact_count = s.contact_count + d.n, updated_at = now()
      FROM d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION memberships_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS MATERIALIZED (SELECT workspace_id, segment_id, count(*) AS n FROM deleted GROUP BY 1, 2)
    UPDATE segments s
       SET contact_count = s.contact_count - d.n, updated_at = now()
      FROM d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;

-- A workspace's contacts deleted with it (the cascade) are counted for nothing: its
-- counts are gone with it.
CREATE OR REPLACE FUNCTION contacts_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS MATERIALIZED (SELECT workspace_id, count(*) AS n FROM deleted GROUP BY 1)
    INSERT INTO contact_counts AS c (workspace_id, slot, n)
    SELECT d.workspace_id, pg_backend_pid() % 8, -d.n FROM d
     WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.workspace_id)
    ON CONFLICT (workspace_id, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;
