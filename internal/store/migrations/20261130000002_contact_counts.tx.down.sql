DROP TRIGGER contacts_count_deleted ON contacts;
DROP TRIGGER contacts_count_inserted ON contacts;
DROP FUNCTION contacts_count_deleted();
DROP FUNCTION contacts_count_inserted();
DROP TABLE contact_counts;
