-- W1: segment list page (50, with contactCount). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
