-- older servers: stop: the triggers now prune a workspace's oldest membership changes early once it keeps more than its budget, and an older server's membershipChanges, which does not know the pruned place, would answer a cursor before it with a silently partial feed instead of RESYNC_REQUIRED
-- A budget of bytes per workspace for the feed of memberships (membership_changes,
-- 20261217000001), besides its 30 days. Within the 30 days its growth was bounded by
-- the rate limits alone: at the defaults one API key assigning W6's 100 contacts to
-- 10 segments nonstop records ~36 GB a day, one assigning 1 contact to 100 segments
-- ~50 GB, one of select-alls as much as the database can write, and a workspace may
-- have any number of keys (docs/operations.md, "The feed's budget"). Once a workspace keeps more than the budget, the triggers that
-- record its changes delete its oldest rows, up to 1,000 a statement, and record the
-- place of the last one deleted (pruned_xid, pruned_id): the feed refuses a cursor
-- before it (RESYNC_REQUIRED), as it refuses one older than the 30 days, rather than
-- list what is left after it.
--
-- A workspace's bytes are counted as its rows are recorded, incrementally, by the
-- transaction that holds its pruning lock: each row as its IDs' stored size
-- (pg_column_size, which reads no TOAST) and 100 bytes for the rest of the row, its
-- line pointer and its index entry. The rows counted are those after the counted
-- place (counted_xid, counted_id) and below the statement's xmin horizon, in the
-- feed's order, at most 10,000 a statement: below the horizon every transaction has
-- ended and no row is ever written again (a row's place is never below its
-- transaction's ID), so each row is counted once, and the rows not yet counted are
-- those of transactions running, or recorded since the last count. Only counted rows
-- are pruned early, from the start of the feed's order.
--
-- One row per workspace that recorded changes since, written only by the transaction
-- holding the workspace's pruning lock (the advisory lock 7264004, which the others
-- skip): no writer waits for another here. Deleted with its workspace (the cascade);
-- reset by a restore's repair (store.RepairChangesAhead), which moves the rows'
-- places, and emptied by TRUNCATE with the feed.
CREATE TABLE membership_changes_budgets (
    workspace_id bigint NOT NULL PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    counted_xid  xid8   NOT NULL DEFAULT '0',
    counted_id   bigint NOT NULL DEFAULT 0,
    kept         bigint NOT NULL DEFAULT 0, -- bytes of the rows up to the counted place
    pruned_xid   xid8   NOT NULL DEFAULT '0',
    pruned_id    bigint NOT NULL DEFAULT 0
);
ALTER TABLE membership_changes_budgets ENABLE ROW LEVEL SECURITY;
-- As every tenant table's (20261205000002).
CREATE POLICY workspace_isolation ON membership_changes_budgets
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
REVOKE ALL ON membership_changes_budgets FROM segments_app;
GRANT SELECT, INSERT, UPDATE ON membership_changes_budgets TO segments_app;

-- The budget in force, one row (one = true), written by serve as it starts
-- (--membership-changes-budget; store.SetMembershipChangesBudget): every writer's
-- triggers read it, SQL by hand too. Without the row, the default, 1 GiB
-- (store.DefaultMembershipChangesBudget); below 0, no budget.
CREATE TABLE membership_changes_settings (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    budget bigint  NOT NULL
);
REVOKE ALL ON membership_changes_settings FROM segments_app;
GRANT SELECT ON membership_changes_settings TO segments_app;

-- Prunes the rows of workspace w: those older than the retention (30 days =
-- 2,592,000 seconds, store.MembershipChangesRetention), up to 1,000 from the start of
-- the feed's order once its first row is that old, as before; counts the rows
-- recorded since the last count (above); and, while the workspace keeps more than
-- its budget, deletes its oldest counted rows, up to 1,000, just enough to keep no
-- more, recording the last one's place. Called by memberships_feed_recorded, as the
-- role that changes memberships; one transaction at a time prunes a workspace (the
-- advisory lock 7264004 and the workspace's ID wrapped into an int4, as
-- store.contactTurnKey wraps it, held to its end), and the others skip it rather
-- than wait for its deletes to commit.
CREATE FUNCTION membership_changes_pruned(w bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    budget bigint := coalesce((SELECT s.budget FROM membership_changes_settings s), 1073741824);
    b      membership_changes_budgets;
    bytes  bigint;
    lx     xid8;
    lid    bigint;
    moved  boolean := false;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7264004, w::bit(32)::int) THEN
        RETURN;
    END IF;
    SELECT * INTO b FROM membership_changes_budgets x WHERE x.workspace_id = w;
    IF NOT FOUND THEN
        b := ROW(w, '0'::xid8, 0, 0, '0'::xid8, 0);
    END IF;
    WITH c AS MATERIALIZED (
        SELECT y.change_xid, y.id, pg_column_size(y.contact_ids) + 100 AS size
          FROM membership_changes y
         WHERE y.workspace_id = w AND (y.change_xid, y.id) > (b.counted_xid, b.counted_id)
           AND y.change_xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY y.change_xid, y.id LIMIT 10000
    )
    SELECT (SELECT sum(c.size) FROM c), l.change_xid, l.id INTO bytes, lx, lid
      FROM (SELECT c.change_xid, c.id FROM c ORDER BY c.change_xid DESC, c.id DESC LIMIT 1) l;
    IF lx IS NOT NULL THEN
        b.kept := b.kept + bytes;
        b.counted_xid := lx;
        b.counted_id := lid;
        moved := true;
    END IF;
    IF (SELECT y.changed_at FROM membership_changes y WHERE y.workspace_id = w
         ORDER BY y.change_xid, y.id LIMIT 1) < now() - interval '2592000 seconds' THEN
        WITH gone AS (
            DELETE FROM membership_changes x WHERE x.workspace_id = w AND (x.change_xid, x.id) IN (
                SELECT y.change_xid, y.id FROM membership_changes y WHERE y.workspace_id = w
                 ORDER BY y.change_xid, y.id LIMIT 1000)
               AND x.changed_at < now() - interval '2592000 seconds'
            RETURNING x.change_xid, x.id, pg_column_size(x.contact_ids) + 100 AS size
        )
        SELECT coalesce(sum(g.size), 0) INTO bytes FROM gone g
         WHERE (g.change_xid, g.id) <= (b.counted_xid, b.counted_id);
        b.kept := b.kept - bytes;
        moved := moved OR bytes > 0;
    END IF;
    IF budget >= 0 AND b.kept > budget THEN
        -- The first rows, in the feed's order, whose bytes before them are below the
        -- excess: the fewest that bring the workspace within its budget.
        WITH first AS (
            SELECT y.change_xid, y.id, pg_column_size(y.contact_ids) + 100 AS size
              FROM membership_changes y
             WHERE y.workspace_id = w AND (y.change_xid, y.id) <= (b.counted_xid, b.counted_id)
             ORDER BY y.change_xid, y.id LIMIT 1000
        ), cut AS (
            SELECT f.change_xid, f.id
              FROM (SELECT f.change_xid, f.id, sum(f.size) OVER (ORDER BY f.change_xid, f.id) - f.size AS before FROM first f) f
             WHERE f.before < b.kept - budget
        ), gone AS (
            DELETE FROM membership_changes x USING cut
             WHERE x.workspace_id = w AND x.change_xid = cut.change_xid AND x.id = cut.id
            RETURNING x.change_xid, x.id, pg_column_size(x.contact_ids) + 100 AS size
        )
        SELECT (SELECT sum(g.size) FROM gone g), l.change_xid, l.id INTO bytes, lx, lid
          FROM (SELECT g.change_xid, g.id FROM gone g ORDER BY g.change_xid DESC, g.id DESC LIMIT 1) l;
        IF lx IS NOT NULL THEN
            b.kept := b.kept - bytes;
            b.pruned_xid := lx;
            b.pruned_id := lid;
            moved := true;
        END IF;
    END IF;
    IF moved THEN
        INSERT INTO membership_changes_budgets (workspace_id, counted_xid, counted_id, kept, pruned_xid, pruned_id)
        VALUES (w, b.counted_xid, b.counted_id, b.kept, b.pruned_xid, b.pruned_id)
            ON CONFLICT (workspace_id) DO UPDATE SET counted_xid = EXCLUDED.counted_xid, counted_id = EXCLUDED.counted_id,
               kept = EXCLUDED.kept, pruned_xid = EXCLUDED.pruned_xid, pruned_id = EXCLUDED.pruned_id;
    END IF;
END $$;

-- As in 20261217000001 (its comments say why), but for the pruning: every statement
-- that records a workspace's changes prunes it (membership_changes_pruned) unless
-- another transaction is pruning it, whatever the age of its first row, as the
-- counting needs; it records nothing for a workspace whose row is gone (a cascade from
-- its deletion); and a statement that changes one segment gathers its IDs faster.
CREATE OR REPLACE FUNCTION memberships_feed_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me  xid8 := pg_current_xact_id();
    at  xid8;     -- the place of the statement's rows: me, or after younger ones of its memberships
    later xid8;
    ws  bigint[]; -- the workspaces of the changed memberships that are not being deleted
    w   bigint;
    s1  bigint;   -- the least and greatest segment changed, of one workspace
    s2  bigint;
    ids bigint[];
BEGIN
    IF row_security_active('memberships') THEN
        IF NOT EXISTS (SELECT FROM changed) THEN
            RETURN NULL;
        END IF;
        ws := ARRAY[NULLIF(current_setting('app.workspace_id', true), '')::bigint];
    ELSE
        SELECT array_agg(d.workspace_id) INTO ws FROM (SELECT DISTINCT workspace_id FROM changed) d;
    END IF;
    -- Nor those whose row is gone: a DELETE of the workspace's row (an older
    -- server's workspace deletion, the owner's by hand) deletes its memberships by
    -- cascade, recorded for no one, and its budget's row first (a foreign key), which
    -- its pruning would write again, refused.
    SELECT array_agg(w.id) INTO ws FROM unnest(ws) w(id)
     WHERE w.id IS NOT NULL AND NOT EXISTS (SELECT FROM workspace_deletions x WHERE x.workspace_id = w.id)
       AND EXISTS (SELECT FROM workspaces x WHERE x.id = w.id);
    IF ws IS NULL THEN
        RETURN NULL;
    END IF;
    at := me;
    IF EXISTS (SELECT FROM membership_changes y WHERE y.workspace_id = ANY(ws) AND y.change_xid > me) THEN
        SELECT max(y.change_xid) INTO later
          FROM membership_changes y
         CROSS JOIN LATERAL unnest(y.contact_ids) u(contact_id)
          JOIN changed c ON c.workspace_id = y.workspace_id AND c.segment_id = y.segment_id AND c.contact_id = u.contact_id
         WHERE y.workspace_id = ANY(ws) AND y.change_xid > me;
        at := greatest(me, later);
    END IF;
    -- One workspace's one segment (a select-all into it, its removal, deleteSegment's
    -- cascade): its IDs gathered by ARRAY() rather than array_agg under a grouping,
    -- which took 28 ms of 100,000 IDs against 8 (in deleteSegment's cascade of
    -- 100,000 members, EXPLAIN ANALYZE, alternating, 2 loaded cores: the trigger
    -- 25-68 ms, median 54, before; 16-47, median 40, after); telling one segment
    -- from several reads the rows once more (min and max).
    IF cardinality(ws) = 1 THEN
        SELECT min(c.segment_id), max(c.segment_id) INTO s1, s2 FROM changed c WHERE c.workspace_id = ws[1];
    END IF;
    IF s1 = s2 THEN
        ids := ARRAY(SELECT c.contact_id FROM changed c WHERE c.workspace_id = ws[1]);
        INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
        SELECT ws[1], at, s1, TG_OP = 'INSERT', ids[i : i + 1023], now()
          FROM generate_series(1, cardinality(ids), 1024) AS i
         ORDER BY i;
    ELSE
        INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
        SELECT g.workspace_id, at, g.segment_id, TG_OP = 'INSERT', g.ids[i : i + 1023], now()
          FROM (SELECT workspace_id, segment_id, array_agg(contact_id) AS ids
                  FROM changed WHERE workspace_id = ANY(ws) GROUP BY 1, 2) g
         CROSS JOIN LATERAL generate_series(1, cardinality(g.ids), 1024) AS i
         ORDER BY g.workspace_id, g.segment_id, i;
    END IF;
    FOREACH w IN ARRAY ws LOOP
        PERFORM membership_changes_pruned(w);
    END LOOP;
    RETURN NULL;
END $$;

-- As in 20261217000001, the workspaces' budgets emptied with the feed (a truncated
-- feed's counted places would be past rows recorded after it).
CREATE OR REPLACE FUNCTION memberships_feed_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM membership_changes) THEN
        TRUNCATE membership_changes;
    END IF;
    IF EXISTS (SELECT FROM membership_changes_budgets) THEN
        TRUNCATE membership_changes_budgets;
    END IF;
    RETURN NULL;
END $$;
