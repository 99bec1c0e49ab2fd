ALTER TABLE contacts
    DROP CONSTRAINT contacts_pkey,
    ADD CONSTRAINT contacts_pkey PRIMARY KEY (workspace_id, id);
