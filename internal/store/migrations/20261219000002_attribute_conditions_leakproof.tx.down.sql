DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) NOT LEAKPROOF;
        ALTER FUNCTION pg_catalog.jsonb_exists(jsonb, text) NOT LEAKPROOF;
    END IF;
END $$;
