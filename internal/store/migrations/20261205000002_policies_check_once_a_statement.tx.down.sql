ALTER POLICY workspace_isolation ON workspaces
    WITH CHECK (id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON api_keys
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON segments
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON contacts
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON memberships
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON idempotency_keys
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON rate_limit_buckets
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON segment_bitmaps
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON contact_counts
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
ALTER POLICY workspace_isolation ON segment_catalog_versions
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
