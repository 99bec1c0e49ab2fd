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
-- from a term (lowercased, like search_text). The copy computes them once (about
-- 95 ms at 1M contacts: 4,454 of them), so that each server reads them (1 ms)
-- rather than each computing them. They come from every workspace's contacts, like
-- the share that segments_contact_search_share returns, which tells the
-- application's role the same for any pattern it asks about; the entries stay the
-- owner's.
CREATE UNLOGGED TABLE contact_search_trigrams (
    trigrams text[] NOT NULL,
    -- when contacts were last analyzed, for the histogram the trigrams are from
    analyzed_at timestamptz
);
REVOKE ALL ON contact_search_trigrams FROM segments_app;

-- The copy of 20261202000002, which now keeps the trigrams too: no row when there is
-- no histogram.
CREATE OR REPLACE FUNCTION segments_sample_contact_search() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
DECLARE
    analyzed timestamptz := (SELECT greatest(last_analyze, last_autoanalyze) FROM pg_stat_all_tables
                              WHERE relid = 'contacts'::regclass);
BEGIN
    -- One copy at a time (servers ask on their own), readers not blocked: the table
    -- holds one histogram.
    LOCK TABLE contact_search_sample IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM contact_search_sample WHERE analyzed_at IS NOT DISTINCT FROM analyzed) THEN
        RETURN;
    END IF;
    DELETE FROM contact_search_sample;
    INSERT INTO contact_search_sample (bound, analyzed_at)
    SELECT b, analyzed
      FROM pg_stats AS s, unnest(s.histogram_bounds::text::text[]) AS b
     WHERE s.schemaname = current_schema() AND s.tablename = 'contacts' AND s.attname = 'search_text';
    DELETE FROM contact_search_trigrams;
    INSERT INTO contact_search_trigrams (trigrams, analyzed_at)
    SELECT coalesce(array_agg(DISTINCT t.trigram), '{}'), analyzed
      FROM contact_search_sample AS b,
           generate_series(1, length(b.bound) - 2) AS i,
           substr(b.bound, i, 3) AS t(trigram)
     WHERE t.trigram ~ '^[a-z0-9]{3}$'
    HAVING EXISTS (SELECT 1 FROM contact_search_sample);
END $$;

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
    EXECUTE format('ALTER FUNCTION segments_sample_contact_search() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION segments_contact_search_trigrams(timestamptz) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_contact_search_trigrams(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_contact_search_trigrams(timestamptz) TO segments_app;

-- The trigrams of the copy there is: copied again.
DELETE FROM contact_search_sample;
SELECT segments_sample_contact_search();
