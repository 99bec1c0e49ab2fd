-- older servers: keep running: an index they do not use
-- The EMAIL order of contacts (ContactOrderField.EMAIL, internal/store/page.go
-- contactsByEmail): contacts with an email first, by the email lowercased, then by
-- id, as contacts_name serves NAME (CASE, not coalesce: see 20261129000001_rls). The
-- PHONE order needs no index of its own: phones are unique in the workspace, so it
-- orders by the phone alone, which the unique (workspace_id, phone) index serves.
SET LOCAL statement_timeout = 0;
CREATE INDEX contacts_email ON contacts (workspace_id, (email IS NULL), (CASE WHEN email IS NULL THEN '' ELSE lower(email) END), id);
