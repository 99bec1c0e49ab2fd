-- older servers: keep running: new functions
-- The share of the contacts a search term matches, as PostgreSQL's planner estimates
-- it: from the histogram of contacts.search_text (1,000 entries: migration
-- 20261202000001), the fraction of its entries that hold the term. The store's
-- pages of a search sorted by name use it to choose how far to walk the name order
-- before they sort the matches instead (internal/store/namesearch.go).
--
-- The histogram is a sample of every workspace's contacts, so the application's
-- role never reads it: under row-level security pg_stats shows it nothing of
-- contacts. segments_sample_contact_search, run as the owner, copies the histogram
-- into contact_search_sample, which only the owner can read, when contacts were
-- analyzed since the last copy; segments_contact_search_share, also the owner's,
-- returns a share alone: what EXPLAIN's estimates tell any role that may read
-- contacts. Reading pg_stats' histogram for each search would cost 3 ms (the
-- conversion of its array); the copy takes 0.2 ms to scan.
CREATE UNLOGGED TABLE contact_search_sample (
    bound text NOT NULL,
    -- when contacts were last analyzed, for the histogram the bound is from
    analyzed_at timestamptz
);
REVOKE ALL ON contact_search_sample FROM segments_app;

CREATE FUNCTION segments_sample_contact_search() RETURNS void
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
END $$;

-- segments_contact_search_share returns the share of the sample that holds pattern,
-- or alt_pattern when it is not null (LIKE patterns, lowercased as search_text is),
-- or null when there is no sample.
CREATE FUNCTION segments_contact_search_share(pattern text, alt_pattern text) RETURNS float8
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT (count(*) FILTER (WHERE bound LIKE pattern OR bound LIKE alt_pattern))::float8 / nullif(count(*), 0)
      FROM contact_search_sample
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_sample_contact_search() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION segments_contact_search_share(text, text) SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION segments_sample_contact_search(), segments_contact_search_share(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segments_sample_contact_search(), segments_contact_search_share(text, text) TO segments_app;

SELECT segments_sample_contact_search();
