GRANT DELETE ON segment_catalog_versions TO segments_app;
GRANT UPDATE ON deleted_contacts TO segments_app;
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO segments_app', current_schema());
END $$;
