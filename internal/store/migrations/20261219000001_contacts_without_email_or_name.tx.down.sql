DROP INDEX contacts_without_name;
DROP INDEX contacts_without_email;
