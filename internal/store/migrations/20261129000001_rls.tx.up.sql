-- older servers: stop: row-level security, and the role servers connect as
-- Row-level security, the backstop behind the store's own scoping by workspace. The
-- server's queries run as segments_app, a role that is no superuser, cannot bypass
-- row-level security and owns no table; migrations and the administrative commands
-- run as the tables' owner, which the policies do not hold back. Every tenant table
-- shows and accepts only the rows of the workspace in app.workspace_id, which the
-- store sets with SET LOCAL in the transaction of each statement (store/tenant.go).
-- Outside such a transaction the setting is unset or '' (it reads '' once a SET LOCAL
-- ended), and NULLIF makes both match no row.
--
-- The role is created here (without login) when missing, which needs CREATEROLE; on
-- a server where the owner lacks it, create the role first. The store gives it a
-- login when the server starts (store.AppURL).
DO $$
BEGIN
    CREATE ROLE segments_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- it exists (roles belong to the whole server), or another database's migration made it just now
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO segments_app', current_schema());
END $$;

-- Only what the API does. Workspaces and API keys are made and managed by the
-- administrative commands; the API reads its own workspace, and finds a key by its
-- hash through segments_authenticate_key below.
GRANT SELECT ON workspaces TO segments_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON segments, contacts, memberships, idempotency_keys TO segments_app;

ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON workspaces
    USING (id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'segments', 'contacts', 'memberships', 'idempotency_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY workspace_isolation ON %I
            USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
            WITH CHECK (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)$p$, t);
    END LOOP;
END $$;

-- Authentication finds a key by its hash before the workspace is known: the one
-- lookup that must cross workspaces, narrowed to a function that runs as the owner
-- and answers only for a working key whose hash the caller already has. It records
-- the key's last use at most once per `granularity` (see store.AuthenticateKey).
CREATE FUNCTION segments_authenticate_key(p_key_hash bytea, p_granularity_us bigint)
RETURNS TABLE (
    workspace_id bigint, id bigint, prefix text, name text, scope text,
    expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz,
    replaced_by bigint, created_at timestamptz,
    workspace_name text, workspace_created_at timestamptz
) LANGUAGE sql SECURITY DEFINER AS $$
    WITH k AS (
        SELECT k.workspace_id, k.id, k.prefix, k.name, k.scope, k.expires_at, k.last_used_at,
               k.revoked_at, k.replaced_by, k.created_at
          FROM api_keys AS k
         WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > now())
         LIMIT 1
    ), used AS (
        UPDATE api_keys AS u SET last_used_at = now()
          FROM k
         WHERE u.workspace_id = k.workspace_id AND u.id = k.id
           AND (u.last_used_at IS NULL OR u.last_used_at < now() - p_granularity_us * interval '1 microsecond')
    )
    SELECT k.workspace_id, k.id, k.prefix, k.name, k.scope, k.expires_at, k.last_used_at,
           k.revoked_at, k.replaced_by, k.created_at, w.name, w.created_at
      FROM k JOIN workspaces AS w ON w.id = k.workspace_id
$$;

-- Expired idempotency keys of every workspace are swept by whichever request's turn it
-- is: the other cross-workspace statement, narrowed the same way (oldest first, at
-- most p_limit; see store.DeleteExpiredIdempotencyKeys).
CREATE FUNCTION segments_delete_expired_idempotency_keys(p_older_than_us bigint, p_limit int)
RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$
    WITH d AS (
        DELETE FROM idempotency_keys
         WHERE (workspace_id, key) IN (
               SELECT workspace_id, key FROM idempotency_keys
                WHERE created_at < now() - p_older_than_us * interval '1 microsecond'
                ORDER BY created_at
                LIMIT p_limit)
        RETURNING 1
    )
    SELECT count(*) FROM d
$$;

-- A SECURITY DEFINER function must not find the caller's objects first.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_authenticate_key(bytea, bigint) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION segments_delete_expired_idempotency_keys(bigint, int) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_authenticate_key(bytea, bigint), segments_delete_expired_idempotency_keys(bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_authenticate_key(bytea, bigint), segments_delete_expired_idempotency_keys(bigint, int) TO segments_app;

-- Tables that later migrations create are granted to the role like these; a table
-- with a workspace_id must also get its policy (a test lists those without one).
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO segments_app', current_schema());
END $$;

-- Under row-level security PostgreSQL evaluates a query's own conditions after the
-- policy's unless they are leakproof, and then cannot use them to pick an index: a
-- search would read the workspace's every contact (measured on 30,000 contacts: 105
-- ms instead of 0.1 ms; 1.3 s instead of 1.3 ms on 200,000). So the functions of the
-- indexed conditions are declared leakproof, which they are in effect (their errors
-- never show a row's value), and the indexed expressions use CASE instead of
-- coalesce, which PostgreSQL always counts as leaky. Declaring a function leakproof
-- takes a superuser; an owner that is not gets a warning, and searches and the NAME
-- order then scan instead of using their indexes.
SET LOCAL statement_timeout = 0; -- the indexes below are rebuilt
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.textcat(text, text) LEAKPROOF;     -- ||
        ALTER FUNCTION pg_catalog.texticlike(text, text) LEAKPROOF;  -- ILIKE
        ALTER FUNCTION pg_catalog.textlike(text, text) LEAKPROOF;    -- LIKE
        ALTER FUNCTION pg_catalog.lower(text) LEAKPROOF;
    ELSE
        RAISE WARNING 'segments: not a superuser, so textcat, texticlike, textlike and lower stay non-leakproof: under row-level security, searches and name ordering will not use their indexes (have a superuser run ALTER FUNCTION ... LEAKPROOF on them)';
    END IF;
END $$;

DROP INDEX contacts_search;
CREATE INDEX contacts_search ON contacts USING gin (workspace_id,
    ((CASE WHEN name IS NULL THEN '' ELSE name END) || E'\n' || phone || E'\n' || (CASE WHEN email IS NULL THEN '' ELSE email END)) gin_trgm_ops);
DROP INDEX contacts_name;
CREATE INDEX contacts_name ON contacts (workspace_id, (name IS NULL), (CASE WHEN name IS NULL THEN '' ELSE lower(name) END), id);
DROP INDEX segments_search;
CREATE INDEX segments_search ON segments USING gin (workspace_id,
    (name || E'\n' || (CASE WHEN description IS NULL THEN '' ELSE description END)) gin_trgm_ops);
