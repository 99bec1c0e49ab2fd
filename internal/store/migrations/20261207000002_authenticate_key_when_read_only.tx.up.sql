-- older servers: keep running: a function's body
-- A read-only database (a hot standby after a failover, default_transaction_read_only
-- for maintenance) refused every request, queries included: authentication records a
-- key's last use, and PostgreSQL refuses a statement with a data-modifying CTE in a
-- read-only transaction even when it would change nothing. The lookup now records the
-- last use only when the transaction may write; keys are let in either way, and their
-- last use is recorded again once the database takes writes.
--
-- CREATE OR REPLACE keeps the function's owner and grants but not its settings: its
-- search_path is set again, as 20261129000001_rls set it.
CREATE OR REPLACE FUNCTION segments_authenticate_key(p_key_hash bytea, p_granularity_us bigint)
RETURNS TABLE (
    workspace_id bigint, id bigint, prefix text, name text, scope text,
    expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz,
    replaced_by bigint, created_at timestamptz,
    workspace_name text, workspace_created_at timestamptz
) LANGUAGE plpgsql SECURITY DEFINER AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT k.workspace_id, k.id, k.prefix, k.name, k.scope, k.expires_at, k.last_used_at,
           k.revoked_at, k.replaced_by, k.created_at, w.name, w.created_at
      FROM api_keys AS k JOIN workspaces AS w ON w.id = k.workspace_id
     WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at > now())
     LIMIT 1;
    IF FOUND AND current_setting('transaction_read_only') = 'off' THEN
        UPDATE api_keys AS u SET last_used_at = now()
          FROM (SELECT k.workspace_id, k.id FROM api_keys AS k
                 WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
                   AND (k.expires_at IS NULL OR k.expires_at > now())
                 LIMIT 1) AS k
         WHERE u.workspace_id = k.workspace_id AND u.id = k.id
           AND (u.last_used_at IS NULL OR u.last_used_at < now() - p_granularity_us * interval '1 microsecond');
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_authenticate_key(bytea, bigint) SET search_path = %I, pg_temp', current_schema());
END $$;
