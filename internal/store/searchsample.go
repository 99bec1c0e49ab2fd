package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// Which search terms are rare, told without a statement.
//
// A page of a search estimates in its statement the share of the contacts its term
// matches (searchShare: the share of the 1,000 entries of search_text's histogram
// that hold the term), and chooses its way by it: how far to walk the page's order
// before it sorts the matches (searchPageSelect), or, for a page of segments'
// members, whether to walk, read the members first, or read the matches first
// (twoWayPageSelect). A rare term's share is 0: no entry holds it, and either
// statement reads its matches first, which PostgreSQL's own plan of the plain
// statement does too (it estimates such a term at its floor of 0.01% of the rows).
// Through the API at 1M contacts, an email tag newest first took 4.0 ms with the
// plain statement and 6.3 with the larger one (the share, 0.2 ms, and the larger
// statement's planning); in a segment of 100,000, 7 ms, where the plain one takes
// 4.7.
//
// A term with a trigram that no entry holds is held by none. So the store keeps the
// set of the entries' trigrams (migration 20261202000003_contact_search_trigrams;
// 4,454 of the 46,656 possible at 1M contacts), learned with its other statistics,
// and sends such a term the plain statement (contactsPageSelect). It cuts trigrams
// as three ASCII letters or digits in a row: what a term's trigrams are is then the
// same in Go and in SQL, whatever the database's locale, and a term whose other
// characters the set cannot tell about may only be sent the larger statement,
// never the plain one wrongly. Either way the page is the same; only its cost
// differs. The histogram is of folded text (segments_search_fold, migration
// 20261216000005), and the term's pattern is folded too, in SQL; the trigrams are cut
// from the term as typed. That stays on the safe side: folding keeps ASCII letters
// and digits as lower() does, so each trigram cut from the term is in its folded
// pattern, which may hold more (full-width letters become ASCII) that only the
// larger statement then sees.
//
// The copy is as old as PostgreSQL's own statistics, and at most statisticsTTL
// older: a term that became common since (an import) is sent the plain statement
// until the store learns the new copy, as it was before the store bounded walks.

// trigramSet is a set of trigrams of three ASCII lowercase letters or digits, a bit
// each.
type trigramSet [trigramSpace / 64]uint64

// trigramSpace is how many trigrams of 36 characters there are (a multiple of 64).
const trigramSpace = 36 * 36 * 36

// trigramDigit returns the place of c among the 36 characters of trigrams, or -1.
func trigramDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'Z': // as lower() has it
		return int(c-'A') + 10
	}
	return -1
}

// trigrams calls yield with the index of each trigram of s: of each three ASCII
// letters or digits in a row, case aside.
func trigrams(s string, yield func(int)) {
	for i := 0; i+3 <= len(s); i++ {
		a, b, c := trigramDigit(s[i]), trigramDigit(s[i+1]), trigramDigit(s[i+2])
		if a >= 0 && b >= 0 && c >= 0 {
			yield((a*36+b)*36 + c)
		}
	}
}

// add puts trigram, three characters as trigrams cuts them, in t.
func (t *trigramSet) add(trigram string) {
	trigrams(trigram, func(i int) { t[i/64] |= 1 << (i % 64) })
}

// holdsAll reports whether t holds every trigram of term.
func (t *trigramSet) holdsAll(term string) bool {
	all := true
	trigrams(term, func(i int) { all = all && t[i/64]&(1<<(i%64)) != 0 })
	return all
}

// searchSample is what the store knows of the copy of search_text's histogram:
// when contacts were analyzed for it, and its trigrams; nil trigrams when there is
// no copy.
type searchSample struct {
	analyzedAt time.Time
	trigrams   *trigramSet
}

// querySearchSample returns the trigrams of the copy of the search histogram, or
// known when the copy is the one known has (the database then sends none).
func (s *Store) querySearchSample(ctx context.Context, known searchSample) (searchSample, error) {
	var knownAt sql.NullTime
	if known.trigrams != nil {
		knownAt = sql.NullTime{Time: known.analyzedAt, Valid: true}
	}
	var at sql.NullTime // null when contacts were never analyzed, by the copy
	var list []string
	err := s.db.QueryRowContext(ctx, "SELECT analyzed_at, trigrams FROM segments_contact_search_trigrams(?)", knownAt).
		Scan(&at, pgdialect.Array(&list))
	switch {
	case errors.Is(err, sql.ErrNoRows): // no copy
		return searchSample{}, nil
	case err != nil:
		return known, err
	case known.trigrams != nil && at.Time.Equal(known.analyzedAt):
		return known, nil
	}
	got := searchSample{analyzedAt: at.Time, trigrams: &trigramSet{}}
	for _, t := range list {
		got.trigrams.add(t)
	}
	return got, nil
}

// mayHold reports whether some entry of the search histogram's copy may hold term:
// true unless the store knows a copy and it lacks one of term's trigrams. (The
// other patterns of contactSearchCond lack what the term lacks too: a phone's digits
// hold the term's runs of ASCII digits, and its other digits make no trigram; a whole
// number's E.164 form is some contact's or none, rare either way.)
func (sample searchSample) mayHold(term string) bool {
	return sample.trigrams == nil || sample.trigrams.holdsAll(term)
}
