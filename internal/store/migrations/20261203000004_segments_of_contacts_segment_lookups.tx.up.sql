-- older servers: keep running: a function's body
-- segments_of_contacts looks each segment of the page up by its key too, whatever
-- PostgreSQL expects of the workspace.
--
-- Migration 20261203000002 made each contact of the page a lookup of its own
-- memberships; the page's segments were still joined by the planner. In a workspace
-- the statistics take for a few rows (its import came after the last ANALYZE, beside
-- many small businesses), it expects one segment and one group of memberships, and
-- plans a nested loop over all the workspace's segments that groups the page's
-- memberships again for each: with 200,000 contacts in 200 segments loaded after the
-- last ANALYZE beside 3,300 small workspaces, a contacts page of 50 with their
-- segments read 200 × 690 memberships and took 63 ms of PostgreSQL (the dashboard's
-- contacts table: 25-41 ms end to end, against 5-7 ms once the workspace was
-- analyzed); a workspace of 1,000 segments pays five times that. Each segment is now
-- a lookup of its own (LATERAL, kept out of the join by OFFSET 0): 2.0 ms there. Where
-- the statistics are right, PostgreSQL already looked the segments up so: the
-- benchmark's page of 50 contacts takes 0.69-0.85 ms either way.
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
             GROUP BY ms.segment_id) AS m,
           LATERAL (SELECT g.id, g.name, g.description, g.contact_count, g.created_at, g.updated_at
                      FROM segments AS g
                     WHERE g.workspace_id = ws AND g.id = m.segment_id
                    OFFSET 0) AS s
     ORDER BY lower(s.name), s.id;
END
$$;
