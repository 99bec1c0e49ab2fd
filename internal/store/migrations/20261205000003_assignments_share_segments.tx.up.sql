-- older servers: keep running: a function's body
-- Assignments to the same segments run at once.
--
-- An assignment locks its segments FOR KEY SHARE now, not FOR UPDATE (memberships.go,
-- addingToSegments): they cannot be deleted, or lose members, until it commits, but
-- another assignment to them no longer waits for it to commit before it starts its
-- insert. Removals, deletions of contacts and of segments, and the repairs keep their
-- FOR UPDATE, which still waits for every assignment, and is waited for by them.
--
-- What concurrent assignments still share, they lock in one order, chunks before
-- segments, so that none waits for another that waits for it:
--   - the bitmaps' chunks, in (segment, chunk) order: memberships_bitmaps_inserted
--     upserts them as segment_bitmap_chunks emits them, from an aggregate ordered by
--     segment and chunk, for the statement's one workspace. ON CONFLICT DO UPDATE ORs
--     the new bits into the chunk as the other assignment committed it.
--   - the segments' rows, for their counters, in id order: below. The UPDATE alone
--     locked them in the order of its join (a hash of the counted rows), so two
--     assignments sharing segments but no chunk could lock them in opposite orders.
--     The UPDATE then writes only rows the statement holds already, and adds its count
--     to the counter as the other assignment left it (PostgreSQL re-reads an updated row).
CREATE OR REPLACE FUNCTION memberships_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS MATERIALIZED (SELECT workspace_id, segment_id, count(*) AS n FROM inserted GROUP BY 1, 2),
    locked AS MATERIALIZED (
        SELECT s.workspace_id, s.id FROM segments s
         WHERE (s.workspace_id, s.id) IN (SELECT workspace_id, segment_id FROM d)
         ORDER BY s.id FOR NO KEY UPDATE
    )
    UPDATE segments s
       SET contact_count = s.contact_count + d.n, updated_at = now()
      FROM d JOIN locked l ON l.workspace_id = d.workspace_id AND l.id = d.segment_id
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;
