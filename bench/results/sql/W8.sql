-- W8: audience count: any 3 big segments, none 1. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; SELECT coalesce(sum(bit_count(bits)), 0) FROM (
	SELECT chunk,
	       (CASE WHEN a IS NULL THEN ~z ELSE a END) &
	       (CASE WHEN l IS NULL THEN ~z ELSE l END) &
	       ~(CASE WHEN n IS NULL THEN z ELSE n END) AS bits
	FROM (SELECT chunk,
	             bit_or(bits) FILTER (WHERE segment_id = ANY('{10,8,7}')) AS a,
	             bit_and(bits) FILTER (WHERE segment_id = ANY('{}')) AS l,
	             count(*) FILTER (WHERE segment_id = ANY('{}')) AS nl,
	             bit_or(bits) FILTER (WHERE segment_id = ANY('{3}')) AS n,
	             B'0'::bit(32768) AS z
	        FROM segment_bitmaps
	       WHERE workspace_id = 1 AND segment_id = ANY('{10,8,7,3}')
	       GROUP BY chunk) AS g
	WHERE (a IS NOT NULL OR NOT TRUE) AND nl = 0) AS audience;
