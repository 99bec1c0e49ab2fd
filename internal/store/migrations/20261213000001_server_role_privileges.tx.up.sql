-- older servers: keep running: tables made from now on grant their role nothing by default, and two privileges no server uses are taken back
-- The schema's default privileges (20261129000001_rls) gave the server's role SELECT,
-- INSERT, UPDATE and DELETE on every table made after it, unless its migration took
-- them away. pg_restore --clean into the database in use makes every table again,
-- under those defaults, and the dump's grants only add to them: the role could then
-- write workspaces, api_keys and change_feed_epoch (restore probe). From here on a new
-- table, made by a migration, a restore or by hand, grants the role nothing: each
-- migration grants what the server needs, as store.appPrivileges declares (a test
-- compares them), and every run of the migrations makes the role's privileges so.
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM segments_app', current_schema());
END $$;
-- What the defaults gave beyond their migrations' grants, and no server uses: the
-- triggers insert into segment_catalog_versions (ON CONFLICT DO UPDATE) and insert
-- into and prune deleted_contacts; a workspace's deletion cascades as the owner.
REVOKE UPDATE ON deleted_contacts FROM segments_app;
REVOKE DELETE ON segment_catalog_versions FROM segments_app;
