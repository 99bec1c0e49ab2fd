-- older servers: stop: foreign keys replaced by triggers
-- Memberships' references checked once per statement instead of once per row (issue
-- #5, W6 and W7). The two foreign keys of 20261128000001_init checked every inserted
-- membership on its own: one lookup of the contact and one of the segment, each a
-- query of its own with a row lock, about 15 µs a row. The insert of an assignment of
-- 1,000 contacts to 100 segments took 3.2-3.8 s with them, 1.6-2.4 s with the check
-- below instead (46 ms of it the check) and 1.4-2.2 s with neither (psql, the
-- benchmark's 1M contacts, the store's locks taken first, the three alternating).
--
-- The triggers below keep what the foreign keys guaranteed:
--   - a membership references a contact and a segment of its own workspace: after each
--     statement that inserts or updates memberships, the distinct contacts and segments
--     it references are looked up (by workspace and id, so another workspace's rows
--     never match) and locked FOR KEY SHARE, the lock a foreign key check takes, so
--     none can be deleted before the transaction ends; one missing fails the statement
--     with SQLSTATE 23503 (foreign_key_violation), as the foreign keys did;
--   - deleting contacts or segments deletes their memberships (the foreign keys' ON
--     DELETE CASCADE), in one statement per delete statement, and the memberships'
--     own delete triggers keep contact_count and the bitmaps exact.
-- The store locks the contacts and segments of a write itself, in id order, before it
-- touches memberships (store/memberships.go): the checks then find every row locked by
-- their own transaction already and wait for nobody.
--
-- Like the counters' and bitmaps' triggers, these run with the rights of the session:
-- under row-level security they see the rows of the session's workspace, which are
-- the only ones its statements can insert or delete. They assume READ COMMITTED (the
-- store's isolation level, PostgreSQL's default): each statement of a trigger sees
-- what committed before it started, so a delete that waited for an assignment's locks
-- finds and deletes the memberships that assignment committed.

ALTER TABLE memberships
    DROP CONSTRAINT memberships_workspace_id_segment_id_fkey,
    DROP CONSTRAINT memberships_workspace_id_contact_id_fkey;

-- Checks the references of the memberships a statement inserted or updated, a
-- workspace at a time (one statement of the API writes one workspace's). DISTINCT in
-- a subquery is hashed; array_agg(DISTINCT) would sort (47 against 16 ms for 100,000
-- rows). The index scan of = ANY(ids) visits, and locks, the rows in id order.
CREATE FUNCTION memberships_references_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws  bigint;
    ids bigint[];
    n   bigint;
BEGIN
    FOR ws, ids IN SELECT workspace_id, array_agg(contact_id) FROM (SELECT DISTINCT workspace_id, contact_id FROM changed) d GROUP BY 1 LOOP
        SELECT count(*) INTO n FROM (
            SELECT FROM contacts c WHERE c.workspace_id = ws AND c.id = ANY(ids) FOR KEY SHARE
        ) locked;
        IF n < cardinality(ids) THEN
            RAISE EXCEPTION 'membership of contact %, which workspace % does not have',
                (SELECT min(i) FROM unnest(ids) i
                  WHERE NOT EXISTS (SELECT FROM contacts c WHERE c.workspace_id = ws AND c.id = i)), ws
                USING ERRCODE = 'foreign_key_violation', TABLE = 'memberships';
        END IF;
    END LOOP;
    FOR ws, ids IN SELECT workspace_id, array_agg(segment_id) FROM (SELECT DISTINCT workspace_id, segment_id FROM changed) d GROUP BY 1 LOOP
        SELECT count(*) INTO n FROM (
            SELECT FROM segments s WHERE s.workspace_id = ws AND s.id = ANY(ids) FOR KEY SHARE
        ) locked;
        IF n < cardinality(ids) THEN
            RAISE EXCEPTION 'membership of segment %, which workspace % does not have',
                (SELECT min(i) FROM unnest(ids) i
                  WHERE NOT EXISTS (SELECT FROM segments s WHERE s.workspace_id = ws AND s.id = i)), ws
                USING ERRCODE = 'foreign_key_violation', TABLE = 'memberships';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- PostgreSQL fires the triggers of one event in the order of their names: "a_" puts
-- the check before the counters' and the bitmaps' triggers, whose work a failed check
-- would throw away (and whose own foreign key, segment_bitmaps' to segments, would
-- otherwise be the one to report an unknown segment).
CREATE TRIGGER memberships_a_references_inserted AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_references_checked();

-- The store never updates memberships (it inserts and deletes them); this covers
-- anyone else who does.
CREATE TRIGGER memberships_a_references_updated AFTER UPDATE ON memberships
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_references_checked();

CREATE FUNCTION contacts_memberships_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memberships m USING deleted d
     WHERE m.workspace_id = d.workspace_id AND m.contact_id = d.id;
    RETURN NULL;
END $$;

CREATE FUNCTION segments_memberships_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memberships m USING deleted d
     WHERE m.workspace_id = d.workspace_id AND m.segment_id = d.id;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_memberships_deleted AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_memberships_deleted();

CREATE TRIGGER segments_memberships_deleted AFTER DELETE ON segments
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION segments_memberships_deleted();

-- The foreign keys also refused to change the key of a contact or segment that
-- memberships referenced. Nothing changes those keys (ids are identities, the store
-- never sets them or workspace_id), so a change is refused outright. Only an UPDATE
-- that names one of the two columns fires it. AFTER, not BEFORE: row-level security
-- refuses a move to another workspace first, with its own error (42501).
CREATE FUNCTION membership_keys_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the workspace_id and id of % % cannot change: memberships may refer to them', TG_TABLE_NAME, OLD.id
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
END $$;

CREATE TRIGGER contacts_keys_kept AFTER UPDATE OF workspace_id, id ON contacts
    FOR EACH ROW WHEN (NEW.workspace_id <> OLD.workspace_id OR NEW.id <> OLD.id)
    EXECUTE FUNCTION membership_keys_kept();

CREATE TRIGGER segments_keys_kept AFTER UPDATE OF workspace_id, id ON segments
    FOR EACH ROW WHEN (NEW.workspace_id <> OLD.workspace_id OR NEW.id <> OLD.id)
    EXECUTE FUNCTION membership_keys_kept();
