-- older servers: keep running: functions' settings
-- The store learns the statistics in the background, once a minute (statistics.go),
-- and nothing waits for them. But a statement that waits for a lock keeps the locks
-- it holds: segments_workspace_counts, holding contact_counts and waiting for
-- segments, deadlocked with a TRUNCATE ... CASCADE that held segments and waited for
-- contact_counts, and PostgreSQL broke the deadlock by failing the TRUNCATE (a test's,
-- in CI). A migration that a new server runs while the old ones serve can meet the
-- same. So the functions of that background work wait for a lock at most 100 ms, as
-- segments_analyze_workspaces already does (20261203000001), then fail: the store
-- goes on with what it knew and asks again a minute later.
ALTER FUNCTION segments_workspace_rows() SET lock_timeout = '100ms';
ALTER FUNCTION segments_workspace_counts(float8) SET lock_timeout = '100ms';
ALTER FUNCTION segments_sample_contact_search() SET lock_timeout = '100ms';
ALTER FUNCTION segments_contact_search_trigrams(timestamptz) SET lock_timeout = '100ms';
