-- older servers: keep running: autovacuum settings
-- The planner's statistics learn of a new workspace after a few thousand rows, not
-- after a tenth of the table. Every statement names its workspace, and PostgreSQL
-- estimates the rows of `workspace_id = $1` from ANALYZE's most common values. A
-- workspace that the last ANALYZE did not see is estimated at one row, and the
-- planner then picks plans that are only good for one row: a nested loop that reads
-- all of the workspace's memberships again for each of its segments or contacts.
-- By default autovacuum analyzes a table after a tenth of its rows have changed:
-- 510,000 memberships beside the benchmark's workspace, which a new business's whole
-- import may never reach.
--
-- Measured through the API at 1M contacts and 5M memberships in one workspace, with
-- a new one of 5,000 contacts in 20 segments (100,000 memberships) beside it, before
-- and after ANALYZE: a contacts page with each contact's segments 150 ms -> 5.9 ms;
-- a page of the members of any of 3 segments 70-88 -> 6 ms; with `none` of one more,
-- the request timed out at 10 s (its statement, run alone
-- by the owner: 56.6 s) -> 23-54 ms.
--
-- ANALYZE costs, at that size: memberships 1.1 s, contacts 4.6 s (its search_text
-- keeps 1,000 histogram entries: a sample of 300,000 rows), segments 7 ms.
-- Autovacuum runs it at most once per autovacuum_naptime (a minute by default) for
-- each table, however fast rows change: under sustained writes, at most 2% and 8%
-- of a core. Segments, cheap to analyze, are after 100 changed rows.
ALTER TABLE memberships SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
ALTER TABLE contacts SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
ALTER TABLE segments SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 100);
