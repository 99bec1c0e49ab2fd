CREATE OR REPLACE FUNCTION memberships_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS MATERIALIZED (SELECT workspace_id, segment_id, count(*) AS n FROM inserted GROUP BY 1, 2)
    UPDATE segments s
       SET contact_count = s.contact_count + d.n, updated_at = now()
      FROM d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;
