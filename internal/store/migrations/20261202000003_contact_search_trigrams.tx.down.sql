DROP FUNCTION segments_contact_search_trigrams(timestamptz);
DROP TRIGGER contact_search_trigrams_copied ON contact_search_sample;
DROP FUNCTION contact_search_trigrams_copied();
DROP TABLE contact_search_trigrams;
