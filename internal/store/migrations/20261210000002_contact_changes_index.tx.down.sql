DROP INDEX deleted_contacts_changes;
DROP INDEX contacts_changes;
