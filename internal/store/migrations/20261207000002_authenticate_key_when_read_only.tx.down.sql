CREATE OR REPLACE FUNCTION segments_authenticate_key(p_key_hash bytea, p_granularity_us bigint)
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

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_authenticate_key(bytea, bigint) SET search_path = %I, pg_temp', current_schema());
END $$;
