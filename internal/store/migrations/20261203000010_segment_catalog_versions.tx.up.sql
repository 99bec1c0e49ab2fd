-- older servers: keep running: a new table that triggers keep
-- The version of each workspace's segment catalog: its segments' IDs, names,
-- descriptions and creation times, the part of a segment that only creating,
-- updating or deleting segments changes (not the memberships, which change its
-- contact_count and updated_at).
--
-- A contacts page with each contact's segments read 170 segments by key per page of
-- 50 contacts and sorted them by name: 1.14 ms of PostgreSQL's 1.6 ms for the page
-- (pgbench, the benchmark's dataset), where the page's memberships alone take 0.32 ms.
-- The store now keeps each workspace's catalog in memory, in name order, with the
-- version it read it at, and reads the version with the memberships: the catalog is
-- read again only when the version it holds is older than the one the statement saw.
-- Every server reads the version from here, so a change made through any server, or
-- by SQL, is seen by all at their next page.
--
-- A workspace without a row is at version 0: its first change writes version 1. The
-- triggers bump the version in the transaction of the change, so a version and the
-- catalog it names are committed together. A rename queues a workspace's other
-- segment changes behind it until it commits; segment changes are rare, and the
-- memberships' writers (assignments and removals) never touch this table.
CREATE TABLE segment_catalog_versions (
    workspace_id bigint PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    version      bigint NOT NULL
);
ALTER TABLE segment_catalog_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON segment_catalog_versions
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE ON segment_catalog_versions TO segments_app;

-- Bumps the version of every workspace in changed(workspace_id) that still exists: a
-- workspace's delete cascades to its segments and its version row alike.
CREATE FUNCTION segment_catalog_bump(changed bigint[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO segment_catalog_versions AS v (workspace_id, version)
    SELECT w.id, 1 FROM workspaces w WHERE w.id = ANY (changed)
    ON CONFLICT (workspace_id) DO UPDATE SET version = v.version + 1;
$$;

CREATE FUNCTION segments_catalog_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_catalog_bump(ARRAY(SELECT DISTINCT workspace_id FROM inserted));
    RETURN NULL;
END $$;

CREATE FUNCTION segments_catalog_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_catalog_bump(ARRAY(SELECT DISTINCT workspace_id FROM deleted));
    RETURN NULL;
END $$;

CREATE FUNCTION segments_catalog_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_catalog_bump(ARRAY[NEW.workspace_id]);
    RETURN NULL;
END $$;

-- Everything that truncates segments empties every workspace's catalog.
CREATE FUNCTION segments_catalog_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_catalog_bump(ARRAY(SELECT id FROM workspaces));
    RETURN NULL;
END $$;

CREATE TRIGGER segments_catalog_inserted AFTER INSERT ON segments
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION segments_catalog_inserted();
CREATE TRIGGER segments_catalog_deleted AFTER DELETE ON segments
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION segments_catalog_deleted();
-- Per row, so that the WHEN leaves the counters' updates (contact_count, updated_at)
-- without a trigger call: transition tables cannot go with a column list.
CREATE TRIGGER segments_catalog_updated AFTER UPDATE ON segments
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name
          OR OLD.description IS DISTINCT FROM NEW.description
          OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION segments_catalog_updated();
CREATE TRIGGER segments_catalog_truncated AFTER TRUNCATE ON segments
    FOR EACH STATEMENT EXECUTE FUNCTION segments_catalog_truncated();
