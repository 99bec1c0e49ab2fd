-- W2: segment search. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; SET LOCAL enable_seqscan = off\; SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) AND ((s.name || E'\n' || (CASE WHEN s.description IS NULL THEN '' ELSE s.description END)) ILIKE '%buyers%') ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
