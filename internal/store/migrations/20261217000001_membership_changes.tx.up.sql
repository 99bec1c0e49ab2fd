-- older servers: keep running: a new table they do not read, filled by triggers that fire for their writes too (but a workspace an older server deletes leaves its rows here, as no foreign key holds them)
-- The change feed of memberships (Query.membershipChanges): every insert and delete
-- of memberships, recorded by statement-level triggers as rows of
-- (segment, added or removed, up to 1,024 contact IDs ascending), each stamped with
-- its transaction's ID, and listed by (change_xid, id) below the snapshot's xmin
-- horizon as contactChanges lists contacts (store/membershipchanges.go says why a
-- mirror that applies them in order is exact).
--
-- Insert-only: a statement appends its own rows and never updates one, so no
-- transaction waits for another's here (a row per contact, upserted, made an
-- assignment of a few contacts wait for an uncommitted select-all that had stamped
-- them: branch memberfeed2). One row per segment and statement for up to 1,024
-- contacts (W6, 100 contacts to 10 segments: 10 rows), ~98 for a select-all of
-- 100,000: a few rows and index entries where the memberships are 100,000.
--
-- Every path that changes memberships fires them: assignments and removals by IDs or
-- by a selection, createSegment with contacts, the cascades of deleteSegment
-- (segments_memberships_deleted) and of deleteContacts (contacts_memberships_deleted),
-- SQL by hand. Not a workspace being deleted (workspace_deletions,
-- 20261216000004): its batches delete its memberships first, and nobody reads its
-- feed any more; its rows here are deleted in batches too (store.workspaceBatches).
--
-- What the trigger costs (bench-data, 200,000 contacts, the server's role, EXPLAIN
-- ANALYZE, 2 cores shared at load 9-11): an insert of 100,000 memberships (a
-- select-all) 30-100 ms of 2.4-3.7 s, its delete (deleteSegment's cascade) 22-140 ms
-- of 150-810, W7's 1,000 contacts to 100 segments 75-130 ms of 1.9-2.3 s, W6 1-12 ms;
-- through the API, alternating with and without it, the select-all, its removal, W6
-- and W7 moved less than their noise (select-all medians 4.2 and 4.4 s at that load),
-- deleteSegment of 100,000 members 0.20-0.48 s without and 0.37-0.63 s with.
--
-- No foreign keys, as memberships has none (20261201000001): a deleted segment's
-- rows stay, the feed's record of what it had.
CREATE TABLE membership_changes (
    workspace_id bigint      NOT NULL,
    change_xid   xid8        NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    segment_id   bigint      NOT NULL,
    added        boolean     NOT NULL,
    contact_ids  bigint[]    NOT NULL,
    changed_at   timestamptz NOT NULL,
    -- The feed's keyset, as contacts_changes is contacts'.
    PRIMARY KEY (workspace_id, change_xid, id)
);
-- 1,024 IDs are 8 KB, stored out of line and compressed: with lz4 where PostgreSQL has
-- it, 4.1 KB an entry of ascending IDs, in a third of pglz's time (a select-all's 98
-- entries: ~15 ms against ~100, 3.3 KB); pglz, the default, where it has not.
DO $$
BEGIN
    ALTER TABLE membership_changes ALTER COLUMN contact_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
ALTER TABLE membership_changes ENABLE ROW LEVEL SECURITY;
-- As every tenant table's (20261205000002).
CREATE POLICY workspace_isolation ON membership_changes
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
-- The triggers run as the role that changes memberships (no SECURITY DEFINER, as the
-- counters' do): the server's role inserts its workspace's rows, reads them (the feed,
-- the triggers' order check) and prunes them. Never UPDATE: the restore's repair,
-- which stamps rows ahead again, runs as the owner.
REVOKE ALL ON membership_changes FROM segments_app;
GRANT SELECT, INSERT, DELETE ON membership_changes TO segments_app;

-- Records the memberships a statement inserted (TG_OP INSERT) or deleted, in rows of
-- one segment and up to 1,024 contacts, in the statement's order (the store sorts an
-- entry's IDs as it reads it: sorted here, with array_agg's ORDER BY, the slicing of a
-- select-all's 100,000 IDs took 2-3 times as long), then prunes the workspace's rows
-- older than the feed keeps.
--
-- Order check. The feed is read in transaction ID order, which is not the order in
-- which transactions commit: a transaction gets its ID at its first write (the
-- store's first lock of contacts), and may then wait, at a segment's lock or a
-- membership's key, for a younger one that changes the same membership and commits
-- first (an assignment waiting behind a removal of the same contact from the same
-- segment). Listed by ID, the older one's change would come first, and a mirror would
-- end with the younger's. A statement's change of a membership always follows, in
-- time, every committed change of it (two changes of one membership meet at its key
-- or its row, and the later waits for the earlier to commit); so before recording,
-- the trigger looks for committed rows of younger transactions that name one of
-- the statement's memberships, and records its own rows at the youngest of their
-- places instead of its own ID (after them, by the rows' ids, which are drawn as
-- they are written). So for each
-- membership, the feed's order is commit order. A place is never below the
-- transaction's own ID, so the horizon still lists a row only once its transaction
-- has ended, and no row is ever written below a place already listed. (Refusing such
-- a statement with serialization_failure instead, to run again under a younger ID,
-- met the same race again under 8 writers of 8 segments and spent its 5 attempts.)
-- The look is one index range of the workspace's rows younger than the transaction:
-- usually none.
CREATE FUNCTION memberships_feed_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me  xid8 := pg_current_xact_id();
    at  xid8;     -- the place of the statement's rows: me, or after younger ones of its memberships
    later xid8;
    ws  bigint[]; -- the workspaces of the changed memberships that are not being deleted
    w   bigint;
BEGIN
    -- The workspaces changed. Under row-level security (the server's role), the
    -- session's alone, as the policy of memberships lets it change no other; else
    -- read from the rows (hashing a select-all's 100,000: 17-33 ms).
    IF row_security_active('memberships') THEN
        IF NOT EXISTS (SELECT FROM changed) THEN
            RETURN NULL;
        END IF;
        ws := ARRAY[NULLIF(current_setting('app.workspace_id', true), '')::bigint];
    ELSE
        SELECT array_agg(d.workspace_id) INTO ws FROM (SELECT DISTINCT workspace_id FROM changed) d;
    END IF;
    SELECT array_agg(w.id) INTO ws FROM unnest(ws) w(id)
     WHERE w.id IS NOT NULL AND NOT EXISTS (SELECT FROM workspace_deletions x WHERE x.workspace_id = w.id);
    IF ws IS NULL THEN
        RETURN NULL;
    END IF;
    -- The younger rows first, an index range: the changed memberships are read only
    -- when there are some.
    at := me;
    IF EXISTS (SELECT FROM membership_changes y WHERE y.workspace_id = ANY(ws) AND y.change_xid > me) THEN
        SELECT max(y.change_xid) INTO later
          FROM membership_changes y
         CROSS JOIN LATERAL unnest(y.contact_ids) u(contact_id)
          JOIN changed c ON c.workspace_id = y.workspace_id AND c.segment_id = y.segment_id AND c.contact_id = u.contact_id
         WHERE y.workspace_id = ANY(ws) AND y.change_xid > me;
        at := greatest(me, later);
    END IF;
    INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
    SELECT g.workspace_id, at, g.segment_id, TG_OP = 'INSERT', g.ids[i : i + 1023], now()
      FROM (SELECT workspace_id, segment_id, array_agg(contact_id) AS ids
              FROM changed WHERE workspace_id = ANY(ws) GROUP BY 1, 2) g
     CROSS JOIN LATERAL generate_series(1, cardinality(g.ids), 1024) AS i
     ORDER BY g.workspace_id, g.segment_id, i; -- the entries' ids in segment order
    -- Pruning, as contacts_deletions_recorded prunes deleted_contacts: up to 1,000 of
    -- the workspace's rows older than the retention (store.MembershipChangesRetention,
    -- 30 days = 2,592,000 seconds), from the start of the feed's order, once its first
    -- row is that old (else one index probe). One transaction at a time prunes a
    -- workspace (the advisory lock 7264004 and the workspace's ID wrapped into an
    -- int4, as store.contactTurnKey wraps it); the others skip it rather than wait
    -- for its deletes to commit.
    FOREACH w IN ARRAY ws LOOP
        IF (SELECT y.changed_at FROM membership_changes y WHERE y.workspace_id = w
             ORDER BY y.change_xid, y.id LIMIT 1) < now() - interval '2592000 seconds'
           AND pg_try_advisory_xact_lock(7264004, w::bit(32)::int) THEN
            DELETE FROM membership_changes x WHERE x.workspace_id = w AND (x.change_xid, x.id) IN (
                SELECT y.change_xid, y.id FROM membership_changes y WHERE y.workspace_id = w
                 ORDER BY y.change_xid, y.id LIMIT 1000)
               AND x.changed_at < now() - interval '2592000 seconds';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- "feed" sorts after "a_references", "bitmaps" and "count": PostgreSQL fires the
-- triggers of one event in the order of their names, and a failed reference check
-- records nothing.
CREATE TRIGGER memberships_feed_inserted AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_feed_recorded();
CREATE TRIGGER memberships_feed_deleted AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_feed_recorded();

-- TRUNCATE of memberships (the owner's: tests, bench-data; also through TRUNCATE of
-- contacts or segments, referrers_memberships_truncated) records no change: the log
-- is emptied with them, as memberships_truncated resets what derives from them, and
-- a mirror's cursor is then ahead of its workspace's last change, refused
-- (RESYNC_REQUIRED): its sync from the start lists what is left. Truncated only when
-- rows are left, since a TRUNCATE that named it too has it open and empty.
CREATE FUNCTION memberships_feed_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM membership_changes) THEN
        TRUNCATE membership_changes;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_feed_truncated AFTER TRUNCATE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_feed_truncated();
