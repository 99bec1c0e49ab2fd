package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCatalogOfAWorkspaceWithTooManySegments proves that a workspace with more
// segments than a catalog holds has its contacts' segments read whole, with the
// segments (SegmentsOfContacts), and that the store holds no copy of them, only that
// they were too many.
func TestCatalogOfAWorkspaceWithTooManySegments(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, ws.ID, 20, store.CatalogMaxSegments+1, 7)
	wctx := store.WithWorkspace(ctx, ws.ID)
	ids := storetest.Column[int64](t, owner.DB(), "SELECT id FROM contacts WHERE workspace_id = $1", ws.ID)
	for range 2 {
		got, err := app.CatalogSegmentsOfContacts(wctx, ws.ID, ids)
		if err != nil {
			t.Fatal(err)
		}
		want, err := app.SegmentsOfContacts(wctx, ws.ID, ids)
		if err != nil {
			t.Fatal(err)
		}
		if segmentNames(got) != segmentNames(want) {
			t.Errorf("the contacts' segments: %s\nwant %s", segmentNames(got), segmentNames(want))
		}
		for _, segs := range got {
			for _, s := range segs {
				if s.ContactCount == 0 {
					t.Fatalf("segment %d without its count: not read whole", s.ID)
				}
			}
		}
		// A page read with its contacts' segments has them whole too.
		all := len(ids)
		page, withPage, err := app.ContactsWithCatalogSegments(wctx, ws.ID, crm.ContactQuery{Order: crm.DefaultContactOrder}, crm.PageArgs{First: &all})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != len(ids) || segmentNames(withPage) != segmentNames(want) {
			t.Errorf("a page of %d contacts with their segments: %s\nwant %s", len(page.Items), segmentNames(withPage), segmentNames(want))
		}
		for _, segs := range withPage {
			for _, s := range segs {
				if s.ContactCount == 0 {
					t.Fatalf("segment %d of a page without its count: not read whole", s.ID)
				}
			}
		}
		if _, n, large, held := store.CatalogHeld(app, ws.ID); !held || !large || n != 0 {
			t.Errorf("the store holds %d segments of the workspace (held %v, too many %v); want none, too many", n, held, large)
		}
	}
}

// TestContactsWithCatalogSegmentsAreTheirParts proves that a page of contacts read
// with its contacts' segment IDs (ContactsWithCatalogSegments, one statement) is the
// page Contacts reads, with the segments CatalogSegmentsOfContacts finds for it, in
// every shape a page takes: each order and direction, from either end and from
// cursors both ways, searched, and filtered by segments (the walk of None, and the
// members first of Any and All). Contacts in no segment are left out of the
// segments, as the loaders expect.
func TestContactsWithCatalogSegmentsAreTheirParts(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, ws.ID, 120, 6, 4)                                                                      // a quarter of the contacts in each segment, the 1st and 5th alike
	storetest.Exec(t, owner.DB(), `DELETE FROM memberships WHERE workspace_id = $1 AND contact_id % 7 = 0`, ws.ID) // some in none
	storetest.Exec(t, owner.DB(), `UPDATE contacts SET name = CASE WHEN id % 5 = 0 THEN NULL ELSE 'Name ' || (id % 17) END WHERE workspace_id = $1`, ws.ID)
	wctx := store.WithWorkspace(ctx, ws.ID)
	segs := storetest.Column[int64](t, owner.DB(), "SELECT id FROM segments WHERE workspace_id = $1 ORDER BY id", ws.ID)

	ten := 10
	var orders []crm.ContactOrder
	for _, f := range []crm.ContactOrderField{crm.ContactsByCreatedAt, crm.ContactsByUpdatedAt, crm.ContactsByName} {
		for _, d := range []crm.Direction{crm.Asc, crm.Desc} {
			orders = append(orders, crm.ContactOrder{Field: f, Direction: d})
		}
	}
	queries := map[string]crm.ContactQuery{
		"all":      {},
		"searched": {Search: "+91"},
		"none of":  {Segments: crm.MembershipFilter{None: segs[:1]}},
		"any of":   {Segments: crm.MembershipFilter{Any: segs[1:3]}},
		"all of":   {Segments: crm.MembershipFilter{All: []int64{segs[0], segs[4]}}},
	}
	empty, inNone := 0, 0
	for name, cq := range queries {
		for _, order := range orders {
			cq.Order = order
			first, err := app.Contacts(wctx, ws.ID, cq, crm.PageArgs{First: &ten})
			if err != nil {
				t.Fatalf("%s %v: %v", name, order, err)
			}
			if len(first.Items) == 0 {
				empty++
				continue
			}
			cursor := first.Cursor(len(first.Items) / 2)
			for _, args := range []crm.PageArgs{{First: &ten}, {Last: &ten}, {First: &ten, After: &cursor}, {Last: &ten, Before: &cursor}} {
				step := fmt.Sprintf("%s %v first %v after %v last %v before %v", name, order, args.First != nil, args.After != nil, args.Last != nil, args.Before != nil)
				want, err := app.Contacts(wctx, ws.ID, cq, args)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				got, segments, err := app.ContactsWithCatalogSegments(wctx, ws.ID, cq, args)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				if g, w := pageOf(got), pageOf(want); g != w {
					t.Errorf("%s: the page\n got %s\nwant %s", step, g, w)
				}
				wantSegs, err := app.CatalogSegmentsOfContacts(wctx, ws.ID, crm.ContactIDs(want.Items))
				if err != nil {
					t.Fatal(err)
				}
				if g, w := segmentNames(segments), segmentNames(wantSegs); g != w {
					t.Errorf("%s: the segments\n got %s\nwant %s", step, g, w)
				}
				inNone += len(got.Items) - len(segments)
			}
		}
	}
	if empty > 0 {
		t.Errorf("%d of the queries found no contacts: the test proves less than it says", empty)
	}
	if inNone == 0 {
		t.Error("every contact of every page is in a segment: the test proves nothing of those in none")
	}
}

// pageOf writes a page's contacts, cursors and neighbours.
func pageOf(p store.Page[crm.Contact]) string {
	var b strings.Builder
	for i, c := range p.Items {
		fmt.Fprintf(&b, "%d@%s ", c.ID, p.Cursor(i))
	}
	fmt.Fprintf(&b, "next %v previous %v", p.HasNextPage, p.HasPreviousPage)
	return b.String()
}
