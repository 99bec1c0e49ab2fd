-- The trigrams of the copy of contacts.search_text's histogram (migration
-- 20261202000002), for the store to tell, without a statement, that PostgreSQL will
-- estimate a search term rare (internal/store/searchsample.go).
--
-- A page of a search (internal/store/searchpages.go) computes the share of the
-- histogram's entries that hold its term, to choose how far to walk the page's order
-- before it sorts the matches. A term that one of the entries lacks a trigram of is
-- held by none: its share is 0 and the page sorts its matches at once, which is what
-- PostgreSQL's own plan of the plain statement does with such a term (its floor of
-- 0.01% of the rows). For those terms, the rare ones that partners look up (an
-- email, a tag, a phone), the store sends the plain statement, spared the share's
-- 0.2 ms and the larger statement's planning (2.3 ms through the API at 1M
-- contacts).
--
-- The trigrams are three ASCII letters or digits in a row, as the store cuts them
-- from a term (lowercased, like search_text). They come from every workspace's
-- contacts, like the share that segments_contact_search_share returns, which tells
-- the application's role the same for any pattern it asks about; the entries stay
-- the owner's. The store asks once a minute at most; known is the copy it has
-- (contact_search_sample.analyzed_at), for which the trigrams are null: unchanged.
-- No row: there is no copy.
CREATE FUNCTION segments_contact_search_trigrams(known timestamptz)
RETURNS TABLE (analyzed_at timestamptz, trigrams text[])
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT s.analyzed_at,
           CASE WHEN s.analyzed_at IS DISTINCT FROM known THEN
               (SELECT coalesce(array_agg(DISTINCT t.trigram), '{}')
                  FROM contact_search_sample AS b,
                       generate_series(1, length(b.bound) - 2) AS i,
                       substr(b.bound, i, 3) AS t(trigram)
                 WHERE t.trigram ~ '^[a-z0-9]{3}$')
           END
      FROM contact_search_sample AS s
     LIMIT 1
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_contact_search_trigrams(timestamptz) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_contact_search_trigrams(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_contact_search_trigrams(timestamptz) TO segments_app;
