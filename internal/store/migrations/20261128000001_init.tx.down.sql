DROP TABLE memberships, contacts, segments, api_keys, workspaces;
DROP FUNCTION memberships_count_inserted(), memberships_count_deleted();
