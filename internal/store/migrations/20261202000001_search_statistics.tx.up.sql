-- older servers: keep running: a statistics target
-- The planner's statistics of contacts.search_text keep 1,000 histogram entries, not
-- 100 (issue #5), so that it can tell how many contacts a two-character term
-- matches. Such a term has no trigram to look up, so a page of its matches either
-- walks the contacts in the page's order, testing each, or reads all of them and
-- sorts the matches. PostgreSQL estimates what a LIKE pattern matches from the
-- histogram: the share of its entries that match, and at least 0.01% of the rows.
-- A term that 0.1-1% of the contacts hold hits none of 100 entries more often than
-- not, so it is estimated at 0.01%, and the planner reads everything: 214-336 ms for
-- "zz" (3,232 matches) at 1M contacts, where the walk takes 4 ms. Of all 1,444
-- two-character terms of letters, digits, "." and "@", 787 were planned so (818 read
-- everything, 26 of them rightly: they match nothing); with 1,000 entries 42-49, with
-- 500, 193. It costs each search's planning 0.08 ms (0.046 ms to 0.13 at the
-- median), and ANALYZE of contacts samples 300,000 rows instead of 30,000.
ALTER TABLE contacts ALTER COLUMN search_text SET STATISTICS 1000;
-- The new histogram now rather than at autovacuum's next ANALYZE, which waits for a
-- tenth of the contacts to change: 1.7-2.1 s at 1M contacts.
SET LOCAL statement_timeout = 0;
ANALYZE contacts (search_text);
