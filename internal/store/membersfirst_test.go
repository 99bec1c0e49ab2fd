package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestMembersPagesReadTheCheaperWay: a page of the members of a segment small
// against its workspace is read members first, one of a large segment by walking
// the contacts in the page's order (store.membersFirstFactor), unless the walk finds
// too few members within its limit, when the members are read first after all
// (store.walkLimitFactor); and every way gives the same pages: forward to the end
// and backward, in three orders (by name, and two whose members first come from the
// primary key: store.keyedMembersFirst), for a segment alone (Segment.contacts, an
// audience's Any list), for All lists, for audiences that keep few of their
// candidates (All, None, Any with All: the statement counts the audience) and in a
// batch of segments (a list of segments with their contacts).
func TestMembersPagesReadTheCheaperWay(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	// 3,000 contacts created a second apart, with names in another order; "large"
	// holds 2,500 of them, "small" 20, all of them also in "large", "mixed" 30, 20
	// of them in "large", and "old" the 600 created first. For pages of 50 the
	// members come first up to sqrt(51 × 3,000) = 391 members, for pages of 10 up
	// to 181; a walk for "old" reads at most 4 × 51 × 3,000 / 600 = 1,020 contacts
	// (220 for pages of 10), and newest first it meets the first of them after
	// 2,400. "halves", "quarters", "oddplus" and "most" (1,500, 750, 1,714 and
	// 2,571 contacts) make audiences that keep few of their candidates.
	var small, large, mixed, old, halves, quarters, oddplus, most int64
	err := owner.DB().QueryRowContext(ctx, fmt.Sprintf(`
		WITH c AS (
			INSERT INTO contacts (workspace_id, phone, name, created_at, updated_at)
			SELECT %[1]d, '+9199' || lpad(g::text, 8, '0'), 'Name ' || lpad(((g * 7919) %% 3000)::text, 4, '0'),
			       timestamptz '2026-01-01' + g * interval '1 second', timestamptz '2026-01-01'
			FROM generate_series(1, 3000) AS g
			RETURNING id, phone
		), s AS (
			INSERT INTO segments (workspace_id, name) VALUES (%[1]d, 'small'), (%[1]d, 'large'), (%[1]d, 'mixed'), (%[1]d, 'old'),
				(%[1]d, 'halves'), (%[1]d, 'quarters'), (%[1]d, 'oddplus'), (%[1]d, 'most') RETURNING id, name
		), m AS (
			INSERT INTO memberships (workspace_id, segment_id, contact_id)
			SELECT %[1]d, s.id, c.id FROM c, s
			WHERE (s.name = 'small' AND right(c.phone, 8)::int %% 150 = 1)
			   OR (s.name = 'large' AND right(c.phone, 8)::int %% 6 <> 0)
			   OR (s.name = 'mixed' AND right(c.phone, 8)::int %% 100 = 6)
			   OR (s.name = 'old' AND right(c.phone, 8)::int <= 600)
			   OR (s.name = 'halves' AND right(c.phone, 8)::int %% 2 = 0)
			   OR (s.name = 'quarters' AND right(c.phone, 8)::int %% 4 = 0)
			   OR (s.name = 'oddplus' AND (right(c.phone, 8)::int %% 2 = 1 OR right(c.phone, 8)::int %% 14 = 0))
			   OR (s.name = 'most' AND right(c.phone, 8)::int %% 7 <> 3)
		)
		SELECT (SELECT id FROM s WHERE name = 'small'), (SELECT id FROM s WHERE name = 'large'),
		       (SELECT id FROM s WHERE name = 'mixed'), (SELECT id FROM s WHERE name = 'old'),
		       (SELECT id FROM s WHERE name = 'halves'), (SELECT id FROM s WHERE name = 'quarters'),
		       (SELECT id FROM s WHERE name = 'oddplus'), (SELECT id FROM s WHERE name = 'most')`,
		ws.ID)).Scan(&small, &large, &mixed, &old, &halves, &quarters, &oddplus, &most)
	if err != nil {
		t.Fatal(err)
	}
	// As autovacuum would: without statistics of the memberships, PostgreSQL takes
	// the walks' EXISTS for joins and scans a segment's memberships per contact
	// walked (the test took 56 s instead of 5).
	if _, err := owner.DB().ExecContext(ctx, "VACUUM ANALYZE contacts, memberships"); err != nil {
		t.Fatal(err)
	}
	// The oracle: the contacts of the audience f (in any of f.Any, if listed, all of
	// f.All and none of f.None), in each order, by a query of their own.
	inAudience := func(f crm.MembershipFilter, orderBy string) []int64 {
		in := func(n int) string {
			return fmt.Sprintf(`(SELECT count(*) FROM memberships m WHERE m.workspace_id = c.workspace_id AND m.contact_id = c.id
			     AND m.segment_id = ANY($%d))`, n)
		}
		return storetest.Column[int64](t, owner.DB(), `SELECT c.id FROM contacts c WHERE c.workspace_id = $1
			AND ($2::bigint[] IS NULL OR `+in(2)+` > 0) AND `+in(3)+` = coalesce(cardinality($3::bigint[]), 0) AND `+in(4)+` = 0
			ORDER BY `+orderBy, ws.ID, f.Any, f.All, f.None)
	}
	orders := []struct {
		order   crm.ContactOrder
		orderBy string
	}{
		{crm.DefaultContactOrder, "c.created_at DESC, c.id DESC"},
		{crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}, "lower(c.name), c.id"},
		// Every contact has the same updated_at: the order is the IDs', read from the
		// primary key (store.keyedMembersFirst) where members come first.
		{crm.ContactOrder{Field: crm.ContactsByUpdatedAt, Direction: crm.Asc}, "c.updated_at, c.id"},
	}
	actx := store.WithWorkspace(ctx, ws.ID)
	ids := func(p store.Page[crm.Contact]) []int64 {
		out := make([]int64, len(p.Items))
		for i, c := range p.Items {
			out[i] = c.ID
		}
		return out
	}
	ptr := func(n int) *int { return &n }

	members := func(seg int64, orderBy string) []int64 {
		return inAudience(crm.MembershipFilter{Any: []int64{seg}}, orderBy)
	}
	// How the first page is read, newest first, by name and by updated_at. An Any
	// list's members come first up to sqrt(51 × 3,000 / 16) = 97 members and are
	// hashed up to sqrt(4 × 51 × 3,000) = 782.
	const (
		membersFirst               = "members first"
		walk                       = "walk"
		hashedWalk                 = "hashed walk"
		walkThenMembersFirst       = "walk, then members first"
		hashedWalkThenMembersFirst = "hashed walk, then members first"
	)
	for _, seg := range []struct {
		name   string
		filter crm.MembershipFilter
		size   int
		ways   [3]string
	}{
		{"any small", crm.MembershipFilter{Any: []int64{small}}, 20, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any large", crm.MembershipFilter{Any: []int64{large}}, 2500, [3]string{walk, walk, walk}},
		{"all of small and large", crm.MembershipFilter{All: []int64{large, small}}, 20, [3]string{membersFirst, membersFirst, membersFirst}},
		{"all of mixed and large", crm.MembershipFilter{All: []int64{large, mixed}}, 20, [3]string{membersFirst, membersFirst, membersFirst}},
		{"all of large", crm.MembershipFilter{All: []int64{large}}, 2500, [3]string{walk, walk, walk}},
		{"any old", crm.MembershipFilter{Any: []int64{old}}, 600, [3]string{hashedWalkThenMembersFirst, hashedWalk, hashedWalk}},
		{"any of small and mixed", crm.MembershipFilter{Any: []int64{small, mixed}}, 50, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any of old and small", crm.MembershipFilter{Any: []int64{old, small}}, 616, [3]string{hashedWalkThenMembersFirst, hashedWalk, hashedWalk}},
		// The walk tests each All segment in its members hashed when they are at most
		// 4 times the rows it expects to walk (51 × 3,000 / 500 = 306): old's 600
		// hashed, large's 2,500 looked up (store.testedMembers).
		{"all of old and large", crm.MembershipFilter{All: []int64{large, old}}, 500, [3]string{hashedWalkThenMembersFirst, hashedWalk, hashedWalk}},
		// An audience that keeps few of its candidates: the statement counts it, and
		// reads an All list's members first from the memberships alone (264 member
		// reads' worth: 214 contacts, 3,214 memberships merged), or walks as far as
		// the audience needs (a limit of 4 × 51 × 3,000 / 214 = 2,860 contacts where
		// the 1,500 of "halves" would give 408, and newest first 715 fill the page).
		{"all of halves and oddplus", crm.MembershipFilter{All: []int64{halves, oddplus}}, 214, [3]string{membersFirst, membersFirst, membersFirst}},
		{"all of large and halves", crm.MembershipFilter{All: []int64{large, halves}}, 1000, [3]string{walk, walk, walk}},
		{"all of five", crm.MembershipFilter{All: []int64{large, halves, quarters, oddplus, most}}, 72, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any of large, none of halves", crm.MembershipFilter{Any: []int64{large}, None: []int64{halves}}, 1500, [3]string{walk, walk, walk}},
		{"any of halves, all of oddplus", crm.MembershipFilter{Any: []int64{halves}, All: []int64{oddplus}}, 214, [3]string{hashedWalk, hashedWalk, hashedWalk}},
		// Any with All: the candidates are the members of the list with fewer,
		// small's 20 or mixed's 30 rather than large's 2,500 or halves' 1,500, each
		// then tested for the other list (store.anyOrAllFirst).
		{"any of small, all of large", crm.MembershipFilter{Any: []int64{small}, All: []int64{large}}, 20, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any of large, all of small", crm.MembershipFilter{Any: []int64{large}, All: []int64{small}}, 20, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any of halves, all of mixed", crm.MembershipFilter{Any: []int64{halves}, All: []int64{mixed}}, 30, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any of large, all of mixed and halves", crm.MembershipFilter{Any: []int64{large}, All: []int64{mixed, halves}}, 20, [3]string{membersFirst, membersFirst, membersFirst}},
		{"any of large, all of small, none of old", crm.MembershipFilter{Any: []int64{large}, All: []int64{small}, None: []int64{old}}, 16, [3]string{membersFirst, membersFirst, membersFirst}},
	} {
		for i, o := range orders {
			want := inAudience(seg.filter, o.orderBy)
			if len(want) != seg.size {
				t.Fatalf("%s has %d members, want %d", seg.name, len(want), seg.size)
			}
			cq := crm.ContactQuery{Segments: seg.filter, Order: o.order}

			// Which way PostgreSQL read the first page.
			sql, err := store.ContactsPageSQL(app, ws.ID, cq, crm.PageArgs{First: ptr(50)})
			if err != nil {
				t.Fatal(err)
			}
			if way := wayRun(t, actx, app, sql); way != seg.ways[i] {
				t.Errorf("%s by %s: read by %s, want %s", seg.name, o.orderBy, way, seg.ways[i])
			}

			// Forward to the end, 50 at a time.
			var got []int64
			var after *string
			for pages := 0; ; pages++ {
				p, err := app.Contacts(actx, ws.ID, cq, crm.PageArgs{First: ptr(50), After: after})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(p)...)
				if p.HasPreviousPage != (after != nil) {
					t.Fatalf("%s by %s, page %d: hasPreviousPage %v", seg.name, o.orderBy, pages, p.HasPreviousPage)
				}
				if !p.HasNextPage {
					break
				}
				c := p.Cursor(len(p.Items) - 1)
				after = &c
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s by %s: paged forward %d contacts %v..., want %d %v...", seg.name, o.orderBy, len(got), head(got), len(want), head(want))
			}

			// Backward: the 7 before the 15th.
			p, err := app.Contacts(actx, ws.ID, cq, crm.PageArgs{First: ptr(15)})
			if err != nil {
				t.Fatal(err)
			}
			before := p.Cursor(14)
			p, err = app.Contacts(actx, ws.ID, cq, crm.PageArgs{Last: ptr(7), Before: &before})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(p), want[7:14]) || !p.HasPreviousPage || !p.HasNextPage {
				t.Errorf("%s by %s: last 7 before the 15th: %v (previous %v, next %v), want %v (true, true)",
					seg.name, o.orderBy, ids(p), p.HasPreviousPage, p.HasNextPage, want[7:14])
			}
		}
	}

	// In a batch, each segment's page is read its own way, with the same result.
	for _, o := range orders {
		batch := []int64{small, large, old}
		pages, err := app.ContactsOfSegments(actx, ws.ID, batch, crm.ContactQuery{Order: o.order}, crm.PageArgs{First: ptr(10)})
		if err != nil {
			t.Fatal(err)
		}
		for _, seg := range batch {
			want := members(seg, o.orderBy)
			p := pages[seg]
			if !slices.Equal(ids(p), want[:10]) || !p.HasNextPage {
				t.Errorf("batch by %s, segment %d: %v (next %v), want %v (true)", o.orderBy, seg, ids(p), p.HasNextPage, want[:10])
			}
			after := p.Cursor(9)
			next, err := app.ContactsOfSegments(actx, ws.ID, batch, crm.ContactQuery{Order: o.order}, crm.PageArgs{First: ptr(10), After: &after})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(next[seg]); !slices.Equal(got, want[10:20]) || !next[seg].HasPreviousPage {
				t.Errorf("batch by %s, segment %d after the 10th: %v (previous %v), want %v (true)", o.orderBy, seg, got, next[seg].HasPreviousPage, want[10:20])
			}
		}
	}
}

// TestMembersFirstReadsTheKeyAlone: a page of a small segment's members in a date
// order, read members first, finds the members' IDs and dates in the contacts'
// primary key alone (the plan's index-only scan, under row-level security) and
// reads the rows of the page alone, and so does the probe of a page after a cursor
// (store.keyedMembersFirst). By name, which the key does not hold, it reads the
// members' rows.
func TestMembersFirstReadsTheKeyAlone(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	var seg int64
	err := owner.DB().QueryRowContext(ctx, fmt.Sprintf(`
		WITH c AS (
			INSERT INTO contacts (workspace_id, phone, name, created_at, updated_at)
			SELECT %[1]d, '+9198' || lpad(g::text, 8, '0'), 'Name ' || g,
			       timestamptz '2026-01-01' + g * interval '1 minute', timestamptz '2026-02-01' - g * interval '1 minute'
			FROM generate_series(1, 2000) AS g
			RETURNING id, phone
		), s AS (
			INSERT INTO segments (workspace_id, name) VALUES (%[1]d, 'few') RETURNING id
		), m AS (
			INSERT INTO memberships (workspace_id, segment_id, contact_id)
			SELECT %[1]d, s.id, c.id FROM c, s WHERE right(c.phone, 8)::int %% 70 = 0
		)
		SELECT id FROM s`, ws.ID)).Scan(&seg)
	if err != nil {
		t.Fatal(err)
	}
	// Statistics, as autovacuum would gather them. This VACUUM was seen to leave the
	// visibility map unset (its removable cutoff stayed at the insert, for reasons
	// not found), and an index-only scan then reads the heap too: the test asserts
	// the plan's index-only scan, not that it skips the heap.
	if _, err := owner.DB().ExecContext(ctx, "VACUUM ANALYZE contacts, memberships"); err != nil {
		t.Fatal(err)
	}
	const members = 28 // 70, 140, ..., 1960
	actx := store.WithWorkspace(ctx, ws.ID)
	ptr := func(n int) *int { return &n }
	for _, o := range []crm.ContactOrder{
		crm.DefaultContactOrder,
		{Field: crm.ContactsByUpdatedAt, Direction: crm.Asc},
		{Field: crm.ContactsByName, Direction: crm.Asc},
	} {
		cq := crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{seg}}, Order: o}
		first, err := app.Contacts(actx, ws.ID, cq, crm.PageArgs{First: ptr(10)})
		if err != nil {
			t.Fatal(err)
		}
		after := first.Cursor(9)
		for _, page := range []struct {
			name    string
			args    crm.PageArgs
			keyRows float64 // the page's members, at least
			rows    float64 // the page's, and with a cursor its probe's
		}{
			{"the first page", crm.PageArgs{First: ptr(50)}, members, members},
			// The probe's member may come from the key or a walk of the order's index
			// from the cursor, as the planner likes.
			{"the page after the 10th", crm.PageArgs{First: ptr(50), After: &after}, members - 10, members - 10 + 1},
		} {
			sql, err := store.ContactsPageSQL(app, ws.ID, cq, page.args)
			if err != nil {
				t.Fatal(err)
			}
			if page.args.After == nil { // wayRun reads the branches of a page without a cursor
				if way := wayRun(t, actx, app, sql); way != "members first" {
					t.Fatalf("%s by %s: read by %s, want members first", page.name, o.Field, way)
				}
			}
			r := contactReads(t, actx, app, sql)
			if o.Field == crm.ContactsByName {
				if r.keyRows != 0 || r.rows < page.rows {
					t.Errorf("%s by %s: %v IDs from the key, %v rows read, want 0 and at least %v", page.name, o.Field, r.keyRows, r.rows, page.rows)
				}
				continue
			}
			// Each member's ID once: from the page's side of the cursor or the probe's.
			if r.keyRows < page.keyRows || r.keyRows > members || r.rows != page.rows {
				t.Errorf("%s by %s: %v IDs from the key, %v rows read; want %v to %d, %v\n%s",
					page.name, o.Field, r.keyRows, r.rows, page.keyRows, members, page.rows, r.plan)
			}
		}
	}
}

// contactReadCounts says how a statement read the contacts, by EXPLAIN ANALYZE: the
// rows its index-only scans of the primary key returned, and the rows it read from
// the table itself.
type contactReadCounts struct {
	keyRows, rows float64
	plan          string // the plan, for messages
}

func contactReads(t *testing.T, ctx context.Context, s *store.Store, sql string) contactReadCounts {
	t.Helper()
	plan, raw := explainAnalyze(t, ctx, s.DB(), sql)
	r := contactReadCounts{plan: string(raw)}
	var visit func(n map[string]any)
	visit = func(n map[string]any) {
		if n["Relation Name"] == "contacts" {
			rows, _ := n["Actual Rows"].(float64)
			loops, _ := n["Actual Loops"].(float64)
			switch {
			case n["Node Type"] == "Index Only Scan" && n["Index Name"] == "contacts_pkey":
				r.keyRows += rows * loops
			case n["Node Type"] != "Index Only Scan":
				r.rows += rows * loops
			}
		}
		for _, c := range children(n) {
			visit(c)
		}
	}
	visit(plan)
	return r
}

// wayRun runs EXPLAIN ANALYZE of a statement of a page of members without a cursor
// and returns the way PostgreSQL read it: "walk" when its walk (the CTE walk) read
// contacts and the page was its, "hashed walk" when that walk tested a hashed
// subplan, "members first" when the members-first branch read them and the walk did
// not, "matches first" when a search's matches-first branch did, and "... then
// members first" or "... then matches first" when the walk and a branch did. The
// branches are the members of the page's Append, in the statement's order: the
// walk's page, members first's, matches first's (twoWayPageSelect).
func wayRun(t *testing.T, ctx context.Context, s *store.Store, sql string) string {
	t.Helper()
	var raw []byte
	if err := s.DB().QueryRowContext(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	type node struct {
		NodeType     string  `json:"Node Type"`
		Relationship string  `json:"Parent Relationship"`
		SubplanName  string  `json:"Subplan Name"`
		RelationName string  `json:"Relation Name"`
		Filter       string  `json:"Filter"`
		ActualLoops  float64 `json:"Actual Loops"`
		Plans        []node  `json:"Plans"`
	}
	var plans []struct{ Plan node }
	if err := json.Unmarshal(raw, &plans); err != nil {
		t.Fatal(err)
	}
	var readsContacts func(n node) bool
	readsContacts = func(n node) bool {
		if n.RelationName == "contacts" && n.ActualLoops > 0 {
			return true
		}
		return slices.ContainsFunc(n.Plans, readsContacts)
	}
	// A hashed subplan that ran: named "hashed SubPlan N" in a filter, and run.
	hashedNames := map[string]bool{}
	var hashedRan func(n node) bool
	hashedRan = func(n node) bool {
		for _, m := range regexp.MustCompile(`hashed (SubPlan \d+)`).FindAllStringSubmatch(n.Filter, -1) {
			hashedNames[m[1]] = true
		}
		ran := false
		for _, c := range n.Plans {
			ran = hashedRan(c) || ran
		}
		return ran || (hashedNames[n.SubplanName] && n.ActualLoops > 0)
	}
	var walked, hashed bool
	var branches []bool // whether each member of the page's Append read contacts
	var visit func(n node)
	visit = func(n node) {
		for _, c := range n.Plans {
			switch {
			case c.SubplanName == "CTE walk":
				walked, hashed = readsContacts(c), hashedRan(c)
			case c.Relationship == "Member":
				branches = append(branches, readsContacts(c))
			default:
				visit(c)
			}
		}
	}
	visit(plans[0].Plan)
	first := ""
	for i, name := range []string{1: "members first", 2: "matches first"} {
		if i < len(branches) && branches[i] {
			first = name
		}
	}
	way := "walk"
	if hashed {
		way = "hashed walk"
	}
	switch {
	case walked && first != "":
		return way + ", then " + first
	case walked:
		return way
	case first != "":
		return first
	}
	t.Fatalf("neither way read contacts:\n%s", raw)
	return ""
}

func head(ids []int64) []int64 { return ids[:min(len(ids), 5)] }

// TestPagesTestSegmentsTheStatisticsDoNotKnow: PostgreSQL's statistics of the
// memberships name the 100 most common segments and take any other for the average
// of the rest, so a segment made after the last ANALYZE, or one among many small
// ones, is planned as a few members. A page's statement tests the rest of its filter
// on its rows at a cost its rows and the members set whatever the statistics say
// (store.testedMembers): left to the planner, a page whose None segment it takes for
// 10 members scanned its 4,000 members again for each row tested. The pages here
// read each way a page of members is read: a walk (any of A, none of N), members
// first (any of S, none of N) and the walk of a None list alone; and a walk and
// members first with an All segment the statistics do not know either.
func TestPagesTestSegmentsTheStatisticsDoNotKnow(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t, "autovacuum=off")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, owner)
	// 5,000 contacts in 20,000 segments of 10 members, analyzed: any other segment
	// is planned as 10 members.
	fillWorkspace(t, owner, ws.ID, 5_000, 20_000, 500)
	storetest.Exec(t, owner.DB(), "VACUUM ANALYZE contacts, memberships, segments")
	wctx := store.WithWorkspace(ctx, ws.ID)
	// Made through the store, after the analysis.
	segment := func(name, cond string) int64 {
		seg, _ := segmentWhere(t, owner, ws.ID, name, cond)
		return seg.ID
	}
	a := segment("A", "id % 5 <> 0")        // 4,000
	n := segment("N", "id % 5 <> 1")        // 4,000, 3,000 of them in A
	s := segment("S", "id % 100 IN (1, 2)") // 100, 50 of them in N
	if got := plannedRows(t, owner, "memberships", ws.ID); got < 150_000 {
		t.Fatalf("the workspace is planned as %.0f memberships; want the 200,000 analyzed", got)
	}
	first := 50
	for _, tc := range []struct {
		name string
		f    crm.MembershipFilter
		way  string
	}{
		{"any of A, none of N", crm.MembershipFilter{Any: []int64{a}, None: []int64{n}}, "walk"},
		{"any of S, none of N", crm.MembershipFilter{Any: []int64{s}, None: []int64{n}}, "members first"},
		{"none of N", crm.MembershipFilter{None: []int64{n}}, ""},
		{"any of A, all of N", crm.MembershipFilter{Any: []int64{a}, All: []int64{n}}, "walk"},
		{"any of S, all of N", crm.MembershipFilter{Any: []int64{s}, All: []int64{n}}, "members first"},
	} {
		cq := crm.ContactQuery{Segments: tc.f, Order: crm.DefaultContactOrder}
		sql, err := store.ContactsPageSQL(app, ws.ID, cq, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		if tc.way != "" {
			if got := wayRun(t, wctx, owner, sql); got != tc.way {
				t.Errorf("%s: read by %q; want %q", tc.name, got, tc.way)
			}
		}
		plan, _ := explainAnalyze(t, wctx, app.DB(), sql)
		rows := rowsFlowed(plan)
		t.Logf("%s: %.0f rows through the plan", tc.name, rows)
		// A page's work: its walk or its candidates, a few hundred rows, each tested
		// once, and the members hashed once.
		if rows > 30_000 {
			t.Errorf("%s: %.0f rows through the plan; want at most 30,000 (a scan of a segment's 4,000 members per row tested is 100,000s)", tc.name, rows)
		}
		page, err := app.Contacts(wctx, ws.ID, cq, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != first {
			t.Errorf("%s: a page of %d contacts; want %d", tc.name, len(page.Items), first)
		}
	}
}

// TestMembersFirstInAWorkspaceTheStatisticsDoNotKnow reads pages of members first
// in a workspace that got its rows after the last ANALYZE, beside 3,300 small
// workspaces: the statistics take it for a few contacts and memberships, as they
// take any new workspace until the tables are analyzed again. Planned for those,
// the contacts in all of two segments were found by joining their memberships in a
// nested loop that read the second segment again for each member of the first
// (10,000 × 10,000 here; two segments of 40,000 ran past 60 s), and the candidates
// were tested on a walk of every contact against their whole array. Each page must
// come within a deadline far above its milliseconds, be the page that sorting its
// audience gives, and flow no more rows through its plan than a few passes over the
// workspace (store.allMembersOf, store.contactsIn); and so must a batch of segments'
// first pages.
func TestMembersFirstInAWorkspaceTheStatisticsDoNotKnow(t *testing.T) {
	_, owner, app, ws := newWorkspaceAfterAnalysis(t)
	checkMembersFirstUnknown(t, owner, app, ws, false)
}

// TestMembersFirstInAWorkspaceBesideALargeOne reads the pages of
// TestMembersFirstInAWorkspaceTheStatisticsDoNotKnow in a workspace loaded after the
// last ANALYZE beside one large workspace that ANALYZE saw, as a business imported
// by SQL into the benchmark's database. There the statistics take the new workspace
// for one row, where any index that leads with workspace_id costs the same as the
// one a lookup needs, and the average workspace, which its statements are planned
// as (workspacearg.go), for thousands of rows. No page may read the new workspace's
// contacts or memberships by the workspace alone: in a workspace of 1M contacts
// loaded that way, a page of the members of one segment ran past 120 s.
func TestMembersFirstInAWorkspaceBesideALargeOne(t *testing.T) {
	url := storetest.Database(t)
	owner, app := storetest.MigratedStores(t, url, store.Options{MaxConns: 2})
	autovacuumOff(t, owner)
	large, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, large.ID, 20_000, 10, 2)
	storetest.Exec(t, owner.DB(), "ANALYZE memberships; ANALYZE contacts; ANALYZE segments")
	store.LearnStatistics(app)
	ws, _ := storetest.Workspace(t, owner)
	checkMembersFirstUnknown(t, owner, app, ws, true)
}

// checkMembersFirstUnknown fills workspace ws, which the statistics do not know, and
// checks its pages (TestMembersFirstInAWorkspaceTheStatisticsDoNotKnow). With
// lookups, no page may read its contacts or memberships by the workspace alone
// (workspaceScans). Beside thousands of small workspaces, the average workspace
// that the statements are planned as is small too, and a segment's members may be
// read that way, once per statement: linear in the workspace, where those above were
// quadratic.
func checkMembersFirstUnknown(t *testing.T, owner, app *store.Store, ws crm.Workspace, lookups bool) {
	t.Helper()
	ctx := context.Background()
	fillWorkspace(t, owner, ws.ID, 20_000, 0, 1)
	// A: the even contacts; B: the odd ones and every 400th, 50 of them in A; S:
	// every 100th, 100 of them in A.
	segment := func(name, cond string) int64 {
		id := storetest.Column[int64](t, owner.DB(), fmt.Sprintf(`
			WITH s AS (INSERT INTO segments (workspace_id, name) VALUES (%[1]d, '%[2]s') RETURNING id)
			INSERT INTO memberships (workspace_id, segment_id, contact_id)
			SELECT %[1]d, s.id, c.id FROM s, contacts c WHERE c.workspace_id = %[1]d AND %[3]s
			RETURNING segment_id`, ws.ID, name, cond))
		return id[0]
	}
	a := segment("A", "c.id % 2 = 0")
	b := segment("B", "(c.id % 2 = 1 OR c.id % 400 = 0)")
	sm := segment("S", "c.id % 100 = 0")
	for _, table := range []string{"contacts", "memberships"} {
		if rows := plannedRows(t, owner, table, ws.ID); rows > 10 {
			t.Fatalf("the statistics take the workspace for %g rows of %s, want a few", rows, table)
		}
	}
	wctx := store.WithWorkspace(ctx, ws.ID)
	first := 50
	for _, tc := range []struct {
		name string
		f    crm.MembershipFilter
		cond string // the audience, of the contact c
	}{
		{"all of A and B", crm.MembershipFilter{All: []int64{a, b}}, "c.id % 400 = 0"},
		{"all of A and S", crm.MembershipFilter{All: []int64{a, sm}}, "c.id % 100 = 0 AND c.id % 2 = 0"},
		{"any of S, all of A and B", crm.MembershipFilter{Any: []int64{sm}, All: []int64{a, b}}, "c.id % 400 = 0"},
		{"any of S", crm.MembershipFilter{Any: []int64{sm}}, "c.id % 100 = 0"},
	} {
		cq := crm.ContactQuery{Segments: tc.f, Order: crm.DefaultContactOrder}
		want := storetest.Column[int64](t, owner.DB(), fmt.Sprintf(
			`SELECT c.id FROM contacts c WHERE c.workspace_id = $1 AND %s ORDER BY c.created_at DESC, c.id DESC LIMIT %d`, tc.cond, first), ws.ID)
		dctx, cancel := context.WithTimeout(wctx, 20*time.Second)
		page, err := app.Contacts(dctx, ws.ID, cq, crm.PageArgs{First: &first})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []int64
		for _, c := range page.Items {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the page holds %v; want %v", tc.name, head(got), head(want))
		}
		sql, err := store.ContactsPageSQL(app, ws.ID, cq, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		if got := wayRun(t, wctx, app, sql); got != "members first" {
			t.Errorf("%s: read by %q; want members first", tc.name, got)
		}
		plan, raw := explainAnalyze(t, wctx, app.DB(), sql)
		if rows := rowsFlowed(plan); rows > 100_000 {
			t.Errorf("%s: %.0f rows through the plan; want at most 100,000 (its segments hold 20,250 memberships)\n%s", tc.name, rows, raw)
		}
		checkLookups(t, tc.name, plan, raw, lookups)
		if m := listTested.FindString(string(raw)); m != "" {
			t.Errorf("%s: the contacts are tested against the whole array of candidates (%s):\n%s", tc.name, m, raw)
		}
	}

	// A batch of segments with their first contacts (a segment list), searched: each
	// segment's members first, looked up as the pages' are. Tested on a walk of the
	// workspace, 20 segments of 2,000 among 200,000 contacts took 5.0 s.
	five := 5
	for _, search := range []string{"", "+91"} {
		name := fmt.Sprintf("a batch of A, B and S searched for %q", search)
		dctx, cancel := context.WithTimeout(wctx, 20*time.Second)
		pages, err := app.ContactsOfSegments(dctx, ws.ID, []int64{a, b, sm}, crm.ContactQuery{Search: search, Order: crm.DefaultContactOrder}, crm.PageArgs{First: &five})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for seg, cond := range map[int64]string{a: "c.id % 2 = 0", b: "(c.id % 2 = 1 OR c.id % 400 = 0)", sm: "c.id % 100 = 0"} {
			want := storetest.Column[int64](t, owner.DB(), fmt.Sprintf(
				`SELECT c.id FROM contacts c WHERE c.workspace_id = $1 AND %s ORDER BY c.created_at DESC, c.id DESC LIMIT %d`, cond, five), ws.ID)
			var got []int64
			for _, c := range pages[seg].Items {
				got = append(got, c.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: segment %d's page holds %v; want %v", name, seg, got, want)
			}
		}
		sql, err := store.ContactsOfSegmentsSQL(app, ws.ID, []int64{a, b, sm}, search, crm.DefaultContactOrder, crm.PageArgs{First: &five})
		if err != nil {
			t.Fatal(err)
		}
		plan, raw := explainAnalyze(t, wctx, app.DB(), sql)
		if m := listTested.FindString(string(raw)); m != "" {
			t.Errorf("%s: the contacts are tested against the whole array of candidates (%s):\n%s", name, m, raw)
		}
		checkLookups(t, name, plan, raw, lookups)
	}

	// The segments of a page of contacts, from the workspace's catalog: the page's
	// memberships looked up by their contacts.
	pageIDs := storetest.Column[int64](t, owner.DB(), "SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id DESC LIMIT 50", ws.ID)
	fromCatalog, err := app.CatalogSegmentsOfContacts(wctx, ws.ID, pageIDs)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := app.SegmentsOfContacts(wctx, ws.ID, pageIDs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := segmentNames(fromCatalog), segmentNames(whole); got != want {
		t.Errorf("the segments of a page from the catalog: %s; want %s", got, want)
	}
	sql := store.MembershipsOfContactsSQL(app, ws.ID, pageIDs)
	plan, raw := explainAnalyze(t, wctx, app.DB(), sql)
	checkLookups(t, "the memberships of a page", plan, raw, lookups)

	// The same page read with its memberships, in one statement (the contacts table).
	fifty := 50
	byID := crm.ContactQuery{Order: crm.ContactOrder{Field: crm.ContactsByCreatedAt, Direction: crm.Desc}}
	page, withPage, err := app.ContactsWithCatalogSegments(wctx, ws.ID, byID, crm.PageArgs{First: &fifty})
	if err != nil {
		t.Fatal(err)
	}
	whole, err = app.SegmentsOfContacts(wctx, ws.ID, crm.ContactIDs(page.Items))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := segmentNames(withPage), segmentNames(whole); got != want {
		t.Errorf("the segments of a page read with it: %s; want %s", got, want)
	}
	if sql, err = store.ContactsWithSegmentsSQL(app, ws.ID, byID, crm.PageArgs{First: &fifty}); err != nil {
		t.Fatal(err)
	}
	plan, raw = explainAnalyze(t, wctx, app.DB(), sql)
	checkLookups(t, "a page with its memberships", plan, raw, lookups)
}

// segmentNames writes each contact's segments by name, the contacts in ID order.
func segmentNames(segs map[int64][]*crm.Segment) string {
	var b strings.Builder
	for _, c := range slices.Sorted(maps.Keys(segs)) {
		fmt.Fprintf(&b, "%d:", c)
		for _, s := range segs[c] {
			fmt.Fprintf(&b, " %s", s.Name)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// checkLookups fails the test when a page's plan (of a workspace of 20,000 contacts
// in segments of up to 10,000, above) reads more of its contacts or memberships
// than a few passes over the workspace, or with lookups, reads them by the
// workspace alone and tests the key it looks for on each row. PostgreSQL plans that where it takes
// the workspace for one row, where every index that leads with workspace_id costs
// the same (workspacearg.go): each contact or segment looked up is then a scan of
// the whole workspace.
func checkLookups(t *testing.T, name string, plan map[string]any, raw []byte, lookups bool) {
	t.Helper()
	for _, table := range []string{"contacts", "memberships"} {
		if read := rowsRead(plan, table); read > 100_000 {
			t.Errorf("%s: %.0f rows of %s read; want at most 100,000\n%s", name, read, table, raw)
		}
	}
	if scans := workspaceScans(plan); lookups && len(scans) > 0 {
		t.Errorf("%s: read by the workspace alone, testing each row: %q\n%s", name, scans, raw)
	}
}

// workspaceScans returns the scans of contacts and memberships in the plan node n and
// its children whose index condition is the workspace alone and whose filter tests a
// key of another index (a contact's ID, a membership's contact or segment), as
// "table: filter".
func workspaceScans(n map[string]any) []string {
	var scans []string
	table, _ := n["Relation Name"].(string)
	cond, _ := n["Index Cond"].(string)
	filter, _ := n["Filter"].(string)
	if (table == "contacts" || table == "memberships") && workspaceAlone.MatchString(cond) && keyTested.MatchString(filter) {
		scans = append(scans, table+": "+filter)
	}
	for _, c := range children(n) {
		scans = append(scans, workspaceScans(c)...)
	}
	return scans
}

var (
	workspaceAlone = regexp.MustCompile(`^\(workspace_id = [^()]*\)$`)
	keyTested      = regexp.MustCompile(`^\(\(?(id|contact_id|segment_id) = `)
)

// listTested finds, in a plan, a filter that tests the contacts' IDs against an
// array computed while the statement runs, searched from end to end for each row.
var listTested = regexp.MustCompile(`"Filter": "\(id = ANY \(\$\d+\)\)"`)

// rowsFlowed is how many rows the plan node n and its children returned, each as
// many times as it ran: what a nested loop that scans its inner side again for each
// outer row multiplies.
func rowsFlowed(n map[string]any) float64 {
	rows, _ := n["Actual Rows"].(float64)
	loops, _ := n["Actual Loops"].(float64)
	flowed := rows * loops
	for _, c := range children(n) {
		flowed += rowsFlowed(c)
	}
	return flowed
}
