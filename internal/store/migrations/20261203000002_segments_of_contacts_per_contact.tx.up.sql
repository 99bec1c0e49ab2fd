-- older servers: keep running: a function's body
-- segments_of_contacts looks each contact's memberships up by the contact, whatever
-- PostgreSQL expects of the workspace.
--
-- PL/pgSQL keeps a generic plan of the function's query once five calls have shown it
-- no dearer than theirs (20261130000003), and a generic plan knows neither the
-- workspace nor the contacts: it expects the average workspace's memberships. In a
-- database of many small businesses that is a few hundred rows, few enough to read
-- them all through the primary key, already in segment_id's order for the GROUP BY,
-- and keep the page's contacts by a filter. For a large workspace that read every one
-- of its memberships at every page of the contacts table: with 2,000 workspaces of 150
-- contacts beside one of 50,000 (204,000 memberships), 1,733 buffers and 49-79 ms a
-- page of 50 contacts, where looking the 50 contacts up takes 151 buffers and about 1
-- ms. The benchmark's database, one workspace, is its own average, and never showed it.
--
-- Each contact is now a lookup of its own (LATERAL, kept out of the join by OFFSET 0),
-- which the index on (workspace_id, contact_id) answers with both columns given: no
-- plan of it can read more than the page's memberships. DISTINCT: a contact named
-- twice is looked up once, as = ANY did.
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
