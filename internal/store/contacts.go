package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/segments/segments/internal/crm"
)

type contactRow struct {
	bun.BaseModel `bun:"table:contacts,alias:c"`
	crm.Contact
	Probe bool `bun:"probe,scanonly"`
	// Total is the number of contacts the page's whole list holds, when its
	// statement counted them (twoWayPage.counts).
	Total pgtype.Int8 `bun:"-"`
	// SegmentIDs and CatalogVersion are the contact's segments, unordered, and the
	// version of its workspace's segment catalog, when its page was read with them
	// (ContactsWithCatalogSegments).
	SegmentIDs     idList `bun:"-"`
	CatalogVersion int64  `bun:"-"`
}

func (r contactRow) probe() bool { return r.Probe }

func (r *contactRow) dest(col string) any {
	switch col {
	case "workspace_id":
		return &r.WorkspaceID
	case "id":
		return &r.ID
	case "phone":
		return &r.Phone
	case "name":
		return &r.Name
	case "email":
		return &r.Email
	case "attributes":
		return (*[]byte)(&r.Attributes) // pgx copies the JSON's text
	case "created_at":
		return &r.CreatedAt
	case "updated_at":
		return &r.UpdatedAt
	case "probe":
		return &r.Probe
	case "total":
		return &r.Total
	case "segment_ids":
		return &r.SegmentIDs
	case "catalog_version":
		return &r.CatalogVersion
	}
	return nil
}

// contactSearch is the text searched by ContactQuery.Search, indexed by
// contacts_search: the name, phone and email, joined by newlines (which keep a term
// from matching across fields) and folded (segments_search_fold: case, accents,
// width, marks, spaces), kept by PostgreSQL with the row (migrations
// 20261130000004_contact_search_text, 20261216000005_search_folds_text). A search
// matches it with LIKE and the term's pattern folded the same way (searchPattern),
// without folding every row it tests.
const contactSearch = `c.search_text`

// searchPattern is the SQL of the LIKE pattern of a search term (its one argument):
// the term folded as the searched texts are, anywhere in them. The folding is
// PostgreSQL's (migration 20261216000005_search_folds_text), never Go's, so that the
// term and the texts cannot be folded differently; on a constant, as Bun writes the
// term, it is computed once, while planning, so the trigram index sees a plain
// pattern.
const searchPattern = "segments_search_pattern(?)"

var contactKeys = map[crm.ContactOrderField]sortKey{
	crm.ContactsByCreatedAt: contactsByCreatedAt,
	crm.ContactsByUpdatedAt: contactsByUpdatedAt,
	crm.ContactsByName:      contactsByName,
	crm.ContactsByPhone:     contactsByPhone,
	crm.ContactsByEmail:     contactsByEmail,
}

func contactKeyValue(c *crm.Contact, key sortKey) any {
	switch key.name {
	case contactsByUpdatedAt.name:
		return c.UpdatedAt
	case contactsByName.name:
		if c.Name == nil {
			return nil
		}
		return *c.Name
	case contactsByPhone.name:
		return c.Phone
	case contactsByEmail.name:
		if c.Email == nil {
			return nil
		}
		return *c.Email
	}
	return c.CreatedAt
}

// contactPage turns fetched rows into a page of contacts in the order of key.
func contactPage(rows []contactRow, nav pageNav, key sortKey) Page[crm.Contact] {
	p := toPage(rows, nav, key, func(r *contactRow) crm.Contact { return r.Contact },
		func(c *crm.Contact) (any, int64) { return contactKeyValue(c, key), c.ID })
	if len(rows) > 0 && rows[0].Total.Valid {
		p.total, p.totalKnown = int(rows[0].Total.Int64), true
	}
	return p
}

// Contacts returns one page of the contacts cq selects.
func (s *Store) Contacts(ctx context.Context, ws int64, cq crm.ContactQuery, args crm.PageArgs) (Page[crm.Contact], error) {
	page, _, err := s.contactRows(ctx, ws, cq, args, nil)
	return page, err
}

// contactRows reads one page of the contacts cq selects, and returns it with its
// rows. with, if not nil, returns the statement that reads the page with more
// columns, given the statement of the page.
func (s *Store) contactRows(ctx context.Context, ws int64, cq crm.ContactQuery, args crm.PageArgs, with func(page *bun.SelectQuery) *bun.SelectQuery) (Page[crm.Contact], []contactRow, error) {
	key, ok := contactKeys[cq.Order.Field]
	if !ok {
		return Page[crm.Contact]{}, nil, fmt.Errorf("store: unknown contact order %q", cq.Order.Field)
	}
	pq := pageQuery{alias: "c", key: key, dir: cq.Order.Direction, args: args}
	var all []contactRow
	q, err := s.contactsPageSelect(&all, s.workspaceArg(ws), cq, pq)
	if err != nil {
		return Page[crm.Contact]{}, nil, err
	}
	if with != nil {
		q = with(q)
	}
	rows, nav, err := runPage(ctx, q, &all, pq)
	if err != nil {
		return Page[crm.Contact]{}, nil, err
	}
	return contactPage(rows, nav, key), rows, nil
}

// segmentsSizes is the SQL of the sizes of twoWayPage for the segments that segments
// names (as in memberIDs): k, a and h the aggregate agg ("sum", "min", "max") of their
// numbers of members, k_walk aggWalk's, n the workspace's contacts. Its
// placeholders take the workspace twice, then segments' own.
func segmentsSizes(agg, aggWalk, segments string) string {
	return "SELECT coalesce(" + agg + "(s.contact_count), 0)::float8 AS k, coalesce(" + agg + "(s.contact_count), 0)::float8 AS a," +
		" coalesce(" + agg + "(s.contact_count), 0)::float8 AS h," +
		" coalesce(" + aggWalk + "(s.contact_count), 0)::float8 AS k_walk," +
		" (" + allContactsSQL + ")::float8 AS n" +
		" FROM segments s WHERE s.workspace_id = ? AND s.id = " + segments
}

// audienceSizes returns the sizes of segmentsSizes (sizes, with its arguments) with
// a and k_walk the exact size of filter f's audience, from the segments' bitmaps
// (audienceSQL, about a millisecond), and k the SQL expression k (of sizes.k and
// audience.n), with its arguments. It is for filters whose audience the candidates'
// number can overstate by far: an All list of two segments of 100,000 members at 1M
// contacts that share 9,938 gave a walk limit of 2,040 contacts where filling a page
// takes about 5,100, so the walk gave up and read the 100,000 members first (0.53 s).
func audienceSizes(sizes string, args []any, k string, ws workspaceArg, f crm.MembershipFilter) (string, []any) {
	return "SELECT " + k + " AS k, audience.n AS a, sizes.h, audience.n AS k_walk, sizes.n FROM (" + sizes + ") AS sizes," +
			" (SELECT (" + audienceSQL + ")::float8 AS n OFFSET 0) AS audience", // OFFSET 0: counted once, not per use
		append(args, audienceArgs(ws, f)...)
}

// mergedPerMember is how many memberships reading an All list's members first
// (allMembersIDs) merges in the time it reads one of the contacts they leave:
// 0.12 µs a membership, 7 µs a contact, at 1M contacts.
const mergedPerMember = 64

// memberIDs is the SQL array of the IDs of the members of the segment or segments
// that segments (SQL: "ANY(?)" of IDs, a scalar subquery, a column such as "seg.id")
// names, with a contact in several of them once per segment: the candidates of
// reading the members first (contactsIn). Its first placeholder takes the
// workspace; segments' own follow.
func memberIDs(segments string) string {
	return "ARRAY(SELECT m.contact_id FROM memberships m WHERE m.workspace_id = ? AND m.segment_id = " + segments + ")"
}

// contactsIn returns q, a query of workspace ws's contacts c, restricted to those
// whose IDs the SQL array ids holds (its placeholders take args), read by their
// primary key: the candidates of reading the members first. Where PostgreSQL plans
// the workspace at its size (ws.atScale, plannedAtScale), the IDs are the keys of a
// scan of the primary key. Where it does not, it may take the workspace's contacts
// for a few rows and read them all in the page's order, testing each against the
// whole array (only a constant array is hashed): 40,000 candidates in a workspace
// of 200,000 contacts that came after the last analysis ran past 60 s. So there
// the contacts are looked up one candidate at a time, in a lateral subquery kept
// whole (OFFSET 0), which PostgreSQL can only run as a lookup of its key per
// candidate. That costs about what the key's scan does (at 1M contacts, pages of
// segments of 1,500 and 6,000 members: 7.4-7.6 and 26 ms, against 9.4-9.7 and
// 23-33), but the key's scan stays the form the benchmarks measured.
//
// The key's scan is a subquery kept whole (OFFSET 0) too, which q's conditions and
// order stay out of. Written as q's condition (c.id = ANY(...)), PostgreSQL, which
// guesses an array of a subquery at 10 IDs, could put it in the key of a scan of
// the page's order's index (the IDs are its last column) beside a cursor's row
// comparison: in PostgreSQL 15 one scan per candidate, each from the cursor to the
// end of the workspace's rows in that order. At 64,000 contacts, the second page by
// name of all of two segments of 5,000 and 2,000 read 1,900 candidates so in 28.7 s.
func contactsIn(q *bun.SelectQuery, ws workspaceArg, ids string, args []any) *bun.SelectQuery {
	if ws.atScale {
		return q.ModelTableExpr("(SELECT * FROM contacts WHERE workspace_id = ? AND id = ANY("+ids+") OFFSET 0) AS c",
			append([]any{ws}, args...)...)
	}
	// DISTINCT: an Any list's contact may be in several of its segments.
	return q.ModelTableExpr("(SELECT DISTINCT id FROM unnest("+ids+") AS u(id)) AS candidate"+
		" CROSS JOIN LATERAL (SELECT * FROM contacts WHERE workspace_id = ? AND id = candidate.id OFFSET 0) AS c",
		append(slices.Clone(args), ws)...)
}

// walkedMembers is the condition that the contact c is a member of the segments that
// segments names (as in memberIDs), written for walking the contacts: a subplan per
// contact (OFFSET 0 keeps PostgreSQL from turning it into a join), so that the walk
// branch of a page walks. Made a join, the planner could drive it from the
// memberships for a segment it takes for small, which is the other branch's way,
// done slower (7 µs a member). Its first placeholder takes the workspace;
// segments' own follow.
func walkedMembers(segments string) string { return walkedMembersOf("c.id", segments) }

// walkedMembersOf is walkedMembers of the contact whose ID is the SQL expression
// contact.
func walkedMembersOf(contact, segments string) string {
	return "EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = ? AND m.contact_id = " + contact + " AND m.segment_id = " + segments + " OFFSET 0)"
}

// hashedMembers is the condition that the contact whose ID is the SQL expression
// contact is a member of any of the segments ANY(?) names, tested in the members
// hashed once per statement (see walkedAnyMembers). Its placeholders take the
// workspace and the segments' IDs.
func hashedMembers(contact string) string {
	return contact + " IN (SELECT unnest(ARRAY(SELECT m.contact_id FROM memberships m WHERE m.workspace_id = ? AND m.segment_id = ANY(?))))"
}

// walkedAnyMembers returns the condition that the contact c is a member of any of
// the segments ids, for the walk of a page of twoWayPageSelect, with its arguments:
// the members hashed once (a hashed subplan: the IN inside CASE is not made a join)
// when hashMembers holds, else walkedMembers, a lookup per contact. The members
// come as unnest of an array: PostgreSQL hashes a subplan only if it expects the
// hash to fit in work_mem, and it expects the memberships of a list of segments
// from the whole table's statistics, where a small segment of one workspace can be
// taken for a large one; refused, the subplan scans the members again for every
// contact walked (ten segments taken for 1M memberships: 3.7 s, against 0.5 s
// hashed). An unnest is expected to return 100 rows, always hashed.
func walkedAnyMembers(ws workspaceArg, ids any) (string, []any) {
	return "CASE WHEN " + hashMembers + " THEN " + hashedMembers("c.id") + " ELSE " + walkedMembers("ANY(?)") + " END",
		[]any{ws, ids, ws, ids}
}

// contactsPageSelect returns the statement of a page of the contacts cq selects: with
// a list of segments to start from, one that reads the members first or walks the
// contacts, whichever is cheaper (see membersFirstFactor). The candidates of
// reading the members first are the members of the filter's Any segments, or of its
// one All segment, or the contacts in all of its All segments, found in the
// memberships alone (allMembersIDs), or with both lists those of the list with
// fewer members (anyOrAllFirst); the rest of the filter then narrows them. An
// Any list's walk may hash its members (walkedAnyMembers); an All list's tests the
// filter as whereMembership writes it. Where the rest of the filter may keep few
// candidates, the statement counts the audience to know how far a walk goes
// (audienceSizes), and without a search returns it as the page's Total.
func (s *Store) contactsPageSelect(dst *[]contactRow, ws workspaceArg, cq crm.ContactQuery, pq pageQuery) (*bun.SelectQuery, error) {
	f := cq.Segments
	plain := func(dst *[]contactRow) *bun.SelectQuery { return s.contactQuery(dst, ws, cq) }
	// A term that no entry of the search histogram holds has a share of 0: each way
	// below would read its matches first, and so does PostgreSQL's own plan of the
	// plain statement, which estimates it rare (searchsample.go).
	if cq.Search != "" && !s.statistics().sample.mayHold(cq.Search) {
		return pageSelect(plain, dst, pq)
	}
	// The ways below count on the filter's segments (their counters, the search's
	// estimate). With field conditions and a search, or without segments to start
	// from, the page is PostgreSQL's plan of the plain statement (conditionConds).
	// Unsearched, a page of the members of segments with field conditions is read as
	// one without them, walking or reading the members first, with the conditions
	// on every row either reads, its walk weighed by the share of contacts they keep
	// (twoWayPage.kept): PostgreSQL, which cannot estimate most of them (a number's
	// range, a date, hasEmail), walked the contacts in the page's order testing each
	// for membership, where the segment's few members hold fewer than a page (a
	// segment of 2,984 at 200,000 contacts, orders of at least 39: every contact
	// read, 233 ms).
	conditioned := !cq.Conditions.IsZero()
	if conditioned && (cq.Search != "" || (f.Any == nil && len(f.All) == 0)) {
		return pageSelect(plain, dst, pq)
	}
	if walksBounded(cq) {
		return s.searchPageSelect(ws, cq, pq)
	}
	if f.Any == nil && len(f.All) == 0 { // only None: no segments to start from
		// A walk of the contacts in the page's order, testing None on each: at least
		// a page of rows.
		walk := func(dst *[]contactRow) *bun.SelectQuery {
			q := s.contactQuery(dst, ws, crm.ContactQuery{Search: cq.Search})
			return whereMembership(q, ws, f, "c.id", strconv.Itoa(pq.args.Size()+1))
		}
		return pageSelect(walk, dst, pq)
	}
	rest := f
	rest.Any = nil // the candidates are exactly the Any segments' members
	restFirst := rest
	p := twoWayPage[contactRow]{
		list: func(dst *[]contactRow) *bun.SelectQuery {
			return s.contactQuery(dst, ws, crm.ContactQuery{Search: cq.Search, Conditions: cq.Conditions})
		},
		lookUp: func(q *bun.SelectQuery, ids string, args []any) *bun.SelectQuery {
			return contactsIn(q, ws, ids, args)
		},
		search:   cq.Search,
		contacts: func(dst *[]contactRow) *bun.SelectQuery { return s.contactQuery(dst, ws, crm.ContactQuery{}) },
		walked: func(q *bun.SelectQuery, hashable bool) *bun.SelectQuery {
			if f.Any != nil {
				ids := pgdialect.Array(f.Any)
				if hashable {
					cond, args := walkedAnyMembers(ws, ids)
					q = q.Where(cond, args...)
				} else {
					q = q.Where(walkedMembers("ANY(?)"), ws, ids)
				}
			}
			tested := testedUntilKept // the probe
			if hashable {
				tested = walkedRows
			}
			return whereMembership(q, ws, rest, "c.id", tested)
		},
	}
	var members string
	var memberArgs []any
	counted := false // whether p.sizes counts the audience (audienceSizes)
	all := unique(f.All)
	switch {
	case f.Any != nil:
		ids := pgdialect.Array(f.Any)
		p.sizes, p.sizesArgs = segmentsSizes("sum", "max", "ANY(?)"), []any{ws, ws, ids}
		p.firstFactor, p.hashFactor = 1.0/membersFirstHashedDivisor, hashedWalkFactor
		members, memberArgs = memberIDs("ANY(?)"), []any{ws, ids}
		if len(all) > 0 {
			// The candidates are those of the list with the fewer members: the Any
			// segments', or the contacts in all the All segments.
			p.sizes, p.sizesArgs = fewerCandidates(p.sizes, p.sizesArgs, ws, all)
			var tested sqlCond
			p.candidates, tested = anyOrAllFirst(ws, f.Any, all)
			p.narrowed = func(q *bun.SelectQuery) *bun.SelectQuery {
				q = q.Where(tested.sql, tested.args...)
				return whereMembership(q, ws, crm.MembershipFilter{None: f.None}, "c.id", candidateRows)
			}
		}
	case len(all) == 1:
		p.sizes, p.sizesArgs = segmentsSizes("sum", "sum", "?"), []any{ws, ws, all[0]}
		p.firstFactor = membersFirstFactor
		members, memberArgs = memberIDs("?"), []any{ws, all[0]}
	default:
		// Members first reads the memberships of every segment of the list, then
		// the contacts in all of them, the audience (before None).
		sizes, args := segmentsSizes("sum", "sum", "ANY(?)"), []any{ws, ws, pgdialect.Array(all)}
		k := fmt.Sprintf("audience.n + sizes.k / %d", mergedPerMember)
		p.sizes, p.sizesArgs = audienceSizes(sizes, args, k, ws, f)
		p.firstFactor = membersFirstFactor
		members, memberArgs = allMembersIDs(ws, all)
		restFirst.All = nil
		counted = true
	}
	// The rest of the filter may keep few of the candidates: the walk then looks for
	// what it keeps.
	if narrowed := len(f.None) > 0 || (f.Any != nil && len(all) > 0); narrowed && !counted {
		p.sizes, p.sizesArgs = audienceSizes(p.sizes, p.sizesArgs, "sizes.k", ws, f)
		counted = true
	}
	// Without a search or field conditions, the audience counted is the whole list:
	// the page returns it.
	p.counts = counted && cq.Search == "" && !conditioned
	if conditioned {
		b, err := pq.bounds()
		if err != nil {
			return nil, err
		}
		p.kept, p.keptArgs = s.filterKept(ws, crm.ContactQuery{Conditions: cq.Conditions}, pq, b)
		p.keptIndexed = indexServed(cq.Conditions)
	}
	if p.candidates.sql == "" {
		p.candidates = sqlCond{members, memberArgs}
		p.narrowed = func(q *bun.SelectQuery) *bun.SelectQuery {
			return whereMembership(q, ws, restFirst, "c.id", candidateRows)
		}
	}
	return twoWayPageSelect(p, dst, pq)
}

// fewerCandidates returns the sizes of a page of an Any list with an All list
// (sizes, with its arguments, segmentsSizes of the Any segments), whose k is the
// fewer of the Any segments' members and the least All segment's: the candidates
// anyOrAllFirst reads. A walk still hashes the Any segments' members (h).
func fewerCandidates(sizes string, args []any, ws workspaceArg, all []int64) (string, []any) {
	return "SELECT least(anys.k, alls.k) AS k, anys.a, anys.h, anys.k_walk, anys.n FROM (" + sizes + ") AS anys," +
			" (SELECT coalesce(min(s.contact_count), 0)::float8 AS k FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?)) AS alls",
		append(args, ws, pgdialect.Array(all))
}

// sqlCond is a condition and its arguments.
type sqlCond struct {
	sql  string
	args []any
}

// anyOrAllFirst returns how a page of the members of any of the segments anyIDs and
// all of the segments all reads its members first: the SQL array of its candidates
// (twoWayPage.candidates), and the rest of the two lists as tested on them. The
// candidates are those of the list with fewer, by the segments' counters, once per
// statement (anyListFirst). The Any
// segments' members are tested for the All list on their rows, as before; the
// contacts in all the All segments are tested for the Any list in the memberships,
// a lookup each, before any row is read: they are fewer than the Any segments'
// members, and may be many more than the audience. The Any list's members were
// always the candidates: at 1M contacts, a page of any of a segment of 100,000 and
// all of one of 4,972 read the 100,000 (or walked the contacts, hashing them).
func anyOrAllFirst(ws workspaceArg, anyIDs, all []int64) (candidates, rest sqlCond) {
	anyFirst, anyFirstArgs := anyListFirst(ws, anyIDs, all)
	allSub, allArgs := allMembersOf(ws, all)
	candidates = sqlCond{
		"(CASE WHEN " + anyFirst + " THEN " + memberIDs("ANY(?)") +
			" ELSE ARRAY(SELECT a.contact_id FROM (" + allSub + ") AS a WHERE " + walkedMembersOf("a.contact_id", "ANY(?)") + ") END)",
		slices.Concat(anyFirstArgs, []any{ws, pgdialect.Array(anyIDs)}, allArgs, []any{ws, pgdialect.Array(anyIDs)}),
	}
	allTested := andConds(membershipConds(ws, crm.MembershipFilter{All: all}, "c.id", candidateRows))
	rest = sqlCond{"CASE WHEN " + anyFirst + " THEN " + allTested.sql + " ELSE true END", slices.Concat(anyFirstArgs, allTested.args)}
	return candidates, rest
}

// anyListFirst is the SQL of whether the Any segments anyIDs have no more members
// than the least of the All segments all, by their counters, with its arguments: a
// scalar subquery, computed once per statement.
func anyListFirst(ws workspaceArg, anyIDs, all []int64) (string, []any) {
	return "(SELECT (SELECT coalesce(sum(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?))" +
			" <= (SELECT coalesce(min(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?)))",
		[]any{ws, pgdialect.Array(anyIDs), ws, pgdialect.Array(all)}
}

// allMembersIDs is the SQL array of the IDs of the contacts in every one of the
// segments all (two or more), with its arguments, for reading the members first
// (contactsIn): they are found in the memberships' primary key alone
// (allMembersOf), and only their rows are read.
func allMembersIDs(ws workspaceArg, all []int64) (string, []any) {
	sub, args := allMembersOf(ws, all)
	return "ARRAY(" + sub + ")", args
}

// allMembersOf is the SQL of the IDs of the contacts in every one of the segments
// all (one or more, distinct), with its arguments. Up to maxAllJoins segments, their
// memberships are joined on the contact where PostgreSQL plans the workspace at its
// size (ws.atScale, plannedAtScale): it merges the segments' contact IDs, which the key
// holds in order, or looks the members of a small segment up in the others. Reading
// the members of the smallest segment and testing the others on each cost 6-8 µs a
// member: at 1M contacts, four segments of 100,000 that share 118 members took 0.4
// s, merged 48 ms. Where it does not, it could take each segment for one member and
// join them in a nested loop that reads the second segment again for each member of
// the first: two segments of 40,000 in a workspace loaded after the last analysis,
// beside 3,300 small ones, ran past 60 s. So there they intersect (INTERSECT, a
// hash of the first segment's members that the others probe, never a nested loop):
// 0.2 s there, and 98-107 ms where the merge takes 33 ms (two segments of 100,000
// at 1M contacts), 160-180 against 38 ms for four. More than maxAllJoins segments
// are aggregated (allMembers).
func allMembersOf(ws workspaceArg, all []int64) (string, []any) {
	if len(all) > maxAllJoins {
		return allMembers(ws, all)
	}
	var b strings.Builder
	var args []any
	if !ws.atScale {
		for i, id := range all {
			if i > 0 {
				b.WriteString(" INTERSECT ")
			}
			b.WriteString("SELECT m.contact_id FROM memberships m WHERE m.workspace_id = ? AND m.segment_id = ?")
			args = append(args, ws, id)
		}
		return b.String(), args
	}
	b.WriteString("SELECT m0.contact_id FROM memberships m0")
	for i, id := range all[1:] {
		fmt.Fprintf(&b, " JOIN memberships m%[1]d ON m%[1]d.workspace_id = m0.workspace_id AND m%[1]d.contact_id = m0.contact_id AND m%[1]d.segment_id = ?", i+1)
		args = append(args, id)
	}
	b.WriteString(" WHERE m0.workspace_id = ? AND m0.segment_id = ?")
	return b.String(), append(args, ws, all[0])
}

// CountContacts returns the number of contacts cq selects: with a membership filter,
// the size of the deduplicated audience. The workspace's whole list is counted by
// its counters (contact_counts), the members of one segment by its contact_count, a
// filter of segments by their bitmaps, and a search by reading its matches (with a
// filter, tested against its audience's bitmaps: searchcounts.go).
func (s *Store) CountContacts(ctx context.Context, ws int64, cq crm.ContactQuery) (int, error) {
	return s.countContacts(ctx, s.workspaceArg(ws), cq)
}

// countContacts is CountContacts in workspace ws.
func (s *Store) countContacts(ctx context.Context, ws workspaceArg, cq crm.ContactQuery) (int, error) {
	if n, ok, err := s.countSegmented(ctx, ws, cq); ok {
		return n, err
	}
	if n, ok, err := s.countComplement(ctx, ws, cq); ok {
		return n, err
	}
	if cq.Search == "" && cq.Conditions.IsZero() {
		if seg, ok := onlySegment(cq.Segments); ok {
			return s.countMembers(ctx, ws, seg)
		}
		switch f := cq.Segments; {
		case f.Any != nil || len(f.All) > 0:
			return s.countAudience(ctx, ws, f)
		case len(f.None) == 0:
			return s.countAllContacts(ctx, ws)
		default:
			return s.countAllBut(ctx, ws, f.None)
		}
	}
	if s.searchesAudience(cq) {
		return s.countSearchedAudience(ctx, ws, cq, 0)
	}
	var n int
	err := s.conditionedCount(ws, cq, 0).Scan(ctx, &n)
	return n, err
}

// conditionedCount returns the statement that counts the contacts cq selects when
// countContacts reads them, or with a limit (above 0) that counts at most limit+1
// of them, as countUpTo does. With field conditions that no index serves
// (indexServed) and, unsearched, an Any or All list, the count reads the list's
// members first where they are few (membersCountedFirst), by primary key, and
// tests the rest of the filter on each; otherwise it is PostgreSQL's plan of the
// plain statement. That plan cannot estimate such conditions (a number's range,
// hasEmail: true), nor so weigh them against the segment's members: it read every
// contact of the workspace to count the few of a segment's members that meet them
// (a segment of 2,984 at 200,000 contacts, orders of at least 39: 6,343 buffers,
// 109-239 ms through the API, where its members read first are 2,984 rows). Where
// an index serves a condition, PostgreSQL reads the contacts that meet it, or only
// their index (hasEmail: false in that segment: 131 buffers, where reading the
// members first takes 11,373). The choice is a CASE of the counters, made once per
// statement, that runs only the branch taken.
func (s *Store) conditionedCount(ws workspaceArg, cq crm.ContactQuery, limit int) *bun.SelectQuery {
	var rows []contactRow
	plain := s.contactQuery(&rows, ws, cq).ColumnExpr("count(*)")
	if limit > 0 {
		plain = s.db.NewSelect().TableExpr("(?) AS counted", s.contactQuery(&rows, ws, cq).ColumnExpr("1").Limit(int64(limit)+1)).
			ColumnExpr("count(*)")
	}
	f := cq.Segments
	if cq.Search != "" || cq.Conditions.IsZero() || (f.Any == nil && len(f.All) == 0) || indexServed(cq.Conditions) {
		return plain
	}
	// The candidates: the Any segments' members, or the contacts in all the All
	// segments; k their number at most, by the counters.
	rest := f
	var candidates, k sqlCond
	if f.Any != nil {
		ids := pgdialect.Array(f.Any)
		candidates = sqlCond{memberIDs("ANY(?)"), []any{ws, ids}}
		k = sqlCond{"SELECT coalesce(sum(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?)", []any{ws, ids}}
		rest.Any = nil
	} else {
		all := unique(f.All)
		candidates.sql, candidates.args = allMembersIDs(ws, all)
		k = sqlCond{"SELECT coalesce(min(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?)", []any{ws, pgdialect.Array(all)}}
		rest.All = nil
	}
	var unused []contactRow
	first := contactsIn(s.contactQuery(&unused, ws, crm.ContactQuery{Segments: rest, Conditions: cq.Conditions}), ws, candidates.sql, candidates.args).
		ColumnExpr("count(*)")
	return s.db.NewSelect().ColumnExpr("CASE WHEN ("+k.sql+") * ? <= ("+allContactsSQL+") THEN (?) ELSE (?) END",
		slices.Concat(k.args, []any{membersCountedFirst, ws, first, plain})...)
}

// indexServed reports whether an index serves one of the field conditions c
// (conditionConds): a date's range, an attribute's equals, in or exists: true, or
// hasEmail: false or hasName: false.
func indexServed(c crm.ContactConditions) bool {
	if !c.CreatedAt.IsZero() || !c.UpdatedAt.IsZero() || (c.HasEmail != nil && !*c.HasEmail) || (c.HasName != nil && !*c.HasName) {
		return true
	}
	return slices.ContainsFunc(c.Attributes, func(a crm.AttributeCondition) bool {
		return a.Equals != nil || a.In != nil || (a.Exists != nil && *a.Exists)
	})
}

// membersCountedFirst: a count of a segment list's contacts that field conditions
// narrow reads the list's members first when they are at most the workspace's
// contacts over this (conditionedCount), and no index serves the conditions, so
// that the plain statement reads every contact of the workspace. A member read by
// primary key costs about what 2-10 contacts of that scan do (at 200,000 contacts,
// counts of segments of 2,984, 10,740 and 100,000 members, psql, on a loaded
// machine: 11,373 buffers against 6,343 for 2,984 members, 306,658 against 6,820
// for 100,000), so this keeps to where the members cost less whatever the load.
const membersCountedFirst = 20

// searchesAudience reports whether a count of cq tests a search's matches against the
// bits of its filter's audience (searchcounts.go): a search with a membership filter,
// unless its term is rare.
func (s *Store) searchesAudience(cq crm.ContactQuery) bool {
	f := cq.Segments
	return cq.Search != "" && cq.Conditions.IsZero() && (f.Any != nil || len(f.All) > 0 || len(f.None) > 0) && s.statistics().sample.mayHold(cq.Search)
}

// CountContactsUpTo returns the number of contacts cq selects if it is at most
// limit, else a number above limit: a search stops reading its matches after
// limit+1 of them, where CountContacts reads them all (at 1M contacts, psql: "ra",
// 296,331 matches, 7.5-7.9 ms up to 10,000 against 214-226 ms; "gmail", 214,387,
// 10.6-11.5 against 132-133). Without a search the count costs little whatever its
// size (the counters, an audience's bitmaps), so it is CountContacts'.
func (s *Store) CountContactsUpTo(ctx context.Context, ws int64, cq crm.ContactQuery, limit int) (int, error) {
	w := s.workspaceArg(ws)
	if n, ok, err := s.countSegmented(ctx, w, cq); ok {
		return n, err
	}
	if cq.Search == "" && cq.Conditions.IsZero() {
		return s.countContacts(ctx, w, cq)
	}
	if s.searchesAudience(cq) {
		return s.countSearchedAudience(ctx, w, cq, limit)
	}
	var n int
	err := s.conditionedCount(w, cq, limit).Scan(ctx, &n)
	return n, err
}

// onlySegment returns the segment whose members alone filter f selects (any of one
// segment, or all of one), if there is one.
func onlySegment(f crm.MembershipFilter) (int64, bool) {
	if len(f.None) > 0 {
		return 0, false
	}
	all := unique(f.All)
	switch {
	case len(f.Any) == 1 && len(all) == 0:
		return f.Any[0], true
	case f.Any == nil && len(all) == 1:
		return all[0], true
	}
	return 0, false
}

// countMembers returns the number of members of the workspace's segment seg (0 for
// a segment it does not have): its contact_count, one row, where the bitmaps are read
// chunk by chunk (a segment of 100,000 at 1M contacts: 31 rows of 4 kB).
func (s *Store) countMembers(ctx context.Context, ws workspaceArg, seg int64) (int, error) {
	var n int
	err := s.db.NewRaw(`SELECT coalesce((SELECT contact_count FROM segments WHERE workspace_id = ? AND id = ?), 0)`, ws, seg).Scan(ctx, &n)
	return n, err
}

// allContactsSQL is the number of a workspace's contacts, the sum of its counters
// (migration 20261130000002_contact_counts): a few rows, where counting the contacts
// reads an index entry per contact.
const allContactsSQL = `SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = ?`

// countAllContacts returns the number of the workspace's contacts.
func (s *Store) countAllContacts(ctx context.Context, ws workspaceArg) (int, error) {
	var n int
	err := s.db.NewRaw(allContactsSQL, ws).Scan(ctx, &n)
	return n, err
}

// countAllBut returns the number of the workspace's contacts in none of the segments
// ("everybody but the unsubscribed"): its number of contacts less the audience of any
// of them, in one statement (one snapshot), from the counters and the bitmaps rather
// than by reading every contact.
func (s *Store) countAllBut(ctx context.Context, ws workspaceArg, none []int64) (int, error) {
	var n int
	err := s.db.NewRaw("SELECT ("+allContactsSQL+") - ("+audienceSQL+")",
		append([]any{ws}, audienceArgs(ws, crm.MembershipFilter{Any: none})...)...).Scan(ctx, &n)
	return n, err
}

// audienceSQL counts a membership filter's audience from the segments' bitmaps
// (segment_bitmaps, migration 20261129000004): the set bits of its chunks
// (audienceChunksSQL), summed. Each contact is one bit, so an audience is
// deduplicated by construction, and the cost is the listed segments' chunks (about
// 31 rows per segment at 1M contacts), not their memberships.
const audienceSQL = `SELECT coalesce(sum(bit_count(bits)), 0) FROM (` + audienceChunksSQL + `) AS audience`

// audienceChunksSQL is a membership filter's audience as bitmaps, one row (chunk,
// bits) per chunk of contact IDs, from the segments' bitmaps: per chunk, the OR of
// the Any segments' bits, AND the AND of the All segments' (a chunk missing from one
// of them has no member in all), AND NOT the OR of the None segments'. z is a chunk
// of zeros; a missing aggregate is the neutral element of its operation. A chunk
// without a row holds no contact of the audience, but where the filter has only a
// None list: there it holds only contacts of the audience (none of the None
// segments has a member in it). Its arguments are audienceArgs'.
const audienceChunksSQL = `
	SELECT chunk,
	       (CASE WHEN a IS NULL THEN ~z ELSE a END) &
	       (CASE WHEN l IS NULL THEN ~z ELSE l END) &
	       ~(CASE WHEN n IS NULL THEN z ELSE n END) AS bits
	FROM (SELECT chunk,
	             bit_or(bits) FILTER (WHERE segment_id = ANY(?)) AS a,
	             bit_and(bits) FILTER (WHERE segment_id = ANY(?)) AS l,
	             count(*) FILTER (WHERE segment_id = ANY(?)) AS nl,
	             bit_or(bits) FILTER (WHERE segment_id = ANY(?)) AS n,
	             B'0'::bit(32768) AS z
	        FROM segment_bitmaps
	       WHERE workspace_id = ? AND segment_id = ANY(?)
	       GROUP BY chunk) AS g
	WHERE (a IS NOT NULL OR NOT ?) AND nl = ?`

// countAudience counts the contacts that membership filter f selects, when it has an
// Any or an All list (a None list alone is "everybody but": countAllBut). All is
// deduplicated first: its chunks must appear once per listed segment.
func (s *Store) countAudience(ctx context.Context, ws workspaceArg, f crm.MembershipFilter) (int, error) {
	var n int
	err := s.db.NewRaw(audienceSQL, audienceArgs(ws, f)...).Scan(ctx, &n)
	return n, err
}

// audienceArgs are the arguments of audienceSQL for filter f of workspace ws.
func audienceArgs(ws workspaceArg, f crm.MembershipFilter) []any {
	all := unique(f.All)
	anyIDs := f.Any
	if anyIDs == nil {
		anyIDs = []int64{}
	}
	listed := slices.Concat(anyIDs, all, f.None)
	return []any{
		pgdialect.Array(anyIDs), pgdialect.Array(all), pgdialect.Array(all), pgdialect.Array(f.None),
		ws, pgdialect.Array(listed),
		f.Any != nil, len(all),
	}
}

func (s *Store) contactQuery(dst *[]contactRow, ws workspaceArg, cq crm.ContactQuery) *bun.SelectQuery {
	q := s.db.NewSelect().Model(dst)
	if cq.Search == "" {
		q = q.Where("c.workspace_id = ?", ws)
	} else {
		cond, args := contactSearchCond(cq.Search)
		wsCond, wsArg := s.searchWorkspace("contacts", "c", ws, cq.Search)
		q = q.Where(wsCond, wsArg).Where(cond, args...)
	}
	q = whereMembership(q, ws, cq.Segments, "c.id", joinsPlanned)
	for _, c := range conditionConds(ws, cq.Conditions) {
		q = q.Where(c.sql, c.args...)
	}
	return q
}

// maxAllJoins is the longest MembershipFilter.All that whereMembership writes as one
// EXISTS per segment. Each is a semi-join the planner orders freely, which gives the
// best plans: streaming a page of a dense audience in index order, or reading a small
// segment first. But planning time grows steeply with their number (PostgreSQL 15,
// measured: 4 segments 1.7 ms, 8 15 ms, 32 110 ms, 100 1.4 s; 4 with any and none
// about 20 ms). Longer lists are one aggregate instead, planned in about 1 ms and run
// in time bounded by the listed segments' memberships. Four keep the whole join
// problem (contacts, any, all, none) within join_collapse_limit (8).
const maxAllJoins = 4

// allMembers is the SQL of the IDs of the contacts in every one of the segments all
// (distinct IDs, more than maxAllJoins), with its arguments. It reads them one of two
// ways, chosen in the statement by how many there are (its audience, counted from the
// bitmaps as audience counts are), against the memberships that the listed segments
// hold (their counters):
//   - from the segments' bitmaps (migration 20261129000004_segment_bitmaps): the
//     chunks that every segment has are ANDed, and the bits set in the result become
//     contact IDs (bit i of chunk c is contact c<<15 + i), a 64-bit word at a time,
//     then a byte at a time for the words that are not zero, each byte's set bits
//     looked up in a table of the 256 values. That costs about 10-15 µs a contact
//     found and little else;
//   - from the memberships, counting per contact those of the listed segments, which
//     costs 0.6-1.4 µs a membership, whatever the result.
//
// So the bitmaps serve when the contacts found are fewer than a tenth
// (bitmapFoundCost) of the memberships. At 1M contacts (psql): five segments of
// 100,000 that share 6 contacts took 0.63-0.70 s counted, and take 12-18 ms; five of
// 20,000 that share all of them 94-99 ms, counted as before; ten of 100,000 that share
// none 0.07-0.13 s. The first condition of each way is a one-time filter, so only the
// way chosen runs. An ID that names no segment of the workspace has no chunks and no
// memberships, so no contact is in all of them: an empty segment, as the API promises.
func allMembers(ws workspaceArg, all []int64) (string, []any) {
	ids := pgdialect.Array(all)
	return "WITH g AS MATERIALIZED (SELECT chunk, bit_and(bits) AS bits FROM segment_bitmaps" +
			"        WHERE workspace_id = ? AND segment_id = ANY(?) GROUP BY chunk HAVING count(*) = ?)," +
			" way AS (SELECT (SELECT coalesce(sum(bit_count(bits)), 0) FROM g) * ? <=" +
			"        (SELECT coalesce(sum(contact_count), 0) FROM segments WHERE workspace_id = ? AND id = ANY(?)) AS bitmaps)" +
			" SELECT (g.chunk << 15) + w.i * 64 + y.k * 8 + p.b AS contact_id FROM g" +
			" CROSS JOIN LATERAL (SELECT i, substring(g.bits FROM i * 64 + 1 FOR 64)::bigint AS word FROM generate_series(0, 511) AS i) AS w" +
			" CROSS JOIN LATERAL (SELECT k, (w.word >> (56 - 8 * k)) & 255 AS byte FROM generate_series(0, 7) AS k) AS y" +
			" JOIN (SELECT v, b FROM generate_series(0, 255) AS v, generate_series(0, 7) AS b WHERE (v >> (7 - b)) & 1 = 1) AS p ON p.v = y.byte" +
			" WHERE (SELECT bitmaps FROM way) AND w.word <> 0 AND y.byte <> 0" +
			" UNION ALL" +
			" SELECT ma.contact_id FROM memberships ma" +
			" WHERE NOT (SELECT bitmaps FROM way) AND ma.workspace_id = ? AND ma.segment_id = ANY(?)" +
			" GROUP BY ma.contact_id HAVING count(*) = ?",
		[]any{ws, ids, len(all), bitmapFoundCost, ws, ids, ws, ids, len(all)}
}

// bitmapFoundCost is what finding a contact in the bitmaps costs (allMembers), in
// memberships counted.
const bitmapFoundCost = 10

// whereMembership adds the conditions of the membership filter f of workspace ws on
// the contact whose ID is the SQL expression contact (such as "c.id"). It is the one
// place the filter's SQL is written: pages and audience counts use it alike. Any and
// None are one condition each, and All at most maxAllJoins, however many IDs they
// hold, so that planning time stays flat.
//
// tested is, for a page's statement, the SQL of about how many rows it tests the
// filter on (a walk's estimate, the candidates of reading the members first): each
// condition is then testedMembers, whose cost the rows and the members set rather
// than PostgreSQL's statistics. With testedUntilKept, a lookup per row; with
// joinsPlanned, PostgreSQL plans the conditions as joins.
func whereMembership(q *bun.SelectQuery, ws workspaceArg, f crm.MembershipFilter, contact, tested string) *bun.SelectQuery {
	for _, c := range membershipConds(ws, f, contact, tested) {
		q = q.Where(c.sql, c.args...)
	}
	return q
}

// membershipConds returns the conditions that whereMembership adds.
func membershipConds(ws workspaceArg, f crm.MembershipFilter, contact, tested string) []sqlCond {
	member := func(ids any) sqlCond {
		switch tested {
		case joinsPlanned:
			return sqlCond{"EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = ? AND m.contact_id = " + contact + " AND m.segment_id = ANY(?))", []any{ws, ids}}
		case testedUntilKept:
			return sqlCond{walkedMembersOf(contact, "ANY(?)"), []any{ws, ids}}
		}
		cond, args := testedMembers(ws, ids, contact, tested)
		return sqlCond{cond, args}
	}
	var conds []sqlCond
	if f.Any != nil {
		conds = append(conds, member(pgdialect.Array(f.Any)))
	}
	switch all := unique(f.All); {
	case len(all) > maxAllJoins:
		sub, args := allMembers(ws, all)
		conds = append(conds, sqlCond{contact + " IN (" + sub + ")", args})
	default:
		for _, id := range all {
			conds = append(conds, member(pgdialect.Array([]int64{id})))
		}
	}
	if len(f.None) > 0 {
		c := member(pgdialect.Array(f.None))
		conds = append(conds, sqlCond{"NOT (" + c.sql + ")", c.args})
	}
	return conds
}

// andConds is the conjunction of conds: true when there are none.
func andConds(conds []sqlCond) sqlCond {
	if len(conds) == 0 {
		return sqlCond{"true", nil}
	}
	var sqls []string
	var args []any
	for _, c := range conds {
		sqls = append(sqls, "("+c.sql+")")
		args = append(args, c.args...)
	}
	return sqlCond{strings.Join(sqls, " AND "), args}
}

// The tested of whereMembership that are not a number of rows.
const (
	// joinsPlanned: a count, or a page of a rare term's matches, which reads its
	// rows whole, where PostgreSQL's hash joins are right.
	joinsPlanned = ""
	// testedUntilKept: rows tested until one is kept, as a page's probe does.
	testedUntilKept = "0"
)

// testedMembers returns the condition that contact (SQL, such as "c.id") is a
// member of any of the segments ids, for a page's statement that tests it on about
// tested rows (SQL), with its arguments: the members hashed once (hashedMembers) when
// their number, from the segments' counters, is at most hashedWalkFactor times
// tested, else a lookup per row (walkedMembers). Either way the condition costs what
// the rows and the members are. Left to PostgreSQL, a page's anti-join or semi-join
// under its LIMIT could scan a segment's members again for each row tested, when the
// statistics take the segment for a few members: they hold the 100 most common
// segment IDs of the whole table and take any other for the average of the rest, so
// a new segment, or any among many small ones, is planned so. A page of a segment
// of 4,000 members but not of another of 4,000, at 5,000 contacts, read 800,000
// memberships (60 ms; TestPagesTestSegmentsTheStatisticsDoNotKnow).
func testedMembers(ws workspaceArg, ids any, contact, tested string) (string, []any) {
	// The choice in a scalar subquery: made once per statement, not per row.
	return fmt.Sprintf("CASE WHEN (SELECT coalesce(sum(s.contact_count), 0) <= %d * %s FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?))"+
			" THEN %s ELSE %s END", hashedWalkFactor, tested, hashedMembers(contact), walkedMembersOf(contact, "ANY(?)")),
		[]any{ws, ids, ws, ids, ws, ids}
}

// contactSearchCond returns the condition of a contact search: the contact's name,
// phone or email contains the term as written, ignoring case, accents and the other
// differences that folding takes away (searchPattern). A term made of digits and
// phone punctuation ("+91 98765-43210") may also be a phone number written another
// way: its digits, which is how the number is stored, are then also looked for in the
// phone, and only there, so that "12-34" does not find "Room 1234" (phoneSearch);
// and a whole number so written ("+44 (0) 7911 123456") is also looked for as stored.
//
// Every alternative searches contactSearch, so all are served by its trigram index
// (contacts_search, a BitmapOr of index scans); the phone alone rechecks the others.
// A term of digits alone needs only the first: the phone is part of the text.
func contactSearchCond(term string) (string, []any) {
	// The phone's patterns (below) are ASCII digits, which folding leaves as they are.
	cond, args := contactSearch+" LIKE "+searchPattern, []any{term}
	if p, ok := phoneSearch(term); ok {
		phone := "c.phone LIKE ?"
		args = append(args, p.contains, p.phone)
		if p.orPhone != "" {
			phone = "(c.phone LIKE ? OR c.phone LIKE ?)"
			args = append(args, p.orPhone)
		}
		cond += " OR (" + contactSearch + " LIKE ? AND " + phone + ")"
		if p.e164 != "" {
			cond += " OR (" + contactSearch + " LIKE ? AND c.phone LIKE ?)"
			args = append(args, likePattern(p.e164), p.e164+"%")
		}
		cond = "(" + cond + ")"
	}
	return cond, args
}

// phonePatterns are the LIKE patterns of a term that may be a phone number written
// another way (contactSearchCond's second alternative): its digits anywhere in the
// searched text, which the text's index serves, and where the phone holds them.
type phonePatterns struct {
	contains string
	// phone is where the phone holds the digits: anywhere, or from its start for a
	// term that starts with + or 00, the international prefix ("+91 98" is a number
	// of India starting 98, not one with 9198 anywhere); orPhone, when not "", is
	// another such place: a term starting with 00 may also be the middle of a number
	// ("0012 3456" in +442000123456).
	phone, orPhone string
	// e164, when not "", is the term as a whole phone number, as contactByPhone reads
	// it, whose E.164 form is not its digits: the number was written with its trunk
	// prefix ("+44 (0) 7911 123456", "+62 0812-…"), which E.164 drops. Phones starting
	// so match too, as for any term starting with +.
	e164 string
}

// phoneSearch returns the patterns of term when it is made only of digits (of any
// script) and phone punctuation (+ - ( ) . / and spaces, of any kind), holds at least
// three digits (fewer would match most phones), and is not its digits alone, unless
// they start with the international prefix ("00919876543210"). A term of fewer digits
// written in another script's digits, or with a fullwidth plus, is searched for in the
// phone as its ASCII form is by the text's own search ("+٩١" as "+91"), which does
// not find it as written.
func phoneSearch(term string) (phonePatterns, bool) {
	written := crm.PhoneText(term)
	var b strings.Builder
	for _, r := range written {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune(" +-()./", r):
		default:
			return phonePatterns{}, false
		}
	}
	digits := b.String()
	if len(digits) < 3 {
		if digits == "" || written == term {
			return phonePatterns{}, false
		}
		p := phonePatterns{contains: likePattern(written)}
		p.phone = p.contains
		return p, true
	}
	p := phonePatterns{contains: likePattern(digits)}
	p.phone = p.contains
	switch lead := strings.TrimLeft(written, " ("); {
	case strings.HasPrefix(lead, "+"):
		p.phone = from(p.contains)
	case strings.HasPrefix(lead, "00") && len(digits) > 2+2: // the prefix and some digits
		// The text's index looks for the digits after the prefix, which both
		// places of the phone hold.
		p.contains = likePattern(digits[2:])
		p.phone, p.orPhone = from(p.contains), likePattern(digits)
	case digits == term:
		return phonePatterns{}, false // the text's own search finds them in the phone
	}
	if e164, err := crm.NormalizePhone(term); err == nil && e164+"%" != p.phone {
		p.e164 = e164
	}
	return p, true
}

// from is the pattern contains ("%digits%") anchored at the start of a phone, after
// its +.
func from(contains string) string {
	return "+" + strings.TrimPrefix(contains, "%")
}

// searchShare returns the SQL of the share of the contacts that contactSearchCond
// finds for term, as PostgreSQL's planner estimates it, or null without an estimate
// (migration 20261202000002_contact_search_sample), with its arguments. The pages
// of searches (searchpages.go) and of segments' members
// (twoWayPageSelect) choose their way by it.
func searchShare(term string) (string, []any) {
	var alt *string
	if p, ok := phoneSearch(term); ok {
		alt = &p.contains
	}
	return "segments_contact_search_share(" + searchPattern + ", ?)", []any{term, alt}
}

// ContactsByID returns the contacts with the given IDs that exist in the workspace.
func (s *Store) ContactsByID(ctx context.Context, ws int64, ids []int64) (map[int64]crm.Contact, error) {
	var rows []contactRow
	err := s.db.NewSelect().Model(&rows).
		Where("c.workspace_id = ? AND c.id = ANY(?)", s.workspaceArg(ws), pgdialect.Array(ids)).
		Scan(ctx)
	out := make(map[int64]crm.Contact, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Contact
	}
	return out, err
}

// ContactsInOrder returns the contacts of the workspace that ids name, in one
// statement: one per distinct ID, in the order of its first appearance in ids, and
// none for an ID that names no contact of the workspace (or one deleted meanwhile).
func (s *Store) ContactsInOrder(ctx context.Context, ws int64, ids []int64) ([]crm.Contact, error) {
	if len(ids) == 0 {
		return []crm.Contact{}, nil
	}
	found, err := s.ContactsByID(ctx, ws, sortedUnique(ids))
	if err != nil {
		return nil, err
	}
	out := make([]crm.Contact, 0, len(found))
	for _, id := range unique(ids) {
		if c, ok := found[id]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// ContactByPhone returns the contact with the phone number, written in any
// international format, or a NOT_FOUND error. A phone given exactly as a contact has
// it is that contact's, even where the numbering plans have changed since it was
// stored, as in UpsertContacts: such a phone is looked up as given too, and a contact
// that has it exactly comes first.
func (s *Store) ContactByPhone(ctx context.Context, ws int64, phone string) (crm.Contact, error) {
	e164, invalid := crm.NormalizePhone(phone)
	var phones []string
	if invalid == nil {
		phones = append(phones, e164)
	}
	if crm.MayBeStoredAsGiven(phone, e164, invalid) {
		phones = append(phones, phone)
	}
	if len(phones) == 0 {
		return crm.Contact{}, invalid
	}
	var row contactRow
	err := s.db.NewSelect().Model(&row).
		Where("c.workspace_id = ? AND c.phone = ANY(?)", s.workspaceArg(ws), pgdialect.Array(phones)).
		OrderExpr("c.phone = ? DESC", phone).Limit(1).
		Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows) && invalid != nil:
		return crm.Contact{}, invalid
	case errors.Is(err, sql.ErrNoRows):
		return crm.Contact{}, crm.Errorf(crm.CodeNotFound, crm.Path("phone"), "no contact with this phone")
	}
	return row.Contact, err
}

// ContactsByPhone finds the contacts with the phones, each as ContactByPhone finds
// its phone, in one statement on the workspace's unique phone index (= ANY) for the
// whole list (up to crm.MaxLookupPhones phones; more is TOO_MANY and reads nothing).
// found holds a contact per phone, in the order of phones, nil where the workspace
// has none (a phone given twice gets its contact twice); refused holds, at the index
// of each phone ContactByPhone would refuse (one that cannot be read, and that no
// contact has as given), its refusal, its field ["phones", "i"]: nil for the rest.
func (s *Store) ContactsByPhone(ctx context.Context, ws int64, phones []string) (found []*crm.Contact, refused []error, err error) {
	if err := crm.CheckCount("phones", len(phones), crm.MaxLookupPhones); err != nil {
		return nil, nil, err
	}
	// Each phone's candidates, as in ContactByPhone: its E.164 form when it has one,
	// and the phone as given when a contact may have it so, which comes first.
	type candidates struct{ asGiven, e164 string }
	want := make([]candidates, len(phones))
	refused = make([]error, len(phones))
	var all []string
	for i, phone := range phones {
		e164, invalid := crm.NormalizePhoneAt(crm.Path("phones", i), phone)
		if crm.MayBeStoredAsGiven(phone, e164, invalid) {
			want[i].asGiven = phone
			all = append(all, phone)
		}
		if invalid != nil {
			refused[i] = invalid // unless a contact has it as given
		} else {
			want[i].e164 = e164
			all = append(all, e164)
		}
	}
	byPhone := map[string]*crm.Contact{}
	if len(all) > 0 {
		var rows []contactRow
		err := s.db.NewSelect().Model(&rows).
			Where("c.workspace_id = ? AND c.phone = ANY(?)", s.workspaceArg(ws), pgdialect.Array(all)).
			Scan(ctx)
		if err != nil {
			return nil, nil, err
		}
		for i := range rows {
			byPhone[rows[i].Phone] = &rows[i].Contact
		}
	}
	found = make([]*crm.Contact, len(phones))
	for i, w := range want {
		switch c := byPhone[w.asGiven]; {
		case w.asGiven != "" && c != nil:
			found[i], refused[i] = c, nil
		case w.e164 != "":
			found[i] = byPhone[w.e164]
		}
	}
	return found, refused, nil
}

// Upserted is the outcome of UpsertContacts.
type Upserted struct {
	// Contacts are the stored contacts, one per input, in input order. Inputs with the
	// same phone name the same contact.
	Contacts []crm.Contact
	// CreatedIDs are the IDs of the contacts the upsert created, each once, in the
	// order of its first input.
	CreatedIDs []int64
	Created    int // contacts that did not exist: len(CreatedIDs)
	Updated    int // existing contacts whose stored values changed
	// Segments are the segments the inputs' AddToSegments name, each once in the order
	// of its first appearance, with their counts after the change (none unless
	// WithSegments).
	Segments []crm.Segment
	// Assigned counts the memberships AddToSegments created; those that existed
	// already are not counted.
	Assigned int
}

// UpsertContacts is UpsertContactsWith without reading segments back.
func (s *Store) UpsertContacts(ctx context.Context, ws int64, in []crm.ContactInput) (Upserted, error) {
	return s.UpsertContactsWith(ctx, ws, in, WithoutSegments)
}

// UpsertContactsWith creates or updates contacts matched by phone, and adds each to
// the segments of its AddToSegments, all or nothing. Inputs with the same phone apply
// in order, as one contact. An existing contact whose values would not change is not
// written, and its UpdatedAt stays. A segment ID that names no segment of the
// workspace is NOT_FOUND at contacts.i.addToSegmentIds.j, and nothing changes.
//
// The memberships are added as an assignment adds them, in the same transaction and
// lock order: the contacts first (lockContactsByPhone, then the rows it inserts),
// then the segments in id order with an assignment's lock (addingToSegments), then
// every pair in one statement, in index order (insertPairs), whose triggers lock the
// bitmaps' chunks and the counters as an assignment's do.
func (s *Store) UpsertContactsWith(ctx context.Context, ws int64, in []crm.ContactInput, back SegmentsBack) (Upserted, error) {
	if len(in) > crm.MaxBulkContacts {
		return Upserted{}, crm.Errorf(crm.CodeTooMany, crm.Path("contacts"), "%d contacts given, the maximum is %d", len(in), crm.MaxBulkContacts)
	}
	if err := crm.CheckUpsertMemberships(in); err != nil {
		return Upserted{}, err
	}
	w := s.workspaceArg(ws)
	if err := s.normalizeUpserts(ctx, ws, in); err != nil {
		// The segments' problems too, read without a lock: every problem at once. A
		// failure of the database's stays the error, not hidden behind them.
		if crm.UserErrors(err) == nil {
			return Upserted{}, err
		}
		if segErr := upsertSegments(ctx, s.db, w, in, ""); crm.UserErrors(segErr) != nil {
			err = append(crm.Errors(crm.UserErrors(err)), crm.UserErrors(segErr)...)
		}
		return Upserted{}, err
	}
	changes := mergeByPhone(in)
	cols := upsertColumns(changes)

	var out Upserted
	insert := insertPairs
	// The rows the statements return (up to 1,000 each) are read through pgx
	// (scanRowsOn): through Bun's reflection, they were a fifth of the request's CPU.
	err := s.inTxOn(ctx, func(ctx context.Context, tx bun.Tx, conn *sql.Conn) error {
		locked, before, err := lockContactsByPhone(ctx, tx, conn, w, changes, waitForLocks)
		if err != nil {
			return err
		}
		byPhone := make(map[string]crm.Contact, len(changes))
		// New contacts, in phone order so that concurrent upserts lock in one order.
		created, err := scanRowsOn[contactRow](ctx, conn, tx.NewRaw(`
			INSERT INTO contacts AS c (workspace_id, phone, name, email, attributes)
			SELECT ?, u.phone, u.name, u.email, `+mergeAttributes("'{}'::jsonb")+`
			FROM `+upsertSource+`
			ORDER BY u.phone
			ON CONFLICT (workspace_id, phone) DO NOTHING
			RETURNING `+columnsOf[contactRow](s.db, "c"), append([]any{ws}, cols...)...), len(changes))
		if err != nil {
			return err
		}
		for _, r := range created {
			byPhone[r.Phone] = r.Contact
		}
		if len(created)+locked < len(changes) {
			// Contacts another upsert created after the lock above, which the INSERT
			// found and left alone: locked in id order too before the UPDATE, which
			// locks in the order of its join. Concurrent upserts of the same new phones
			// updated them in orders of their own, and deadlocked (a helper saw 7 of 80
			// answered INTERNAL_SERVER_ERROR, 15 TIMEOUT, with 8 clients at once).
			// Without waiting: this transaction holds the rows it inserted, which
			// other upserts' inserts wait for, and those may hold what it would wait
			// for (a deletion makes a phone new again between the statements: 29
			// deadlocks in 45 s of 5 upserters beside 5 deleters). When one is held,
			// the upsert runs again, and its first lock takes them in turn.
			var later []*contactChange
			for _, c := range changes {
				if _, mine := byPhone[c.phone]; !mine {
					later = append(later, c)
				}
			}
			_, sizes, err := lockContactsByPhone(ctx, tx, conn, w, later, failOnLocks)
			if lockHeld(err) {
				return errConcurrentChange
			}
			if err != nil {
				return err
			}
			if sizes != nil && before == nil {
				before = make(map[string]int, len(sizes))
			}
			for phone, size := range sizes {
				if _, seen := before[phone]; !seen {
					before[phone] = size // as the other upsert left it: this one's "before"
				}
			}
		}
		// Existing contacts, written only where a value changes. The new values are
		// computed from the row being updated, so concurrent merges are not lost.
		newName := "CASE WHEN u.set_name THEN u.name ELSE c.name END"
		newEmail := "CASE WHEN u.set_email THEN u.email ELSE c.email END"
		newAttrs := mergeAttributes("c.attributes")
		var updated []contactRow
		if len(created) < len(changes) {
			updated, err = scanRowsOn[contactRow](ctx, conn, tx.NewRaw(`
				UPDATE contacts AS c
				SET name = `+newName+`, email = `+newEmail+`, attributes = `+newAttrs+`, updated_at = now()
				FROM `+upsertSource+`
				WHERE c.workspace_id = ? AND c.phone = u.phone
				  AND (`+newName+`, `+newEmail+`, `+newAttrs+`) IS DISTINCT FROM (c.name, c.email, c.attributes)
				RETURNING `+columnsOf[contactRow](s.db, "c"), append(cols, w)...), len(changes)-len(created))
			if err != nil {
				return err
			}
		}
		for _, r := range updated {
			byPhone[r.Phone] = r.Contact
		}
		if err := checkMergedAttributes(in, before, created, updated); err != nil {
			return err
		}
		// The unchanged rest.
		var rest []string
		for _, c := range changes {
			if _, ok := byPhone[c.phone]; !ok {
				rest = append(rest, c.phone)
			}
		}
		if len(rest) > 0 {
			unchanged, err := scanRowsOn[contactRow](ctx, conn, tx.NewSelect().Model((*contactRow)(nil)).
				Where("c.workspace_id = ? AND c.phone = ANY(?)", w, pgdialect.Array(rest)), len(rest))
			if err != nil {
				return err
			}
			for _, r := range unchanged {
				byPhone[r.Phone] = r.Contact
			}
		}
		// A contact that another upsert created after the lock above, found by the
		// INSERT (which then left it alone), and that a concurrent transaction deleted
		// before the UPDATE or SELECT: run again, and it will be created.
		if len(byPhone) < len(changes) {
			return errConcurrentChange
		}
		out = Upserted{Contacts: make([]crm.Contact, len(in)), CreatedIDs: make([]int64, 0, len(created)), Created: len(created), Updated: len(updated)}
		isNew := make(map[int64]bool, len(created))
		for _, r := range created {
			isNew[r.ID] = true
		}
		for i := range in {
			c := byPhone[in[i].Phone]
			out.Contacts[i] = c
			if isNew[c.ID] {
				out.CreatedIDs = append(out.CreatedIDs, c.ID)
				delete(isNew, c.ID) // listed at its first entry only
			}
		}
		segmentIDs, contactIDs := upsertPairs(in, out.Contacts)
		if len(segmentIDs) == 0 {
			return nil
		}
		if err := upsertSegments(ctx, tx, w, in, addingToSegments); err != nil {
			return err
		}
		out.Assigned, err = insert(ctx, tx, w, segmentIDs, contactIDs)
		if errors.Is(err, errConcurrentChange) {
			// As in assign: the next attempt skips the pairs others add meanwhile.
			insert = insertPairsSkippingConflicts
		}
		if err != nil || !back {
			return err
		}
		out.Segments, err = segmentsInOrder(ctx, tx, w, unique(namedSegments(in)))
		return err
	})
	if err == nil {
		s.noteWritten("contacts", ws, out.Created)
		s.noteWritten("memberships", ws, out.Assigned)
	}
	return out, err
}

// upsertPairs returns the memberships the inputs' AddToSegments add, contacts
// being the stored contact of each input: pairs without repeats, sorted by segment
// then contact (the order of insertPairs), as two lists of the same length.
func upsertPairs(in []crm.ContactInput, contacts []crm.Contact) (segmentIDs, contactIDs []int64) {
	type pair struct{ segment, contact int64 }
	var pairs []pair
	for i, c := range in {
		for _, seg := range c.AddToSegments {
			pairs = append(pairs, pair{seg, contacts[i].ID})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(cmp.Compare(a.segment, b.segment), cmp.Compare(a.contact, b.contact))
	})
	pairs = slices.Compact(pairs)
	segmentIDs, contactIDs = make([]int64, len(pairs)), make([]int64, len(pairs))
	for i, p := range pairs {
		segmentIDs[i], contactIDs[i] = p.segment, p.contact
	}
	return segmentIDs, contactIDs
}

// namedSegments returns the segment IDs the inputs' AddToSegments name, in order,
// repeats kept.
func namedSegments(in []crm.ContactInput) []int64 {
	var named []int64
	for _, c := range in {
		named = append(named, c.AddToSegments...)
	}
	return named
}

// upsertSegments locks the segments that the inputs' AddToSegments name, in id order
// with the given strength (lockSegments; "" reads them without a lock), and reports
// each ID that names no segment of the workspace as NOT_FOUND at its place,
// contacts.i.addToSegmentIds.j.
func upsertSegments(ctx context.Context, db bun.IDB, ws workspaceArg, in []crm.ContactInput, strength string) error {
	named := namedSegments(in)
	if len(named) == 0 {
		return nil
	}
	found, err := segmentsFound(ctx, db, ws, named, strength)
	if err != nil {
		return err
	}
	have := make(map[int64]bool, len(found))
	for _, id := range found {
		have[id] = true
	}
	var errs crm.Errors
	for i, c := range in {
		for j, id := range c.AddToSegments {
			if !have[id] {
				errs = append(errs, crm.Errorf(crm.CodeNotFound, crm.Path("contacts", i, "addToSegmentIds", j), "no segment with this ID"))
			}
		}
	}
	return errs.Err()
}

// attributesSize is the size of a contact's attributes (jsonb's text, in bytes).
type attributesSize struct {
	Phone string
	Size  int
}

func (r *attributesSize) dest(col string) any {
	switch col {
	case "phone":
		return &r.Phone
	case "size":
		return &r.Size
	}
	return nil
}

// checkMergedAttributes refuses an upsert that takes a contact's attributes past
// crm.MaxAttributesBytes: each entry's are checked on their own (crm), but merged
// into the stored ones, or with another entry's for the same phone, they grew
// without bound, and every page of contacts reads them. before has the sizes of the
// stored ones by phone, as lockContactsByPhone read them. The entry named is the
// last of its phone that sets attributes.
func checkMergedAttributes(in []crm.ContactInput, before map[string]int, rows ...[]contactRow) error {
	grown := map[string]int{} // phone: size as compact JSON
	for _, rs := range rows {
		for _, r := range rs {
			old, existed := before[r.Phone]
			if !existed {
				old = -1
			}
			if n, grew := attributesGrewPast(r.Attributes, old); grew {
				grown[r.Phone] = n
			}
		}
	}
	if len(grown) == 0 {
		return nil
	}
	last := map[string]int{} // phone: index of its last entry that sets attributes
	for i, c := range in {
		if _, ok := grown[c.Phone]; ok && c.Attributes.Set {
			last[c.Phone] = i
		}
	}
	var errs crm.Errors
	for _, i := range slices.Sorted(maps.Values(last)) {
		errs = append(errs, tooManyAttributes(crm.Path("contacts", i, "attributes"), grown[in[i].Phone]))
	}
	return errs.Err()
}

// attributesGrewPast reports whether attrs, as PostgreSQL returned them (jsonb's
// text), take more than crm.MaxAttributesBytes as compact JSON, as crm measures them
// (n), and more than the before bytes of jsonb's text they replaced (-1: none).
// Attributes over the limit from before it held may stay so, or shrink.
func attributesGrewPast(attrs json.RawMessage, before int) (n int, grew bool) {
	if len(attrs) <= crm.MaxAttributesBytes || len(attrs) <= before {
		return len(attrs), false // jsonb's text is never shorter than its compact JSON
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, attrs); err != nil {
		return len(attrs), true
	}
	return compact.Len(), compact.Len() > crm.MaxAttributesBytes
}

func tooManyAttributes(field []string, n int) *crm.Error {
	return crm.Errorf(crm.CodeTooLong, field,
		"the contact's attributes would take %d bytes as JSON with these merged in, the maximum is %d: remove some (a key given as null is removed)",
		n, crm.MaxAttributesBytes)
}

// lockContactsByPhone locks the workspace's existing contacts with these phones, in id
// order, as every writer of contacts does (see lockContacts). Locked before anything
// is written, none of them can be deleted by a concurrent transaction before the
// upsert updates it; one deleted while this waited is no longer found, and the
// upsert creates it again. Left to the UPDATE, the rows were locked in the order of
// its join, and an upsert deadlocked with a deletion of the same contacts.
//
// It returns how many contacts it locked and, when a change sets attributes, the size
// of each one's attributes (jsonb's text, in bytes) by phone, for
// checkMergedAttributes. With mode failOnLocks, a contact another transaction holds fails it
// at once (lockHeld) rather than waiting.
func lockContactsByPhone(ctx context.Context, tx bun.Tx, conn *sql.Conn, ws workspaceArg, changes []*contactChange, mode lockWait) (int, map[string]int, error) {
	phones := make([]string, len(changes))
	sizes := false
	for i, c := range changes {
		phones[i] = c.phone
		sizes = sizes || c.setAttrs
	}
	q := tx.NewSelect().Table("contacts").Column("id").
		Where("workspace_id = ? AND phone = ANY(?)", ws, pgdialect.Array(phones)).
		OrderExpr("id").For(updatingContacts + string(mode))
	if !sizes {
		res, err := q.Exec(ctx)
		if err != nil {
			return 0, nil, err
		}
		n, err := res.RowsAffected()
		return int(n), nil, err
	}
	rows, err := scanRowsOn[attributesSize](ctx, conn, q.Column("phone").ColumnExpr("octet_length(attributes::text) AS size"), len(changes))
	if err != nil {
		return 0, nil, err
	}
	before := make(map[string]int, len(rows))
	for _, r := range rows {
		before[r.Phone] = r.Size
	}
	return len(rows), before, nil
}

// lockWait says whether a lock waits for a transaction that holds what it locks.
type lockWait string

const (
	waitForLocks lockWait = ""
	failOnLocks  lockWait = " NOWAIT"
)

// upsertSource is the table of merged inputs that upsertColumns fills.
const upsertSource = `unnest(?::text[], ?::text[], ?::text[], ?::bool[], ?::bool[], ?::bool[], ?::bool[], ?::jsonb[])
	AS u(phone, name, email, set_name, set_email, set_attributes, clear_attributes, attributes)`

// mergeAttributes is the SQL of old attributes with u's patch applied: keys given
// replace, keys given as null are removed (JSON Merge Patch on the top level), and
// clear_attributes starts from no attributes at all.
func mergeAttributes(old string) string {
	return `CASE WHEN u.set_attributes THEN
		(CASE WHEN u.clear_attributes THEN '{}'::jsonb ELSE ` + old + ` END || u.attributes) -
		ARRAY(SELECT e.key FROM jsonb_each(u.attributes) AS e WHERE jsonb_typeof(e.value) = 'null')
		ELSE ` + old + ` END`
}

// contactChange is what one upsert does to one contact, inputs with the same phone
// folded together.
type contactChange struct {
	phone       string
	name, email crm.Optional[*string]
	// The attributes change when setAttrs: from none at all when clearAttrs, else from
	// the stored ones, with patch merged in.
	setAttrs, clearAttrs bool
	patch                map[string]any
}

func (c *contactChange) apply(d crm.ContactDetails) {
	if d.Name.Set {
		c.name = d.Name
	}
	if d.Email.Set {
		c.email = d.Email
	}
	if !d.Attributes.Set {
		return
	}
	c.setAttrs = true
	if d.Attributes.Value == nil { // null: remove every attribute, then go on patching
		c.clearAttrs, c.patch = true, map[string]any{}
		return
	}
	if c.patch == nil {
		c.patch = map[string]any{}
	}
	for k, v := range d.Attributes.Value {
		c.patch[k] = v // a null stays, to remove the key from the stored ones
	}
}

// normalizeUpserts normalizes each input (crm.ContactInput.Normalize), and reports
// every problem of every input at once. A phone given exactly as a contact of the
// workspace has it is that contact's, even where the numbering plans have changed
// since it was stored (crm.ContactInput.NormalizeKnown): a sync sends back the phones
// it was given. Only a phone in the form every stored phone has that its plan rejects
// or writes otherwise can be such a phone (crm.MayBeStoredAsGiven), so only those are
// looked up, in one indexed statement, and a sync of valid phones sends none. The lookup
// runs before the upsert's transaction: a known contact deleted in between is created
// again with the phone it had.
func (s *Store) normalizeUpserts(ctx context.Context, ws int64, in []crm.ContactInput) error {
	problems := make([]error, len(in))
	doubtful := map[int]crm.ContactInput{} // as given
	for i := range in {
		given := in[i]
		problems[i] = in[i].Normalize()
		if crm.MayBeStoredAsGiven(given.Phone, in[i].Phone, problems[i]) {
			doubtful[i] = given
		}
	}
	if len(doubtful) > 0 {
		phones := make([]string, 0, len(doubtful))
		for _, c := range doubtful {
			phones = append(phones, c.Phone)
		}
		var found []string
		if err := s.db.NewRaw(`SELECT phone FROM contacts WHERE workspace_id = ? AND phone = ANY(?)`,
			s.workspaceArg(ws), pgdialect.Array(phones)).Scan(ctx, &found); err != nil {
			return err
		}
		known := make(map[string]bool, len(found))
		for _, p := range found {
			known[p] = true
		}
		for i, c := range doubtful {
			if known[c.Phone] {
				in[i] = c
				problems[i] = in[i].NormalizeKnown()
			}
		}
	}
	var errs crm.Errors
	for i, err := range problems {
		if err != nil {
			errs = append(errs, crm.Prefixed(crm.UserErrors(err), "contacts", fmt.Sprint(i))...)
		}
	}
	return errs.Err()
}

// mergeByPhone folds inputs with the same phone into one change, in input order, and
// returns the changes in the order their phones first appear.
func mergeByPhone(in []crm.ContactInput) []*contactChange {
	byPhone := make(map[string]*contactChange, len(in))
	var out []*contactChange
	for _, c := range in {
		ch, ok := byPhone[c.Phone]
		if !ok {
			ch = &contactChange{phone: c.Phone}
			byPhone[c.Phone] = ch
			out = append(out, ch)
		}
		ch.apply(c.ContactDetails)
	}
	return out
}

// upsertColumns returns the arrays of upsertSource, one element per change.
func upsertColumns(changes []*contactChange) []any {
	n := len(changes)
	phones, attrs := make([]string, n), make([]string, n)
	names, emails := make([]*string, n), make([]*string, n)
	setName, setEmail, setAttrs, clearAttrs := make([]bool, n), make([]bool, n), make([]bool, n), make([]bool, n)
	for i, c := range changes {
		phones[i] = c.phone
		names[i], setName[i] = c.name.Value, c.name.Set
		emails[i], setEmail[i] = c.email.Value, c.email.Set
		setAttrs[i], clearAttrs[i] = c.setAttrs, c.clearAttrs
		attrs[i] = "{}"
		if c.patch != nil {
			b, _ := json.Marshal(c.patch) // checked by Normalize
			attrs[i] = string(b)
		}
	}
	return []any{pgdialect.Array(phones), pgdialect.Array(names), pgdialect.Array(emails),
		pgdialect.Array(setName), pgdialect.Array(setEmail), pgdialect.Array(setAttrs), pgdialect.Array(clearAttrs),
		pgdialect.Array(attrs)}
}

// UpdateContact changes the fields of a contact that the patch sets. UpdatedAt moves
// only when a value actually changes.
func (s *Store) UpdateContact(ctx context.Context, ws, id int64, p crm.ContactPatch) (crm.Contact, error) {
	if err := s.keepOwnPhone(ctx, ws, id, &p); err != nil {
		return crm.Contact{}, err
	}
	if err := p.Normalize(); err != nil {
		return crm.Contact{}, err
	}
	phone := ""
	if p.Phone.Set {
		phone = *p.Phone.Value
	}
	change := &contactChange{}
	change.apply(p.ContactDetails)
	cols := upsertColumns([]*contactChange{change})
	newPhone := "CASE WHEN ?::bool THEN ?::text ELSE c.phone END"
	newName := "CASE WHEN u.set_name THEN u.name ELSE c.name END"
	newEmail := "CASE WHEN u.set_email THEN u.email ELSE c.email END"
	newAttrs := mergeAttributes("c.attributes")
	var row contactRow
	// Arguments in the order of the placeholders: newPhone twice, the source, the row.
	args := append([]any{p.Phone.Set, phone, p.Phone.Set, phone}, cols...)
	args = append(args, s.workspaceArg(ws), id)
	// A new phone changes a key of the row, which PostgreSQL then locks as
	// exclusively as a deletion does: the change takes the workspace's contact turn
	// in its first statement, before the row's lock (contactTurnsKey). It takes it
	// whenever the phone is given, the contact's own too: it waits there only while a
	// select-all waits for a deletion, and a condition on the stored phone would take
	// it after the row's lock where PostgreSQL rechecks a row that another
	// transaction changed meanwhile.
	turn := "true"
	if p.Phone.Set {
		turn = contactTurnHeld(ws)
	}
	// ctx is the caller's: inside a transaction, the transaction's, whose statements
	// take no turn of their own (turns.go).
	update := func(ctx context.Context, db bun.IDB) error {
		return db.NewRaw(`
			UPDATE contacts AS c
			SET phone = `+newPhone+`, name = `+newName+`, email = `+newEmail+`, attributes = `+newAttrs+`,
			    updated_at = CASE WHEN (`+newPhone+`, `+newName+`, `+newEmail+`, `+newAttrs+`)
			        IS DISTINCT FROM (c.phone, c.name, c.email, c.attributes) THEN now() ELSE c.updated_at END
			FROM `+upsertSource+`
			WHERE c.workspace_id = ? AND c.id = ? AND `+turn+`
			RETURNING `+columnsOf[contactRow](s.db, "c"), args...).Scan(ctx, &row)
	}
	var err error
	if change.setAttrs {
		// The attributes merged into the stored ones may outgrow the limit
		// (checkMergedAttributes): checked before the change commits.
		err = s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var before int
			if err := tx.NewSelect().Table("contacts").ColumnExpr("octet_length(attributes::text)").
				Where("workspace_id = ? AND id = ?", s.workspaceArg(ws), id).Where(turn).For(updatingContacts).
				Scan(ctx, &before); err != nil {
				return err
			}
			if err := update(ctx, tx); err != nil {
				return err
			}
			if n, grew := attributesGrewPast(row.Attributes, before); grew {
				return tooManyAttributes(crm.Path("attributes"), n)
			}
			return nil
		})
	} else {
		// Retried as inTx retries (a swap of two phones deadlocks in the unique index,
		// and one of them is then TAKEN).
		err = retryTx(ctx, func() error { return update(ctx, s.db) })
	}
	switch {
	case violates(err, "contacts_workspace_id_phone_key"):
		return crm.Contact{}, crm.Errorf(crm.CodeTaken, crm.Path("phone"), "another contact has the phone %s", phone)
	case errors.Is(err, sql.ErrNoRows):
		return crm.Contact{}, crm.Errorf(crm.CodeNotFound, crm.Path("id"), "no contact with this ID")
	}
	return row.Contact, err
}

// keepOwnPhone takes the phone out of p when it is exactly the contact's own, which
// its numbering plan may now refuse or write otherwise (crm.MayBeStoredAsGiven): a
// form that sends every field back, the phone unchanged, then changes the others, as
// UpsertContacts does for a phone a contact has. Only such phones cost the lookup.
func (s *Store) keepOwnPhone(ctx context.Context, ws, id int64, p *crm.ContactPatch) error {
	if !p.Phone.Set || p.Phone.Value == nil {
		return nil
	}
	given := *p.Phone.Value
	if e164, err := crm.NormalizePhone(given); !crm.MayBeStoredAsGiven(given, e164, err) {
		return nil
	}
	own, err := s.ContactsByID(ctx, ws, []int64{id})
	if err != nil {
		return err
	}
	if c, ok := own[id]; ok && c.Phone == given {
		p.Phone = crm.Optional[*string]{}
	}
	return nil
}

// DeletedContacts is the outcome of DeleteContacts.
type DeletedContacts struct {
	IDs []int64 // in request order, without repeats
	// Segments are the segments the contacts were in, with their counts after the
	// deletion (none unless WithSegments).
	Segments []crm.Segment
}

// DeleteContacts deletes contacts and their memberships, all or nothing: when any ID
// names no contact of the workspace, nothing is deleted and the error names each one.
func (s *Store) DeleteContacts(ctx context.Context, ws int64, ids []int64, back SegmentsBack) (DeletedContacts, error) {
	if len(ids) > crm.MaxBulkContacts {
		return DeletedContacts{}, crm.Errorf(crm.CodeTooMany, crm.Path("ids"), "%d IDs given, the maximum is %d", len(ids), crm.MaxBulkContacts)
	}
	ids2 := unique(ids)
	var out DeletedContacts
	var memberships int64 // deleted with the contacts
	w := s.workspaceArg(ws)
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// The contacts first (see lockContacts): locked, they gain no memberships, so
		// the segments whose counters change are known before they are locked.
		if err := lockContacts(ctx, tx, w, "ids", ids, deletingContacts); err != nil {
			return err
		}
		var affected []int64
		err := tx.NewSelect().Table("segments").Column("id").
			Where("workspace_id = ? AND id IN (SELECT segment_id FROM memberships WHERE workspace_id = ? AND contact_id = ANY(?))",
				w, w, pgdialect.Array(ids2)).
			OrderExpr("id").For("UPDATE").
			Scan(ctx, &affected)
		if err != nil {
			return err
		}
		// Memberships first, in one statement: the counter trigger runs once, not once
		// per contact as the cascade would.
		res, err := tx.NewDelete().Table("memberships").
			Where("workspace_id = ? AND contact_id = ANY(?)", w, pgdialect.Array(ids2)).
			Exec(ctx)
		if err != nil {
			return err
		}
		memberships, _ = res.RowsAffected()
		// The contacts. A trigger records each in deleted_contacts for
		// Query.deletedContacts (migration 20261211000001), as it does any writer's.
		if _, err := tx.NewDelete().Table("contacts").
			Where("workspace_id = ? AND id = ANY(?)", w, pgdialect.Array(ids2)).
			Exec(ctx); err != nil {
			return err
		}
		out = DeletedContacts{IDs: ids2}
		if back {
			out.Segments, err = segmentsInOrder(ctx, tx, w, affected)
		}
		return err
	})
	if err == nil {
		s.noteRemoved("contacts", ws, len(ids2))
		s.noteRemoved("memberships", ws, int(memberships))
	}
	return out, err
}

// segmentContactRow is a contact of one segment in a batch of segments.
type segmentContactRow struct {
	contactRow `bun:",extend"`
	SegmentID  int64 `bun:"segment_id,scanonly"`
}

// ContactsOfSegments returns the same page of the contacts of each of the segments
// that cq also selects (its search and filter: the members of each segment that
// meet them), in cq's order, in one statement: a lateral join runs the page query
// once per segment. Without a filter, the statement is the one the benchmarks
// measured, byte for byte (TestStatementsOfSegmentBatchesStayTheSame).
func (s *Store) ContactsOfSegments(ctx context.Context, ws int64, segmentIDs []int64, cq crm.ContactQuery, args crm.PageArgs) (map[int64]Page[crm.Contact], error) {
	q, pq, err := s.contactsOfSegmentsSelect(s.workspaceArg(ws), segmentIDs, cq, args)
	if err != nil {
		return nil, err
	}
	var rows []segmentContactRow
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, err
	}
	// Rows of one segment arrive together and in page order.
	grouped := make(map[int64][]contactRow, len(segmentIDs))
	for _, r := range rows {
		grouped[r.SegmentID] = append(grouped[r.SegmentID], r.contactRow)
	}
	out := make(map[int64]Page[crm.Contact], len(segmentIDs))
	for _, id := range segmentIDs {
		rows, nav := splitPage(grouped[id], pq)
		out[id] = contactPage(rows, nav, pq.key)
	}
	return out, nil
}

// CheckContactPage checks the arguments of a page of contacts in order as reading
// it does (its size, its cursors: made by this API, for this list and order), and
// reads nothing: a mutation checks the pages its payload asks for before it
// changes anything.
func CheckContactPage(order crm.ContactOrder, args crm.PageArgs) error {
	key, ok := contactKeys[order.Field]
	if !ok {
		return fmt.Errorf("store: unknown contact order %q", order.Field)
	}
	_, err := pageQuery{alias: "c", key: key, dir: order.Direction, args: args}.bounds()
	return err
}

// contactsOfSegmentsSelect returns the statement of ContactsOfSegments, and the
// page's query.
//
// With a search, each segment's page is read as twoWayPageSelect reads it: walking
// the contacts in the page's order, or reading the segment's members first, or, when
// the walk falls short, the matches first. But the matches are sorted once for the
// whole batch (batchMatches,
// materialized, computed only if a page reads it), and each page that falls back
// reads them in order, testing each for membership until its page fills: about
// limit × n / k tests for a segment of k, a few dozen in a large segment. The
// walks share the sorting's cost (twoWayPage.batch): each reads at most as many
// contacts as its share of it, so that together they cost about what it does.
//
// Sorted by name, a term's matches lie together (see searchpages.go), and a walk
// of the search's list read every contact before them, for each segment: at 1M
// contacts, the first 5 contacts of each of the 20 largest segments searched for
// "aan" (124,100 matches), "m s", "r k" or "i m" (no trigram) ran past the
// request's timeout (10 s), and take 0.16-0.63 s. Reading the matches first, each
// one's memberships in the batch looked up and ranked (the way before for terms
// with a trigram and fewer than 100,000 matches), cost 10-17 µs a match, where
// sorting them costs 2: "vikram", "sharma" and "patel" took 0.19-0.28 s and take
// 0.11-0.19.
//
// cq's filter (its segment lists and field conditions) narrows every list the
// statement reads: the contacts a walk reads, the members read first, the matches
// sorted for the batch. Unsearched, a filter also weighs each page's way
// (twoWayPage.kept): a walk reads 1 / kept contacts for each one the filter keeps,
// kept estimated once from the first contacts in the page's order (filterKept), and
// a page whose walk would read more than its share of the workspace's contacts
// reads the filtered contacts the batch sorts once (batchMatches, as a search's
// matches), testing each in order for membership until its page fills. At 200,000
// contacts, the 50 largest segments (2,200-100,000 members), 10 contacts each,
// orders of at least 39 (2.5% of the contacts, no index): the walks of the 40 below
// 100,000 read about 30,000 contacts each (0.6-1.7 s), the sorting reads each
// contact once (0.2-0.5 s; docs/performance.md, "A segment's contacts, filtered").
// A walk that still finds too few of a segment's members meeting the filter stops at
// its limit and the members are read first, which costs what the segment holds, as
// any page of it may. And a filter of segment lists skips the segments that hold
// none of its audience, from the bitmaps (segmentAudiencesSQL): their pages are
// empty, where a walk read its limit in vain and then every member (a segment of
// 100,000 in a list filtered by None of itself).
func (s *Store) contactsOfSegmentsSelect(ws workspaceArg, segmentIDs []int64, cq crm.ContactQuery, args crm.PageArgs) (*bun.SelectQuery, pageQuery, error) {
	key, ok := contactKeys[cq.Order.Field]
	if !ok {
		return nil, pageQuery{}, fmt.Errorf("store: unknown contact order %q", cq.Order.Field)
	}
	search := cq.Search
	// The contacts the filter keeps, and those of them the search finds: the
	// workspace's contacts, and those the search finds, without a filter.
	filtered := crm.ContactQuery{Segments: cq.Segments, Conditions: cq.Conditions}
	searched := filtered
	searched.Search = search
	pq := pageQuery{alias: "c", key: key, dir: cq.Order.Direction, args: args}
	b, err := pq.bounds()
	if err != nil {
		return nil, pageQuery{}, err
	}
	segments := unique(segmentIDs)
	// Each segment's page is read the cheaper way for its size (membersFirstFactor).
	// Its walk looks each row up: a hash of the members would be built again for
	// every segment of the batch.
	p := twoWayPage[contactRow]{
		list: func(dst *[]contactRow) *bun.SelectQuery {
			return s.contactQuery(dst, ws, searched)
		},
		search:     search,
		walked:     func(q *bun.SelectQuery, _ bool) *bun.SelectQuery { return q.Where(walkedMembers("seg.id"), ws) },
		candidates: sqlCond{memberIDs("seg.id"), []any{ws}},
		lookUp: func(q *bun.SelectQuery, ids string, args []any) *bun.SelectQuery {
			return contactsIn(q, ws, ids, args)
		},
		sizes: segmentsSizes("sum", "sum", "seg.id"), sizesArgs: []any{ws, ws},
		firstFactor: membersFirstFactor,
	}
	if search != "" {
		// A search's walk counts the contacts it reads, and falls back on the
		// matches the batch sorts once (batchMatches).
		p.contacts = func(dst *[]contactRow) *bun.SelectQuery { return s.contactQuery(dst, ws, filtered) }
		p.batch = len(segments)
	} else if !filtered.Segments.IsZero() || !filtered.Conditions.IsZero() {
		// Each walk reads 1 / kept contacts for each row the filter keeps, or the
		// page reads the filtered contacts the batch sorts once (batchMatches).
		p.kept, p.keptArgs = s.filterKept(ws, filtered, pq, b)
		p.batch = len(segments)
	}
	var inner []contactRow
	page, err := twoWayPageSelect(p, &inner, pq)
	if err != nil {
		return nil, pageQuery{}, err
	}
	q := s.db.NewSelect()
	if f := filtered.Segments; !f.IsZero() {
		// The segments that hold none of the filter's audience have an empty page,
		// which the bitmaps tell in a few rows per segment (segmentAudiencesSQL):
		// their walk would read its limit in vain, then their members (a segment of
		// 100,000 in a list filtered by None of itself, 0.5-2.8 s).
		sql, args := segmentAudiences(ws, f, segments)
		q = q.TableExpr("(SELECT segment_id FROM ("+sql+") AS audiences WHERE n > 0) AS seg(id)", args...)
	} else {
		q = q.TableExpr("unnest(?::bigint[]) AS seg(id)", pgdialect.Array(segments))
	}
	q = q.Join("CROSS JOIN LATERAL (?) AS c", page).
		ColumnExpr("seg.id AS segment_id, c.*")
	if p.batch > 0 {
		var unused []contactRow
		matches := b.within(s.contactQuery(&unused, ws, searched).ColumnExpr(pq.sortColumns()))
		// Bun writes no OFFSET 0.
		sorted := pq.orderBySorted(s.db.NewSelect().TableExpr("(? OFFSET 0) AS "+pq.alias, matches).
			ColumnExpr(pq.alias+".id, "+sortKeyNames(pq)), pq.alias, b.walkDesc)
		q = q.WithQuery(bun.NewWithQuery(batchMatches, sorted).Materialized())
	}
	return q, pq, nil
}

// filterKept returns the SQL of the share of the contacts that filter f (its segment
// lists and field conditions) keeps, with its arguments, estimated as the share of
// the first filterSample contacts a walk of pq's page reads (in its order, within
// its cursors) that f keeps, plus one in both counts (so that a sample where f keeps
// none is not taken for an empty filter: a segment of 100,000 would read its members
// first). The walks' own rows are what the estimate is for: a filter of the newest
// contacts keeps every contact a walk newest first reads, few of those a walk by
// name reads. Reading the sample costs about what a walk of it does, once per
// statement (twoWayPage.kept).
func (s *Store) filterKept(ws workspaceArg, f crm.ContactQuery, pq pageQuery, b pageBounds) (string, []any) {
	var unused []contactRow
	sample := pq.orderBy(b.within(s.contactQuery(&unused, ws, crm.ContactQuery{}).ColumnExpr("c.*")), b.walkDesc).Limit(filterSample)
	// Each row tested by a lookup, as a walk tests them (testedUntilKept).
	cond := andConds(append(membershipConds(ws, f.Segments, "c.id", testedUntilKept), conditionConds(ws, f.Conditions)...))
	q := s.db.NewSelect().TableExpr("(?) AS c", sample).
		ColumnExpr("(count(*) FILTER (WHERE "+cond.sql+") + 1)::float8 / (count(*) + 1)", cond.args...)
	return "?", []any{q}
}

// filterSample is how many contacts filterKept reads.
const filterSample = 500

// batchMatches is the CTE of a batch of segments' pages of a search
// (contactsOfSegmentsSelect):
// the IDs and sort keys of the search's matches within the pages' cursors, sorted
// in the order the pages walk.
const batchMatches = "batch_matches"

// CountContactsOfSegments returns, for each segment, the number of its contacts that
// cq selects (its search and filter; not its order), exactly, in one statement: the
// contacts cq selects joined to the segments' memberships, or for a filter of
// segment lists alone, the segments' bitmaps (segmentAudiencesSQL).
func (s *Store) CountContactsOfSegments(ctx context.Context, ws int64, segmentIDs []int64, cq crm.ContactQuery) (map[int64]int, error) {
	var rows []struct {
		SegmentID int64 `bun:"segment_id"`
		N         int   `bun:"n"`
	}
	w := s.workspaceArg(ws)
	var err error
	if f := cq.Segments; cq.Search == "" && cq.Conditions.IsZero() && !f.IsZero() {
		sql, args := segmentAudiences(w, f, segmentIDs)
		err = s.db.NewRaw(sql, args...).Scan(ctx, &rows)
	} else {
		var q *bun.SelectQuery
		if q, err = s.segmentCountsSelect(w, segmentIDs, cq); err == nil {
			err = q.Scan(ctx, &rows)
		}
	}
	out := make(map[int64]int, len(segmentIDs))
	for _, r := range rows {
		out[r.SegmentID] = r.N
	}
	return out, err
}

// segmentCountsSelect returns the statement of CountContactsOfSegments with a search
// or field conditions: the contacts cq selects joined to the segments'
// memberships. PostgreSQL hashes the memberships of every segment of the list
// and reads the contacts cq selects, which for conditions it cannot estimate (a
// number's range, hasEmail: true) it takes for many. Unsearched, the statement
// also holds a lookup of each selected contact's memberships of the list
// (memberships_contact), which it takes where the contacts cq keeps, estimated
// from the first filterSample newest (filterKept), are fewer than the list's
// memberships by lookedUpPerMembership: at 200,000 contacts, the 50 largest
// segments hold about 1.2M memberships, and orders of at least 39 keeps 5,000
// contacts. The way is chosen once per statement; only its branch runs.
func (s *Store) segmentCountsSelect(ws workspaceArg, segmentIDs []int64, cq crm.ContactQuery) (*bun.SelectQuery, error) {
	filtered := crm.ContactQuery{Search: cq.Search, Segments: cq.Segments, Conditions: cq.Conditions}
	ids := pgdialect.Array(unique(segmentIDs))
	var dst, unused []contactRow
	joined := s.contactQuery(&dst, ws, filtered).
		Join("JOIN memberships AS m ON m.workspace_id = c.workspace_id AND m.contact_id = c.id").
		Where("m.segment_id = ANY(?)", ids).
		ColumnExpr("m.segment_id, count(*) AS n").
		GroupExpr("m.segment_id")
	if cq.Search != "" || cq.Conditions.IsZero() {
		return joined, nil
	}
	pq := pageQuery{alias: "c", key: contactsByCreatedAt, dir: crm.Desc}
	b, err := pq.bounds()
	if err != nil {
		return nil, err
	}
	kept, keptArgs := s.filterKept(ws, filtered, pq, b)
	way := s.db.NewSelect().ColumnExpr("("+kept+") * ("+allContactsSQL+") * ? <= "+
		"(SELECT coalesce(sum(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?)) AS looked_up",
		slices.Concat(keptArgs, []any{ws, lookedUpPerMembership, ws, ids})...)
	lookedUp := s.db.NewSelect().TableExpr("(? OFFSET 0) AS c", s.contactQuery(&unused, ws, filtered).ColumnExpr("c.id")).
		Join("CROSS JOIN LATERAL (SELECT m.segment_id FROM memberships m WHERE m.workspace_id = ? AND m.contact_id = c.id AND m.segment_id = ANY(?) OFFSET 0) AS m", ws, ids).
		Where("(SELECT looked_up FROM segment_counts_way)").
		ColumnExpr("m.segment_id, count(*) AS n").
		GroupExpr("m.segment_id")
	return s.db.NewSelect().With("segment_counts_way", way).
		TableExpr("(? UNION ALL ?) AS counts", lookedUp, joined.Where("NOT (SELECT looked_up FROM segment_counts_way)")).
		ColumnExpr("counts.segment_id, counts.n"), nil
}

// lookedUpPerMembership is what looking a contact's memberships of a list up
// (memberships_contact) costs, in memberships of the list hashed
// (segmentCountsSelect).
const lookedUpPerMembership = 10

// segmentAudiences returns segmentAudiencesSQL of membership filter f and segments,
// with its arguments.
func segmentAudiences(ws workspaceArg, f crm.MembershipFilter, segments []int64) (string, []any) {
	// A chunk the audience has no row of holds none of it, but where the filter
	// has only a None list (audienceChunksSQL).
	missing := "B'0'::bit(32768)"
	if f.Any == nil && len(f.All) == 0 {
		missing = "~(" + missing + ")"
	}
	return fmt.Sprintf(segmentAudiencesSQL, missing), append(audienceArgs(ws, f), ws, pgdialect.Array(unique(segments)))
}

// segmentAudiencesSQL counts, for each of the segments ANY(?), its members in the
// audience of a membership filter: the filter's chunks (audienceChunksSQL, whose
// arguments come first, read once for all the segments) ANDed with each segment's,
// chunk by chunk, the set bits summed; %s is the bits of a chunk the audience has no
// row of. It reads a few rows per segment (31 at 1M contacts), where joining the
// segments' memberships to the filter read every membership of every segment of the
// list. A segment with no member has no row, and counts 0.
const segmentAudiencesSQL = `WITH audience AS MATERIALIZED (` + audienceChunksSQL + `)
	SELECT s.segment_id, coalesce(sum(bit_count(s.bits & coalesce(a.bits, %s))), 0) AS n
	  FROM segment_bitmaps s LEFT JOIN audience a ON a.chunk = s.chunk
	 WHERE s.workspace_id = ? AND s.segment_id = ANY(?)
	 GROUP BY s.segment_id`
