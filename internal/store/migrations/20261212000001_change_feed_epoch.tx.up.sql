-- older servers: keep running: a new table they do not read (their cursors carry no epoch, which reads as epoch 0)
-- The change feed's epoch (Query.contactChanges), and the PostgreSQL cluster it was
-- last seen on. A dump restored into a new cluster starts the transaction IDs again:
-- the rows keep the IDs of the old cluster, above the new one's, which the feed would
-- list only once the new IDs pass them, and every mirror's cursor names a place in
-- the old cluster's order. When the store opens and finds rows stamped ahead of the
-- next transaction ID, it stamps them again and bumps the epoch here
-- (store.RepairChangesAhead); a cursor carries the epoch it was made in, and one of
-- another epoch is refused (RESYNC_REQUIRED), also once the new IDs pass its own.
--
-- One row (one = true). system_identifier is pg_control_system()'s, recorded by the
-- store as it opens (NULL until then): a replica has its primary's, pg_upgrade and a
-- restore another. epoch 0 is the epoch of every cursor made before this table.
CREATE TABLE change_feed_epoch (
    one               boolean PRIMARY KEY DEFAULT true CHECK (one),
    system_identifier bigint,
    epoch             bigint NOT NULL DEFAULT 0
);
INSERT INTO change_feed_epoch DEFAULT VALUES;
-- The server's role reads the epoch with each page of the feed; only the owner, as
-- the store opens, changes it (the schema's default privileges grant the role more).
REVOKE ALL ON change_feed_epoch FROM segments_app;
GRANT SELECT ON change_feed_epoch TO segments_app;
