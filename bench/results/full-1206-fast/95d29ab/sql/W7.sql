-- W7: bulk assignment 10,000 × 100 (1M pairs). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
BEGIN; SET LOCAL app.workspace_id = '1'; SELECT "id" FROM "contacts" WHERE (workspace_id = 1 AND id = ANY('{3,399,1304, … (1000 in all) …,999098}')) ORDER BY id FOR KEY SHARE;
SET LOCAL app.workspace_id = '1'; SELECT "id" FROM "segments" WHERE (workspace_id = 1 AND id = ANY('{1001,1008,1015, … (100 in all) …,1694}')) ORDER BY id FOR KEY SHARE;
SET LOCAL app.workspace_id = '1'; WITH
	span AS (SELECT min(s) AS lowest, max(s) AS highest FROM unnest('{1001,1008,1015, … (100 in all) …,1694}'::bigint[]) AS s),
	existing AS MATERIALIZED (
		SELECT m.*
		  FROM span, unnest('{3,399,1304, … (1000 in all) …,999098}'::bigint[]) AS c(id)
		 CROSS JOIN LATERAL (SELECT segment_id, contact_id FROM memberships
		                      WHERE workspace_id = 1 AND contact_id = c.id
		                        AND (contact_id, segment_id) BETWEEN (c.id, span.lowest) AND (c.id, span.highest)
		                     OFFSET 0) AS m
		 WHERE m.segment_id = ANY('{1001,1008,1015, … (100 in all) …,1694}'::bigint[]))
	INSERT INTO memberships (workspace_id, segment_id, contact_id)
	SELECT 1, s, c FROM unnest('{1001,1008,1015, … (100 in all) …,1694}'::bigint[]) AS s
	 CROSS JOIN LATERAL (SELECT c FROM unnest('{3,399,1304, … (1000 in all) …,999098}'::bigint[]) AS c WHERE s IS NOT NULL OFFSET 0) AS contacts
	 WHERE NOT EXISTS (SELECT FROM existing e WHERE e.segment_id = s AND e.contact_id = c);
COMMIT;
