DROP FUNCTION segments_contact_search_share(text, text);
DROP FUNCTION segments_sample_contact_search();
DROP TABLE contact_search_sample;
