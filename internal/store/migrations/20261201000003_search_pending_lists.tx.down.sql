ALTER INDEX contacts_search RESET (gin_pending_list_limit);
ALTER INDEX segments_search RESET (gin_pending_list_limit);
