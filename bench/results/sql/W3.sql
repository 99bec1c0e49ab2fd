-- W3: contacts page (50) with each contact's segments, random cursors. The statements our server sent for one request, in order,
-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.
SET LOCAL app.workspace_id = '1'\; (SELECT c.*, false AS probe FROM "contacts" AS "c" WHERE (c.workspace_id = 1) AND ((c.created_at, c.id) < ('2024-07-03 11:51:00+00:00'::timestamptz, 531343)) ORDER BY c.created_at DESC, c.id DESC LIMIT 51) UNION ALL (SELECT c.*, true AS probe FROM "contacts" AS "c" WHERE (c.workspace_id = 1) AND ((c.created_at, c.id) >= ('2024-07-03 11:51:00+00:00'::timestamptz, 531343)) ORDER BY c.created_at ASC, c.id ASC LIMIT 1);
SET LOCAL app.workspace_id = '1'\; SELECT coalesce((SELECT version FROM segment_catalog_versions WHERE workspace_id = 1), 0), c.id, x.segment_id
  FROM (SELECT DISTINCT unnest('{531342,531341,531340,531339,531338,531337,531336,531335,531334,531333,531332,531331,531330,531329,531328,531327,531326,531325,531324,531323,531322,531321,531320,531319,531318,531317,531316,531315,531314,531313,531312,531311,531310,531309,531308,531307,531306,531305,531304,531303,531302,531301,531300,531299,531298,531297,531296,531295,531294,531293}'::bigint[])) AS c(id),
       LATERAL (SELECT x.segment_id FROM memberships AS x WHERE x.workspace_id = 1 AND x.contact_id = c.id OFFSET 0) AS x;
SET LOCAL app.workspace_id = '1'\; SELECT v.version, coalesce(g.id, 0), coalesce(g.name, ''), g.description, coalesce(g.created_at, 'epoch')
  FROM (SELECT coalesce((SELECT version FROM segment_catalog_versions WHERE workspace_id = 1), 0) AS version) AS v
  LEFT JOIN LATERAL (SELECT id, name, description, created_at FROM segments WHERE workspace_id = 1 ORDER BY lower(name), id LIMIT 10001) AS g ON true;
