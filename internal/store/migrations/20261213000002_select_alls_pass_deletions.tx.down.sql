DROP FUNCTION segments_pass_advisory_lock(int, int);
