-- What PostGraphile needs beyond the tables, in its own schema "segbench" (cmd/segbench
-- runs this before it starts PostGraphile; nothing in schema public changes).
--
-- Search: PostGraphile's filters work on single columns, and only on those an index
-- leads with, while our trigram indexes lead with the workspace. These computed
-- columns are inlinable SQL functions that the planner expands into the indexed
-- column (search_text: the contacts' since migration 20261130000004, the segments'
-- since 20261216000005), so PostGraphile's search uses the same trigram indexes as
-- ours: otherwise it scans the whole table. PostGraphile matches its term with
-- ILIKE, unfolded: the benchmark's terms and texts are ASCII, which folding only
-- lowercases. Each is named "search" (a filter field `search`), as the column itself
-- is already PostGraphile's `searchText`.
CREATE SCHEMA IF NOT EXISTS segbench;

DROP FUNCTION IF EXISTS segbench.contacts_search_text(public.contacts);
CREATE OR REPLACE FUNCTION segbench.contacts_search(c public.contacts) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT c.search_text $$;
COMMENT ON FUNCTION segbench.contacts_search(public.contacts) IS E'@filterable';

DROP FUNCTION IF EXISTS segbench.segments_search_text(public.segments);
CREATE OR REPLACE FUNCTION segbench.segments_search(s public.segments) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT s.search_text $$;
COMMENT ON FUNCTION segbench.segments_search(public.segments) IS E'@filterable';

-- Bulk assignment: PostGraphile has no bulk mutation (createMembership inserts one
-- row per mutation field). A volatile function becomes a mutation: this one does what
-- our assignContactsToSegments does in SQL, minus our validation (unknown IDs fail on
-- the memberships' reference check instead of being reported each): lock the segments
-- in id order FOR KEY SHARE, as our assignments do since migration 20261205000003
-- (concurrent assignments to a segment insert at once; they meet at its chunks and
-- its counter, which the triggers lock in order), then one INSERT ... SELECT of the
-- cross product.
CREATE OR REPLACE FUNCTION segbench.assign_contacts_to_segments(workspace_id bigint, contact_ids bigint[], segment_ids bigint[])
    RETURNS integer LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE n integer;
BEGIN
    PERFORM 1 FROM public.segments s
     WHERE s.workspace_id = assign_contacts_to_segments.workspace_id AND s.id = ANY(segment_ids)
     ORDER BY s.id FOR KEY SHARE;
    INSERT INTO public.memberships (workspace_id, segment_id, contact_id)
    SELECT assign_contacts_to_segments.workspace_id, s, c
      FROM unnest(segment_ids) AS s CROSS JOIN unnest(contact_ids) AS c
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Contact sync (W11): PostGraphile has no upsert (createContact inserts one row per
-- mutation field, and fails on a phone the workspace has). This function does in one
-- statement what our upsertContacts does in SQL, minus our validation (phones are
-- not brought into E.164 or checked) and minus writing only what changes: one
-- INSERT ... ON CONFLICT of the contacts in phone order (the order our upsert inserts
-- them in), whose update keeps the name and email not given and merges the
-- attributes given into the stored ones.
CREATE OR REPLACE FUNCTION segbench.upsert_contacts(workspace_id bigint, contacts jsonb)
    RETURNS SETOF public.contacts LANGUAGE sql VOLATILE
    AS $$
    INSERT INTO public.contacts AS c (workspace_id, phone, name, email, attributes)
    SELECT upsert_contacts.workspace_id, x.phone, x.name, x.email, coalesce(x.attributes, '{}')
      FROM jsonb_to_recordset(contacts) AS x(phone text, name text, email text, attributes jsonb)
     ORDER BY x.phone
    ON CONFLICT (workspace_id, phone) DO UPDATE
       SET name = coalesce(excluded.name, c.name),
           email = coalesce(excluded.email, c.email),
           attributes = c.attributes || excluded.attributes,
           updated_at = now()
    RETURNING c.*
$$;
