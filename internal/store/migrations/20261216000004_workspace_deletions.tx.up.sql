-- older servers: keep running: a new table; the workspaces' policy and the key lookup, which they share, refuse a workspace being deleted to them as well
-- A workspace is deleted in two steps (store.DeleteWorkspace): cut off at once, then
-- its rows deleted in batches, each a transaction of its own, and the workspace's
-- row last. At 1M contacts and 5M memberships, one DELETE of the workspace's row,
-- its rows cascading, ran 79 s: past the roles' statement_timeout (15 s), so it
-- failed, and without one, a transaction that held every workspace's change feed
-- back for as long (Query.contactChanges lists only what ended before every running
-- transaction began).
--
-- workspace_deletions holds the workspaces being deleted. Its row is the cut-off:
-- committed, the workspace's API keys find no workspace (segments_authenticate_key),
-- and the server's role no longer sees the workspace's row (the policy below), so
-- a session naming it is refused as one naming no workspace (401). Both are shared
-- by every server, those older than this migration too. A separate table rather
-- than a column of workspaces: older servers create workspaces with RETURNING *,
-- and Bun refuses a column their model lacks.
CREATE TABLE workspace_deletions (
    workspace_id bigint PRIMARY KEY REFERENCES workspaces ON DELETE CASCADE,
    started_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE workspace_deletions ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON workspace_deletions
    USING (workspace_id = NULLIF(current_setting('app.workspace_id', true), '')::bigint)
    WITH CHECK (workspace_id = (SELECT NULLIF(current_setting('app.workspace_id', true), '')::bigint));
-- Read by the policy of workspaces, as the role that reads them; written by the
-- administrative commands alone (the owner).
GRANT SELECT ON workspace_deletions TO segments_app;

ALTER POLICY workspace_isolation ON workspaces
    USING (id = NULLIF(current_setting('app.workspace_id', true), '')::bigint
           AND NOT EXISTS (SELECT FROM workspace_deletions d WHERE d.workspace_id = workspaces.id));

-- As 20261207000002's, but for a key of a workspace being deleted.
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
       AND NOT EXISTS (SELECT FROM workspace_deletions AS d WHERE d.workspace_id = k.workspace_id)
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

-- As 20261211000001's, but the contacts of a workspace being deleted are not
-- recorded either, as those of a workspace whose row is deleted were not: no one
-- can read its feed any more, and its batches deleted a million contacts only to
-- record a million deletions to delete after them.
CREATE OR REPLACE FUNCTION contacts_deletions_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws bigint[]; -- the workspaces of the deleted contacts that are not being deleted
BEGIN
    SELECT array_agg(d.workspace_id) INTO ws FROM (SELECT DISTINCT workspace_id FROM gone) d
     WHERE EXISTS (SELECT FROM workspaces w WHERE w.id = d.workspace_id)
       AND NOT EXISTS (SELECT FROM workspace_deletions x WHERE x.workspace_id = d.workspace_id);
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
