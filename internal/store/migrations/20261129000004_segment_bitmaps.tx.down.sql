DROP TRIGGER memberships_bitmaps_deleted ON memberships;
DROP TRIGGER memberships_bitmaps_inserted ON memberships;
DROP FUNCTION memberships_bitmaps_deleted();
DROP FUNCTION memberships_bitmaps_inserted();
DROP FUNCTION segment_bitmap_chunks(bigint[], bigint[]);
DROP AGGREGATE segment_bits_concat(bit varying);
DROP TABLE segment_bitmaps;
