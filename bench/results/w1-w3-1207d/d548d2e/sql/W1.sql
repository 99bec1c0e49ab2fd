-- W1: segment list page (50, with contactCount). The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; 
INSERT INTO rate_limit_buckets AS b (workspace_id, bucket, tokens, updated_at, granted, taken)
SELECT set_config('app.workspace_id', 1::bigint::text, true)::bigint, 'workspace:1/key:7', n.avail - n.taken, now(), n.granted, n.taken
  FROM (SELECT a.avail, a.avail >= 52 AS granted,
               CASE WHEN a.avail >= 52 THEN 52 + least(520::float8, a.avail - 52) ELSE 0 END AS taken
          FROM (SELECT 1000000000000::float8 - 0::float8 AS avail) AS a) AS n
ON CONFLICT (workspace_id, bucket) DO UPDATE SET
    granted = least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 52,
    taken = CASE WHEN least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 52 THEN 52 + least(520::float8, least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 52) ELSE 0 END,
    tokens = least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8)
        - CASE WHEN least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 52 THEN 52 + least(520::float8, least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 52) ELSE 0 END,
    updated_at = greatest(b.updated_at, now())
RETURNING b.tokens, b.granted, b.taken,
    CASE WHEN b.granted THEN 0 ELSE (52 - b.tokens) / 500::float8 END AS wait_seconds;
SET LOCAL app.workspace_id = '1'\; SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
