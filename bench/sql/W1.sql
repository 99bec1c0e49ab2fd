-- W1: segment list page (50, with contactCount). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
-- ping;
SELECT * FROM segments_authenticate_key('\xe42a65ccb9d238c26d63e9fc2ccb96ae87273ffab1ba31c9a68ebaafbf2ac970', 60000000);
SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
