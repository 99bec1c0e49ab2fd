-- older servers: stop: row-level security on a table older servers write
-- The rate limiter's buckets belong to workspaces too: the same policy as every tenant
-- table (20261129000001_rls); the role already has the table's privileges by default.
ALTER TABLE rate_limit_buckets ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON rate_limit_buckets
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_buckets TO segments_app;
