-- older servers: keep running: new functions and a trigger
-- The trigrams of the copy of contacts.search_text's histogram (migration
-- 20261202000002), for the store to tell, without a statement, that PostgreSQL will
-- estimate a search term rare (internal/store/searchsample.go).
--
-- A page of a search (internal/store/searchpages.go, memberpages.go) computes the
-- share of the histogram's entries that hold its term, to choose its way. A term
-- that one of the entries lacks a trigram of is held by none: its share is 0 and the
-- page reads its matches first, which is what PostgreSQL's own plan of the plain
-- statement does with such a term (its floor of 0.01% of the rows). For those terms,
-- the rare ones that partners look up (an email, a tag, a phone), the store sends
-- the plain statement, spared the share's 0.2 ms and the larger statement's
-- planning (2.3 ms through the API at 1M contacts).
--
-- The trigrams are three ASCII letters or digits in a row, as the store cuts them
-- from a term (lowercased, like search_text). They are computed when the copy is
-- written, by a trigger on it (about 95 ms at 1M contacts: 4,454 of them), so that
-- each server reads them (0.4 ms) rather than each computing them. They come from
-- every workspace's contacts, like the share that segments_contact_search_share
-- returns, which tells the application's role the same for any pattern it asks
-- about; the entries stay the owner's.
CREATE UNLOGGED TABLE contact_search_trigrams (
    trigrams text[] NOT NULL,
    -- when contacts were last analyzed, for the histogram the trigrams are from
    analyzed_at timestamptz
);
REVOKE ALL ON contact_search_trigrams FROM segments_app;

-- The copy's trigrams, again after each copy (segments_sample_contact_search, run as
-- the owner, deletes the copy and inserts the new one): no row when the copy is
-- empty (no histogram).
CREATE FUNCTION contact_search_trigrams_copied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_search_trigrams;
    INSERT INTO contact_search_trigrams (trigrams, analyzed_at)
    SELECT coalesce(array_agg(DISTINCT t.trigram), '{}'), min(b.analyzed_at)
      FROM contact_search_sample AS b,
           generate_series(1, length(b.bound) - 2) AS i,
           substr(b.bound, i, 3) AS t(trigram)
     WHERE t.trigram ~ '^[a-z0-9]{3}$'
    HAVING EXISTS (SELECT 1 FROM contact_search_sample);
    RETURN NULL;
END $$;
CREATE TRIGGER contact_search_trigrams_copied AFTER INSERT ON contact_search_sample
    FOR EACH STATEMENT EXECUTE FUNCTION contact_search_trigrams_copied();

-- segments_contact_search_trigrams returns the copy's trigrams, and when contacts
-- were analyzed for it. The store asks once a minute at most; known is the copy it
-- has, for which the trigrams are null: unchanged. No row: there is no copy.
CREATE FUNCTION segments_contact_search_trigrams(known timestamptz)
RETURNS TABLE (analyzed_at timestamptz, trigrams text[])
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT t.analyzed_at, CASE WHEN t.analyzed_at IS DISTINCT FROM known THEN t.trigrams END
      FROM contact_search_trigrams AS t
     LIMIT 1
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_contact_search_trigrams(timestamptz) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_contact_search_trigrams(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_contact_search_trigrams(timestamptz) TO segments_app;

-- The trigrams of the copy there is: copied again.
DELETE FROM contact_search_sample;
SELECT segments_sample_contact_search();
