-- older servers: keep running: a new table (the contacts they delete are not recorded)
-- The contacts deleteContacts deleted, for Query.deletedContacts: a partner mirroring
-- a workspace learns of deletions without diffing a full export. A row keeps the
-- contact's id and when it was deleted, nothing else: no phone, name or other
-- personal data survives a deletion. Rows older than 30 days are pruned by
-- deleteContacts itself (store.DeletedContactsRetention), a workspace's rows go with
-- the workspace (ON DELETE CASCADE).
--
-- A new table, empty: no statement here reads a big one.
CREATE TABLE deleted_contacts (
    workspace_id bigint      NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    id           bigint      NOT NULL, -- the contact's id
    -- The deleting transaction's now(), as created_at and updated_at are.
    deleted_at   timestamptz NOT NULL,
    -- Keyset paging by (deleted_at, id) within a workspace, and the prune of its
    -- oldest rows, read this key.
    PRIMARY KEY (workspace_id, deleted_at, id)
);
ALTER TABLE deleted_contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON deleted_contacts
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
GRANT SELECT, INSERT, DELETE ON deleted_contacts TO segments_app;
