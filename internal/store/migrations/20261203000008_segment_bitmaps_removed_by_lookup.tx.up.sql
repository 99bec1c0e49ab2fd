-- older servers: keep running: a function's body
-- Removed memberships clear their bits chunk by chunk, each chunk looked up by its key,
-- whatever the statistics say of the workspace.
--
-- memberships_bitmaps_deleted updated and deleted the changed chunks in joins of
-- segment_bitmaps with the chunks removed. Row-level security holds segment_bitmaps to
-- the workspace (the policy's current_setting, which PostgreSQL evaluates when it
-- estimates), and for a workspace that the last ANALYZE did not see, the statistics
-- take that for one row: PostgreSQL read all of the workspace's chunks and tested each
-- against every chunk removed, once for the update and once for the delete. Removing
-- 50 contacts from 10 segments in a workspace of 1M contacts loaded by SQL read its
-- 31,000 chunks 10 times each: 0.6-0.7 s for 500 memberships. Found by lookups first
-- and joined back by address (ctid), the chunks were still hashed against all of the
-- workspace's, which the planner took for one row: 0.38-0.40 s.
--
-- Each changed chunk is now one UPDATE (or DELETE, when no bit is left) by its primary
-- key, the only index of segment_bitmaps, which the statement can only read by all
-- three columns. That costs a statement per chunk (tens of microseconds; a segment of
-- 1M contacts has 31 chunks), where a join is planned once, and holds for any
-- workspace. A chunk that a concurrent transaction changed is updated as a join would
-- have: in its latest version.
CREATE OR REPLACE FUNCTION memberships_bitmaps_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT m.workspace_id, c.segment_id, c.chunk, c.bits
          FROM (SELECT workspace_id, array_agg(segment_id) AS s, array_agg(contact_id) AS c FROM deleted GROUP BY 1) m,
               segment_bitmap_chunks(m.s, m.c) c
    LOOP
        UPDATE segment_bitmaps b SET bits = b.bits & ~r.bits
         WHERE b.workspace_id = r.workspace_id AND b.segment_id = r.segment_id AND b.chunk = r.chunk
           AND bit_count(b.bits & ~r.bits) > 0;
        IF NOT FOUND THEN -- no bit left, or no chunk
            DELETE FROM segment_bitmaps b
             WHERE b.workspace_id = r.workspace_id AND b.segment_id = r.segment_id AND b.chunk = r.chunk;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
