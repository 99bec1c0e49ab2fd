SET LOCAL statement_timeout = 0;
DROP INDEX contacts_search;
ALTER TABLE contacts DROP COLUMN search_text;
CREATE INDEX contacts_search ON contacts USING gin (workspace_id,
    ((CASE WHEN name IS NULL THEN '' ELSE name END) || E'\n' || phone || E'\n' || (CASE WHEN email IS NULL THEN '' ELSE email END)) gin_trgm_ops);
