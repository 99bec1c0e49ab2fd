-- W8: audience count: any 3 big segments, none 1. The statements our server sent for one request, in order,
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
SELECT c.*, false AS probe FROM "contacts" AS "c" WHERE (c.workspace_id = 1) AND (EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = 1 AND m.contact_id = c.id AND m.segment_id = ANY('{10,8,7}'))) AND (NOT EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = 1 AND m.contact_id = c.id AND m.segment_id = ANY('{3}'))) ORDER BY c.created_at DESC, c.id DESC LIMIT 21;
SELECT count(*) FROM (SELECT DISTINCT contact_id FROM memberships WHERE workspace_id = 1 AND segment_id = ANY('{10,8,7}')) AS a WHERE (NOT EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = 1 AND m.contact_id = a.contact_id AND m.segment_id = ANY('{3}')));
