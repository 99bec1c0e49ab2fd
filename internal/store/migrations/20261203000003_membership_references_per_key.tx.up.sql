-- older servers: keep running: a function's body
-- The check of a statement's membership references (20261201000001) looks each
-- contact and segment up by its key, whatever PostgreSQL expects of the workspace.
--
-- The trigger's queries are PL/pgSQL's, whose plans turn generic after five calls:
-- `workspace_id = ws AND id = ANY(ids)` then knows neither the workspace nor the
-- IDs, and expects the average workspace's rows. Beside many small businesses that
-- is few enough to read all of a workspace's segments (or contacts) and keep the
-- statement's by a filter, and a generic plan did so for the segments: with 2,000
-- workspaces of 10 segments beside one of 53, a check of one segment read all 53.
-- For a large workspace beside thousands of tiny ones it would read its every
-- contact at every assignment. Each key is now a lookup of its own (LATERAL), which
-- the primary key answers with both columns given, in the order of the IDs (sorted),
-- so that concurrent checks lock the rows in one order, as the index scan of = ANY
-- did.
CREATE OR REPLACE FUNCTION memberships_references_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws  bigint;
    ids bigint[];
    n   bigint;
BEGIN
    FOR ws, ids IN SELECT workspace_id, array_agg(contact_id ORDER BY contact_id) FROM (SELECT DISTINCT workspace_id, contact_id FROM changed) d GROUP BY 1 LOOP
        SELECT count(*) INTO n
          FROM unnest(ids) AS i(id),
               LATERAL (SELECT FROM contacts c WHERE c.workspace_id = ws AND c.id = i.id FOR KEY SHARE) AS locked;
        IF n < cardinality(ids) THEN
            RAISE EXCEPTION 'membership of contact %, which workspace % does not have',
                (SELECT min(i) FROM unnest(ids) i
                  WHERE NOT EXISTS (SELECT FROM contacts c WHERE c.workspace_id = ws AND c.id = i)), ws
                USING ERRCODE = 'foreign_key_violation', TABLE = 'memberships';
        END IF;
    END LOOP;
    FOR ws, ids IN SELECT workspace_id, array_agg(segment_id ORDER BY segment_id) FROM (SELECT DISTINCT workspace_id, segment_id FROM changed) d GROUP BY 1 LOOP
        SELECT count(*) INTO n
          FROM unnest(ids) AS i(id),
               LATERAL (SELECT FROM segments s WHERE s.workspace_id = ws AND s.id = i.id FOR KEY SHARE) AS locked;
        IF n < cardinality(ids) THEN
            RAISE EXCEPTION 'membership of segment %, which workspace % does not have',
                (SELECT min(i) FROM unnest(ids) i
                  WHERE NOT EXISTS (SELECT FROM segments s WHERE s.workspace_id = ws AND s.id = i)), ws
                USING ERRCODE = 'foreign_key_violation', TABLE = 'memberships';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
