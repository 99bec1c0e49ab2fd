DROP INDEX api_keys_id;
ALTER TABLE api_keys
    DROP COLUMN replaced_by,
    DROP COLUMN last_used_at,
    DROP COLUMN expires_at,
    DROP COLUMN scope,
    DROP COLUMN name;
