-- older servers: keep running: new indexes
-- The keyset of Query.contactChanges: a workspace's changes after a cursor, in order
-- of (change_xid, id), in contacts and in deleted_contacts.
--
-- The builds read the whole tables once: 0.8 s for 1M contacts of segments
-- bench-data (2 busy cores), with writes of contacts waiting meanwhile and reads
-- going on (SHARE lock; a transactional migration cannot build CONCURRENTLY).
SET LOCAL statement_timeout = 0; -- the builds read every contact

CREATE INDEX contacts_changes ON contacts (workspace_id, change_xid, id);
CREATE INDEX deleted_contacts_changes ON deleted_contacts (workspace_id, change_xid, id);
