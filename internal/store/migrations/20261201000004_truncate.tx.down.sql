DROP TRIGGER segments_memberships_truncated ON segments;
DROP TRIGGER contacts_memberships_truncated ON contacts;
DROP TRIGGER contacts_count_truncated ON contacts;
DROP TRIGGER memberships_truncated ON memberships;
DROP FUNCTION referrers_memberships_truncated();
DROP FUNCTION contacts_count_truncated();
DROP FUNCTION memberships_truncated();
