-- W1: segment list page (50, with contactCount). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
-- ping;
SELECT * FROM segments_authenticate_key('\x0b32e4029e2741b2ef78157585d941968b8cadb496416c8f95051c91ea093aab', 60000000);
SET LOCAL app.workspace_id = '1'\; SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
