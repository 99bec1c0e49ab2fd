DROP TRIGGER memberships_feed_truncated ON memberships;
DROP TRIGGER memberships_feed_deleted ON memberships;
DROP TRIGGER memberships_feed_inserted ON memberships;
DROP FUNCTION memberships_feed_truncated();
DROP FUNCTION memberships_feed_recorded();
DROP TABLE membership_changes;
