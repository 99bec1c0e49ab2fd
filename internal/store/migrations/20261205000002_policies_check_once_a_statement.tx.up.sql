-- older servers: keep running: policies that admit the same rows
-- The policies check each new row's workspace against the setting read once per
-- statement, not once per row.
--
-- As written, the check called current_setting, NULLIF and the cast to bigint for
-- every row a statement inserted or updated: 0.15 µs a row, 150-190 ms of the 1M
-- memberships of a 10,000 × 100 assignment (an insert of 1M rows into a table with no
-- index: 465-510 ms without row-level security, 490-505 with this check, 640-690
-- with the old one). Written as a scalar subquery, the setting is read by an
-- InitPlan, once per statement, and each row is compared with its value. The setting
-- cannot change within a statement (SET LOCAL is a statement of its own), so the
-- check refuses and admits the same rows as before.
--
-- Only the checks of new rows change. USING, which reads rows, keeps the expression
-- the planner can see through: with the query's own workspace condition it becomes a
-- one-time filter, and its value feeds the estimates (a subquery's would not).
ALTER POLICY workspace_isolation ON workspaces
    WITH CHECK (id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON api_keys
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON segments
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON contacts
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON memberships
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON idempotency_keys
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON rate_limit_buckets
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON segment_bitmaps
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON contact_counts
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
ALTER POLICY workspace_isolation ON segment_catalog_versions
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
