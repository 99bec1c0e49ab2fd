package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestMembershipFilterAll proves the set semantics of MembershipFilter.All for lists
// short and long (the store writes lists of more than four segments as one aggregate
// instead of one EXISTS per segment): pages and counts equal the sets computed here,
// with repeated IDs, IDs of no segment and of another workspace's segment (an empty
// segment: nobody is in all), and together with Any, None and a search. Counts up to
// a limit (CountContactsUpTo) agree with them around the limit, and so do the totals
// that pages of 5 know (Page.Total).
func TestMembershipFilterAll(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)

	const nContacts, nSegments = 24, 8
	in := make([]crm.ContactInput, nContacts)
	for i := range in {
		name := fmt.Sprintf("even %d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("odd %d", i)
		}
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", 81_000+i), ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}}
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	contacts := make([]int64, nContacts) // in ID order, which is creation order
	odd := map[int64]bool{}
	for i, c := range up.Contacts {
		contacts[i] = c.ID
		odd[c.ID] = i%2 == 1
	}
	// Segment k holds each contact with probability 3/4, so that long lists still
	// have members in common; segment 0 holds everyone.
	rng := rand.New(rand.NewPCG(1, 2))
	segs := make([]int64, nSegments)
	members := map[int64]map[int64]bool{}
	for k := range segs {
		var ids []int64
		for _, c := range contacts {
			if k == 0 || rng.IntN(4) > 0 {
				ids = append(ids, c)
			}
		}
		seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("S%d", k), ContactIDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		segs[k] = seg.ID
		members[seg.ID] = map[int64]bool{}
		for _, c := range ids {
			members[seg.ID][c] = true
		}
	}
	otherUp, err := s.UpsertContacts(ctx, other.ID, []crm.ContactInput{{Phone: "+919800081999"}})
	if err != nil {
		t.Fatal(err)
	}
	otherSeg, err := s.CreateSegment(ctx, other.ID, crm.NewSegment{Name: "other", ContactIDs: []int64{otherUp.Contacts[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	const unknown = int64(1) << 50

	in1 := func(c int64, list []int64) bool {
		return slices.ContainsFunc(list, func(seg int64) bool { return members[seg][c] })
	}
	want := func(f crm.MembershipFilter, onlyOdd bool) []int64 {
		out := []int64{}
		for _, c := range contacts {
			if f.Any != nil && !in1(c, f.Any) {
				continue
			}
			if slices.ContainsFunc(f.All, func(seg int64) bool { return !members[seg][c] }) {
				continue
			}
			if in1(c, f.None) || (onlyOdd && !odd[c]) {
				continue
			}
			out = append(out, c)
		}
		return out
	}

	alls := [][]int64{
		nil,
		{},
		{segs[0]},
		{segs[1], segs[2]},
		{segs[1], segs[1], segs[2], segs[2], segs[3], segs[3]}, // three segments
		{segs[0], segs[1], segs[2], segs[3]},
		{segs[0], segs[1], segs[2], segs[3], segs[4]},
		{segs[1], segs[2], segs[3], segs[4], segs[5], segs[1]}, // five segments
		segs[1:],
		segs,
		{segs[0], unknown},
		{segs[0], otherSeg.ID},
		append(slices.Clone(segs), unknown),
		append(slices.Clone(segs), otherSeg.ID),
		{unknown, unknown + 1, unknown + 2, unknown + 3, unknown + 4},
	}
	anys := [][]int64{nil, {segs[0]}, {segs[6], segs[7]}, {unknown}}
	nones := [][]int64{nil, {segs[7]}, {segs[5], otherSeg.ID}, {segs[6], segs[7], segs[6], unknown}}
	for _, all := range alls {
		for _, anyIDs := range anys {
			for _, none := range nones {
				for _, search := range []string{"", "odd"} {
					f := crm.MembershipFilter{Any: anyIDs, All: all, None: none}
					cq := crm.ContactQuery{Search: search, Segments: f, Order: crm.ContactOrder{Field: crm.ContactsByCreatedAt, Direction: crm.Asc}}
					what := fmt.Sprintf("any %v, all %v, none %v, search %q", anyIDs, all, none, search)
					first := 100
					p, err := s.Contacts(ctx, ws.ID, cq, crm.PageArgs{First: &first})
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					got := []int64{}
					for _, c := range p.Items {
						got = append(got, c.ID)
					}
					w := want(f, search != "")
					if !slices.Equal(got, w) {
						t.Errorf("%s: page %v, want %v", what, got, w)
					}
					n, err := s.CountContacts(ctx, ws.ID, cq)
					if err != nil {
						t.Fatalf("%s: count: %v", what, err)
					}
					if n != len(w) {
						t.Errorf("%s: count %d, want %d", what, n, len(w))
					}
					// Pages of 5, forward: the total a page's statement knows is the
					// count. An unsearched audience that None narrows is counted by
					// every page's statement.
					got = []int64{}
					for after := (*string)(nil); ; {
						five := 5
						p, err := s.Contacts(ctx, ws.ID, cq, crm.PageArgs{First: &five, After: after})
						if err != nil {
							t.Fatalf("%s: page of 5 after %d: %v", what, len(got), err)
						}
						total, known := p.Total()
						switch {
						case known && total != len(w):
							t.Errorf("%s: page of 5 after %d: total %d, want %d", what, len(got), total, len(w))
						case !known && search == "" && anyIDs != nil && none != nil && len(p.Items) > 0:
							t.Errorf("%s: page of 5 after %d: total unknown, want it counted", what, len(got))
						}
						for _, c := range p.Items {
							got = append(got, c.ID)
						}
						if !p.HasNextPage {
							break
						}
						end := p.Cursor(len(p.Items) - 1)
						after = &end
					}
					if !slices.Equal(got, w) {
						t.Errorf("%s: pages of 5 %v, want %v", what, got, w)
					}
					// Up to a limit: exact to it, above it beyond, and a search stops
					// reading its matches at limit+1 (which, below len(w)-1, is not the
					// exact count).
					for _, limit := range []int{1, len(w) / 2, len(w) - 1, len(w), len(w) + 1} {
						if limit < 1 {
							continue
						}
						n, err := s.CountContactsUpTo(ctx, ws.ID, cq, limit)
						switch {
						case err != nil:
							t.Fatalf("%s: count up to %d: %v", what, limit, err)
						case len(w) <= limit && n != len(w):
							t.Errorf("%s: count up to %d: %d, want %d", what, limit, n, len(w))
						case len(w) > limit && n <= limit:
							t.Errorf("%s: count up to %d: %d, want more than %d (there are %d)", what, limit, n, limit, len(w))
						case len(w) > limit && search != "" && n != limit+1:
							t.Errorf("%s: count up to %d: %d, want %d: a search stops at the limit", what, limit, n, limit+1)
						}
					}
				}
			}
		}
	}
}

// TestAllOfManySegmentsAcrossChunks checks the IDs that a list of more than four
// All segments finds (allMembers) for contacts whose IDs sit on the edges of the
// bitmaps' bytes, 64-bit words and 32,768-contact chunks, both ways: from the
// bitmaps, when the contacts in all of them are few against the segments'
// memberships, and by counting memberships, when they are not. IDs from 2^33 up
// stay clear of the contacts other tests make.
func TestAllOfManySegmentsAcrossChunks(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	const base = int64(1) << 33 // a chunk's first contact
	var inAll []int64
	for _, off := range []int64{0, 1, 7, 8, 63, 64, 511, 512, 32767, 32768, 32769, 65535, 65536, 98303} {
		inAll = append(inAll, base+off)
	}
	var fillers []int64 // each in four of the five segments
	for j := range int64(60) {
		fillers = append(fillers, base+100_000+j*1_013)
	}
	contactsWithIDs(t, s, ws.ID, append(slices.Clone(inAll), fillers...))
	segments := func(name string, withFillers bool) []int64 {
		ids := make([]int64, 5)
		for k := range ids {
			seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("%s %d", name, k), ContactIDs: inAll})
			if err != nil {
				t.Fatal(err)
			}
			ids[k] = seg.ID
			var some []int64
			for j, c := range fillers {
				if withFillers && j%5 != k {
					some = append(some, c)
				}
			}
			if len(some) > 0 {
				if _, err := s.AssignContactsToSegments(ctx, ws.ID, some, []int64{seg.ID}, store.WithSegments); err != nil {
					t.Fatal(err)
				}
			}
		}
		return ids
	}
	for _, c := range []struct {
		name string
		segs []int64
	}{
		// 14 found, 5 × (14 + 48) memberships: found from the bitmaps.
		{"bitmaps", segments("Wide", true)},
		// 14 found, 5 × 14 memberships: found by counting the memberships.
		{"counted", segments("Narrow", false)},
	} {
		first := 100
		cq := crm.ContactQuery{Segments: crm.MembershipFilter{All: c.segs}, Order: crm.DefaultContactOrder}
		page, err := s.Contacts(ctx, ws.ID, cq, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, contact := range page.Items {
			got = append(got, contact.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, inAll) {
			t.Errorf("%s: the contacts in all five are %v, want %v", c.name, got, inAll)
		}
		if n, err := s.CountContacts(ctx, ws.ID, cq); err != nil || n != len(inAll) {
			t.Errorf("%s: counted %d, %v; want %d", c.name, n, err, len(inAll))
		}
	}
}

// TestOneSegmentIsCountedByItsCounter proves that the audience of one segment alone
// (any of it, or all of it, however often listed) is read from its contact_count, not
// counted from the bitmaps: with the counter made wrong, the count says so, and a
// filter of more than the segment still counts from the bitmaps.
func TestOneSegmentIsCountedByItsCounter(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919800082001"}, {Phone: "+919800082002"}, {Phone: "+919800082003"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{up.Contacts[0].ID, up.Contacts[1].ID, up.Contacts[2].ID}
	seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "three", ContactIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "one", ContactIDs: ids[:1]})
	if err != nil {
		t.Fatal(err)
	}
	count := func(f crm.MembershipFilter) int {
		t.Helper()
		n, err := s.CountContacts(ctx, ws.ID, crm.ContactQuery{Segments: f})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const wrong = 1000
	storetest.Exec(t, s.DB(), `UPDATE segments SET contact_count = $1 WHERE id = $2`, wrong, seg.ID)
	for _, f := range []crm.MembershipFilter{{Any: []int64{seg.ID}}, {All: []int64{seg.ID}}, {All: []int64{seg.ID, seg.ID}}} {
		if n := count(f); n != wrong {
			t.Errorf("%+v: %d, want the counter's %d", f, n, wrong)
		}
	}
	for f, want := range map[*crm.MembershipFilter]int{
		{Any: []int64{seg.ID}, None: []int64{one.ID}}: 2,
		{Any: []int64{seg.ID, one.ID}}:                3,
		{Any: []int64{seg.ID}, All: []int64{seg.ID}}:  3,
	} {
		if n := count(*f); n != want {
			t.Errorf("%+v: %d, want %d, from the bitmaps", *f, n, want)
		}
	}
	// Another workspace's segment, or none, has no members here.
	if n, err := s.CountContacts(ctx, other.ID, crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{seg.ID}}}); err != nil || n != 0 {
		t.Errorf("another workspace's segment: %d, %v; want 0", n, err)
	}
	if n := count(crm.MembershipFilter{All: []int64{1 << 50}}); n != 0 {
		t.Errorf("a segment that does not exist: %d, want 0", n)
	}
}
