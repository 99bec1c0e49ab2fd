-- older servers: keep running: a trigger that records what they delete, as newer servers did themselves (ON CONFLICT where such a server recorded it too)
-- Every deletion of contacts is recorded in deleted_contacts, whoever sends it.
--
-- 20261209000001 recorded them in deleteContacts' own statement (a CTE around its
-- DELETE), so only a server that had that statement did: during a rolling upgrade,
-- the older servers, still serving after the new one migrated, deleted contacts that
-- Query.deletedContacts never listed (measured: 132 deleted through a server of
-- 95d29ab after the migration, 0 listed), and no check could tell. A trigger records
-- what any DELETE of contacts deletes: the API's, an older server's, an operator's.
--
-- One call a DELETE statement, reading its transition table: 1,000 contacts cost
-- one INSERT ... SELECT, not 1,000 calls (deleteContacts of 1,000 contacts: median
-- 10.4-11.1 ms, 11.6-12.0 with the CTE; a DELETE of 10,500 contacts by plain SQL,
-- which recorded nothing before: 42-45 ms, 8 before, most of it deleted_contacts'
-- key and foreign key). It also prunes up to 1,000 of the workspace's deletions
-- older than the retention (store.DeletedContactsRetention, 30 days = 2,592,000
-- seconds, which DeletedContacts never lists), as the CTE did, so that every
-- deleting writer keeps the table bounded.
--
-- It runs as the deleting role (no SECURITY DEFINER), as the counters' triggers do:
-- under row-level security, the server's role deletes only the contacts of the
-- workspace in app.workspace_id, and deleted_contacts' policy admits exactly those
-- rows, to a role granted INSERT and DELETE on it (20261209000001); the owner is
-- beneath the policies. A role that may delete contacts but not record them fails
-- its DELETE rather than losing the record.
--
-- Left out: the contacts of a workspace being deleted (the cascade), whose
-- deletions would go with it, and whose insert would fail deleted_contacts' foreign
-- key. TRUNCATE fires no DELETE trigger: it is the owner's (tests, bench-data), and
-- records nothing.
--
-- A deletion already recorded is not recorded again, nor refused: a server of
-- 20261209000001 inserts the same key (workspace, the transaction's now(), id) in its
-- DELETE's own statement, before this trigger fires, and would fail with 23505 for
-- the rest of a rolling upgrade. ON CONFLICT DO NOTHING costs a speculative insert
-- on every row (deleteContacts of 1,000: median 13-16 ms instead of 11.5; 10,500 by
-- plain SQL: 58-63 ms instead of 43-48), so it is taken only when the workspace
-- already has a deletion at this transaction's now(), which one probe of the key
-- finds.
CREATE FUNCTION contacts_deletions_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws bigint[]; -- the workspaces of the deleted contacts that are not being deleted
BEGIN
    SELECT array_agg(d.workspace_id) INTO ws FROM (SELECT DISTINCT workspace_id FROM gone) d
     WHERE EXISTS (SELECT FROM workspaces w WHERE w.id = d.workspace_id);
    IF ws IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM deleted_contacts WHERE (workspace_id, deleted_at, id) IN (
        SELECT e.workspace_id, e.deleted_at, e.id FROM unnest(ws) l(workspace_id) CROSS JOIN LATERAL (
            SELECT x.workspace_id, x.deleted_at, x.id FROM deleted_contacts x
             WHERE x.workspace_id = l.workspace_id
               AND x.deleted_at < now() - interval '2592000 seconds'
             ORDER BY x.deleted_at, x.id LIMIT 1000) e);
    IF EXISTS (SELECT FROM deleted_contacts x WHERE x.workspace_id = ANY(ws) AND x.deleted_at = now()) THEN
        INSERT INTO deleted_contacts (workspace_id, id, deleted_at)
        SELECT g.workspace_id, g.id, now() FROM gone g WHERE g.workspace_id = ANY(ws)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO deleted_contacts (workspace_id, id, deleted_at)
        SELECT g.workspace_id, g.id, now() FROM gone g WHERE g.workspace_id = ANY(ws);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_deletions_recorded AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_deletions_recorded();
