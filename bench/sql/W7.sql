-- W7: bulk assignment 10,000 × 100 (1M pairs). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
WITH k AS (
		    SELECT workspace_id, id, prefix, name, scope, expires_at, last_used_at, revoked_at, replaced_by, created_at
		      FROM api_keys
		     WHERE key_hash = '\x654773c35d14c9a4d50bcafa94a873d62e0fed413c5d9ab59dc3ba6d914004c4' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
		     LIMIT 1
		), used AS (
		    UPDATE api_keys AS u SET last_used_at = now()
		      FROM k
		     WHERE u.workspace_id = k.workspace_id AND u.id = k.id
		       AND (u.last_used_at IS NULL OR u.last_used_at < now() - 60000000::bigint * interval '1 microsecond')
		)
		SELECT k.*, w.name AS workspace_name, w.created_at AS workspace_created_at
		  FROM k JOIN workspaces AS w ON w.id = k.workspace_id;
begin;
SELECT "id" FROM "segments" WHERE (workspace_id = 1 AND id = ANY('{1001,1008,1015, … (100 in all) …,1694}')) ORDER BY id FOR UPDATE;
SELECT "id" FROM "contacts" WHERE (workspace_id = 1 AND id = ANY('{3,7922,15841, … (1000 in all) …,911084}')) FOR KEY SHARE;
INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT 1, s, c FROM unnest('{1001,1008,1015, … (100 in all) …,1694}'::bigint[]) AS s CROSS JOIN unnest('{3,7922,15841, … (1000 in all) …,911084}'::bigint[]) AS c
		ON CONFLICT DO NOTHING;
SELECT "s"."workspace_id", "s"."id", "s"."name", "s"."description", "s"."contact_count", "s"."created_at", "s"."updated_at" FROM "segments" AS "s" WHERE (s.workspace_id = 1 AND s.id = ANY('{1001,1008,1015, … (100 in all) …,1694}'));
commit;
