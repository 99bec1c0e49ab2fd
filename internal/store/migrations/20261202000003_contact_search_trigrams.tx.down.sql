DROP FUNCTION segments_contact_search_trigrams(timestamptz);
-- The copy of 20261202000002, without the trigrams.
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
END $$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION segments_sample_contact_search() SET search_path = %I, pg_temp', current_schema());
END $$;
DROP TABLE contact_search_trigrams;
