ALTER FUNCTION memberships_references_checked() RESET plan_cache_mode;
