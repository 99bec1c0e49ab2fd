DROP TRIGGER contacts_deletions_recorded ON contacts;
DROP FUNCTION contacts_deletions_recorded();
