DROP TABLE deleted_contacts;
