SET LOCAL app.workspace_id = '1'; SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = 1) ORDER BY s.created_at DESC, s.id DESC LIMIT 51;
