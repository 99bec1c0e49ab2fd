-- W7: bulk assignment 10,000 × 100 (1M pairs). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
begin;
SET LOCAL app.workspace_id = '1'; SELECT "id" FROM "contacts" WHERE (workspace_id = 1 AND id = ANY('{3,7922,15841, … (1000 in all) …,911084}')) ORDER BY id FOR KEY SHARE;
SET LOCAL app.workspace_id = '1'; SELECT "id" FROM "segments" WHERE (workspace_id = 1 AND id = ANY('{50805,50812,50819, … (100 in all) …,51498}')) ORDER BY id FOR UPDATE;
SET LOCAL app.workspace_id = '1'; 
		INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT 1, s, c FROM unnest('{50805,50812,50819, … (100 in all) …,51498}'::bigint[]) AS s CROSS JOIN unnest('{3,7922,15841, … (1000 in all) …,911084}'::bigint[]) AS c
		ON CONFLICT DO NOTHING;
SET LOCAL app.workspace_id = '1'; SELECT "s"."workspace_id", "s"."id", "s"."name", "s"."description", "s"."contact_count", "s"."created_at", "s"."updated_at" FROM "segments" AS "s" WHERE (s.workspace_id = 1 AND s.id = ANY('{50805,50812,50819, … (100 in all) …,51498}'));
commit;
