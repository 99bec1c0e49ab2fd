package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSearchesNameTheirWorkspaceToTheIndex proves how a search names its workspace
// (large.go). In a database of two workspaces, one with nearly all the rows: a
// search of the small one gives its workspace to the trigram index, so that the
// index returns that workspace's matches alone, and a search of the large one does
// not. Both find what they should, as the owner and as the server's role. A store
// opened after the statistics knows the large workspace from its first search.
func TestSearchesNameTheirWorkspaceToTheIndex(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	owner, app := storetest.MigratedStores(t, url, store.Options{MaxConns: 2})
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}

	large, _ := storetest.Workspace(t, owner)
	small, _ := storetest.Workspace(t, owner)
	sizes := map[int64]int{large.ID: 3000, small.ID: 60}
	// Every tenth contact and segment holds the term "zq9x"; the phones differ per
	// workspace only in their prefix.
	for ws, n := range sizes {
		if _, err := owner.DB().ExecContext(ctx, fmt.Sprintf(`
			INSERT INTO contacts (workspace_id, phone, name, email)
			SELECT %[1]d, '+91%[1]d' || lpad(g::text, 8, '0'), 'Name ' || md5(g::text),
			       CASE WHEN g %% 10 = 0 THEN 'zq9x.' ELSE '' END || md5(g::text) || '@example.com'
			  FROM generate_series(1, %[2]d) g;
			INSERT INTO segments (workspace_id, name)
			SELECT %[1]d, CASE WHEN g %% 10 = 0 THEN 'zq9x ' ELSE '' END || 'Segment ' || md5(g::text)
			  FROM generate_series(1, %[2]d / 10) g`, ws, n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := owner.DB().ExecContext(ctx, "ANALYZE contacts; ANALYZE segments"); err != nil {
		t.Fatal(err)
	}

	// A store opened now knows at once (Open asks); the two opened before the rows
	// learn when asked again.
	late, err := store.Open(ctx, appURL, store.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if !store.IsLarge(late, "contacts", large.ID) || store.IsLarge(late, "contacts", small.ID) {
		t.Error("a store opened after the statistics does not know the large workspace")
	}
	for _, s := range []*store.Store{owner, app} {
		if store.IsLarge(s, "contacts", large.ID) {
			t.Fatal("a workspace is large before the store has asked")
		}
		store.LearnStatistics(s)
		for _, table := range []string{"contacts", "segments"} {
			if !store.IsLarge(s, table, large.ID) || store.IsLarge(s, table, small.ID) {
				t.Errorf("%s: large %v, small %v; want true, false", table,
					store.IsLarge(s, table, large.ID), store.IsLarge(s, table, small.ID))
			}
		}
	}

	for _, ws := range []int64{large.ID, small.ID} {
		contacts, segments := store.SearchSQL(app, ws, "zq9x")
		for _, c := range []struct{ table, sql, index string }{
			{"contacts", contacts, "contacts_search"},
			{"segments", segments, "segments_search"},
		} {
			// Forbid reading the table, or an index in order, and make filtering rows dear,
			// so that the plan shows which conditions the trigram index can take.
			cond, _ := indexCond(t, ctx, owner.DB(), "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; SET LOCAL cpu_operator_cost = 10", c.sql, c.index)
			keyed := strings.Contains(cond, "workspace_id =")
			if keyed != (ws == small.ID) {
				t.Errorf("%s of the workspace of %d contacts: the index takes the workspace: %v, want %v\n%s\nIndex Cond: %s",
					c.table, sizes[ws], keyed, ws == small.ID, c.sql, cond)
			}
		}

		wctx := store.WithWorkspace(ctx, ws)
		first := 100
		page, err := app.Contacts(wctx, ws, crm.ContactQuery{Search: "zq9x", Order: crm.DefaultContactOrder}, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		want := min(sizes[ws]/10, first)
		if len(page.Items) != want {
			t.Errorf("the workspace of %d contacts: %d contacts found, want %d", sizes[ws], len(page.Items), want)
		}
		for _, c := range page.Items {
			if c.Email == nil || !strings.HasPrefix(*c.Email, "zq9x.") || !strings.HasPrefix(c.Phone, fmt.Sprintf("+91%d", ws)) {
				t.Errorf("the workspace of %d contacts found %+v", sizes[ws], c)
			}
		}
		n, err := app.CountSegments(wctx, ws, crm.SegmentQuery{Search: "zq9x"})
		if err != nil || n != sizes[ws]/100 {
			t.Errorf("the workspace of %d contacts: %d segments found, %v; want %d", sizes[ws], n, err, sizes[ws]/100)
		}
	}
}

// indexCond returns the index conditions on index in the plan of query, planned on db
// after settings (none when empty) in one transaction, and the whole plan. Conditions may span lines
// (the indexed expressions hold newlines). It fails the test when index is not in
// the plan.
func indexCond(t *testing.T, ctx context.Context, db *sql.DB, settings, query, index string) (cond, plan string) {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if settings != "" {
		if _, err := tx.ExecContext(ctx, settings); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.QueryContext(ctx, "EXPLAIN "+query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		plan += l + "\n"
	}
	for _, node := range strings.Split(plan, "->") {
		if strings.Contains(node, " on "+index+" ") || strings.Contains(node, " using "+index+" ") {
			_, c, _ := strings.Cut(node, "Index Cond:")
			cond += c
		}
	}
	if cond == "" {
		t.Fatalf("%s is not in the plan:\n%s", index, plan)
	}
	return cond, plan
}
