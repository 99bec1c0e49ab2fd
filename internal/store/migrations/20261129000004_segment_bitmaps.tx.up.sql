-- older servers: keep running: a new table that triggers keep
-- Audience counts from bitmaps (issue #5, W8). Counting "contacts in any of three big
-- segments and in none of a fourth" from memberships reads every membership of the four
-- (400k index entries at 5M memberships), deduplicates and anti-joins them: ~230 ms.
-- segment_bitmaps keeps each segment's members as bitmaps instead, one row per chunk of
-- 32,768 contact IDs, and an audience is a few bitwise ORs, ANDs and bit_counts over a
-- few dozen rows: ~1 ms. Memberships stay the source of truth; the triggers below keep
-- the bitmaps equal to them in the same transaction as every change, like contact_count.
--
-- Sizes at 1M contacts / 1,000 segments / 5M memberships: 31,000 rows, 18 MB (lz4
-- compresses the sparse chunks of small segments to ~250 bytes; a dense chunk is 4 KB,
-- kept inline by STORAGE MAIN rather than moved out of line to TOAST).

SET LOCAL statement_timeout = 0; -- the backfill reads every membership
-- Nobody changes memberships between the backfill and the triggers taking over.
LOCK TABLE memberships IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE segment_bitmaps (
    workspace_id bigint NOT NULL,
    segment_id   bigint NOT NULL,
    -- Contact IDs chunk * 32768 to chunk * 32768 + 32767; bit i (from the left, as
    -- get_bit counts) stands for contact chunk * 32768 + i.
    chunk        bigint NOT NULL,
    bits         bit(32768) COMPRESSION lz4 NOT NULL,
    PRIMARY KEY (workspace_id, segment_id, chunk),
    FOREIGN KEY (workspace_id, segment_id) REFERENCES segments ON DELETE CASCADE
);
ALTER TABLE segment_bitmaps ALTER bits SET STORAGE MAIN;

ALTER TABLE segment_bitmaps ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON segment_bitmaps
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON segment_bitmaps TO segments_app;

-- Concatenates bit strings in the aggregate's order.
CREATE AGGREGATE segment_bits_concat(bit varying) (SFUNC = bitcat, STYPE = bit varying, INITCOND = '');

-- The bitmap chunks of the memberships given as two parallel arrays (segment, contact):
-- one row per segment and chunk. Setting one bit of a 4 KB chunk copies the chunk, so
-- bits are first ORed into 512-bit pieces (64 bytes per copy), and the pieces of a chunk
-- are then concatenated in order with zeros in the gaps: 0.3 µs per membership, where
-- set_bit on whole chunks took 3 µs.
CREATE FUNCTION segment_bitmap_chunks(segment_ids bigint[], contact_ids bigint[])
RETURNS TABLE (segment_id bigint, chunk bigint, bits bit(32768))
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH pieces AS (
        SELECT p.seg, p.contact >> 15 AS ch, (p.contact >> 9) & 63 AS piece,
               bit_or(set_bit(B'0'::bit(512), (p.contact & 511)::int, 1)) AS piece_bits
        FROM unnest(segment_ids, contact_ids) AS p(seg, contact)
        GROUP BY 1, 2, 3
    ), spaced AS (
        SELECT seg, ch, piece, piece_bits,
               piece - coalesce(lag(piece) OVER (PARTITION BY seg, ch ORDER BY piece), -1) - 1 AS gap
        FROM pieces
    ), joined AS (
        SELECT seg, ch,
               segment_bits_concat(substring(B'0'::bit(32768) FROM 1 FOR (gap * 512)::int) || piece_bits ORDER BY piece) AS b
        FROM spaced
        GROUP BY 1, 2
    )
    SELECT seg, ch, (b || substring(B'0'::bit(32768) FROM 1 FOR 32768 - length(b)))::bit(32768)
    FROM joined
$$;

-- The bitmaps follow every insert and delete of memberships, including the deletes
-- cascaded from contacts and segments, in statement-level triggers like the counters'
-- (20261128000001_init). Writers lock the segments they change first, so updates of one
-- segment's chunks never interleave.
CREATE FUNCTION memberships_bitmaps_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO segment_bitmaps AS b (workspace_id, segment_id, chunk, bits)
    SELECT m.workspace_id, c.segment_id, c.chunk, c.bits
      FROM (SELECT workspace_id, array_agg(segment_id) AS s, array_agg(contact_id) AS c FROM inserted GROUP BY 1) m,
           segment_bitmap_chunks(m.s, m.c) c
    ON CONFLICT (workspace_id, segment_id, chunk) DO UPDATE SET bits = b.bits | excluded.bits;
    RETURN NULL;
END $$;

-- A chunk left without members is deleted rather than kept as zeros.
CREATE FUNCTION memberships_bitmaps_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER memberships_bitmaps_inserted AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_bitmaps_inserted();

CREATE TRIGGER memberships_bitmaps_deleted AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_bitmaps_deleted();

-- The memberships already there.
INSERT INTO segment_bitmaps (workspace_id, segment_id, chunk, bits)
SELECT m.workspace_id, c.segment_id, c.chunk, c.bits
  FROM (SELECT workspace_id, array_agg(segment_id) AS s, array_agg(contact_id) AS c FROM memberships GROUP BY 1) m,
       segment_bitmap_chunks(m.s, m.c) c;
