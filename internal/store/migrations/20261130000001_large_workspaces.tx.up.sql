-- older servers: keep running: a new function
-- segments_large_workspaces lists the workspaces that hold at least min_share of the
-- rows of contacts or of segments, the tables searched by trigrams, by ANALYZE's
-- statistics (pg_stats' most common values of workspace_id). The store asks it now
-- and then to choose how a search names its workspace (internal/store/large.go): the
-- trigram indexes lead with the workspace, which narrows a search to the workspace's
-- own matches unless the workspace holds half of the table or more.
--
-- It runs as its owner because under row-level security pg_stats shows the
-- application's role nothing of these tables. It tells shares of rows, never rows:
-- the statistics PostgreSQL's planner uses for every workspace's statements anyway.
CREATE FUNCTION segments_large_workspaces(min_share float8)
RETURNS TABLE (table_name text, workspace_id bigint, share float8)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT s.tablename::text, v.workspace_id, v.share
      FROM pg_stats AS s,
           unnest(s.most_common_vals::text::bigint[], s.most_common_freqs) AS v(workspace_id, share)
     WHERE s.schemaname = current_schema() AND s.tablename IN ('contacts', 'segments')
       AND s.attname = 'workspace_id' AND v.share >= min_share
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_large_workspaces(float8) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_large_workspaces(float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_large_workspaces(float8) TO segments_app;
