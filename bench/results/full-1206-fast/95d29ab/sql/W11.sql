-- W11: contact sync: 20 upserts of 1,000 contacts, 500 new and 500 changed each. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SELECT set_config('app.workspace_id', 1::bigint::text, true);
UPDATE rate_limit_buckets AS b
   SET tokens = least(1000000000000::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8 + v.points),
       updated_at = greatest(b.updated_at, now())
  FROM unnest('{"workspace:1/key:3"}'::text[], '{384}'::float8[]) AS v(bucket, points)
 WHERE b.workspace_id = 1 AND b.bucket = v.bucket;;
SET LOCAL app.workspace_id = '1'; 
INSERT INTO rate_limit_buckets AS b (workspace_id, bucket, tokens, updated_at, granted, taken)
SELECT set_config('app.workspace_id', 1::bigint::text, true)::bigint, 'workspace:1/key:3', n.avail - n.taken, now(), n.granted, n.taken
  FROM (SELECT a.avail, a.avail >= 22 AS granted,
               CASE WHEN a.avail >= 22 THEN 22 + least(220::float8, a.avail - 22) ELSE 0 END AS taken
          FROM (SELECT 1000000000000::float8 - 0::float8 AS avail) AS a) AS n
ON CONFLICT (workspace_id, bucket) DO UPDATE SET
    granted = least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 22,
    taken = CASE WHEN least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 22 THEN 22 + least(220::float8, least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 22) ELSE 0 END,
    tokens = least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8)
        - CASE WHEN least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) >= 22 THEN 22 + least(220::float8, least(1000000000000::float8 - 0::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * 500::float8) - 22) ELSE 0 END,
    updated_at = greatest(b.updated_at, now())
RETURNING b.tokens, b.granted, b.taken,
    CASE WHEN b.granted THEN 0 ELSE (22 - b.tokens) / 500::float8 END AS wait_seconds;
BEGIN; SET LOCAL app.workspace_id = '1'; SELECT "id", "phone", octet_length(attributes::text) AS size FROM "contacts" WHERE (workspace_id = 1 AND phone = ANY('{"+919700000000","+919700000500","+919700000001", … (1000 in all) …,"+919700000999"}')) ORDER BY id FOR NO KEY UPDATE;
SET LOCAL app.workspace_id = '1'; 
			INSERT INTO contacts AS c (workspace_id, phone, name, email, attributes)
			SELECT 1, u.phone, u.name, u.email, CASE WHEN u.set_attributes THEN
		(CASE WHEN u.clear_attributes THEN '{}'::jsonb ELSE '{}'::jsonb END || u.attributes) -
		ARRAY(SELECT e.key FROM jsonb_each(u.attributes) AS e WHERE jsonb_typeof(e.value) = 'null')
		ELSE '{}'::jsonb END
			FROM unnest('{"+919700000000","+919700000500","+919700000001", … (1000 in all) …,"+919700000999"}'::text[], '{"Synced 0","Synced 500","Synced 1", … (1000 in all) …,"Synced 999"}'::text[], '{NULL,"synced500@example.com",NULL, … (1000 in all) …,"synced999@example.com"}'::text[], '{TRUE,TRUE,TRUE, … (1000 in all) …,TRUE}'::bool[], '{FALSE,TRUE,FALSE, … (1000 in all) …,TRUE}'::bool[], '{TRUE,TRUE,TRUE, … (1000 in all) …,TRUE}'::bool[], '{FALSE,FALSE,FALSE, … (1000 in all) …,FALSE}'::bool[], '{"{\"plan\":\"pro\"}","{\"plan\":\"free\",\"source\":\"sync\"}", … (1500 in all) …,\"source\":\"sync\"}"}'::jsonb[])
	AS u(phone, name, email, set_name, set_email, set_attributes, clear_attributes, attributes)
			ORDER BY u.phone
			ON CONFLICT (workspace_id, phone) DO NOTHING
			RETURNING c."workspace_id", c."id", c."phone", c."name", c."email", c."attributes", c."created_at", c."updated_at";
SET LOCAL app.workspace_id = '1'; 
				UPDATE contacts AS c
				SET name = CASE WHEN u.set_name THEN u.name ELSE c.name END, email = CASE WHEN u.set_email THEN u.email ELSE c.email END, attributes = CASE WHEN u.set_attributes THEN
		(CASE WHEN u.clear_attributes THEN '{}'::jsonb ELSE c.attributes END || u.attributes) -
		ARRAY(SELECT e.key FROM jsonb_each(u.attributes) AS e WHERE jsonb_typeof(e.value) = 'null')
		ELSE c.attributes END, updated_at = now()
				FROM unnest('{"+919700000000","+919700000500","+919700000001", … (1000 in all) …,"+919700000999"}'::text[], '{"Synced 0","Synced 500","Synced 1", … (1000 in all) …,"Synced 999"}'::text[], '{NULL,"synced500@example.com",NULL, … (1000 in all) …,"synced999@example.com"}'::text[], '{TRUE,TRUE,TRUE, … (1000 in all) …,TRUE}'::bool[], '{FALSE,TRUE,FALSE, … (1000 in all) …,TRUE}'::bool[], '{TRUE,TRUE,TRUE, … (1000 in all) …,TRUE}'::bool[], '{FALSE,FALSE,FALSE, … (1000 in all) …,FALSE}'::bool[], '{"{\"plan\":\"pro\"}","{\"plan\":\"free\",\"source\":\"sync\"}", … (1500 in all) …,\"source\":\"sync\"}"}'::jsonb[])
	AS u(phone, name, email, set_name, set_email, set_attributes, clear_attributes, attributes)
				WHERE c.workspace_id = 1 AND c.phone = u.phone
				  AND (CASE WHEN u.set_name THEN u.name ELSE c.name END, CASE WHEN u.set_email THEN u.email ELSE c.email END, CASE WHEN u.set_attributes THEN
		(CASE WHEN u.clear_attributes THEN '{}'::jsonb ELSE c.attributes END || u.attributes) -
		ARRAY(SELECT e.key FROM jsonb_each(u.attributes) AS e WHERE jsonb_typeof(e.value) = 'null')
		ELSE c.attributes END) IS DISTINCT FROM (c.name, c.email, c.attributes)
				RETURNING c."workspace_id", c."id", c."phone", c."name", c."email", c."attributes", c."created_at", c."updated_at";
COMMIT;
