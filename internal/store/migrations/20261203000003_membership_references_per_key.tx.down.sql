CREATE OR REPLACE FUNCTION memberships_references_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws  bigint;
    ids bigint[];
    n   bigint;
BEGIN
    FOR ws, ids IN SELECT workspace_id, array_agg(contact_id) FROM (SELECT DISTINCT workspace_id, contact_id FROM changed) d GROUP BY 1 LOOP
        SELECT count(*) INTO n FROM (
            SELECT FROM contacts c WHERE c.workspace_id = ws AND c.id = ANY(ids) FOR KEY SHARE
        ) locked;
        IF n < cardinality(ids) THEN
            RAISE EXCEPTION 'membership of contact %, which workspace % does not have',
                (SELECT min(i) FROM unnest(ids) i
                  WHERE NOT EXISTS (SELECT FROM contacts c WHERE c.workspace_id = ws AND c.id = i)), ws
                USING ERRCODE = 'foreign_key_violation', TABLE = 'memberships';
        END IF;
    END LOOP;
    FOR ws, ids IN SELECT workspace_id, array_agg(segment_id) FROM (SELECT DISTINCT workspace_id, segment_id FROM changed) d GROUP BY 1 LOOP
        SELECT count(*) INTO n FROM (
            SELECT FROM segments s WHERE s.workspace_id = ws AND s.id = ANY(ids) FOR KEY SHARE
        ) locked;
        IF n < cardinality(ids) THEN
            RAISE EXCEPTION 'membership of segment %, which workspace % does not have',
                (SELECT min(i) FROM unnest(ids) i
                  WHERE NOT EXISTS (SELECT FROM segments s WHERE s.workspace_id = ws AND s.id = i)), ws
                USING ERRCODE = 'foreign_key_violation', TABLE = 'memberships';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
