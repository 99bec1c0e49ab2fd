package store_test

import (
	"context"
	"testing"

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
		if _, n, large, held := store.CatalogHeld(app, ws.ID); !held || !large || n != 0 {
			t.Errorf("the store holds %d segments of the workspace (held %v, too many %v); want none, too many", n, held, large)
		}
	}
}
