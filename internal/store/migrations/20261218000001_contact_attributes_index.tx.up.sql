-- older servers: keep running: a new index
-- The attribute conditions of contact filters (ContactFilter.attributes): equals and
-- in are containment (@>), exists is the key operator (?), and this index serves
-- both. The default jsonb_ops, not jsonb_path_ops: path_ops is smaller but serves
-- only @>, and exists: true of a key few contacts have read the workspace.
--
-- Measured on segments bench-data (1M contacts, attributes {city, orders, language}:
-- 12 cities, 40 order counts, 10 languages; PostgreSQL 15, 2 cores shared with three
-- other workers, so the times vary 2-3 fold between runs):
--   size: jsonb_ops 9.6 MB, jsonb_path_ops 6.3 MB (contacts_search is 99 MB); built
--   in 2.0 s and 1.9 s (writes of contacts wait meanwhile, SHARE lock);
--   filtered by a value no contact has, or a key none has (exists): a page 170-432
--   ms and a count 196-402 ms without it (every contact read), 0.1-0.2 ms with it
--   (path_ops: the key's 170-432 ms remain);
--   totalCount of city = Pune (83,000): 164 ms without, 52-132 ms with; of city =
--   Pune and language = mr (8,358): 174 ms, 33-51 ms; of a segment of 100,000 and
--   city = Pune: 501 ms, 198-242 ms; pages of such common values: 0.3-20 ms either
--   way (PostgreSQL walks the page's order);
--   a select-all of 41,668 contacts (city = Kochi, orders at most 19): assigned in
--   1.0-1.8 s without, 0.66-1.1 s with;
--   upsertContacts of 1,000 contacts with attributes: 40-190 ms with either index or
--   none, no difference beyond the noise (medians of six updates: none 81-84 ms,
--   jsonb_ops 57-72, path_ops 93-115): the pending list (256 kB, as contacts_search's)
--   takes the new entries, and a search's or a filter's read of it stays bounded.
-- Ranges of numbers (atLeast, atMost) and exists: false use no index: they test every
-- contact the statement reads.
SET LOCAL statement_timeout = 0; -- the build reads every contact

CREATE INDEX contacts_attributes ON contacts USING gin (workspace_id, attributes)
    WITH (gin_pending_list_limit = 256);
