-- older servers: keep running: a new function
-- segments_of_contacts returns the segments that the given contacts of workspace ws
-- are in, one row per segment with those of the contacts in it (the text of an array,
-- "{1,2,3}"), ordered by name: Contact.segments of a page of contacts, in one
-- statement (store.SegmentsOfContacts).
--
-- It is a function for its plan. Sent as a statement, the query is planned at every
-- call, the fifty contacts of a page one by one, which took PostgreSQL 0.4 of the
-- 1.0 ms the statement cost a contacts page of the benchmark (W3). PL/pgSQL keeps
-- the plan of its query for the session, generic in ws and contact_ids once five
-- calls have shown it no dearer than theirs: 0.6 ms. A generic plan suits this
-- query, a join on keys, unlike a search (the design notes' trap with prepared
-- statements).
--
-- It runs as the caller, under row-level security like every statement of the
-- application's role; no SET clause, which would cost each call more than 0.1 ms.
CREATE FUNCTION segments_of_contacts(ws bigint, contact_ids bigint[])
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
REVOKE ALL ON FUNCTION segments_of_contacts(bigint, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_of_contacts(bigint, bigint[]) TO segments_app;
