-- older servers: keep running: a new column with a constant default, set by a trigger for every writer
-- The transaction that last changed each contact, and that recorded each deletion,
-- for Query.contactChanges: a feed ordered by (change_xid, id) and read only below
-- the snapshot's xmin horizon never skips a change, where updated_at and deleted_at
-- (the time a change began) let a change that committed after a reader passed its
-- place go unseen.
--
-- Existing rows read as transaction 0, before every other: the column's default is
-- a constant, which PostgreSQL keeps in the catalog (a "fast default", PostgreSQL
-- 11+), so ADD COLUMN rewrites nothing and holds its lock for milliseconds whatever
-- the table's size. NOT NULL keeps one plain index range per workspace (no IS NULL
-- branch); new and changed rows get their transaction's ID from the trigger, so
-- every writer (the API, segments check --repair, SQL by hand) is caught.
--
-- ADD COLUMN locks the tables (ACCESS EXCLUSIVE) until this transaction commits, so
-- the indexes are the next migration's: their builds take a SHARE lock, under which
-- reads go on.

ALTER TABLE contacts ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE deleted_contacts ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';

-- pg_current_xact_id() is the top-level transaction's ID, the same in every
-- statement and subtransaction of it, and assigns one if the transaction has none.
CREATE FUNCTION set_change_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE TRIGGER contacts_change_xid BEFORE INSERT OR UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION set_change_xid();
CREATE TRIGGER deleted_contacts_change_xid BEFORE INSERT OR UPDATE ON deleted_contacts
    FOR EACH ROW EXECUTE FUNCTION set_change_xid();
