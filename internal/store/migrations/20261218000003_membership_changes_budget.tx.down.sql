-- The functions of 20261217000001 again, and no budget.
CREATE OR REPLACE FUNCTION memberships_feed_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION memberships_feed_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM membership_changes) THEN
        TRUNCATE membership_changes;
    END IF;
    RETURN NULL;
END $$;

DROP FUNCTION membership_changes_pruned(bigint);
DROP TABLE membership_changes_settings;
DROP TABLE membership_changes_budgets;
