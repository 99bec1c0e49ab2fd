-- W3: contacts page (50) with each contact's segments, random cursors. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; 
INSERT INTO rate_limit_buckets AS b (workspace_id, bucket, tokens, updated_at, granted, taken)
SELECT set_config('app.workspace_id', 1::bigint::text, true)::bigint, 'workspace:1/key:2', n.avail - n.taken, now(), n.granted, n.taken
  FROM (SELECT a.avail, a.avail >= 61 AS granted,
               CASE WHEN a.avail >= 61 THEN 61 + least(1520::float8, a.avail - 61) ELSE 0 END AS taken
          FROM (SELECT 1000000000000::float8 - 91::float8 AS avail) AS a) AS n
ON CONFLICT (workspace_id, bucket) DO UPDATE SET
    granted = least(1000000000000::float8 - 91::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 61,
    taken = CASE WHEN least(1000000000000::float8 - 91::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 61 THEN 61 + least(1520::float8, least(1000000000000::float8 - 91::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 61) ELSE 0 END,
    tokens = least(1000000000000::float8 - 91::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8)
        - CASE WHEN least(1000000000000::float8 - 91::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 61 THEN 61 + least(1520::float8, least(1000000000000::float8 - 91::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 61) ELSE 0 END,
    updated_at = greatest(b.updated_at, now())
RETURNING b.tokens, b.granted, b.taken,
    CASE WHEN b.granted THEN 0 ELSE (61 - b.tokens) / 500::float8 END AS wait_seconds;
SET LOCAL app.workspace_id = '1'\; SELECT p.*, coalesce((SELECT version FROM segment_catalog_versions WHERE workspace_id = 1), 0) AS catalog_version, ARRAY(SELECT x.segment_id FROM memberships AS x WHERE x.workspace_id = 1 AND x.contact_id = p.id)::text AS segment_ids FROM ((SELECT c.*, false AS probe FROM "contacts" AS "c" WHERE (c.workspace_id = 1) AND ((c.created_at, c.id) < ('2024-07-03 11:51:00+00:00'::timestamptz, 531343)) ORDER BY c.created_at DESC, c.id DESC LIMIT 51) UNION ALL (SELECT c.*, true AS probe FROM "contacts" AS "c" WHERE (c.workspace_id = 1) AND ((c.created_at, c.id) >= ('2024-07-03 11:51:00+00:00'::timestamptz, 531343)) ORDER BY c.created_at ASC, c.id ASC LIMIT 1)) AS p;
