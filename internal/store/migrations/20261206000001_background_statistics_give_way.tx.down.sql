ALTER FUNCTION segments_workspace_rows() RESET lock_timeout;
ALTER FUNCTION segments_workspace_counts(float8) RESET lock_timeout;
ALTER FUNCTION segments_sample_contact_search() RESET lock_timeout;
ALTER FUNCTION segments_contact_search_trigrams(timestamptz) RESET lock_timeout;
