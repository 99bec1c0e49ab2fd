-- older servers: keep running: new columns with defaults, an index
-- Partner API keys get a scope, an optional expiry, a label, the time they were last
-- used, and the key that replaced them when they were rotated. Keys made before this
-- migration could write, so they keep read_write.
ALTER TABLE api_keys
    ADD COLUMN name         text NOT NULL DEFAULT '' CHECK (char_length(name) <= 200),
    ADD COLUMN scope        text NOT NULL DEFAULT 'read_write' CHECK (scope IN ('read', 'read_write')),
    -- When set, the key stops working at this time (rotation sets it to the end of
    -- the grace period).
    ADD COLUMN expires_at   timestamptz,
    -- Written at most once a minute per key, by a conditional UPDATE in the statement
    -- that authenticates the key.
    ADD COLUMN last_used_at timestamptz,
    -- The key a rotation made to replace this one (same workspace).
    ADD COLUMN replaced_by  bigint,
    ADD FOREIGN KEY (workspace_id, replaced_by) REFERENCES api_keys ON DELETE SET NULL (replaced_by);
-- The CLI names a key by its ID alone (rotate, revoke), before the workspace is known.
CREATE INDEX api_keys_id ON api_keys (id);
