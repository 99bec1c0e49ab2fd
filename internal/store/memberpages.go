package store

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/uptrace/bun"
)

// A page of the members of segments (Segment.contacts; a page of an audience with an
// Any or All list) can be read three ways, and each is far the cheapest in some
// cases. For k members among the workspace's N contacts, spread over the page's
// order (the benchmark's are: walks read 0.7-1.3 times the estimate):
//
//   - reading the members first, then the contacts by primary key, and sorting
//     them costs about 6-8 µs a member (in a date order about 0.7 of that: the
//     primary key holds the dates, keyedMembersFirst);
//   - walking the contacts in the page's order reads about limit × N / k of them,
//     and looking each up in the memberships' primary key costs about 2.6 µs;
//   - walking them after hashing the members (an Any list only: the hash is built
//     once per statement, not per segment of a batch) costs about 0.45 µs a member
//     and 0.3 µs a contact walked.
//
// At 1M contacts, pages of 50 (psql, warm, the three alone; looked up, hashed,
// members first, in ms): 1,798 members 111, 14, 15; 4,496 37, 8, 33; 8,991 15-19,
// 7, 58; 18,166 5.5, 7-10, 73; 24,726 8.6, 15, 139; 50,000 4.4, 27, 235; 100,000
// 2, 41, 265. So a page's statement holds the ways, and chooses by k² against
// limit × N, k and N from the counters (segments.contact_count, contact_counts),
// which the statement reads itself: an Any list's members come first when k² ≤
// limit × N / membersFirstHashedDivisor (1,790 members at 1M contacts), are hashed
// when k² ≤ hashedWalkFactor × limit × N (14,300), and looked up beyond; where there
// is no hashed walk (an All list; each segment of a batch), the members come first
// when k² ≤ membersFirstFactor × limit × N (7,100). Where the rest of a filter may
// keep few of the candidates (an All list of two or more, a None list, Any with
// All), k² is k × a: members first reads the k candidates, a walk limit × N / a
// contacts for an audience of a (twoWayPage.sizes). A search's list is walked at
// 1 / share contacts a row, where share is the planner's estimate of the contacts it
// matches (searchShare), so with a search k² is k × a × share; and as PostgreSQL
// reads a rare term's list from the trigram index, the members come first only when
// they are fewer than a quarter of the matches (membersPerMatch). At 1M contacts,
// in a segment of 3,272 (API, pages of 50): "vikram" sorted by name 1.1 s → 20 ms,
// "sharma" 0.6 s → 20 ms, newest first 140 and 108 → 19 ms.
const (
	membersFirstFactor        = 1
	membersFirstHashedDivisor = 16
	// hashedWalkFactor also chooses how a page tests the rest of its filter
	// (testedMembers): a segment's members hashed when they are at most this many
	// times the rows tested, each looked up beyond.
	hashedWalkFactor = 4
)

// sortedFirst weighs a walk of a batch's filtered page against reading the
// batch's filtered rows sorted once (twoWayPage.kept): the page reads them when
// k × kept × sortedFirst < limit × batch, that is when its walk would read more than
// sortedFirst times its share of the contacts that sorting reads. A contact walked in
// the page's order costs about what one read for the sorting does (an index scan
// against a scan, the filter tested on both), and each page that reads the sorted
// rows tests about as many for membership as its walk would have; but the sorting
// is paid whole by the first page that reads it. At 200,000 contacts, pages of 10
// of the 50 largest segments (2,200-100,000 members), orders of at least 39 (2.5%
// of the contacts, no index): the 40 segments below 100,000 read the sorted rows.
const sortedFirst = 1

// membersPerMatch is what reading a member first costs (6-8 µs), in matches of a
// search read from the trigram index and sorted (1.4-2.7 µs).
const membersPerMatch = 4

// A walk costs what the estimate says only when the members are spread over the
// order. Members that cluster far from where the walk starts (a segment of contacts
// imported a year ago, paged newest first) make it read up to the whole list: 2.3-3.7
// s for segments of 20,000 and 100,000 such members at 1M contacts. So a walk reads
// at most walkLimitFactor times the rows the estimate gives (for k_walk of
// twoWayPage.sizes: the audience where the statement counts it, else the largest
// segment of an Any list, which its union holds at least), and when that does not
// fill the page the statement reads the members first instead, whose cost k bounds:
// 118 and 350 ms end to end for those two segments. Members spread over the order
// fill the page well within the limit.
const walkLimitFactor = 4

// A walk of a search's list counts contacts read, not rows of the list: where the
// matches cluster in the page's order, as a name's matches do in the NAME order (see
// searchpages.go), the list's first rows may lie far into it. At 1M contacts,
// "vikram" in a segment of 100,000 members sorted by name read 887,000 contacts
// before its first match (1.2-1.45 s, and as long in segments of 9,000-100,000). So
// a search's walk reads at most walkLimitFactor times the contacts the estimate gives
// (limit × n / (k_walk × share)), and no more than the way it falls back on costs:
// reading the members first when they are fewer than the matches by
// membersPerMatch, else reading the matches first (matchContacts). Where
// that bound is below the estimate (a rare term, or a small segment, where
// PostgreSQL reads the list from the trigram index anyway), the statement skips the
// walk.
//
// matchContacts is what reading a match first costs (about 3.4 µs: its row from
// the trigram index, the sort), in contacts walked (1.2-1.5 µs each), at 1M contacts.
// A bound of one contact per match made walks that fill their page a little past
// their estimate (spread matches, newest first) fall short: 13 → 67 ms.
const matchContacts = 2.5

// walkedPerMatch is matchContacts for a walk in the order of key. Newest or oldest
// first, a walk reads the table about in the order its rows were written, as a scan
// does (0.4 µs a contact at 1M contacts, where by name, its rows anywhere in the
// table, 1.2-4 µs), so a match read first costs scannedPerWalked times as many
// contacts walked. At 1M contacts, newest first, in segments of 49,000 and 99,000,
// "zz" and "m s" (3,197 and 3,576 matches, no trigram) read every contact for their
// matches (143-188 ms through the API), where the walk takes 54-71 ms.
func walkedPerMatch(key sortKey) float64 {
	if key.name == contactsByCreatedAt.name {
		return matchContacts * scannedPerWalked
	}
	return matchContacts
}

// Reading the matches first sorts the list's rows (the trigram index, then a sort of
// their IDs and sort keys) and tests each in order for membership until the page
// fills: limit × n / k tests, not one per match.

// twoWayPage is a page of the members of segments that its statement reads either
// by walking list or by reading the members first (see membersFirstFactor and
// walkLimitFactor), or, with a search, by reading its matches first.
type twoWayPage[R any] struct {
	// list selects the rows before the membership condition: the workspace's
	// contacts, or those a search finds.
	list func(dst *[]R) *bun.SelectQuery
	// search is the term of list's search, if any, and contacts selects the rows
	// it searches: list without its search. Without contacts, a search's walk reads
	// list, bounded in its rows, and falls back on the members first, never the
	// matches.
	search   string
	contacts func(dst *[]R) *bun.SelectQuery
	// batch, if not 0, makes the page one of a batch of that many segments' pages
	// that share the sorting of their matches (contactsOfSegmentsSelect): each walk
	// that falls short reads the matches sorted once for the whole batch
	// (batchMatches), in order, testing each for membership until its page fills,
	// where sorting them for each page would cost the batch as many sorts as
	// segments (a batch of 50 segments, 5 contacts each, "sharma" sorted by name:
	// 1.0 → 4.7 s).
	batch int
	// walked adds the membership condition as a walk tests it on each row: when
	// hashable, it may test the hashed members instead, if hashMembers holds.
	walked func(q *bun.SelectQuery, hashable bool) *bun.SelectQuery
	// candidates is the SQL array of the IDs that reading the members first reads
	// (such as memberIDs), with its arguments, and narrowed, if set, adds the rest
	// of the membership condition on their rows.
	candidates sqlCond
	narrowed   func(q *bun.SelectQuery) *bun.SelectQuery
	// lookUp restricts q, a query of list, to the rows whose IDs the SQL array ids
	// holds (its placeholders take args), read by their primary key (contactsIn):
	// the candidates, and the rows of a page of their keys (keyedMembersFirst).
	lookUp func(q *bun.SelectQuery, ids string, args []any) *bun.SelectQuery
	// sizes is the SQL of one row of float8 columns that choose the way: k, the
	// number of candidates (what reading the members first reads); a, the number of
	// rows the walk looks for (what sets how far it walks: k, or the audience where
	// the rest of the filter may keep few candidates); h, the number of members a
	// walk hashes (k, unless the candidates come from another list); k_walk, the
	// number of members a walk's limit counts on; n, the length of list. It may
	// name no column of the paged rows.
	sizes     string
	sizesArgs []any
	// The members come first when k × a ≤ firstFactor × limit × n; hashMembers
	// holds when h × a ≤ hashFactor × limit × n. (Members first reads k rows, a
	// walk limit × n / a.)
	firstFactor, hashFactor float64
	// kept, if set (the pages of a batch, filtered and unsearched; a page alone
	// whose list field conditions narrow), is the SQL of a scalar, with its
	// arguments, that estimates the share of the contacts a walk reads that list
	// keeps (filterKept). A walk of list reads limit × n / k of its rows, each
	// 1 / kept contacts; the batch reads the rows of list once, sorted
	// (batchMatches), for n contacts: a page whose walk would read more than its
	// share of that, n / batch, reads them instead (sortedFirst). A page alone
	// weighs its walk against its members by kept, and reads the rows of list
	// sorted where its members in them would not fill it.
	kept     string
	keptArgs []any
	// keptIndexed is whether an index serves the conditions that narrow a page
	// alone's list (indexServed): PostgreSQL then reads the list from it.
	keptIndexed bool
	// counts is whether sizes' a is the exact number of rows the page's whole list
	// holds (an unsearched filter's audience, audienceSizes): the statement then
	// returns it with every row, as total, and the list needs no statement of its
	// own to count it.
	counts bool
}

// hashMembers is the condition, in a statement of twoWayPageSelect, that a walk
// tests the hashed members (see hashedWalkFactor).
const hashMembers = "(SELECT hash_members FROM walk_plan)"

// walkedRows and candidateRows are, in a statement of twoWayPageSelect, about how
// many rows its walk and its reading the members first test the rest of a
// membership filter on (whereMembership): the walk's estimate (its limit over
// walkLimitFactor), and k.
var (
	walkedRows    = fmt.Sprintf("((SELECT walk_limit FROM walk_plan) / %d)", walkLimitFactor)
	candidateRows = "(SELECT k FROM walk_plan)"
)

// twoWayPageSelect returns the statement of the page p describes:
//
//	WITH walk_plan AS (SELECT members_first, hash_members, walk_limit, n, and
//	                   with a search's matches, members_then: whether a walk that
//	                   falls short reads the members first, else the matches,
//	                   FROM sizes),
//	     walk AS (the page of the first walk_limit rows of list, or with a search
//	              of the contacts it searches, that walked keeps, unless
//	              members_first),
//	     walk_choice AS (SELECT members_first, or the walk filled no page and
//	                     stopped at its limit (and members_then);
//	                     matches_first: the walk fell short, not members_then,
//	                     or for a batch's filtered pages, the plan's
//	                     sorted_first, where the page walks nothing),
//	     member_keys AS (in a date order, unsearched: the IDs and sort keys
//	                     of first's candidates, keyedMembersFirst)
//	SELECT page.*, (with counts) the plan's total FROM (the walk's page, unless walk_choice;
//	                    its probe, unless members_first;
//	                    the page of first, and its probe, if members_first;
//	                    the page of the matches, if matches_first: in a batch,
//	                    those of batchMatches, sorted once) AS page
//
// PostgreSQL evaluates each condition once, as the statement starts (or once per
// outer row in a lateral subquery), and never starts a branch whose condition is
// false: the walk, when the members come first; the members, when the walk filled
// the page.
func twoWayPageSelect[R any](p twoWayPage[R], dst *[]R, pq pageQuery) (*bun.SelectQuery, error) {
	// Every branch selects the same columns, by name.
	db := p.list(dst).DB()
	pq.columns = columnsOf[R](db, pq.alias)
	b, err := pq.bounds()
	if err != nil {
		return nil, err
	}
	limit := float64(pq.args.Size() + 1)
	// A batch reads no matches first without contacts (twoWayPage.contacts).
	readsMatches := p.search != "" && p.contacts != nil
	// A batch's filtered pages may read the rows of list sorted once for the batch.
	sortedOnce := p.search == "" && p.kept != "" && p.batch > 0
	// A page alone of a list its field conditions narrow weighs its walk by the
	// share of contacts they keep: reading the members first reads k candidates, a
	// walk limit × n / a rows of the list, each 1 / kept contacts. The sample that
	// estimates kept is read only where it can change the way: not where the sizes
	// alone put the members first, nor where a walk is cheaper even if the sample
	// kept none of its contacts (kept 1 / (filterSample + 1)); a CASE runs the
	// scalar subquery only in the branch taken, and kept is 1 in the others, the
	// ways of a page without conditions. The walk's limit counts rows of the list,
	// which the conditions narrow as they narrow the members: limit × n / k of them,
	// as without conditions.
	weighed := p.search == "" && p.kept != "" && p.batch == 0
	sizes, sizesArgs := "("+p.sizes+") AS sizes", p.sizesArgs
	if weighed {
		sizes = "(SELECT sizes.*, CASE WHEN sizes.k * sizes.a <= ? * sizes.n OR sizes.k * sizes.a > ? * sizes.n THEN 1::float8" +
			" ELSE (" + p.kept + ") END AS kept FROM (" + p.sizes + ") AS sizes OFFSET 0) AS sizes"
		sizesArgs = slices.Concat([]any{p.firstFactor * limit, p.firstFactor * limit * (filterSample + 1)}, p.keptArgs, p.sizesArgs)
	}
	plan := db.NewSelect().TableExpr(sizes, sizesArgs...).ColumnExpr("n, k")
	if p.counts {
		plan = plan.ColumnExpr("a AS total")
	}
	// What reading the search's matches first costs, in matches (matchesRead).
	matches := matchesRead(p.search, "share", "n", matchContacts)
	if weighed {
		// Where the segment's members that meet the conditions would not fill a
		// page (a × kept ≤ limit), a walk reads the whole list: the page reads the
		// list sorted instead, as PostgreSQL's plan of it reads it (from the
		// conditions' index, where one serves them), testing each row in order for
		// membership. At 4,000 contacts, the 21 of a segment of 2,000 without a
		// name: the walk read every contact, the sorting the 42 without a name.
		// Where an index serves the conditions (keptIndexed), reading the list
		// sorted reads about kept × n rows, against the walk's limit × n / (a ×
		// kept) contacts: the list comes first when a × kept² ≤ limit (city =
		// Pune, 8% of the contacts, in a segment of 2,984 at 200,000: the walk read
		// about 40,000 contacts, the sorting reads Pune's 16,600 from the index).
		listFirst := "a * kept <= ?"
		if p.keptIndexed {
			listFirst = "a * kept * kept <= ?"
		}
		plan = plan.ColumnExpr("k * a * kept <= ? * n AS members_first", p.firstFactor*limit).
			ColumnExpr("h * a * kept <= ? * n AS hash_members", p.hashFactor*limit).
			ColumnExpr("k * a * kept > ? * n AND "+listFirst+" AS sorted_first", p.firstFactor*limit, limit)
	} else if p.search == "" {
		plan = plan.ColumnExpr("k * a <= ? * n AS members_first", p.firstFactor*limit).
			ColumnExpr("h * a <= ? * n AS hash_members", p.hashFactor*limit)
		if sortedOnce {
			// kept is an uncorrelated scalar subquery: computed once per statement,
			// not once per segment of the batch, and only if a page walks (a batch of
			// small segments reads their members first and never samples).
			args := append(append([]any{p.firstFactor * limit}, p.keptArgs...), sortedFirst, limit*float64(p.batch))
			plan = plan.ColumnExpr("k * a > ? * n AND k * ("+p.kept+") * ? < ? AS sorted_first", args...)
		}
	} else {
		// A walk of a search's list reads 1 / share contacts per row of the list,
		// where members first reads k members, searched or not: so the search's share
		// weighs the walk's side. But PostgreSQL reads a rare term's list from the
		// trigram index, share × n matches, and that bounds the walk too: members come
		// first only when they are fewer than the matches by membersPerMatch, and are
		// hashed only when they are fewer than hashFactor times the matches (as
		// against the rows walked).
		share, args := searchShare(p.search)
		// A scalar subquery in a subquery kept whole (OFFSET 0): computed once per
		// statement, not once per mention or per segment of a batch.
		plan = plan.TableExpr("(SELECT (SELECT coalesce("+share+", 1)) AS share OFFSET 0) AS search", args...).
			ColumnExpr("k * a * share <= ? * n AND k * ? <= "+matches+" AS members_first", p.firstFactor*limit, membersPerMatch).
			ColumnExpr("h * a * share <= ? * n AND h <= ? * "+matches+" AS hash_members", p.hashFactor*limit, p.hashFactor)
	}
	if readsMatches {
		// The walk's bound, in contacts: walkLimitFactor times the estimate, and no
		// more than its fallback costs (walkedPerMatch per match, membersPerMatch
		// matches per member); none when the estimate is past that. Written without
		// dividing by share, which may be 0.
		perMatch := walkedPerMatch(pq.key)
		fallback := fmt.Sprintf("%g * least(%s, k * %d)", perMatch, matches, membersPerMatch)
		membersThen := fmt.Sprintf("k * %d <= %s", membersPerMatch, matches)
		estimated := fmt.Sprintf("%g * n / (greatest(k_walk, 1) * share)", walkLimitFactor*limit)
		if p.batch > 0 {
			// In a batch, the sorting of the matches is the batch's, and what each
			// page's members may cost is its share of it (else twenty segments of a
			// quarter of the matches would cost five times as much). Newest or oldest
			// first, the walks read the same rows, the table's first or last as it
			// was written, which the first walk leaves in shared buffers: together
			// they cost about what one does, and each is bounded as a page's alone.
			// By name, the rows of a walk lie anywhere in the table, and each page's
			// share of the sorting bounds its walk, whatever its estimate: the
			// estimate is of matches spread over the order, and a name's contacts
			// come in runs (at 1M contacts, the first 1,194 by name hold 4 of "ra"'s
			// matches, where 30% of all contacts are), so four times it left the
			// pages of "ra" in the 20 largest segments to the sorting of its 293,586
			// matches (2.7 s, where the walks took 0.24 s).
			membersThen = fmt.Sprintf("k * %d <= %s", membersPerMatch*p.batch, matches)
			fallback = fmt.Sprintf("%g * %s", perMatch, matches)
			if pq.key.name != contactsByCreatedAt.name {
				fallback = fmt.Sprintf("%s / %d", fallback, p.batch)
				estimated = fallback
			}
		}
		plan = plan.ColumnExpr(membersThen+" AS members_then").
			ColumnExpr("(CASE WHEN ? * n >= "+fallback+" * greatest(k_walk, 1) * share THEN 0"+
				" ELSE ceil(least("+estimated+", "+fallback+")) END)::bigint AS walk_limit", limit)
	} else {
		plan = plan.ColumnExpr("ceil(? * n / greatest(k_walk, 1))::bigint AS walk_limit", walkLimitFactor*limit)
	}

	// The walk reads list in the page's order, at most walk_limit rows, then keeps
	// the members, and reads the rows of the page's members last. It reads each
	// row's ID and sort keys alone (from the order's index, without the row where
	// the index holds them), which costs a walk of thousands of rows a fraction of
	// what whole rows would. A search's walk reads the contacts it searches, and
	// tests the search on each.
	walkedList, walkedCols := p.list, pq.sortColumns()
	if readsMatches {
		walkedList, walkedCols = p.contacts, walkedCols+", "+contactSearch+", "+pq.alias+".phone"
	}
	inner := b.within(walkedList(dst).ColumnExpr(walkedCols)).Where("NOT (SELECT members_first FROM walk_plan)")
	if sortedOnce || weighed {
		inner = inner.Where("NOT (SELECT sorted_first FROM walk_plan)")
	}
	inner = pq.orderBy(inner, b.walkDesc)
	// Bun writes no LIMIT of an expression: it follows the inner query's ORDER BY.
	walked := db.NewSelect().TableExpr("(? LIMIT (SELECT walk_limit FROM walk_plan)) AS "+pq.alias, inner).
		ColumnExpr(pq.alias + ".id, " + sortKeyNames(pq))
	if readsMatches {
		cond, args := contactSearchCond(p.search)
		walked = walked.Where(cond, args...)
	}
	walked = pq.orderBySorted(p.walked(walked, true), pq.alias, b.walkDesc).Limit(int64(pq.args.Size() + 1))
	walk := pageOf(p.list(dst), walked, pq, b)

	// The walk stopped at its limit when the rows it walks number walk_limit within
	// the cursors: rows of the list it never read may be members. Without a cursor
	// and with a search, those rows are the workspace's n contacts.
	var unused []R
	listed := "(SELECT count(*) FROM (? LIMIT (SELECT walk_limit FROM walk_plan)) AS listed)"
	listedArgs := []any{b.within(walkedList(&unused).ColumnExpr("1"))}
	if readsMatches && b.after == nil && b.before == nil {
		listed, listedArgs = "n", nil
	}
	short := fmt.Sprintf("((SELECT count(*) FROM walk) <= %d AND %s >= walk_limit)", pq.args.Size(), listed)
	const membersFirst = "(SELECT members_first FROM walk_choice)"
	const matchesFirst = "(SELECT matches_first FROM walk_choice)"
	choice := db.NewSelect().TableExpr("walk_plan")
	page := db.NewSelect().TableExpr("walk").ColumnExpr("walk.*").Where("NOT " + membersFirst)
	switch {
	case readsMatches:
		choice = choice.ColumnExpr("members_first OR (members_then AND "+short+") AS members_first", listedArgs...).
			ColumnExpr("NOT members_then AND NOT members_first AND "+short+" AS matches_first", listedArgs...)
		page = page.Where("NOT " + matchesFirst)
	case sortedOnce || weighed:
		// A page that reads the sorted rows walks nothing: its walk is not short.
		choice = choice.ColumnExpr("members_first OR (NOT sorted_first AND "+short+") AS members_first", listedArgs...).
			ColumnExpr("sorted_first AS matches_first")
		page = page.Where("NOT " + matchesFirst)
	default:
		choice = choice.ColumnExpr("members_first OR "+short+" AS members_first", listedArgs...)
	}
	// The walk's probe walks from the cursor without a limit, looking each row up: a
	// cursor of this list finds its own row, a member, at once.
	if probe := pageProbe(b, func(dst *[]R) *bun.SelectQuery { return p.walked(p.list(dst), false).Where("NOT " + membersFirst) }); probe != nil {
		page = page.UnionAll(probe)
	}
	// An unsearched page in a date order reads its members' sort keys from the
	// primary key (keyedMembersFirst), once for the page and its probe.
	keyed := p.search == "" && pq.key.inPrimaryKey
	if keyed {
		for _, branch := range keyedMembersFirst(db, p, dst, pq, b, membersFirst) {
			page = page.UnionAll(branch)
		}
	} else {
		first := func(dst *[]R) *bun.SelectQuery { return p.membersFirst(dst).Where(membersFirst) }
		page = page.UnionAll(b.page(first(dst)))
		if probe := pageProbe(b, first); probe != nil {
			page = page.UnionAll(probe)
		}
	}
	if (readsMatches && p.batch > 0) || sortedOnce {
		// The matches the batch sorted, in their order: a CTE's rows come out in
		// the order they went in, so the page stops at its limit without sorting
		// them again.
		tested := p.walked(db.NewSelect().TableExpr(batchMatches+" AS "+pq.alias), true).
			ColumnExpr(pq.alias + ".id, " + sortKeyNames(pq)).Limit(int64(pq.args.Size() + 1))
		page = page.UnionAll(pageOf(p.list(dst), tested, pq, b).Where(matchesFirst))
	} else if readsMatches || weighed {
		// The matches (or the rows field conditions keep) sorted whole (OFFSET 0
		// keeps the page's limit out of their subquery, so that PostgreSQL reads them
		// from the trigram index, or the conditions', rather than walking the order's
		// index again), then tested in order.
		sorted := pq.orderBy(b.within(p.list(&unused).ColumnExpr(pq.sortColumns())), b.walkDesc)
		tested := p.walked(db.NewSelect().TableExpr("(? OFFSET 0) AS "+pq.alias, sorted), true).
			ColumnExpr(pq.alias + ".id, " + sortKeyNames(pq))
		tested = pq.orderBySorted(tested, pq.alias, b.walkDesc).Limit(int64(pq.args.Size() + 1))
		// The condition on the branch, above its join with list, which may start
		// from list's side.
		page = page.UnionAll(pageOf(p.list(dst), tested, pq, b).Where(matchesFirst))
	}
	// The union in a subquery: Bun writes a query's WITH inside the parentheses of
	// its first UNION member, where the others would not see it.
	q := db.NewSelect().With("walk_plan", plan).With("walk", walk).With("walk_choice", choice)
	if keyed {
		var unused []R
		q = q.With("member_keys", p.membersFirst(&unused).ColumnExpr(pq.alias+".id, "+pq.alias+"."+pq.key.column))
	}
	q = q.TableExpr("(?) AS page", page).ColumnExpr("page.*")
	if p.counts {
		q = q.ColumnExpr("(SELECT total FROM walk_plan)::int8 AS total")
	}
	return q, nil
}

// membersFirst selects the rows of p's list that reading the members first keeps:
// the candidates, looked up, then narrowed.
func (p twoWayPage[R]) membersFirst(dst *[]R) *bun.SelectQuery {
	q := p.lookUp(p.list(dst), p.candidates.sql, p.candidates.args)
	if p.narrowed != nil {
		q = p.narrowed(q)
	}
	return q
}

// keyedMembersFirst returns the members-first branch of twoWayPageSelect, and its
// probe, for an unsearched page in an order whose sort key the contacts' primary key
// holds (sortKey.inPrimaryKey): the members' IDs and sort keys come from the key
// alone (member_keys, an index-only scan where the rest of the filter tests only the
// IDs), the page's and the probe's are sorted from them, and then the rows of those
// IDs alone are read, by primary key as the members were. Reading every member's
// row and sorting the rows cost about 6 µs a member, this about 0.7 of that; and a
// page after a cursor reads the members once, where its page and its probe read
// them each (at 1M contacts, the second page of a segment of 1,597: 7.3-9.4 → 4.3-6.2
// ms of PostgreSQL). Each branch runs
// only when cond (the choice of members first) holds, and member_keys only if one
// does.
func keyedMembersFirst[R any](db *bun.DB, p twoWayPage[R], dst *[]R, pq pageQuery, b pageBounds, cond string) []*bun.SelectQuery {
	keys := func() *bun.SelectQuery {
		// Aliased as the paged rows, for the cursors' conditions and the order.
		return db.NewSelect().TableExpr("member_keys AS " + pq.alias).ColumnExpr(pq.alias + ".id")
	}
	// The rows of the IDs that ids selects, by primary key (twoWayPage.lookUp), as
	// the members' were, where a join may hash the workspace's contacts.
	rowsOf := func(ids *bun.SelectQuery) func(dst *[]R) *bun.SelectQuery {
		return func(dst *[]R) *bun.SelectQuery {
			return p.lookUp(p.list(dst), "ARRAY(?)", []any{ids}).Where(cond)
		}
	}
	page := pq.orderBy(b.within(keys()), b.walkDesc).Limit(int64(pq.args.Size() + 1))
	branches := []*bun.SelectQuery{b.page(rowsOf(page)(dst))}
	if beyond, args, ok := b.beyond(); ok {
		probed := pq.orderBy(keys().Where(beyond, args...), !b.walkDesc).Limit(1)
		branches = append(branches, pageProbe(b, rowsOf(probed)))
	}
	return branches
}

// pageOf returns the page's rows of list whose IDs ids selects, with the sort keys
// of sortKeyNames, in the page's order: a page whose IDs a walk chose.
func pageOf(list, ids *bun.SelectQuery, pq pageQuery, b pageBounds) *bun.SelectQuery {
	return pq.orderBySorted(list.Join("JOIN (?) AS walked ON walked.id = "+pq.alias+".id", ids), "walked", b.walkDesc).
		ColumnExpr(pq.columns).ColumnExpr("false AS probe")
}

// columnsOf returns the SQL list of the columns that rows of type R hold, of the
// table aliased alias, or unqualified when alias is "" (an INSERT's RETURNING).
func columnsOf[R any](db *bun.DB, alias string) string {
	fields := db.Dialect().Tables().Get(reflect.TypeFor[R]()).Fields
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = string(f.SQLName)
		if alias != "" {
			cols[i] = alias + "." + cols[i]
		}
	}
	return strings.Join(cols, ", ")
}
