DROP FUNCTION segments_workspace_counts(float8);
