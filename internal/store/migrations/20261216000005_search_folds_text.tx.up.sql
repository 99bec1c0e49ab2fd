-- older servers: stop: the searched texts are folded (accents, width, Arabic and Hebrew marks, ς, ı, ł, ß, æ, apostrophes, spaces), and an older server's patterns, lowercased only, no longer match them: its search for "José" finds no "José García"
-- Searches fold what people type differently (the defects: "jose" did not find "José
-- García", "محمد" not "مُحَمَّد" or "مـحـمـد", "שלום" not "שָׁלוֹם", "ヤマダ" not "ﾔﾏﾀﾞ",
-- "123" not "１２３", "πελάτες" not "ΠΕΛΆΤΕΣ", "ışık" not "Işık", "holi\u00a0buyers"
-- not "Holi Buyers", "lodz" not "Łódź", "dang" not "Đặng", "strasse" not "Straße",
-- "zoe o'brien" not "Zoë O’Brien"). One function folds both sides, the searched texts as PostgreSQL
-- stores them and the term in each statement (segments_search_pattern), so that they
-- cannot disagree and Go holds no copy of it:
--
-- - compatibility forms (NFKD): full-width and half-width letters and digits,
--   ligatures (ﬁ), Roman numerals, no-break and other spaces (U+1680, the one space
--   NFKD keeps, by replace());
-- - case (lower(), as before);
-- - the diacritics that people leave out, decomposed by NFKD: the combining marks of
--   Latin, Greek and Cyrillic (U+0300-U+036F: é → e, ё → е, ά → α), Arabic tashkeel
--   (U+064B-U+065F, U+0670) and tatweel (U+0640), Hebrew points and cantillation
--   (U+0591-U+05C7, the marks only: maqaf and sof pasuq are punctuation). Not the vowel
--   signs, viramas and nuktas of Indic scripts, Thai's marks or the kana's voicing
--   marks: those are letters in effect ("प्रिया" is not "परय"), and NFC composes them
--   back, so that "கெ" does not find the "கொ" it is the start of once decomposed;
-- - final sigma ς → σ, dotless ı → i ("I" is lowered to i, and "İ", which NFKD
--   makes I and a combining dot, to i and the dot, which goes with the marks);
-- - the Latin letters that NFKD leaves whole, as people type them without their
--   strokes and ligatures, in the ASCII folding of search engines (PostgreSQL's
--   unaccent rules, Lucene's ASCIIFoldingFilter), capitals lowered first: ł → l, and
--   the middle dot of Catalan's l·l (typed so, or as ŀ, which NFKD makes l·) dropped
--   after an l ("collegi" finds "Col·legi"); đ, ð and ɖ → d ("dang" finds "Đặng",
--   "gudrun" "Guðrún"); ø → o, ħ → h, ŧ → t, ŋ → n; ß → ss, æ → ae, œ → oe, þ → th
--   ("strasse" finds "Straße", "aero" "Ærø"). Not ä → ae nor ü → ue: those are ä and
--   ü without their accents, a, u, as everywhere else;
-- - typographic apostrophes and quotes, which phones' keyboards write for ' and "
--   (iOS's smart punctuation: "O’Brien"): ’ ‘ ‛ ʼ ʻ ′ → ' (and ＇, by NFKD), “ ” „ ‟ → ";
-- - the zero-width characters that names drop (crm.nameText) removed: descriptions,
--   and names stored before names dropped them, hold them.
--
-- A term of these characters alone (a lone U+0301, "ـــ") folds to nothing, or to
-- spaces: the API takes it for no search (crm.NormalizeSearch, whose Go copy of the
-- removed characters a test holds to this function over every code point), as a blank
-- one, where its pattern '%%' matched every contact.
--
-- Text of ASCII alone (octet_length = length) is only lowercased: every other step
-- leaves it as it is. Other text costs about 10 µs a row of a contact (two
-- normalizations, the larger part), against 0.8 for lower(): measured on 100,000 rows
-- of a Devanagari name, a phone and an email. The letters and apostrophes added 2.3
-- µs to that (6.1 → 8.4 on a machine busier than the first measurement's, load 6):
-- a replace() of a character that is not there costs 0.12 µs, a regexp_replace() of a
-- class 0.3, where one translate() of them all cost 3.9 (it compares each character
-- with each it maps). The function is SQL, so PostgreSQL inlines it: on a constant
-- (the term, which Bun writes into the statement) it is computed while planning, and
-- the trigram index sees a plain pattern, as it saw lower()'s.
CREATE FUNCTION segments_search_fold(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN octet_length(t) = length(t) THEN lower(t) ELSE
    normalize(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
        regexp_replace(lower(normalize(t, NFKD)),
            '[\u0300-\u036f\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u0640\u064b-\u065f\u0670\u00ad\u115f\u1160\u180e\u200b\u2060-\u2064\ufeff]',
            '', 'g'),
        E'\u03c2', E'\u03c3'), E'\u0131', 'i'), E'\u1680', ' '),
        E'\u00f8', 'o'), E'\u0127', 'h'), E'\u0167', 't'), E'\u014b', 'n'),
        E'\u00df', 'ss'), E'\u00e6', 'ae'), E'\u0153', 'oe'), E'\u00fe', 'th'),
        '\u0142|l\u00b7', 'l', 'g'), '[\u0111\u00f0\u0256]', 'd', 'g'),
        '[\u2019\u2018\u201b\u02bc\u02bb\u2032]', '''', 'g'), '[\u201c\u201d\u201e\u201f]', '"', 'g'),
    NFC) END;

-- segments_search_pattern is the LIKE pattern of a search term: its folded text
-- anywhere, with %, _ and \ literal. Folded first, escaped after: NFKC makes the
-- full-width ％ a %, which must not become a wildcard.
CREATE FUNCTION segments_search_pattern(term text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '%' || replace(replace(replace(segments_search_fold(term), '\', '\\'), '%', '\%'), '_', '\_') || '%';

-- Contacts: search_text (migration 20261130000004) folded. PostgreSQL 15 cannot change
-- a generated column's expression: the column is made again, which rewrites the table
-- and builds its indexes again, under an ACCESS EXCLUSIVE lock (no reads, no writes).
-- Measured on the benchmark's data (bench-data: 1M contacts, 5M memberships, all
-- ASCII), through `segments migrate`, on 2 cores shared with other work (load 11-19):
-- 83 s and 100 s in two runs; of the same statements with lower() (this migration's
-- down), the rewrite took 19 s, contacts_search 47 s, ANALYZE 2 s. Segments (1,000)
-- take milliseconds. Text other than ASCII costs about 10 s more a million rows to
-- fold. Proportionally, 10M contacts would pause them 15 minutes: an installation that
-- large would rather fill a plain column by a trigger and in batches, build its index
-- CONCURRENTLY, and swap it in by a short migration. After it, VACUUM contacts: the
-- rewritten table has no visibility map, which index-only scans need, and autovacuum
-- counts no change to trigger it (docs/operations.md).
SET LOCAL statement_timeout = 0;
ALTER TABLE contacts DROP COLUMN search_text;
ALTER TABLE contacts ADD COLUMN search_text text NOT NULL
    GENERATED ALWAYS AS (segments_search_fold(coalesce(name, '') || E'\n' || phone || E'\n' || coalesce(email, ''))) STORED;
CREATE INDEX contacts_search ON contacts USING gin (workspace_id, search_text gin_trgm_ops)
    WITH (gin_pending_list_limit = 256); -- as migration 20261201000003 set it
-- As migration 20261202000001 set it, and the histogram and its copy again
-- (20261202000002, 20261202000003): of the folded text.
ALTER TABLE contacts ALTER COLUMN search_text SET STATISTICS 1000;
ANALYZE contacts (search_text);
DELETE FROM contact_search_sample;
SELECT segments_sample_contact_search();

-- Segments: the name and description, folded, kept with the row like the contacts'
-- text, rather than an index on the expression: under row-level security a condition
-- is taken to an index only when its functions are leakproof (migration
-- 20261129000001_rls), and the fold's (normalize, regexp_replace, replace) are not,
-- nor should be declared so; a LIKE of a column needs textlike alone. The newline
-- keeps a term from matching across name and description.
ALTER TABLE segments ADD COLUMN search_text text NOT NULL
    GENERATED ALWAYS AS (segments_search_fold(name || E'\n' || coalesce(description, ''))) STORED;
DROP INDEX segments_search;
CREATE INDEX segments_search ON segments USING gin (workspace_id, search_text gin_trgm_ops)
    WITH (gin_pending_list_limit = 256);
ANALYZE segments;
