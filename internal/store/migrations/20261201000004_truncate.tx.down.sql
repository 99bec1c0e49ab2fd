DROP TRIGGER segments_truncated ON segments;
DROP TRIGGER contacts_truncated ON contacts;
DROP TRIGGER memberships_truncated ON memberships;
DROP FUNCTION segments_truncated();
DROP FUNCTION contacts_truncated();
DROP FUNCTION memberships_truncated();
