package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCountContactsOfSegmentsUpTo checks the counts of a search in a batch of
// segments up to a limit, as Segment.contacts' count(limit:) reads them for a list of
// segments: for segments of 0, 5 and 12 matching contacts (and members that do not
// match), each count is exact up to the limit and limit+1 beyond it, never the exact
// number above it, so each segment's count stopped reading at the limit; the exact
// counts (CountContactsOfSegments) agree. Another workspace's segment counts 0.
func TestCountContactsOfSegmentsUpTo(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)

	// 12 contacts named "match i", 3 named "other i".
	var in []crm.ContactInput
	for i := range 15 {
		name := fmt.Sprintf("match %d", i)
		if i >= 12 {
			name = fmt.Sprintf("other %d", i)
		}
		in = append(in, crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", 82_000+i), ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}})
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, c := range up.Contacts {
		ids = append(ids, c.ID)
	}
	matching := map[int64]int{}
	var segs []int64
	for _, members := range [][]int64{ids[12:], append(ids[:5:5], ids[12:]...), ids} { // 0, 5 and 12 matches
		seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("S%d", len(segs)), ContactIDs: members})
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg.ID)
		matching[seg.ID] = len(members) - 3
	}
	otherUp, err := s.UpsertContacts(ctx, other.ID, []crm.ContactInput{{Phone: "+919800082999", ContactDetails: crm.ContactDetails{Name: crm.Some(new("match"))}}})
	if err != nil {
		t.Fatal(err)
	}
	otherSeg, err := s.CreateSegment(ctx, other.ID, crm.NewSegment{Name: "other", ContactIDs: []int64{otherUp.Contacts[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	batch := append(segs, otherSeg.ID)

	exact, err := s.CountContactsOfSegments(ctx, ws.ID, batch, "match")
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 4, 5, 6, 11, 12, 13} {
		counts, err := s.CountContactsOfSegmentsUpTo(ctx, ws.ID, batch, "match", limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, seg := range segs {
			want := min(matching[seg], limit+1)
			if counts[seg] != want || exact[seg] != matching[seg] {
				t.Errorf("segment of %d matches, up to %d: %d (exactly: %d), want %d (%d)", matching[seg], limit, counts[seg], exact[seg], want, matching[seg])
			}
		}
		if counts[otherSeg.ID] != 0 || exact[otherSeg.ID] != 0 {
			t.Errorf("another workspace's segment, up to %d: %d (exactly: %d), want 0", limit, counts[otherSeg.ID], exact[otherSeg.ID])
		}
	}
}
