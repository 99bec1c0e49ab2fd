package store_test

import (
	"context"
	"testing"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestTruncateKeepsDerivedDataExact truncates each table that something derives
// from, in a database of its own (TRUNCATE empties a table for every workspace), and
// checks that every check of `segments check` then finds nothing: no counter, contact
// count or bitmap drifted, and no membership outlived its contact or segment.
func TestTruncateKeepsDerivedDataExact(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2, AppName: "truncate-test"})
	for _, truncate := range []string{
		"TRUNCATE memberships",
		"TRUNCATE contacts",
		"TRUNCATE segments CASCADE", // segment_bitmaps refer to segments
		"TRUNCATE workspaces CASCADE",
		"TRUNCATE contacts, memberships, segments, contact_counts, segment_bitmaps",
	} {
		t.Run(truncate, func(t *testing.T) {
			// Two workspaces, so that a trigger that kept to one would show.
			for i := range 2 {
				newFixture(t, s, 1000*i, map[string]int{"all": 10, "some": 4})
			}
			if n := storetest.Column[int](t, s.DB(), "SELECT count(*) FROM memberships")[0]; n != 28 {
				t.Fatalf("%d memberships before, want 28", n)
			}
			storetest.Exec(t, s.DB(), truncate)
			counts, err := s.CheckCounts(ctx)
			if err != nil || len(counts) > 0 {
				t.Errorf("contact_count: %v, %v", counts, err)
			}
			contactCounts, err := s.CheckContactCounts(ctx)
			if err != nil || len(contactCounts) > 0 {
				t.Errorf("contact_counts: %v, %v", contactCounts, err)
			}
			bitmaps, err := s.CheckBitmaps(ctx)
			if err != nil || len(bitmaps) > 0 {
				t.Errorf("bitmaps: %v, %v", bitmaps, err)
			}
			orphans, err := s.CheckOrphans(ctx)
			if err != nil || len(orphans) > 0 {
				t.Errorf("orphaned memberships: %v, %v", orphans, err)
			}
			// Drift could also hide where nothing is left to compare with.
			for _, table := range []string{"memberships", "segment_bitmaps"} {
				if n := storetest.Column[int](t, s.DB(), "SELECT count(*) FROM "+table)[0]; n != 0 {
					t.Errorf("%d rows left in %s", n, table)
				}
			}
			if n := storetest.Column[int](t, s.DB(), "SELECT count(*) FROM segments WHERE contact_count <> 0")[0]; n != 0 {
				t.Errorf("%d segments still count members", n)
			}
			// The next case starts empty, whatever this one left.
			storetest.Exec(t, s.DB(), "TRUNCATE workspaces, memberships CASCADE")
		})
	}
}
