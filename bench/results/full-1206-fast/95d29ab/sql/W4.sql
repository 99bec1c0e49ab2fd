-- W4: contact search, rare terms. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; SELECT c.*, false AS probe FROM "contacts" AS "c" WHERE (c.workspace_id = 1) AND (c.search_text LIKE lower('%0ar0jh%')) ORDER BY c.created_at DESC, c.id DESC LIMIT 51;
