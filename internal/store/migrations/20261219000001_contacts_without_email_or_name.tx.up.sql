-- older servers: keep running: new indexes they do not use
-- The contacts without an email, and those without a name (ContactFilter.hasEmail,
-- hasName), for their counts: partial indexes of the workspace and the ID of just
-- those contacts. A count of hasEmail: false is an index-only scan of
-- contacts_without_email, and one of hasEmail: true the workspace's counters less it
-- (internal/store/conditions.go, countComplement); hasName likewise. Without them
-- both read every contact of the workspace. contacts_email and contacts_name, which
-- lead with (workspace_id, email IS NULL) and (workspace_id, name IS NULL), find the
-- same contacts but cannot count them from the index alone: PostgreSQL 15 takes an
-- index-only scan only when every column the query names (email) is a column of the
-- index, and neither holds it, only expressions of it; nor does it ever choose the
-- bitmap scan over them that would skip the rows (it costs the rows it skips).
--
-- Measured at 1M contacts (segments bench-data: 142,980 without an email, 40,012
-- without a name), 2026-12-07, EXPLAIN (ANALYZE, BUFFERS) as the server's role, medians
-- of 5 on the 2-core machine shared with other work (load 6-7: the buffers are the
-- steady figure): a count of hasEmail: false read 31,941 buffers (the whole table,
-- 583 ms), now 557 (44 ms); hasEmail: true 31,941 (628 ms), now 559 (67 ms);
-- hasName: false 23,296 (1.7 s), now 160 (13 ms); hasName: true 31,941 (729 ms),
-- now 162 (25 ms). Forced onto contacts_email (no sequential or plain index scans),
-- hasEmail: false read every heap page through a bitmap, 32,366 buffers, 1.5 s.
-- The indexes are 4.4 MB and 1.2 MB (contacts_email is 65 MB) and were built in 0.6
-- and 0.3 s, during which contacts can be read but not written (CREATE INDEX's SHARE
-- lock). Only the contacts without an email or a name have entries: an upsert of
-- 1,000 contacts (1 in 7 without an email, 1 in 25 without a name) wrote 183 records
-- of 22-45 kB into them after a checkpoint, of 15-25 MB in all (contacts_email
-- alone 3.0-3.2 MB); its time, new or updated contacts, did not differ beyond the
-- noise (medians of 10 alternating: 308 and 326 ms new, 484 and 455 updated).
SET LOCAL statement_timeout = 0; -- the builds read every contact

CREATE INDEX contacts_without_email ON contacts (workspace_id, id) WHERE email IS NULL;
CREATE INDEX contacts_without_name ON contacts (workspace_id, id) WHERE name IS NULL;
