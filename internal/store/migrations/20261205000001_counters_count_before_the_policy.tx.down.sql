CREATE OR REPLACE FUNCTION memberships_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE segments s
       SET contact_count = s.contact_count + d.n, updated_at = now()
      FROM (SELECT workspace_id, segment_id, count(*) AS n FROM inserted GROUP BY 1, 2) d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION memberships_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE segments s
       SET contact_count = s.contact_count - d.n, updated_at = now()
      FROM (SELECT workspace_id, segment_id, count(*) AS n FROM deleted GROUP BY 1, 2) d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION contacts_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_counts AS c (workspace_id, slot, n)
    SELECT d.workspace_id, pg_backend_pid() % 8, -count(*) FROM deleted d
     WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.workspace_id)
     GROUP BY 1
    ON CONFLICT (workspace_id, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;
