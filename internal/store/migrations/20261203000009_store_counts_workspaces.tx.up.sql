-- older servers: keep running: a new function
-- The store finds the workspaces that the statistics underestimate from the counters,
-- not only from its own writes (internal/store/analyze.go).
--
-- The store has a workspace's table analyzed once it has written twice the rows the
-- statistics expect of the workspace (migration 20261203000001). A workspace whose
-- rows came another way (a restore, a load by SQL, another server's writes) waited
-- for autovacuum, and with autovacuum late or off, forever: beside 3,300 small
-- workspaces, such a workspace is planned as the average one, a few rows, and its
-- statements read their segments' members by a scan of the whole workspace.
--
-- segments_workspace_counts returns the workspaces that hold at least min_rows
-- contacts or memberships, by the counters the triggers keep exact (contact_counts,
-- segments.contact_count), which the store compares with what the statistics
-- expect each time it learns them (once a minute). It reads every workspace's
-- counters: a few rows per workspace and its segments' (at 3,300 workspaces, a few
-- milliseconds). Like segments_workspace_rows it runs as its owner, because
-- row-level security shows the application's role no other workspace's counters;
-- it tells the sizes of workspaces of min_rows rows or more, never their rows.
CREATE FUNCTION segments_workspace_counts(min_rows float8)
RETURNS TABLE (table_name text, workspace_id bigint, counted float8)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT 'contacts', c.workspace_id, sum(c.n)::float8
      FROM contact_counts AS c GROUP BY c.workspace_id HAVING sum(c.n) >= min_rows
    UNION ALL
    SELECT 'memberships', s.workspace_id, sum(s.contact_count)::float8
      FROM segments AS s GROUP BY s.workspace_id HAVING sum(s.contact_count) >= min_rows
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_workspace_counts(float8) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_workspace_counts(float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_workspace_counts(float8) TO segments_app;
