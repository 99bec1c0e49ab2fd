CREATE OR REPLACE FUNCTION memberships_bitmaps_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH removed AS (
        SELECT m.workspace_id, c.segment_id, c.chunk, c.bits
          FROM (SELECT workspace_id, array_agg(segment_id) AS s, array_agg(contact_id) AS c FROM deleted GROUP BY 1) m,
               segment_bitmap_chunks(m.s, m.c) c
    ), kept AS (
        UPDATE segment_bitmaps b SET bits = b.bits & ~r.bits
          FROM removed r
         WHERE b.workspace_id = r.workspace_id AND b.segment_id = r.segment_id AND b.chunk = r.chunk
           AND bit_count(b.bits & ~r.bits) > 0
    )
    DELETE FROM segment_bitmaps b
     USING removed r
     WHERE b.workspace_id = r.workspace_id AND b.segment_id = r.segment_id AND b.chunk = r.chunk
       AND bit_count(b.bits & ~r.bits) = 0;
    RETURN NULL;
END $$;
