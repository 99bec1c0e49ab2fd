-- W8: audience count: any 3 big segments, none 1. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SELECT count(*) FROM (SELECT DISTINCT contact_id FROM memberships WHERE workspace_id = 1 AND segment_id = ANY('{10,8,7}')) AS a WHERE (NOT EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = 1 AND m.contact_id = a.contact_id AND m.segment_id = ANY('{3}')));
