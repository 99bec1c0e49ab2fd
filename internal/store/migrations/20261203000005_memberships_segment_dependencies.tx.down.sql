DROP STATISTICS IF EXISTS memberships_segment_workspace;
