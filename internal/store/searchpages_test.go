package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSearchesBoundTheirWalk proves how a page of a search is read (searchpages.go),
// in the workspace of searchedWorkspace:
//   - "zeta" is in the names of the 600 contacts that sort last by name and were
//     created last, and in the emails of 30 unnamed ones (every 100th). Walking the
//     order as PostgreSQL plans it, by name or oldest first, reads 2,400 contacts
//     before it has a page; the page walks at most as many as the estimate of its
//     matches (630), then sorts them;
//   - "spread" is in every fourth contact's email: the walk fills the page;
//   - "qx9k" is in three: the page sorts the matches without walking;
//   - "wqzx" is in none: once the store knows the histogram's trigrams, it sends the
//     plain statement, whose plan sorts the matches (searchsample.go);
//   - "a 2", which has no trigram, is in the names of the 980 named contacts from
//     2000 on, the last by name: reading its matches reads every contact, so the walk
//     reads at most its estimated matches and a tenth of the contacts (about 1,280),
//     then sorts them. PostgreSQL's plan walks the 1,960 before them.
//
// Every page, forward and backward, of 7 and of 50, in both directions, by name and
// by creation, and of the contacts in none of a segment, must be what sorting all the
// matches gives, before contacts are analyzed (no estimate: the walk reads 40 rows a
// page row) and after.
func TestSearchesBoundTheirWalk(t *testing.T) {
	ctx := context.Background()
	owner, app, ws := searchedWorkspace(t)
	db := owner.DB()
	seg, err := owner.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "some zeta"})
	if err != nil {
		t.Fatal(err)
	}
	inSeg := storetest.Column[int64](t, db, `SELECT id FROM contacts WHERE workspace_id = $1 AND name LIKE 'Zeta %' AND right(phone, 1) IN ('3', '7')`, ws.ID)
	if _, err := owner.AssignContactsToSegments(ctx, ws.ID, inSeg, []int64{seg.ID}, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	wctx := store.WithWorkspace(ctx, ws.ID)

	// The SQL order of each field, in a direction (%[1]s).
	orders := map[crm.ContactOrderField]string{
		crm.ContactsByName:      "(name IS NULL) %[1]s, " + fmt.Sprintf(store.ContactNameOrderExpr, "name") + " %[1]s, id %[1]s",
		crm.ContactsByCreatedAt: "created_at %[1]s, id %[1]s",
	}
	queries := []crm.ContactQuery{{Search: "zeta"}, {Search: "spread"}, {Search: "qx9k"}, {Search: "wqzx"}, {Search: "a 2"}, {Search: "zeta", Segments: crm.MembershipFilter{None: []int64{seg.ID}}}}
	checkPages := func(stage string) {
		for _, q := range queries {
			for field, orderSQL := range orders {
				for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
					q.Order = crm.ContactOrder{Field: field, Direction: dir}
					want := storetest.Column[int64](t, db, `SELECT id FROM contacts c
						WHERE workspace_id = $1 AND search_text LIKE '%' || $2 || '%'
						  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.contact_id = c.id AND m.segment_id = ANY($3))
						ORDER BY `+fmt.Sprintf(orderSQL, dir), ws.ID, q.Search, append([]int64{0}, q.Segments.None...))
					for _, size := range []int{7, 50} {
						name := fmt.Sprintf("%s: %q none %v %s %s, pages of %d", stage, q.Search, q.Segments.None, field, dir, size)
						if got := allPages(t, wctx, app, ws.ID, q, size, false); !slices.Equal(got, want) {
							t.Errorf("%s, forward: %d contacts %v..., want %d %v...", name, len(got), head(got), len(want), head(want))
						}
						if got := allPages(t, wctx, app, ws.ID, q, size, true); !slices.Equal(got, want) {
							t.Errorf("%s, backward: %d contacts %v..., want %d %v...", name, len(got), head(got), len(want), head(want))
						}
					}
				}
			}
		}
	}
	// Which statement a first page of 50 gets, sorted by name: the bounded walk's, or
	// the plain one.
	first := 50
	byName := crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}
	checkStatements := func(stage string, want map[string]bool) {
		for term, bounded := range want {
			query, err := store.ContactsPageSQL(app, ws.ID, crm.ContactQuery{Search: term, Order: byName}, crm.PageArgs{First: &first})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(query, "walk_plan"); got != bounded {
				t.Errorf("%s: %q gets the bounded walk: %v, want %v\n%s", stage, term, got, bounded, query)
			}
		}
	}
	// Without a copy of the histogram, the store cannot tell a rare term.
	checkStatements("without statistics", map[string]bool{"zeta": true, "wqzx": true, "a 2": true})
	checkPages("without statistics")

	storetest.Exec(t, db, "ANALYZE contacts")
	store.LearnStatistics(app)
	// "wqzx" is in no contact, so in no entry of the histogram: PostgreSQL estimates it
	// rare, and its own plan sorts the matches.
	checkStatements("with statistics", map[string]bool{"zeta": true, "spread": true, "wqzx": false, "a 2": true})
	checkPages("with statistics")
	// The copy holds every workspace's contacts: the application's role reads shares
	// of it, never the copy.
	if _, err := app.DB().ExecContext(wctx, "SELECT bound FROM contact_search_sample"); err == nil {
		t.Error("the application's role reads contact_search_sample")
	}
	var share float64
	if err := app.DB().QueryRowContext(wctx, "SELECT segments_contact_search_share('%zeta%', NULL)").Scan(&share); err != nil || share < 0.15 || share > 0.3 {
		t.Errorf("the share of \"zeta\" is %v, %v; want about 0.21", share, err)
	}

	// Newest first, a term without a trigram gets the plain statement (walksBounded).
	if query, err := store.ContactsPageSQL(app, ws.ID, crm.ContactQuery{Search: "a 2", Order: crm.DefaultContactOrder}, crm.PageArgs{First: &first}); err != nil {
		t.Fatal(err)
	} else if strings.Contains(query, "walk_plan") {
		t.Errorf("\"a 2\" newest first gets the bounded walk\n%s", query)
	}

	// How the first page of 50 is read, by EXPLAIN ANALYZE.
	oldestFirst := crm.ContactOrder{Field: crm.ContactsByCreatedAt, Direction: crm.Asc}
	for _, c := range []struct {
		term             string
		order            crm.ContactOrder
		walkMin, walkMax float64 // contacts the walk reads
		sorted           bool    // the matches were sorted
	}{
		{"zeta", byName, 1, 650, true}, // at most its estimated matches, 630 or so
		{"zeta", oldestFirst, 1, 650, true},
		{"zeta", crm.DefaultContactOrder, 1, 100, false}, // the newest are Zetas
		{"spread", byName, 1, 400, false},
		{"spread", oldestFirst, 1, 400, false},
		{"qx9k", byName, 0, 0, true},
		{"qx9k", crm.DefaultContactOrder, 0, 0, true},
		{"a 2", byName, 1, 1350, true}, // its estimated matches, about 980, and 300
	} {
		query, err := store.ContactsPageSQL(app, ws.ID, crm.ContactQuery{Search: c.term, Order: c.order}, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		walked, read := searchWay(t, ctx, db, query)
		if sorted := read > walked; walked < c.walkMin || walked > c.walkMax || sorted != c.sorted {
			t.Errorf("%q %v: the walk read %.0f contacts (%.0f to %.0f), the statement %.0f: sorted the matches: %v, want %v\n%s",
				c.term, c.order, walked, c.walkMin, c.walkMax, read, sorted, c.sorted, query)
		}
	}
	// The data is what the test needs: walking the order as PostgreSQL plans it reads
	// the 2,400 contacts before the 600 "zeta", by name and oldest first, and the
	// 1,960 before the "a 2" by name.
	byNameSQL := fmt.Sprintf("(c.name IS NULL), %s, c.id", fmt.Sprintf(store.ContactNameOrderExpr, "c.name"))
	for _, c := range []struct {
		term, order string
		read        float64
	}{{"zeta", byNameSQL, 2400}, {"zeta", "c.created_at, c.id", 2400}, {"a 2", byNameSQL, 1960}} {
		var plan []struct {
			Plan map[string]any
		}
		raw := storetest.Column[[]byte](t, db, fmt.Sprintf(`EXPLAIN (ANALYZE, FORMAT JSON) SELECT c.id FROM contacts c
			WHERE c.workspace_id = %d AND c.search_text LIKE '%%%s%%' ORDER BY %s LIMIT 51`, ws.ID, c.term, c.order))[0]
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		if read := contactsRead(plan[0].Plan); read < c.read {
			t.Errorf("PostgreSQL's own plan read %.0f contacts for the first page of %q by %s, want %.0f or more: the data no longer clusters\n%s", read, c.term, c.order, c.read, raw)
		}
	}
}

// searchedWorkspace returns a store on a database of the test's own, one as the
// application's role, and a workspace of 3,000 contacts: "zeta" is in the names of
// the 600 contacts that sort last by name (2,400 to 2,999) and in the emails of 30
// unnamed ones (every 100th from 1), "spread" in every fourth contact's email, and
// "qx9k" in three.
func searchedWorkspace(t *testing.T) (owner, app *store.Store, ws crm.Workspace) {
	t.Helper()
	owner, app = storetest.NewStores(t, store.Options{MaxConns: 2})
	ws, _ = storetest.Workspace(t, owner)
	storetest.Exec(t, owner.DB(), `INSERT INTO contacts (workspace_id, phone, name, email)
		SELECT $1, '+9177' || lpad(g::text, 8, '0'),
		       CASE WHEN g % 50 = 1 THEN NULL WHEN g >= 2400 THEN 'Zeta ' || lpad(g::text, 4, '0') ELSE 'Name ' || lpad(g::text, 4, '0') END,
		       CASE WHEN g % 100 = 1 THEN 'zeta.' WHEN g % 4 = 0 THEN 'spread.' WHEN g IN (5, 1505, 2905) THEN 'qx9k.' ELSE '' END || 'c' || g || '@example.com'
		FROM generate_series(0, 2999) AS g`, ws.ID)
	return owner, app, ws
}

// searchedSegment makes a segment of the contacts of workspace ws that the SQL
// condition cond selects, then analyzes contacts and memberships and has app learn
// the statistics, and returns the segment and its members.
func searchedSegment(t *testing.T, owner, app *store.Store, ws int64, cond string) (crm.Segment, []int64) {
	t.Helper()
	seg, members := segmentWhere(t, owner, ws, "searched: "+cond, cond)
	storetest.Exec(t, owner.DB(), "ANALYZE contacts, memberships")
	store.LearnStatistics(app)
	return seg, members
}

// segmentWhere makes a segment named name of the contacts of workspace ws that the
// SQL condition cond selects, through s, and returns it and its members.
func segmentWhere(t *testing.T, s *store.Store, ws int64, name, cond string) (crm.Segment, []int64) {
	t.Helper()
	ctx := context.Background()
	seg, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	members := storetest.Column[int64](t, s.DB(), `SELECT id FROM contacts WHERE workspace_id = $1 AND `+cond, ws)
	for chunk := range slices.Chunk(members, 1000) { // the most one assignment takes
		if _, err := s.AssignContactsToSegments(ctx, ws, chunk, []int64{seg.ID}, store.WithSegments); err != nil {
			t.Fatal(err)
		}
	}
	return seg, members
}

// TestSegmentPagesWeighTheirSearch proves that a page of a segment's members weighs a
// walk of a search's list by the search's share (twoWayPageSelect), in the
// workspace of searchedWorkspace, analyzed, and a segment of 150 of its contacts.
// Unsearched, members first would read them for up to sqrt(51 × 3,000 / 16) = 98
// members, so the page walks (hashed). A walk of "zeta"'s list reads about 1 / 0.21
// contacts per match: 150 × 150 × 0.21 ≤ 51 × 3,000 / 16, and the 150 members are
// fewer than a quarter of its 630 matches, so the members come first. "qx9k" has 3
// matches, fewer than a walk is estimated to read, so they come first. "wqzx" is in
// a member added after the statistics, which no entry of the histogram holds: the
// page gets the plain statement. Each page is what sorting the searched members
// gives.
func TestSegmentPagesWeighTheirSearch(t *testing.T) {
	ctx := context.Background()
	owner, app, ws := searchedWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	twentieth, members := searchedSegment(t, owner, app, ws.ID, "right(phone, 2)::int % 20 = 7")
	// A member that came after the statistics: no entry of the histogram holds "wqzx".
	late := storetest.Column[int64](t, db, `INSERT INTO contacts (workspace_id, phone, email)
		VALUES ($1, '+917799999907', 'wqzx@example.com') RETURNING id`, ws.ID)
	if _, err := owner.AssignContactsToSegments(ctx, ws.ID, late, []int64{twentieth.ID}, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	first := 50
	for _, c := range []struct{ term, way string }{{"", "hashed walk"}, {"zeta", "members first"}, {"qx9k", "matches first"}, {"wqzx", "plain"}} {
		q := crm.ContactQuery{Search: c.term, Order: crm.DefaultContactOrder, Segments: crm.MembershipFilter{Any: []int64{twentieth.ID}}}
		query, err := store.ContactsPageSQL(app, ws.ID, q, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		// A term the histogram holds none of gets the plain statement, whose plan
		// reads its matches first (searchsample.go).
		if plain := !strings.Contains(query, "walk_plan"); plain != (c.way == "plain") {
			t.Errorf("the segment searched for %q: the plain statement %v, want %v", c.term, plain, c.way == "plain")
		} else if way := c.way; !plain {
			if way = wayRun(t, ctx, owner, query); way != c.way {
				t.Errorf("the segment of %d searched for %q: read by %s, want %s", len(members), c.term, way, c.way)
			}
		}
		if got, want := allPages(t, wctx, app, ws.ID, q, 50, false), storetest.Column[int64](t, db, `SELECT c.id FROM contacts c JOIN memberships m ON m.contact_id = c.id
			WHERE m.segment_id = $1 AND c.search_text LIKE '%' || $2 || '%' ORDER BY c.created_at DESC, c.id DESC`, twentieth.ID, c.term); !slices.Equal(got, want) {
			t.Errorf("the segment searched for %q: %v..., want %v...", c.term, head(got), head(want))
		}
	}
}

// TestSegmentSearchesBoundTheirWalk proves that a search's walk of a segment's page
// counts the contacts it reads, not its matches (twoWayPageSelect), in the workspace
// of searchedWorkspace, analyzed, and a segment of every other contact (1,500,
// hashed by the walk). Sorted by name, "zeta"'s matches all lie past the first 2,400
// contacts: its walk reads at most as many contacts as it has matches (about 630),
// falls short, and the matches come first (sorted, then tested for membership).
// "spread" fills its page from the walk; "qx9k" (3 matches) reads its matches first
// without walking. Every
// page, forward and backward, of 7 and of 50, in both directions, as a filter and as
// a batch of segments (ContactsOfSegments), is what sorting the searched members
// gives.
func TestSegmentSearchesBoundTheirWalk(t *testing.T) {
	ctx := context.Background()
	owner, app, ws := searchedWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	half, _ := searchedSegment(t, owner, app, ws.ID, "right(phone, 1)::int % 2 = 0")

	orderExpr := fmt.Sprintf(store.ContactNameOrderExpr, "c.name")
	first := 50
	for _, c := range []struct {
		term string
		dir  crm.Direction
		way  string
	}{
		{"zeta", crm.Asc, "walk, then matches first"}, // no match walked: the hash never built
		{"zeta", crm.Desc, "hashed walk"},             // the unnamed, then the Zetas, come first
		{"spread", crm.Asc, "hashed walk"},
		{"qx9k", crm.Asc, "matches first"},
	} {
		order := crm.ContactOrder{Field: crm.ContactsByName, Direction: c.dir}
		q := crm.ContactQuery{Search: c.term, Order: order, Segments: crm.MembershipFilter{Any: []int64{half.ID}}}
		query, err := store.ContactsPageSQL(app, ws.ID, q, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		if way := wayRun(t, ctx, owner, query); way != c.way {
			t.Errorf("the segment searched for %q %s: read by %s, want %s", c.term, c.dir, way, c.way)
		}
		want := storetest.Column[int64](t, db, fmt.Sprintf(`SELECT c.id FROM contacts c JOIN memberships m ON m.contact_id = c.id
			WHERE m.segment_id = $1 AND c.search_text LIKE '%%' || $2 || '%%'
			ORDER BY (c.name IS NULL) %[2]s, %[1]s %[2]s, c.id %[2]s`, orderExpr, c.dir), half.ID, c.term)
		for _, size := range []int{7, 50} {
			if got := allPages(t, wctx, app, ws.ID, q, size, false); !slices.Equal(got, want) {
				t.Errorf("%q %s, pages of %d forward: %d contacts %v..., want %d %v...", c.term, c.dir, size, len(got), head(got), len(want), head(want))
			}
			if got := allPages(t, wctx, app, ws.ID, q, size, true); !slices.Equal(got, want) {
				t.Errorf("%q %s, pages of %d backward: %d contacts %v..., want %d %v...", c.term, c.dir, size, len(got), head(got), len(want), head(want))
			}
		}
		// A batch of segments reads each segment's page the same way.
		pages, err := app.ContactsOfSegments(wctx, ws.ID, []int64{half.ID}, crm.ContactQuery{Search: c.term, Order: order}, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int64, 0, first)
		for _, contact := range pages[half.ID].Items {
			got = append(got, contact.ID)
		}
		if w := want[:min(len(want), first)]; !slices.Equal(got, w) {
			t.Errorf("%q %s in a batch: %v..., want %v...", c.term, c.dir, head(got), head(w))
		}
	}
}

// TestSegmentBatchesBoundTheirWalks proves how a batch of segments' pages of a search
// is read (contactsOfSegmentsSelect), in the workspace of batchWorkspace: "omega" has
// about 1,600 matches, the last by name and the newest, "a 3" (no trigram) the 1,000
// Omegas from 3000 on, "qqq" none. By name, each segment's walk reads at most its
// share of what sorting the matches costs (2.5 contacts walked a match, and for a
// term without a trigram the scan of every contact); by creation, where the walks
// read the same rows, four times its estimate and at most what the sorting costs (25
// contacts a match). Alone, T0 walks past the 2,400 Alphas to its page; in a batch of
// the three thirds, by name ascending each walk stops after about 1,333 contacts, and
// oldest first after about 1,530, and the batch sorts the matches once, which each
// page then reads in order until it fills. Descending, and newest first, the walks
// fill their pages; the segment of 40 reads its members first. Every first and last
// page, of 7 and of 50, and every page of each segment of the batch paged with its
// cursors, forward and backward, is what sorting the segment's searched members
// gives.
func TestSegmentBatchesBoundTheirWalks(t *testing.T) {
	ctx := context.Background()
	owner, app, ws, segs := batchWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	thirds, small := segs[:3], segs[3]

	byName := func(dir crm.Direction) crm.ContactOrder {
		return crm.ContactOrder{Field: crm.ContactsByName, Direction: dir}
	}
	orderSQL := map[crm.ContactOrderField]string{
		crm.ContactsByName:      "(c.name IS NULL) %[1]s, " + fmt.Sprintf(store.ContactNameOrderExpr, "c.name") + " %[1]s, c.id %[1]s",
		crm.ContactsByCreatedAt: "c.created_at %[1]s, c.id %[1]s",
	}
	for _, c := range []struct {
		batch  []int64
		term   string
		order  crm.ContactOrder
		sorted bool // the batch sorted the matches, for the first pages
	}{
		{thirds[:1], "omega", byName(crm.Asc), false},
		{thirds, "omega", byName(crm.Asc), true},
		{append([]int64{small}, thirds...), "omega", byName(crm.Desc), false},
		{thirds, "omega", crm.DefaultContactOrder, false},
		// Oldest first, each walk reads at most four times its estimate (about
		// 1,530 contacts), as a page alone would: the walks read the same rows.
		{thirds, "omega", crm.ContactOrder{Field: crm.ContactsByCreatedAt, Direction: crm.Asc}, true},
		{[]int64{thirds[0], small}, "a 3", byName(crm.Asc), true},
		{thirds, "a 3", byName(crm.Asc), true},
		{append([]int64{small}, thirds...), "qqq", byName(crm.Asc), true},
	} {
		// The walks read together at most what sorting the matches costs, in
		// contacts walked: 2.5 a match, and for a term without a trigram 4,000 / 10
		// for the scan; by creation ten times that; give or take the estimate of the
		// matches.
		matches := float64(storetest.Column[int64](t, db, `SELECT count(*) FROM contacts WHERE search_text LIKE '%' || $1 || '%'`, c.term)[0])
		bound := 1.1 * 2.5 * matches
		if c.term == "a 3" {
			bound += 1.1 * 4000 / 10
		}
		if c.order.Field == crm.ContactsByCreatedAt {
			bound *= 10
		}
		// Each segment's searched members, in the order.
		all := map[int64][]int64{}
		for _, seg := range c.batch {
			all[seg] = storetest.Column[int64](t, db, `SELECT c.id FROM contacts c JOIN memberships m ON m.contact_id = c.id
				WHERE m.segment_id = $1 AND c.search_text LIKE '%' || $2 || '%'
				ORDER BY `+fmt.Sprintf(orderSQL[c.order.Field], c.order.Direction), seg, c.term)
		}
		for _, size := range []int{7, 50} {
			for _, args := range []crm.PageArgs{{First: &size}, {Last: &size}} {
				name := fmt.Sprintf("%q %v %v, first %v last %v", c.term, c.order, c.batch, args.First != nil, args.Last != nil)
				query, err := store.ContactsOfSegmentsSQL(app, ws.ID, c.batch, c.term, c.order, args)
				if err != nil {
					t.Fatal(err)
				}
				// The way of a first page: a last page walks the other way.
				if sorted, walked := batchWay(t, ctx, owner, query); sorted != c.sorted && args.First != nil {
					t.Errorf("%s: the batch sorted the matches: %v, want %v", name, sorted, c.sorted)
				} else if walked > bound {
					t.Errorf("%s: the walks read %.0f contacts, want at most %.0f", name, walked, bound)
				}
				pages, err := app.ContactsOfSegments(wctx, ws.ID, c.batch, crm.ContactQuery{Search: c.term, Order: c.order}, args)
				if err != nil {
					t.Fatal(err)
				}
				for _, seg := range c.batch {
					want := all[seg][:min(len(all[seg]), size)]
					if args.Last != nil {
						want = all[seg][max(len(all[seg])-size, 0):]
					}
					page := pages[seg]
					got := make([]int64, 0, size)
					for _, contact := range page.Items {
						got = append(got, contact.ID)
					}
					more := map[bool]bool{true: page.HasPreviousPage, false: page.HasNextPage}[args.Last != nil]
					if !slices.Equal(got, want) || more != (len(all[seg]) > size) {
						t.Errorf("%s, segment %d: %v... (more: %v), want %v... of %d", name, seg, head(got), more, head(want), len(all[seg]))
					}
				}
			}
		}
		// Every page of each segment, from its cursors, in the batch.
		for _, seg := range c.batch {
			for _, backward := range []bool{false, true} {
				if got := allBatchPages(t, wctx, app, ws.ID, c.batch, seg, crm.ContactQuery{Search: c.term, Order: c.order}, 50, backward); !slices.Equal(got, all[seg]) {
					t.Errorf("%q %v %v, segment %d paged (backward: %v): %d contacts %v..., want %d %v...", c.term, c.order, c.batch, seg, backward, len(got), head(got), len(all[seg]), head(all[seg]))
				}
			}
		}
	}
}

// batchWorkspace returns a store on a database of the test's own, one as the
// application's role, a workspace of 4,000 contacts, analyzed, and its segments T0,
// T1, T2, small and half: the 2,400 first contacts by name are "Alpha", two to a name,
// the 1,600 last "Omega" (from 2400 on), two to a name, every 97th has no name, and
// every 14th an email "@seven.example"; the contacts are created in the order of
// their phones' numbers g, and T0, T1 and T2 hold those of g % 3 = 0, 1, 2 (1,333 or
// 1,334 each), small those of g % 100 = 7 (40), half the even ones (2,000).
func batchWorkspace(t *testing.T) (owner, app *store.Store, ws crm.Workspace, segs []int64) {
	t.Helper()
	owner, app = storetest.NewStores(t, store.Options{MaxConns: 2})
	ws, _ = storetest.Workspace(t, owner)
	storetest.Exec(t, owner.DB(), `INSERT INTO contacts (workspace_id, phone, name, email)
		SELECT $1, '+9177' || lpad(g::text, 8, '0'),
		       CASE WHEN g % 97 = 0 THEN NULL WHEN g < 2400 THEN 'Alpha ' ELSE 'Omega ' END || lpad((g - g % 2)::text, 4, '0'),
		       CASE WHEN g % 14 = 0 THEN 'c' || g || '@seven.example' END
		FROM generate_series(0, 3999) AS g`, ws.ID)
	for _, c := range []struct{ name, cond string }{
		{"T0", "% 3 = 0"}, {"T1", "% 3 = 1"}, {"T2", "% 3 = 2"}, {"small", "% 100 = 7"}, {"half", "% 2 = 0"},
	} {
		seg, _ := segmentWhere(t, owner, ws.ID, c.name, "right(phone, 8)::int "+c.cond)
		segs = append(segs, seg.ID)
	}
	storetest.Exec(t, owner.DB(), "ANALYZE contacts, memberships")
	store.LearnStatistics(app)
	return owner, app, ws, segs
}

// TestSegmentSearchesWalkTheCreationOrder proves that a page of a segment's members
// reckons a walk newest or oldest first ten times cheaper a contact than by name
// (walkedPerMatch), in the workspace of batchWorkspace: "seven" is in the emails of
// every 14th contact (286), all in the segment half (2,000). Its walk is estimated
// at about 1,430 contacts, past what sorting its matches costs in contacts walked by
// name (2.5 each: 715), so by name the matches come first, as before; newest and
// oldest first, where they cost 7,150, the page walks (about 700 contacts). Each
// page is what sorting the searched members gives.
func TestSegmentSearchesWalkTheCreationOrder(t *testing.T) {
	ctx := context.Background()
	owner, app, ws, segs := batchWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	half := segs[4]
	first := 50
	for _, c := range []struct {
		order crm.ContactOrder
		sql   string
		way   string
	}{
		{crm.DefaultContactOrder, "c.created_at DESC, c.id DESC", "walk"},
		{crm.ContactOrder{Field: crm.ContactsByCreatedAt, Direction: crm.Asc}, "c.created_at, c.id", "walk"},
		{crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}, "(c.name IS NULL), " + fmt.Sprintf(store.ContactNameOrderExpr, "c.name") + ", c.id", "matches first"},
	} {
		q := crm.ContactQuery{Search: "seven", Order: c.order, Segments: crm.MembershipFilter{Any: []int64{half}}}
		query, err := store.ContactsPageSQL(app, ws.ID, q, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		if way := wayRun(t, ctx, owner, query); way != c.way {
			t.Errorf("%v: read by %s, want %s", c.order, way, c.way)
		}
		want := storetest.Column[int64](t, db, `SELECT c.id FROM contacts c JOIN memberships m ON m.contact_id = c.id
			WHERE m.segment_id = $1 AND c.search_text LIKE '%seven%' ORDER BY `+c.sql, half)
		for _, backward := range []bool{false, true} {
			if got := allPages(t, wctx, app, ws.ID, q, 50, backward); !slices.Equal(got, want) {
				t.Errorf("%v, backward %v: %d contacts %v..., want %d %v...", c.order, backward, len(got), head(got), len(want), head(want))
			}
		}
	}
}

// TestFilteredSegmentBatchesReadTheFilteredOnce: in the workspace of batchWorkspace,
// a batch of the three thirds and half (1,333-2,000 members of 4,000), filtered by
// hasEmail (every 14th contact, 286), reads the filtered contacts sorted once for
// the batch, where each page of 50 walked about 2,000 contacts (about 7,000 read
// by the walks before: the ways were chosen by the segments' sizes alone). Filtered
// by None of half, half's page is empty and the statement reads nothing for it
// (before, its walk read its limit, then its 2,000 members). Each first and last
// page is what sorting the segment's filtered members gives.
func TestFilteredSegmentBatchesReadTheFilteredOnce(t *testing.T) {
	ctx := context.Background()
	owner, app, ws, segs := batchWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	batch := []int64{segs[0], segs[1], segs[2], segs[4]}
	half := segs[4]
	withEmail := true
	for _, c := range []struct {
		filter    crm.ContactQuery
		cond      string
		sorted    bool
		segments  float64 // the pages the statement reads
		maxWalked float64
	}{
		{crm.ContactQuery{Conditions: crm.ContactConditions{HasEmail: &withEmail}}, "c.email IS NOT NULL", true, 4, 100},
		{crm.ContactQuery{Segments: crm.MembershipFilter{None: []int64{half}}},
			"NOT EXISTS (SELECT 1 FROM memberships n WHERE n.contact_id = c.id AND n.segment_id = " + fmt.Sprint(half) + ")", false, 3, 2000},
	} {
		all := map[int64][]int64{}
		for _, seg := range batch {
			all[seg] = storetest.Column[int64](t, db, `SELECT c.id FROM contacts c JOIN memberships m ON m.contact_id = c.id
				WHERE m.segment_id = $1 AND `+c.cond+` ORDER BY c.created_at DESC, c.id DESC`, seg)
		}
		size := 50
		for _, args := range []crm.PageArgs{{First: &size}, {Last: &size}} {
			cq := c.filter
			cq.Order = crm.DefaultContactOrder
			name := fmt.Sprintf("%s, first %v", c.cond, args.First != nil)
			query, err := store.ContactsOfSegmentsQuerySQL(app, ws.ID, batch, cq, args)
			if err != nil {
				t.Fatal(err)
			}
			plan, _ := explainAnalyze(t, ctx, db, query)
			if sorted, walked := batchWay(t, ctx, owner, query); args.First != nil && (sorted != c.sorted || walked > c.maxWalked) {
				t.Errorf("%s: the batch sorted the filtered contacts: %v, want %v; the walks read %.0f contacts, want at most %.0f", name, sorted, c.sorted, walked, c.maxWalked)
			}
			if n := planLoops(plan, "CTE walk_plan"); n != c.segments {
				t.Errorf("%s: the statement read %.0f pages, want %.0f", name, n, c.segments)
			}
			pages, err := app.ContactsOfSegments(wctx, ws.ID, batch, cq, args)
			if err != nil {
				t.Fatal(err)
			}
			for _, seg := range batch {
				want := all[seg][:min(len(all[seg]), size)]
				if args.Last != nil {
					want = all[seg][max(len(all[seg])-size, 0):]
				}
				got := []int64{}
				for _, contact := range pages[seg].Items {
					got = append(got, contact.ID)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: segment %d: %v, want %v", name, seg, got, want)
				}
			}
		}
	}
}

// planLoops returns the loops of the node of plan whose subplan is name, 0 if none
// ran.
func planLoops(plan map[string]any, name string) float64 {
	if plan["Subplan Name"] == name {
		loops, _ := plan["Actual Loops"].(float64)
		return loops
	}
	for _, c := range children(plan) {
		if n := planLoops(c, name); n > 0 {
			return n
		}
	}
	return 0
}

// batchWay runs EXPLAIN ANALYZE of a statement of ContactsOfSegments and returns
// whether it sorted the search's matches for the batch (a walk fell short), and how
// many contacts the walks read.
func batchWay(t *testing.T, ctx context.Context, s *store.Store, sql string) (sorted bool, walked float64) {
	t.Helper()
	plan, _ := explainAnalyze(t, ctx, s.DB(), sql)
	var visit func(n map[string]any)
	visit = func(n map[string]any) {
		switch n["Subplan Name"] {
		case "CTE walk":
			walked += orderRead(n)
		case "CTE batch_matches":
			loops, _ := n["Actual Loops"].(float64)
			sorted = loops > 0
		}
		for _, c := range children(n) {
			visit(c)
		}
	}
	visit(plan)
	return sorted, walked
}

// orderRead returns how many contacts the plan node n and its children read through
// an index of an order (not the primary key, by which a walk reads its page's rows,
// nor a scan of the table, by which it may in a small table).
func orderRead(n map[string]any) float64 {
	read := 0.0
	if name, _ := n["Index Name"].(string); n["Relation Name"] == "contacts" && name != "" && name != "contacts_pkey" {
		read = rowsRead(n, "contacts")
	}
	for _, c := range children(n) {
		read += orderRead(c)
	}
	return read
}

// allBatchPages reads every page of segment seg's contacts that cq selects (its
// search, order and conditions) in a batch of segments' pages (ContactsOfSegments),
// of size contacts, from the first forward (or the last backward), each from seg's
// cursor, and returns their IDs in the list's order. A page that says it has a page
// behind it at the start of the list, or none past it, or a total that is not its
// own length, fails the test.
func allBatchPages(t *testing.T, ctx context.Context, s *store.Store, ws int64, batch []int64, seg int64, cq crm.ContactQuery, size int, backward bool) []int64 {
	t.Helper()
	var ids []int64
	args := crm.PageArgs{First: &size}
	if backward {
		args = crm.PageArgs{Last: &size}
	}
	for range 1000 {
		pages, err := s.ContactsOfSegments(ctx, ws, batch, cq, args)
		if err != nil {
			t.Fatal(err)
		}
		page := pages[seg]
		got := make([]int64, len(page.Items))
		for i, c := range page.Items {
			got[i] = c.ID
		}
		more, started := page.HasNextPage, args.After != nil
		if backward {
			ids = append(got, ids...)
			more, started = page.HasPreviousPage, args.Before != nil
		} else {
			ids = append(ids, got...)
		}
		if back := map[bool]bool{false: page.HasPreviousPage, true: page.HasNextPage}[backward]; back != started {
			t.Fatalf("%+v segment %d: a page %s the list says it has a page behind it: %v", cq, seg, map[bool]string{true: "past the start of", false: "at the start of"}[started], back)
		}
		if n, known := page.Total(); known && (args.After != nil || args.Before != nil || more || n != len(got)) {
			t.Fatalf("%+v segment %d: a page of %d (more: %v) says the list holds %d", cq, seg, len(got), more, n)
		}
		if !more {
			return ids
		}
		if backward {
			c := page.Cursor(0)
			args = crm.PageArgs{Last: &size, Before: &c}
		} else {
			c := page.Cursor(len(page.Items) - 1)
			args = crm.PageArgs{First: &size, After: &c}
		}
	}
	t.Fatal("more than 1,000 pages")
	return nil
}

// allPages reads every page of the contacts q selects in workspace ws, of size
// contacts, from the first forward (or the last backward), and returns their IDs in
// the list's order. It checks each page's hasNextPage and hasPreviousPage.
func allPages(t *testing.T, ctx context.Context, s *store.Store, ws int64, q crm.ContactQuery, size int, backward bool) []int64 {
	t.Helper()
	var ids []int64
	args := crm.PageArgs{First: &size}
	if backward {
		args = crm.PageArgs{Last: &size}
	}
	for range 1000 {
		page, err := s.Contacts(ctx, ws, q, args)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int64, len(page.Items))
		for i, c := range page.Items {
			got[i] = c.ID
		}
		more, started := page.HasNextPage, args.After != nil
		if backward {
			ids = append(got, ids...)
			more, started = page.HasPreviousPage, args.Before != nil
		} else {
			ids = append(ids, got...)
		}
		if back := map[bool]bool{false: page.HasPreviousPage, true: page.HasNextPage}[backward]; back != started {
			t.Fatalf("%q %s: a page %s the list says it has a page behind it: %v", q.Search, q.Order.Direction, map[bool]string{true: "past the start of", false: "at the start of"}[started], back)
		}
		if !more {
			return ids
		}
		if len(page.Items) != size {
			t.Fatalf("%q %s: a page of %d with a page after it", q.Search, q.Order.Direction, len(page.Items))
		}
		if backward {
			c := page.Cursor(0)
			args = crm.PageArgs{Last: &size, Before: &c}
		} else {
			c := page.Cursor(len(page.Items) - 1)
			args = crm.PageArgs{First: &size, After: &c}
		}
	}
	t.Fatal("more than 1,000 pages")
	return nil
}

// searchWay runs EXPLAIN ANALYZE of a statement of searchPageSelect without a
// cursor and returns how many contacts its walk (the CTE walk) read, and how many
// the whole statement read: more when it sorted the matches.
func searchWay(t *testing.T, ctx context.Context, db *sql.DB, query string) (walked, read float64) {
	t.Helper()
	plan, _ := explainAnalyze(t, ctx, db, query)
	var visit func(n map[string]any)
	visit = func(n map[string]any) {
		if n["Subplan Name"] == "CTE walk" {
			walked = contactsRead(n)
			return
		}
		for _, c := range children(n) {
			visit(c)
		}
	}
	visit(plan)
	return walked, contactsRead(plan)
}

// rowQuerier is a pool or one of its sessions (*sql.DB, *sql.Conn, *sql.Tx).
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// explainAnalyze runs EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of query and returns
// the root node of its plan, and the JSON for messages.
func explainAnalyze(t *testing.T, ctx context.Context, db rowQuerier, query string) (map[string]any, []byte) {
	t.Helper()
	var raw []byte
	if err := db.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+query).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct{ Plan map[string]any }
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	return plan[0].Plan, raw
}

// contactsRead returns how many rows of contacts the plan node n and its children
// read, by EXPLAIN ANALYZE: the rows each scan of contacts returned and those its
// filters removed.
func contactsRead(n map[string]any) float64 { return rowsRead(n, "contacts") }

// rowsRead returns how many rows of table the plan node n and its children read
// (contactsRead).
func rowsRead(n map[string]any, table string) float64 {
	read := 0.0
	if n["Relation Name"] == table {
		num := func(k string) float64 { f, _ := n[k].(float64); return f }
		read = (num("Actual Rows") + num("Rows Removed by Filter") + num("Rows Removed by Index Recheck")) * num("Actual Loops")
	}
	for _, c := range children(n) {
		read += rowsRead(c, table)
	}
	return read
}

// children returns the child nodes of the plan node n.
func children(n map[string]any) []map[string]any {
	plans, _ := n["Plans"].([]any)
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		if m, ok := p.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
