-- older servers: keep running: the same primary key, covering more columns
-- The contacts' primary key holds their created_at and updated_at too (INCLUDE), so
-- that a page of a segment's members read members first in a date order (internal/
-- store/memberpages.go, keyedMembersFirst) finds the members' IDs and sort keys in
-- the key alone, an index-only scan, sorts those, and reads the page's 50 rows last,
-- where it read every member's row and sorted the rows: at 1M contacts, 3 buffers a
-- member against 4, about 0.7 of the time. Members first is how pages of segments of
-- up to about 1,800 members are read (7,100 for an `all` filter or a batch of
-- segments); 711 of the benchmark's 1,000 segments have 890-5,000 members.
--
-- The key grows from 30 to 47 MB at 1M contacts, and takes 1.6-2.1 s to build, while
-- the contacts can be neither read nor written (the ALTER TABLE's ACCESS EXCLUSIVE
-- lock). With no statement_timeout: the role's 15 s stopped it from about 7M contacts,
-- and the server could not start (added after it landed, the one edit of a landed
-- migration: it changes no outcome, only lets a big database finish it). Writes pay little more: every update of a contact
-- already inserts a new entry into the key (updated_at is indexed, so no update is
-- HOT), now 16 bytes wider. The NAME order is not covered (a name is up to 200
-- characters): its members-first pages read the rows, as before.
--
-- Row-level security does not prevent the index-only scan: the policies test
-- workspace_id, which the key holds.
SET LOCAL statement_timeout = 0;
ALTER TABLE contacts
    DROP CONSTRAINT contacts_pkey,
    ADD CONSTRAINT contacts_pkey PRIMARY KEY (workspace_id, id) INCLUDE (created_at, updated_at);
