ALTER FUNCTION segments_of_contacts(bigint, bigint[]) RESET plan_cache_mode;
