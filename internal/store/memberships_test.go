package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store/storetest"
)

// TestAssignSkipsExistingMemberships assigns contacts to segments some of which
// they are already in, to segments named out of order and twice, beside a segment
// between them in ID order that is not named. The store finds the existing
// memberships itself and inserts the others without ON CONFLICT (insertMemberships):
// a membership it missed would fail the insert, one it invented would go uncounted.
func TestAssignSkipsExistingMemberships(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 40_700, nil)
	c := f.contacts
	segment := func(name string, members []int64) int64 {
		seg, err := s.CreateSegment(ctx, f.ws.ID, crm.NewSegment{Name: name, ContactIDs: members})
		if err != nil {
			t.Fatal(err)
		}
		return seg.ID
	}
	// Created in this order, so first < between < last.
	first := segment("First", c[:4])
	between := segment("Between", c)
	last := segment("Last", c[5:6])

	withRepeat := append(slices.Clone(c), c[0])
	got, err := s.AssignContactsToSegments(ctx, f.ws.ID, withRepeat, []int64{last, first, last})
	if err != nil {
		t.Fatal(err)
	}
	if want := (10 - 4) + (10 - 1); got.Changed != want {
		t.Errorf("changed %d memberships, want %d", got.Changed, want)
	}
	if len(got.Segments) != 2 || got.Segments[0].ID != last || got.Segments[1].ID != first {
		t.Errorf("segments %+v, want Last then First", got.Segments)
	}
	for _, seg := range []int64{first, between, last} {
		q := fmt.Sprintf("SELECT count(*) FROM memberships WHERE workspace_id = %d AND segment_id = %d", f.ws.ID, seg)
		if n := count(t, s.DB(), ctx, q); n != 10 {
			t.Errorf("segment %d has %d memberships, want 10", seg, n)
		}
	}
	checkDerived(t, s, f.ws.ID)

	again, err := s.AssignContactsToSegments(ctx, f.ws.ID, c, []int64{first, between, last})
	if err != nil || again.Changed != 0 {
		t.Errorf("assigning again: changed %d, %v; want 0", again.Changed, err)
	}
	checkDerived(t, s, f.ws.ID)
}
