DROP INDEX contacts_attributes;
