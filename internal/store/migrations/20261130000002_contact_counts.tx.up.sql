-- older servers: keep running: a new table that triggers keep
-- The number of each workspace's contacts, for the totalCount of its contacts list
-- without a search or a segment filter. Counting reads an index entry per contact:
-- 1M contacts took 100-170 ms of a core (and both cores in a parallel plan) per
-- count; the counter, a few rows.
--
-- Like segments.contact_count, statement-level triggers keep it in the same
-- transaction as every insert and delete of contacts, including the deletes cascaded
-- from a workspace. A single row per workspace would queue a workspace's concurrent
-- writers (a partner's parallel bulk upserts) behind one another until each commits,
-- so each workspace's count is spread over slots, one per backend
-- (pg_backend_pid() % 8), and read as their sum: a slot may go below zero, the sum
-- never does.

SET LOCAL statement_timeout = 0; -- the backfill counts every contact
-- Nobody changes contacts between the backfill and the triggers taking over.
LOCK TABLE contacts IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE contact_counts (
    workspace_id bigint   NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    slot         smallint NOT NULL,
    n            bigint   NOT NULL,
    PRIMARY KEY (workspace_id, slot)
);
ALTER TABLE contact_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON contact_counts
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON contact_counts TO segments_app;

INSERT INTO contact_counts (workspace_id, slot, n)
SELECT workspace_id, 0, count(*) FROM contacts GROUP BY workspace_id;

-- Each adds its statement's change per workspace to the workspace's slot of this
-- backend. When a workspace is deleted, its contacts' delete is cascaded from it and
-- its counts are gone with it: nothing is added for a workspace that no longer exists.
CREATE FUNCTION contacts_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_counts AS c (workspace_id, slot, n)
    SELECT workspace_id, pg_backend_pid() % 8, count(*) FROM inserted GROUP BY 1
    ON CONFLICT (workspace_id, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION contacts_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_counts AS c (workspace_id, slot, n)
    SELECT d.workspace_id, pg_backend_pid() % 8, -count(*) FROM deleted d
     WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.workspace_id)
     GROUP BY 1
    ON CONFLICT (workspace_id, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_count_inserted AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_inserted();

CREATE TRIGGER contacts_count_deleted AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_deleted();
