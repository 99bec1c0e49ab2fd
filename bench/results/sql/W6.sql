-- W6: assign 100 contacts × 10 segments. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SELECT set_config('app.workspace_id', 1::bigint::text, true);
UPDATE rate_limit_buckets AS b
   SET tokens = least(1000000000000::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8 + v.points),
       updated_at = greatest(b.updated_at, now())
  FROM unnest('{"workspace:1/key:2"}'::text[], '{418}'::float8[]) AS v(bucket, points)
 WHERE b.workspace_id = 1 AND b.bucket = v.bucket;;
SET LOCAL app.workspace_id = '1'\; 
INSERT INTO rate_limit_buckets AS b (workspace_id, bucket, tokens, updated_at, granted, taken)
SELECT set_config('app.workspace_id', 1::bigint::text, true)::bigint, 'workspace:1/key:2', n.avail - n.taken, now(), n.granted, n.taken
  FROM (SELECT a.avail, a.avail >= 12 AS granted,
               CASE WHEN a.avail >= 12 THEN 12 + least(120::float8, a.avail - 12) ELSE 0 END AS taken
          FROM (SELECT 1000000000000::float8 - 0::float8 AS avail) AS a) AS n
ON CONFLICT (workspace_id, bucket) DO UPDATE SET
    granted = least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 12,
    taken = CASE WHEN least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 12 THEN 12 + least(120::float8, least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 12) ELSE 0 END,
    tokens = least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8)
        - CASE WHEN least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 12 THEN 12 + least(120::float8, least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 12) ELSE 0 END,
    updated_at = greatest(b.updated_at, now())
RETURNING b.tokens, b.granted, b.taken,
    CASE WHEN b.granted THEN 0 ELSE (12 - b.tokens) / 500::float8 END AS wait_seconds;
BEGIN\; SET LOCAL app.workspace_id = '1'\; SELECT "id" FROM "contacts" WHERE (workspace_id = 1 AND id = ANY('{1,7920,15839,23758,31677,39596,47515,55434,63353,71272,79191,87110,95029,102948,110867,118786,126705,134624,142543,150462,158381,166300,174219,182138,190057,197976,205895,213814,221733,229652,237571,245490,253409,261328,269247,277166,285085,293004,300923,308842,316761,324680,332599,340518,348437,356356,364275,372194,380113,388032,395951,403870,411789,419708,427627,435546,443465,451384,459303,467222,475141,483060,490979,498898,506817,514736,522655,530574,538493,546412,554331,562250,570169,578088,586007,593926,601845,609764,617683,625602,633521,641440,649359,657278,665197,673116,681035,688954,696873,704792,712711,720630,728549,736468,744387,752306,760225,768144,776063,783982}')) ORDER BY id FOR KEY SHARE;
SET LOCAL app.workspace_id = '1'\; SELECT "id" FROM "segments" WHERE (workspace_id = 1 AND id = ANY('{1001,1008,1015,1022,1029,1036,1043,1050,1057,1064}')) ORDER BY id FOR KEY SHARE;
SET LOCAL app.workspace_id = '1'\; WITH
	span AS (SELECT min(s) AS lowest, max(s) AS highest FROM unnest('{1001,1008,1015,1022,1029,1036,1043,1050,1057,1064}'::bigint[]) AS s),
	existing AS MATERIALIZED (
		SELECT m.*
		  FROM span, unnest('{1,7920,15839,23758,31677,39596,47515,55434,63353,71272,79191,87110,95029,102948,110867,118786,126705,134624,142543,150462,158381,166300,174219,182138,190057,197976,205895,213814,221733,229652,237571,245490,253409,261328,269247,277166,285085,293004,300923,308842,316761,324680,332599,340518,348437,356356,364275,372194,380113,388032,395951,403870,411789,419708,427627,435546,443465,451384,459303,467222,475141,483060,490979,498898,506817,514736,522655,530574,538493,546412,554331,562250,570169,578088,586007,593926,601845,609764,617683,625602,633521,641440,649359,657278,665197,673116,681035,688954,696873,704792,712711,720630,728549,736468,744387,752306,760225,768144,776063,783982}'::bigint[]) AS c(id)
		 CROSS JOIN LATERAL (SELECT segment_id, contact_id FROM memberships
		                      WHERE workspace_id = 1 AND contact_id = c.id
		                        AND (contact_id, segment_id) BETWEEN (c.id, span.lowest) AND (c.id, span.highest)
		                     OFFSET 0) AS m
		 WHERE m.segment_id = ANY('{1001,1008,1015,1022,1029,1036,1043,1050,1057,1064}'::bigint[]))
	INSERT INTO memberships (workspace_id, segment_id, contact_id)
	SELECT 1, s, c FROM unnest('{1001,1008,1015,1022,1029,1036,1043,1050,1057,1064}'::bigint[]) AS s
	 CROSS JOIN LATERAL (SELECT c FROM unnest('{1,7920,15839,23758,31677,39596,47515,55434,63353,71272,79191,87110,95029,102948,110867,118786,126705,134624,142543,150462,158381,166300,174219,182138,190057,197976,205895,213814,221733,229652,237571,245490,253409,261328,269247,277166,285085,293004,300923,308842,316761,324680,332599,340518,348437,356356,364275,372194,380113,388032,395951,403870,411789,419708,427627,435546,443465,451384,459303,467222,475141,483060,490979,498898,506817,514736,522655,530574,538493,546412,554331,562250,570169,578088,586007,593926,601845,609764,617683,625602,633521,641440,649359,657278,665197,673116,681035,688954,696873,704792,712711,720630,728549,736468,744387,752306,760225,768144,776063,783982}'::bigint[]) AS c WHERE s IS NOT NULL OFFSET 0) AS contacts
	 WHERE NOT EXISTS (SELECT FROM existing e WHERE e.segment_id = s AND e.contact_id = c);
COMMIT;
