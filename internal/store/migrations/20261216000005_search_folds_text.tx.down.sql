SET LOCAL statement_timeout = 0;
ALTER TABLE segments DROP COLUMN search_text; -- and segments_search with it
CREATE INDEX segments_search ON segments USING gin (workspace_id,
    (name || E'\n' || (CASE WHEN description IS NULL THEN '' ELSE description END)) gin_trgm_ops)
    WITH (gin_pending_list_limit = 256);
ALTER TABLE contacts DROP COLUMN search_text; -- and contacts_search with it
ALTER TABLE contacts ADD COLUMN search_text text NOT NULL
    GENERATED ALWAYS AS (lower(coalesce(name, '') || E'\n' || phone || E'\n' || coalesce(email, ''))) STORED;
CREATE INDEX contacts_search ON contacts USING gin (workspace_id, search_text gin_trgm_ops)
    WITH (gin_pending_list_limit = 256);
ALTER TABLE contacts ALTER COLUMN search_text SET STATISTICS 1000;
ANALYZE contacts (search_text);
DELETE FROM contact_search_sample;
SELECT segments_sample_contact_search();
ANALYZE segments;
DROP FUNCTION segments_search_pattern(text);
DROP FUNCTION segments_search_fold(text);
