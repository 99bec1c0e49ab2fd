package store

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// A page of a contact search.
//
// PostgreSQL reads a page of a search one of two ways: it walks the contacts in the
// page's order and tests each, or it finds all the matches (the trigram index) and
// sorts them. It walks when it estimates that many contacts match, taking them for
// spread evenly over the order, so that the page fills after a few thousand rows.
// Often they are not:
//   - In the NAME order, a term is nearly always part of a name, and names that
//     share a part sort together. At 1M contacts, "vikram" (25,072 matches, the first
//     names "Vikram ...", which sort late) read 887,589 contacts for its first page:
//     1.1-1.7 s through the API, where sorting its matches takes 36-67 ms. The 40
//     first names of the benchmark's data took up to 1.7 s (median 0.66 s).
//   - In the date orders, contacts that came together share terms: an import from
//     one source, one company's domain, one campaign's tag. At 1M contacts, the
//     oldest 300 or 1,000 given one email domain, newest first, read the 999,000
//     newer contacts for their page: 245-400 ms through the API, where sorting the
//     matches takes 2 ms (266 ms and 2.3 by pgbench).
//
// So a search walks at most as many contacts as PostgreSQL estimates it matches, and
// when that does not fill the page, the statement sorts the matches instead. Either
// way costs about a contact's read per row (a walk 1.2-1.3 µs a contact, sorting the
// matches 1.4-2.7 µs a match, psql at 1M contacts), so as far as the estimate holds,
// a page costs at most about twice the cheaper way, whatever the order of the
// matches: the rule of renting skis until their price is spent. Where PostgreSQL
// would not walk (the walk estimated to read more contacts than match: rare terms),
// the statement sorts the matches at once, and a term that the estimate's sample
// holds none of gets PostgreSQL's plain statement (searchsample.go), which does the
// same. Through the API (first page of 50, median of 7): sorted by name, the first
// names take up to 0.23 s (median 96 ms; up to 1.7 s before), the surnames 3.4 ms
// more (median); newest first, the domains above take 6-12 ms, and the 65 first
// names and surnames of the benchmark's data 1.1 ms more (median: first names 4.0 →
// 5.0 ms), the share's 0.2 ms and the larger statement's planning. A term that few
// contacts hold and whose contacts lie where the walk starts pays for the bound:
// the domain of the oldest 1,000, oldest first, 4.2 → 9.5 ms (its matches sorted,
// where the walk would have read 51 contacts). Rare terms cost what they did (the
// plain statement), sorted by name 1-2 ms less.
//
// The estimate is the planner's own (migration 20261202000002_contact_search_sample);
// without one, as before contacts are first analyzed, the walk reads searchWalkFactor
// contacts per row of the page.
//
// A page of members of segments bounds its walk by four times the rows the estimate
// gives instead (walkLimitFactor), which suits members clustered by date. For
// names it made a surname slower than before: in the benchmark's data (40 first
// names) a surname's contacts come in runs of about 1,000, 24,000 rows apart, and
// "sharma" fills its first page only after 21,157 rows, where four times its
// estimate is 4,744. 80 ms instead of 38; the bound by matches gives 42.

// searchWalkFactor is how many contacts the walk of a search reads per row of its
// page when there is no estimate of its matches: 2,040 for a page of 50, 2-4 ms at 1M
// contacts.
const searchWalkFactor = 40

// walksBounded reports whether a page of the contacts cq selects is read by
// searchPageSelect: a search of all the contacts or those in none of some segments,
// in any order, unless its term has no trigram and the order is the creation's (see
// scannedPerWalked). (A filter that starts from segments reads a page its own way:
// twoWayPageSelect.)
func walksBounded(cq crm.ContactQuery) bool {
	return cq.Search != "" && cq.Segments.Any == nil && len(cq.Segments.All) == 0 &&
		(hasTrigram(cq.Search) || cq.Order.Field != crm.ContactsByCreatedAt)
}

// A term without a trigram ("m s", "zz": initials, a word's start as it is typed)
// has no matches the trigram index can find: reading them reads every contact of
// the workspace (a sequential scan, or a bitmap of most of the table), 0.3-0.4 µs a
// contact, where a walk by name reads one at 1.2-4 µs (its rows lie anywhere in the
// table; the more so when they are not all in shared buffers). So for such a term
// the walk's fallback costs n / scannedPerWalked contacts walked more than its
// matches do, and the walk is bounded by that: at 1M contacts, "m s" sorted by
// name read 907,121 contacts for its first page (1.5-2.6 s through the API), where
// reading every contact and sorting the 3,576 matches takes 0.3-0.4 s. Newest or
// oldest first, a walk reads the table in about the order it was written, as the
// scan does (0.4 µs a contact): walking it all costs what the fallback would, so
// such a term gets PostgreSQL's plain statement, spared the share and the larger
// statement (1-2 ms).

// scannedPerWalked is how many contacts reading every contact of the workspace reads
// in the time a walk reads one.
const scannedPerWalked = 10

// matchesRead is the SQL of what reading the matches of term first costs, in
// matches read from the trigram index, where share and n are the SQL of its share
// and of the workspace's contacts, and a match costs walkedPerMatch contacts walked:
// the matches themselves for a term the trigram index looks up, and for one it
// cannot (hasTrigram) the scan of every contact too, n / scannedPerWalked contacts
// walked.
func matchesRead(term, share, n string, walkedPerMatch float64) string {
	if hasTrigram(term) {
		return share + " * " + n
	}
	return fmt.Sprintf("(%s * %s + %s / %g)", share, n, n, scannedPerWalked*walkedPerMatch)
}

// hasTrigram reports whether term holds three letters or digits in a row (with the
// marks that write many Indian names' vowels), which makes a LIKE pattern of it one
// that pg_trgm's index can look up. (pg_trgm also takes some shorter words next to
// spaces, but narrows little with them: "m s" gave 260,402 rows to recheck at 1M
// contacts, for 3,576 matches. The store reckons those as read by a scan.)
func hasTrigram(term string) bool {
	run := 0
	for _, r := range term {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
			run++
			if run == 3 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// searchPageSelect returns the statement of a page of the contacts of workspace ws
// that the search of cq finds (walksBounded):
//
//	WITH walk_plan AS (SELECT walk_limit, n: the rows the walk may read, and the
//	                   workspace's contacts),
//	     walk AS (the page's rows among the first walk_limit contacts of the order
//	              within the cursors),
//	     walk_short AS (SELECT the walk filled no page and stopped at its limit)
//	SELECT page.* FROM (the walk's page, unless walk_short;
//	                    the probe of the page;
//	                    the page of the matches, sorted, if walk_short) AS page
//
// PostgreSQL never starts a branch whose one-time condition is false: it sorts the
// matches only when the walk fell short. The matches are read in a subquery with
// OFFSET 0, which keeps the page's order and limit out of it, so that PostgreSQL
// finds them all (the trigram index) rather than walking again.
func (s *Store) searchPageSelect(ws workspaceArg, cq crm.ContactQuery, pq pageQuery) (*bun.SelectQuery, error) {
	db := s.db
	pq.columns = columnsOf[contactRow](db, pq.alias)
	b, err := pq.bounds()
	if err != nil {
		return nil, err
	}
	size := pq.args.Size()
	limit := float64(size + 1)
	cond, condArgs := contactSearchCond(cq.Search)

	// The walk is worth it when it should fill the page (limit / share rows) before
	// it has read as many rows as reading the matches costs (share × n, and for a
	// term without a trigram every contact: matchesRead), as PostgreSQL reckons.
	// (OFFSET 0: computed once, not once per mention in walk_limit; the share costs
	// 0.3 ms.)
	share, shareArgs := searchShare(cq.Search)
	bound := matchesRead(cq.Search, "share", "n", 1) // a match costs about a contact walked
	plan := db.NewSelect().
		TableExpr("(SELECT "+share+" AS share,"+
			" ("+allContactsSQL+")::float8 AS n OFFSET 0) AS sizes",
			append(shareArgs, ws)...).
		ColumnExpr("(CASE WHEN share IS NULL THEN ?"+
			" WHEN share * "+bound+" <= ? THEN 0"+
			" ELSE ceil("+bound+") END)::bigint AS walk_limit",
			searchWalkFactor*limit, limit).
		ColumnExpr("n")

	contacts := func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.TableExpr("contacts AS "+pq.alias).Where(pq.alias+".workspace_id = ?", ws)
	}
	// The walk: the order's index, the first walk_limit rows alone, each tested. (It
	// reads whole rows: reading the ID, text and key alone and the page's rows last,
	// as twoWayPageSelect does, cost a walk of 21,000 rows 14-17% less, but a walk
	// that fills its page from 225 rows, the common case, 0.6-1.1 ms more.)
	scanned := pq.orderBy(b.within(contacts(db.NewSelect()).
		ColumnExpr(pq.columns+", "+contactSearch+", "+pq.sortKeyColumns())), b.walkDesc)
	// Bun writes no LIMIT of an expression: it follows the inner query's ORDER BY.
	walk := db.NewSelect().TableExpr("(? LIMIT (SELECT walk_limit FROM walk_plan)) AS "+pq.alias, scanned).
		ColumnExpr(pq.columns+", "+sortKeyNames(pq)).Where(cond, condArgs...)
	// None is tested on the rows the search keeps: about a page of them.
	walk = pq.orderBySorted(whereMembership(walk, ws, cq.Segments, pq.alias+".id", strconv.Itoa(size+1)), pq.alias, b.walkDesc).
		Limit(int64(size + 1))

	// The walk fell short when it found no more than a page and the list holds
	// walk_limit rows within the cursors: rows it never read may match. Without a
	// cursor, the list is all the workspace's contacts, which walk_plan counted.
	listed := "(SELECT n FROM walk_plan)"
	var listedArgs []any
	if b.after != nil || b.before != nil {
		listed = "(SELECT count(*) FROM (? LIMIT (SELECT walk_limit FROM walk_plan)) AS listed)"
		listedArgs = []any{pq.orderBy(b.within(contacts(db.NewSelect()).ColumnExpr("1")), b.walkDesc)}
	}
	short := db.NewSelect().
		ColumnExpr("(SELECT count(*) FROM walk) <= ? AND "+listed+" >= (SELECT walk_limit FROM walk_plan) AS v",
			append([]any{size}, listedArgs...)...)
	const walkShort = "(SELECT v FROM walk_short)"

	page := pq.orderBySorted(db.NewSelect().TableExpr("walk AS "+pq.alias).
		ColumnExpr(pq.columns).ColumnExpr("false AS probe").Where("NOT "+walkShort), pq.alias, b.walkDesc)
	if probe := pageProbe(b, func(dst *[]contactRow) *bun.SelectQuery { return s.contactQuery(dst, ws, cq) }); probe != nil {
		page = page.UnionAll(probe)
	}
	// The matches sorted, if the walk fell short, of which the rows cond keeps.
	sorted := func(matches *bun.SelectQuery, cond string) *bun.SelectQuery {
		matches = b.within(matches.ColumnExpr(pq.columns + ", " + pq.sortKeyColumns()))
		// Bun writes no OFFSET 0.
		return pq.orderBySorted(db.NewSelect().TableExpr("(? OFFSET 0) AS "+pq.alias, matches).
			ColumnExpr(pq.columns).ColumnExpr("false AS probe").Where(cond), pq.alias, b.walkDesc).
			Limit(int64(size + 1))
	}
	var unused []contactRow
	q := db.NewSelect()
	if none := cq.Segments.None; len(none) > 0 {
		// Read whole, the matches are tested for None as a count of them is
		// (searchcounts.go): their bits in the audience's chunks, unless the
		// estimate says they are fewer than the chunks, where a lookup each costs
		// less. Planned by PostgreSQL, they hashed every membership of the None
		// segments (at 1M contacts, "vikram" by name in none of the 10 segments of
		// 100,000: 1M memberships, spilled to disk).
		lookedUp, args := audienceLookedUp("coalesce(share, 1)", "n", 1, ws, none)
		plan = plan.ColumnExpr("coalesce("+lookedUp+", false) AS looked_up", args...)
		page = page.UnionAll(sorted(s.contactQuery(&unused, ws, cq), walkShort+" AND (SELECT looked_up FROM walk_plan)"))
		bits := s.contactQuery(&unused, ws, crm.ContactQuery{Search: cq.Search}).Join(audienceJoin).Where(audienceBit, true)
		page = page.UnionAll(sorted(bits, walkShort+" AND NOT (SELECT looked_up FROM walk_plan)"))
		// Materialized once, and only if the branch that reads it runs.
		q = q.WithQuery(bun.NewWithQuery("audience", db.NewRaw(audienceChunksSQL, audienceArgs(ws, cq.Segments)...)).Materialized())
	} else {
		page = page.UnionAll(sorted(s.contactQuery(&unused, ws, cq), walkShort))
	}
	// The union in a subquery: Bun writes a query's WITH inside the parentheses of
	// its first UNION member, where the others would not see it.
	return q.With("walk_plan", plan).With("walk", walk).With("walk_short", short).
		TableExpr("(?) AS page", page).ColumnExpr("page.*"), nil
}

// sortKeyNames returns the SQL list of the columns of sortKeyColumns, by name.
func sortKeyNames(pq pageQuery) string {
	names := make([]string, len(pq.key.parts))
	for i := range names {
		names[i] = fmt.Sprintf("%s.sort_%d", pq.alias, i+1)
	}
	return strings.Join(names, ", ")
}
