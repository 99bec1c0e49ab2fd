CREATE OR REPLACE FUNCTION segments_of_contacts(ws bigint, contact_ids bigint[])
RETURNS TABLE (contacts text, id bigint, name text, description text, contact_count bigint,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT m.contacts, s.id, s.name, s.description, s.contact_count, s.created_at, s.updated_at
      FROM (SELECT ms.segment_id, array_agg(ms.contact_id)::text AS contacts
              FROM memberships AS ms
             WHERE ms.workspace_id = ws AND ms.contact_id = ANY(contact_ids)
             GROUP BY ms.segment_id) AS m
      JOIN segments AS s ON s.workspace_id = ws AND s.id = m.segment_id
     ORDER BY lower(s.name), s.id;
END
$$;
