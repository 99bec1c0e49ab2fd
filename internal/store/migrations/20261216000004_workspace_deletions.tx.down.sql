ALTER POLICY workspace_isolation ON workspaces
    USING (id = NULLIF(current_setting('app.workspace_id', true), '')::bigint);

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

CREATE OR REPLACE FUNCTION contacts_deletions_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws bigint[]; -- the workspaces of the deleted contacts that are not being deleted
BEGIN
    SELECT array_agg(d.workspace_id) INTO ws FROM (SELECT DISTINCT workspace_id FROM gone) d
     WHERE EXISTS (SELECT FROM workspaces w WHERE w.id = d.workspace_id);
    IF ws IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM deleted_contacts WHERE (workspace_id, deleted_at, id) IN (
        SELECT e.workspace_id, e.deleted_at, e.id FROM unnest(ws) l(workspace_id) CROSS JOIN LATERAL (
            SELECT x.workspace_id, x.deleted_at, x.id FROM deleted_contacts x
             WHERE x.workspace_id = l.workspace_id
               AND x.deleted_at < now() - interval '2592000 seconds'
             ORDER BY x.deleted_at, x.id LIMIT 1000) e);
    IF EXISTS (SELECT FROM deleted_contacts x WHERE x.workspace_id = ANY(ws) AND x.deleted_at = now()) THEN
        INSERT INTO deleted_contacts (workspace_id, id, deleted_at)
        SELECT g.workspace_id, g.id, now() FROM gone g WHERE g.workspace_id = ANY(ws)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO deleted_contacts (workspace_id, id, deleted_at)
        SELECT g.workspace_id, g.id, now() FROM gone g WHERE g.workspace_id = ANY(ws);
    END IF;
    RETURN NULL;
END $$;

DROP TABLE workspace_deletions;
