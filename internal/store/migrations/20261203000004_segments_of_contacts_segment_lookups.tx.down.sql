-- Back to the page's segments joined by the planner (migration 20261203000002).
CREATE OR REPLACE FUNCTION segments_of_contacts(ws bigint, contact_ids bigint[])
RETURNS TABLE (contacts text, id bigint, name text, description text, contact_count bigint,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT m.contacts, s.id, s.name, s.description, s.contact_count, s.created_at, s.updated_at
      FROM (SELECT ms.segment_id, array_agg(ms.contact_id)::text AS contacts
              FROM (SELECT DISTINCT unnest(contact_ids)) AS c(id),
                   LATERAL (SELECT x.segment_id, x.contact_id
                              FROM memberships AS x
                             WHERE x.workspace_id = ws AND x.contact_id = c.id
                            OFFSET 0) AS ms
             GROUP BY ms.segment_id) AS m
      JOIN segments AS s ON s.workspace_id = ws AND s.id = m.segment_id
     ORDER BY lower(s.name), s.id;
END
$$;
