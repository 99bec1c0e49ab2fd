DROP TRIGGER segments_keys_kept ON segments;
DROP TRIGGER contacts_keys_kept ON contacts;
DROP FUNCTION membership_keys_kept();
DROP TRIGGER segments_memberships_deleted ON segments;
DROP TRIGGER contacts_memberships_deleted ON contacts;
DROP FUNCTION segments_memberships_deleted();
DROP FUNCTION contacts_memberships_deleted();
DROP TRIGGER memberships_a_references_updated ON memberships;
DROP TRIGGER memberships_a_references_inserted ON memberships;
DROP FUNCTION memberships_references_checked();
SET LOCAL statement_timeout = 0; -- validating the foreign keys reads every membership
ALTER TABLE memberships
    ADD FOREIGN KEY (workspace_id, segment_id) REFERENCES segments ON DELETE CASCADE,
    ADD FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts ON DELETE CASCADE;
