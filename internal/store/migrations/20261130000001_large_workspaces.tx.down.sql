DROP FUNCTION segments_large_workspaces(float8);
