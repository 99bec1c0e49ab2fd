-- older servers: keep running: a function they do not call
-- segments_pass_advisory_lock waits until it could take the transaction-level
-- advisory lock (key1, key2) exclusively, then returns true without keeping it: a
-- turnstile. The caller goes on once every transaction that holds the lock, or
-- queued for it before the caller, has let go of it; a transaction that queues for
-- the lock after the caller waits for the caller only for that instant. A select-all
-- change of contacts passes its workspace's lock before it locks them, and a
-- deletion of contacts holds it shared until it ends (store.contactTurnsKey says
-- why).
--
-- The lock is taken in the inner block's subtransaction, which the raised error rolls
-- back, and a subtransaction's locks go with it: nothing stays, after an error or a
-- cancel either, which a session-level lock taken and released by one statement could
-- leave behind on a pooled connection (PgBouncer). The subtransaction writes nothing,
-- so it takes no transaction ID.
CREATE FUNCTION segments_pass_advisory_lock(key1 int, key2 int) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    BEGIN
        PERFORM pg_advisory_xact_lock(key1, key2);
        RAISE SQLSTATE 'SGPAS';
    EXCEPTION WHEN SQLSTATE 'SGPAS' THEN
        RETURN true;
    END;
END
$$;
REVOKE ALL ON FUNCTION segments_pass_advisory_lock(int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_pass_advisory_lock(int, int) TO segments_app;
