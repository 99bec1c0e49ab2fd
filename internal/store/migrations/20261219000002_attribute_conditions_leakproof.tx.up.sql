-- older servers: keep running: their statements only plan better
-- The attribute conditions of contact filters (containment @>, the key operator ?)
-- reach their index, contacts_attributes (migration 20261218000001), under row-level
-- security too. PostgreSQL evaluates a query's own conditions after the policy's
-- unless their functions are leakproof, and then cannot use them to pick an index
-- (migration 20261129000001_rls). As the server's role, at 1M contacts, a count of
-- city = Pune (82,986) read the whole table, 31,941 buffers in 403 ms, and one of a
-- key 10,000 contacts have 31,941 in 416 ms; with them leakproof, 432 buffers in 32
-- ms for the key (the owner's plans, which row-level security does not hold back,
-- were these all along, as migration 20261218000001 measured them).
-- jsonb_contains and jsonb_exists are leakproof in effect (no error of theirs shows a
-- row's value), as textlike and the others declared in 20261129000001_rls are.
-- Declaring a function leakproof takes a superuser; an owner that is not gets a
-- warning, and the conditions then read the workspace's contacts as before.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF; -- @>
        ALTER FUNCTION pg_catalog.jsonb_exists(jsonb, text) LEAKPROOF;    -- ?
    ELSE
        RAISE WARNING 'segments: not a superuser, so jsonb_contains and jsonb_exists stay non-leakproof: under row-level security, attribute conditions of contact filters will not use their index (have a superuser run ALTER FUNCTION ... LEAKPROOF on them)';
    END IF;
END $$;
