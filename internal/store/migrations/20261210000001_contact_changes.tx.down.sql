DROP TRIGGER deleted_contacts_change_xid ON deleted_contacts;
DROP TRIGGER contacts_change_xid ON contacts;
DROP FUNCTION set_change_xid();
ALTER TABLE deleted_contacts DROP COLUMN change_xid;
ALTER TABLE contacts DROP COLUMN change_xid;
