package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestMembersFirstPagesAfterACursor: a page read members first after a cursor, in a
// workspace the statistics know (its candidates then an array of IDs), reads the
// candidates by primary key and takes the page from them in its order. Written as a
// condition of the contacts (c.id = ANY(ARRAY(...))), PostgreSQL guessed the array
// at 10 IDs and put it, with the cursor's row comparison, in the key of a scan of
// the order's index: in PostgreSQL 15 one scan per candidate from the cursor to the
// end of the workspace's names. 64,000 contacts "Person <6 hex digits>", the second
// page by name of all of two segments of 5,000 and 2,000 took 15-33 s. Every page,
// in both directions and three orders, of the audiences a probe reported (All, Any
// of a large segment, Any with None), searched, and of a segment's own contacts,
// must plan no index of the contacts but the primary key with a list in its key,
// and give the pages plain SQL gives.
func TestMembersFirstPagesAfterACursor(t *testing.T) {
	ctx := context.Background()
	// A database of its own: the plans follow the whole table's statistics.
	owner, app := storetest.NewStores(t, store.Options{})
	other, _ := storetest.Workspace(t, owner)
	ws, _ := storetest.Workspace(t, owner)
	db := owner.DB()
	// Another business's 80 contacts without a name: the statistics then give the
	// cursor's row comparison, whose first column is (name IS NULL), a share of the
	// rows small enough for PostgreSQL to put the candidates in the key of the name
	// index's scan (with none it walked that index testing each row against the
	// array, with 150 or more it read the primary key: both fast).
	storetest.Exec(t, db, fmt.Sprintf(`INSERT INTO contacts (workspace_id, phone)
		SELECT %d, '+9196' || lpad(g::text, 8, '0') FROM generate_series(1, 80) AS g`, other.ID))
	// Names in an order unrelated to the IDs; s1 holds 5,000 contacts spread over
	// it, s2 2,000 of them, s3 12,800 and s4 32,000 (s3 without s4: 6,400).
	var s1, s2, s3, s4 int64
	err := db.QueryRowContext(ctx, fmt.Sprintf(`
		WITH c AS (
			INSERT INTO contacts (workspace_id, phone, name, created_at, updated_at)
			SELECT %[1]d, '+9197' || lpad(g::text, 8, '0'), 'Person ' || substr(md5(g::text), 1, 6),
			       timestamptz '2026-01-01' + g * interval '1 second', timestamptz '2026-01-01'
			FROM generate_series(1, 64000) AS g
			RETURNING id, right(phone, 8)::int AS g
		), s AS (
			INSERT INTO segments (workspace_id, name) VALUES (%[1]d, 's1'), (%[1]d, 's2'), (%[1]d, 's3'), (%[1]d, 's4') RETURNING id, name
		), m AS (
			INSERT INTO memberships (workspace_id, segment_id, contact_id)
			SELECT %[1]d, s.id, c.id FROM c, s
			WHERE (s.name = 's1' AND c.g %% 64 < 5) OR (s.name = 's2' AND c.g %% 64 < 2)
			   OR (s.name = 's3' AND c.g %% 5 = 0) OR (s.name = 's4' AND c.g %% 2 = 0)
		)
		SELECT (SELECT id FROM s WHERE name = 's1'), (SELECT id FROM s WHERE name = 's2'),
		       (SELECT id FROM s WHERE name = 's3'), (SELECT id FROM s WHERE name = 's4')`,
		ws.ID)).Scan(&s1, &s2, &s3, &s4)
	if err != nil {
		t.Fatal(err)
	}
	// The statistics, as autovacuum gathers them: the workspace is planned at its
	// size, and the candidates are the array.
	storetest.Exec(t, db, "VACUUM ANALYZE contacts, memberships, segments")
	store.LearnStatistics(app)
	actx := store.WithWorkspace(ctx, ws.ID)
	ptr := func(n int) *int { return &n }
	const size = 100

	// The oracle: the audience, searched, in the order, by a query of its own.
	inAudience := func(f crm.MembershipFilter, search, orderBy string) []int64 {
		in := func(n int) string {
			return fmt.Sprintf(`(SELECT count(*) FROM memberships m WHERE m.workspace_id = c.workspace_id AND m.contact_id = c.id
			     AND m.segment_id = ANY($%d))`, n)
		}
		return storetest.Column[int64](t, db, `SELECT c.id FROM contacts c WHERE c.workspace_id = $1
			AND ($2::bigint[] IS NULL OR `+in(2)+` > 0) AND `+in(3)+` = coalesce(cardinality($3::bigint[]), 0) AND `+in(4)+` = 0
			AND lower(c.name) LIKE '%' || $5 || '%'
			ORDER BY `+orderBy, ws.ID, f.Any, f.All, f.None, search)
	}
	// planned fails the test if PostgreSQL's plan of sql scans an index of the
	// contacts other than the primary key with a list of values in its key.
	planned := func(name, sql string) {
		t.Helper()
		var raw []byte
		if err := app.DB().QueryRowContext(actx, "EXPLAIN (FORMAT JSON) "+sql).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var plans []struct{ Plan map[string]any }
		if err := json.Unmarshal(raw, &plans); err != nil {
			t.Fatal(err)
		}
		var visit func(n map[string]any)
		visit = func(n map[string]any) {
			cond, _ := n["Index Cond"].(string)
			if index, _ := n["Index Name"].(string); n["Relation Name"] == "contacts" && index != "contacts_pkey" && strings.Contains(cond, "= ANY") {
				t.Fatalf("%s: a scan of %s keyed by a list: %s", name, index, cond)
			}
			children, _ := n["Plans"].([]any)
			for _, c := range children {
				visit(c.(map[string]any))
			}
		}
		visit(plans[0].Plan)
	}
	ids := func(p store.Page[crm.Contact]) []int64 {
		out := make([]int64, len(p.Items))
		for i, c := range p.Items {
			out[i] = c.ID
		}
		return out
	}
	// walk pages through the list that page reads, forward from its start or
	// backward from its end, checking each statement's plan, and returns its IDs in
	// the list's order.
	walk := func(name string, backward bool, page func(args crm.PageArgs) (string, store.Page[crm.Contact])) []int64 {
		var got []int64
		var cursor *string
		for n := 1; ; n++ {
			args := crm.PageArgs{First: ptr(size), After: cursor}
			if backward {
				args = crm.PageArgs{Last: ptr(size), Before: cursor}
			}
			sql, p := page(args)
			planned(fmt.Sprintf("%s, page %d", name, n), sql)
			if backward {
				got = append(ids(p), got...)
			} else {
				got = append(got, ids(p)...)
			}
			more := p.HasNextPage
			c := p.Cursor(len(p.Items) - 1)
			if backward {
				more, c = p.HasPreviousPage, p.Cursor(0)
			}
			if !more || len(p.Items) == 0 {
				return got
			}
			cursor = &c
		}
	}
	orders := []struct {
		order   crm.ContactOrder
		orderBy string
	}{
		{crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}, "lower(c.name), c.id"},
		{crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Desc}, "lower(c.name) DESC, c.id DESC"},
		{crm.DefaultContactOrder, "c.created_at DESC, c.id DESC"},
	}
	for _, a := range []struct {
		name   string
		search string
		filter crm.MembershipFilter
	}{
		{"all of s1 and s2", "", crm.MembershipFilter{All: []int64{s1, s2}}},
		{"any of s3", "", crm.MembershipFilter{Any: []int64{s3}}},
		{"any of s3, none of s4", "", crm.MembershipFilter{Any: []int64{s3}, None: []int64{s4}}},
		{"\"person\" in all of s1 and s2", "person", crm.MembershipFilter{All: []int64{s1, s2}}},
		{"\"a1\" in any of s3", "a1", crm.MembershipFilter{Any: []int64{s3}}},
	} {
		for _, o := range orders {
			cq := crm.ContactQuery{Search: a.search, Segments: a.filter, Order: o.order}
			want := inAudience(a.filter, a.search, o.orderBy)
			page := func(args crm.PageArgs) (string, store.Page[crm.Contact]) {
				sql, err := store.ContactsPageSQL(app, ws.ID, cq, args)
				if err != nil {
					t.Fatal(err)
				}
				if a.search == "" && !strings.Contains(sql, "ANY(ARRAY(") {
					t.Fatalf("%s: the workspace is not planned at its size:\n%s", a.name, sql)
				}
				p, err := app.Contacts(actx, ws.ID, cq, args)
				if err != nil {
					t.Fatal(err)
				}
				return sql, p
			}
			for _, backward := range []bool{false, true} {
				name := fmt.Sprintf("%s by %s, backward %v", a.name, o.orderBy, backward)
				if got := walk(name, backward, page); !slices.Equal(got, want) {
					t.Errorf("%s: %d contacts %v..., want %d %v...", name, len(got), head(got), len(want), head(want))
				}
			}
		}
	}
	// A segment's own contacts (Segment.contacts), read members first.
	for _, o := range orders {
		want := inAudience(crm.MembershipFilter{Any: []int64{s2}}, "", o.orderBy)
		page := func(args crm.PageArgs) (string, store.Page[crm.Contact]) {
			sql, err := store.ContactsOfSegmentsSQL(app, ws.ID, []int64{s2}, "", o.order, args)
			if err != nil {
				t.Fatal(err)
			}
			pages, err := app.ContactsOfSegments(actx, ws.ID, []int64{s2}, crm.ContactQuery{Order: o.order}, args)
			if err != nil {
				t.Fatal(err)
			}
			return sql, pages[s2]
		}
		for _, backward := range []bool{false, true} {
			name := fmt.Sprintf("the contacts of s2 by %s, backward %v", o.orderBy, backward)
			if got := walk(name, backward, page); !slices.Equal(got, want) {
				t.Errorf("%s: %d contacts %v..., want %d %v...", name, len(got), head(got), len(want), head(want))
			}
		}
	}
}
