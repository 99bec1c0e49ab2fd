-- W1: segment list page (50, with contactCount). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
-- ping;
SELECT * FROM segments_authenticate_key('\xdb7ef340fe47cdde5c2c7258d21a3e73b59a09f83a43b65dc70c1235fefb93f8', 60000000);
SET LOCAL app.workspace_id = '1'\; SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
