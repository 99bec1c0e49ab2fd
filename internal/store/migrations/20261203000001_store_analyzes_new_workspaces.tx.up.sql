-- older servers: stop: it drops a function
-- The store analyzes a new workspace's rows as soon as it has written enough of them,
-- rather than leaving them to autovacuum's next round (internal/store/analyze.go).
--
-- Until ANALYZE has seen a workspace, PostgreSQL takes it for one row, and plans its
-- statements for one row (migration 20261202000005). Autovacuum analyzes a table at
-- most once per autovacuum_naptime (a minute), and the analysis of the contacts then
-- takes seconds of its own: a business that imports its contacts and segments and
-- opens its audience right after waits for that. Measured through the API beside the
-- benchmark's workspace (1M contacts, 5M memberships), a new workspace of 5,000
-- contacts in 20 segments (33,000 memberships): a contacts page with each contact's
-- segments 53 ms, a page of the members of any of 3 segments 31 ms, with `none` of
-- one more 300 ms; after ANALYZE of the tables' workspace_id alone: 5.9, 6.0 and
-- 9.7 ms.
--
-- segments_workspace_rows tells the store what the planner expects of each workspace:
-- the rows of every workspace among workspace_id's most common values, and (with a
-- NULL workspace) the estimate of any other, as PostgreSQL's var_eq_const computes
-- it; with the time the table was last analyzed. It replaces
-- segments_large_workspaces, whose shares it includes. Like it, it runs as its owner
-- because under row-level security pg_stats shows the application's role nothing of
-- these tables, and it tells shares of rows, never rows.
CREATE FUNCTION segments_workspace_rows()
RETURNS TABLE (table_name text, workspace_id bigint, share float8, planned_rows float8, analyzed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    WITH stats AS (
        SELECT s.tablename::text AS table_name,
               coalesce(s.most_common_vals::text::bigint[], '{}') AS vals,
               coalesce(s.most_common_freqs, '{}') AS freqs,
               s.null_frac, s.n_distinct, greatest(c.reltuples, 0)::float8 AS reltuples,
               greatest(t.last_analyze, t.last_autoanalyze) AS analyzed_at
          FROM pg_stats AS s
          JOIN pg_class AS c ON c.relnamespace = current_schema()::regnamespace AND c.relname = s.tablename
          JOIN pg_stat_user_tables AS t ON t.relid = c.oid
         WHERE s.schemaname = current_schema() AND s.tablename IN ('contacts', 'memberships', 'segments')
           AND s.attname = 'workspace_id'
    )
    SELECT st.table_name, v.workspace_id, v.share, v.share * st.reltuples, st.analyzed_at
      FROM stats AS st, unnest(st.vals, st.freqs) AS v(workspace_id, share)
    UNION ALL
    -- Any other workspace: what the common ones leave, shared among the other
    -- distinct values, and never more than the least common one's.
    SELECT st.table_name, NULL, o.share, greatest(o.share * st.reltuples, 1), st.analyzed_at
      FROM stats AS st,
           LATERAL (SELECT greatest(1 - st.null_frac - coalesce((SELECT sum(f) FROM unnest(st.freqs) AS f), 0), 0) AS rest,
                           CASE WHEN st.n_distinct < 0 THEN -st.n_distinct * st.reltuples ELSE st.n_distinct END
                             - cardinality(st.vals) AS others) AS d,
           LATERAL (SELECT least(CASE WHEN d.others > 1 THEN d.rest / d.others ELSE d.rest END,
                                 coalesce((SELECT min(f) FROM unnest(st.freqs) AS f), 1)) AS share) AS o
$$;

-- segments_analyze_workspaces has ANALYZE learn the workspaces of the tables named
-- (contacts, memberships; the segments, 2 ms, go along): workspace_id's statistics
-- alone, a sample of 30,000 rows, where the contacts' whole ANALYZE samples 300,000
-- for the search text's histogram. At 1M contacts and 5M memberships: contacts 0.7
-- s, memberships 1.2 s (4.6 and 1.1 s whole). It leaves autovacuum's count of the
-- changed rows as it was, so autovacuum's whole ANALYZE still follows. It waits for
-- no other ANALYZE or VACUUM of the table: the store tries again later.
CREATE FUNCTION segments_analyze_workspaces(tables text[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET lock_timeout = '100ms' AS $$
BEGIN
    IF 'contacts' = ANY(tables) THEN
        ANALYZE contacts (workspace_id);
    END IF;
    IF 'memberships' = ANY(tables) THEN
        ANALYZE memberships (workspace_id);
    END IF;
    ANALYZE segments (workspace_id);
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_workspace_rows() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION segments_analyze_workspaces(text[]) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_workspace_rows(), segments_analyze_workspaces(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_workspace_rows(), segments_analyze_workspaces(text[]) TO segments_app;

DROP FUNCTION segments_large_workspaces(float8);
