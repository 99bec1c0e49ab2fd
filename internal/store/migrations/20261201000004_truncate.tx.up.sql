-- older servers: keep running: new triggers
-- TRUNCATE fires no INSERT or DELETE triggers, so it bypassed what keeps
-- contact_count, segment_bitmaps and contact_counts exact; and since 20261201000001
-- replaced the memberships' foreign keys by triggers, also their cascade: TRUNCATE
-- contacts, or TRUNCATE workspaces CASCADE, left every membership behind, referring
-- to contacts that no longer exist, where the foreign keys had refused or cascaded.
-- These triggers make TRUNCATE keep everything derived exact, as DELETE does.
--
-- TRUNCATE empties a table for every workspace at once, so what derives from it is
-- emptied for every workspace too. Only the tables' owner may TRUNCATE them (the
-- application's role has no such privilege), and these run with the owner's rights.
-- A TRUNCATE of several tables, or one that cascades, has all of them open while its
-- AFTER triggers run, and PostgreSQL refuses to truncate a table in use (55006). So
-- the small derived tables are emptied with DELETE, and the memberships, which may be
-- millions, are truncated only when rows are left: when the same command named them
-- too, it has emptied them already (AFTER triggers fire once every table is empty).

-- The counters and bitmaps derived from the memberships.
CREATE FUNCTION memberships_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE segments SET contact_count = 0, updated_at = now() WHERE contact_count <> 0;
    DELETE FROM segment_bitmaps;
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_truncated AFTER TRUNCATE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_truncated();

-- The contacts' counts (beside contacts_count_inserted and contacts_count_deleted).
CREATE FUNCTION contacts_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_count_truncated AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_truncated();

-- The memberships of truncated contacts or segments (beside
-- contacts_memberships_deleted and segments_memberships_deleted, the cascade);
-- memberships_truncated then resets the segments' counters and bitmaps.
CREATE FUNCTION referrers_memberships_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM memberships) THEN
        TRUNCATE memberships;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_memberships_truncated AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION referrers_memberships_truncated();
CREATE TRIGGER segments_memberships_truncated AFTER TRUNCATE ON segments
    FOR EACH STATEMENT EXECUTE FUNCTION referrers_memberships_truncated();
