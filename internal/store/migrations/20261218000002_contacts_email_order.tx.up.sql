-- older servers: keep running: an index they do not use
-- The EMAIL order of contacts (ContactOrderField.EMAIL, internal/store/page.go
-- contactsByEmail): contacts with an email first, by the email lowercased, then by
-- id, as contacts_name serves NAME (CASE, not coalesce: see 20261129000001_rls). The
-- PHONE order needs no index of its own: phones are unique in the workspace, so it
-- orders by the phone alone, which the unique (workspace_id, phone) index serves.
--
-- Measured at 1M contacts (segments bench-data; 857,020 with an email), PostgreSQL
-- 15 on the shared 2-core machine (load 5-7): without it, a first page of 50 by
-- email sorts the workspace, 611-639 ms; with it, 0.21-0.25 ms, 0.35 ms after the
-- 500,000th (by name 0.27 and 0.46). It is 65 MB (contacts_name 47, the phones'
-- unique index 38) and takes 2.4-4.1 s to build, during which contacts can be read
-- but not written (CREATE INDEX's SHARE lock): hence no statement_timeout. Every
-- insert and every update of a contact adds an entry (updated_at is indexed, so no
-- update is HOT): 1,000 new contacts wrote 1.91-2.20 MB of WAL instead of
-- 1.76-1.86, 1,000 updated 2.69-2.74 instead of 2.51-2.59; their statements took
-- 2.6 and 6.6 ms more of about 100 and 185 (medians of 55 paired runs, within the
-- machine's noise).
SET LOCAL statement_timeout = 0;
CREATE INDEX contacts_email ON contacts (workspace_id, (email IS NULL), (CASE WHEN email IS NULL THEN '' ELSE lower(email) END), id);
