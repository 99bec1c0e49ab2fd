DROP FUNCTION segments_of_contacts(bigint, bigint[]);
