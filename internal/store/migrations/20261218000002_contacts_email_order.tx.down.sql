DROP INDEX contacts_email;
