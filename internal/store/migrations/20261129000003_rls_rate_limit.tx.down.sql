DROP POLICY workspace_isolation ON rate_limit_buckets;
ALTER TABLE rate_limit_buckets DISABLE ROW LEVEL SECURITY;
