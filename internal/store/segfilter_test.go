package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSegmentBatchConditionsMatchBruteForce is TestContactConditionsMatchBruteForce
// for the contacts of segments read in a list (Segment.contacts(filter:) under
// segments or nodes: ContactsOfSegments, CountContactsOfSegments): for random
// filters of every field and segment list, with and without a search, each
// segment's pages of a batch of its workspace's segments (and an empty one), in
// every order, forward and backward from cursors, hold exactly the segment's
// members that the same filter keeps computed here in Go, and the batch's count of
// each is their number. Another workspace holds the same contacts, attributes and
// segments, which never appear; a third of the filters run again as the server's
// role, which row-level security holds to the workspace. Before ContactsOfSegments
// took a filter, a batch could not be asked for one.
func TestSegmentBatchConditionsMatchBruteForce(t *testing.T) {
	ctx := context.Background()
	s, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	d := newConditionsData(t, s, ws.ID, 85_000)
	newConditionsData(t, s, other.ID, 85_000) // the same contacts elsewhere
	empty, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	batch := append(slices.Clone(d.segs), empty.ID)

	orders := []crm.ContactOrder{}
	for _, f := range []crm.ContactOrderField{crm.ContactsByCreatedAt, crm.ContactsByUpdatedAt, crm.ContactsByName, crm.ContactsByPhone, crm.ContactsByEmail} {
		for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
			orders = append(orders, crm.ContactOrder{Field: f, Direction: dir})
		}
	}
	inOrder := map[crm.ContactOrder][]int64{}
	for _, o := range orders {
		inOrder[o] = pageAll(t, ctx, s, ws.ID, crm.ContactQuery{Order: o}, 100)
	}
	memberships := []crm.MembershipFilter{
		{},
		{Any: []int64{d.segs[0]}},
		{Any: []int64{d.segs[0], d.segs[1]}},
		{Any: []int64{}},
		{All: []int64{d.segs[1]}},
		{All: []int64{d.segs[0], d.segs[2]}},
		{None: []int64{d.segs[2]}},
		{Any: []int64{d.segs[1]}, None: []int64{d.segs[0]}},
		{Any: []int64{d.segs[2]}, All: []int64{d.segs[0]}},
		{None: []int64{empty.ID}}, // no chunk of the bitmaps: all of each segment
		{All: []int64{d.segs[1]}, None: []int64{empty.ID, d.segs[0]}},
	}
	inSegments := func(f crm.MembershipFilter, id int64) bool {
		in := func(list []int64) bool {
			return slices.ContainsFunc(list, func(seg int64) bool { return d.members[seg][id] })
		}
		return (f.Any == nil || in(f.Any)) && !slices.ContainsFunc(f.All, func(seg int64) bool { return !d.members[seg][id] }) && !in(f.None)
	}

	rng := rand.New(rand.NewPCG(13, 14))
	kept := 0
	check := func(s *store.Store, ctx context.Context, runs int) {
		for run := range runs {
			cq := crm.ContactQuery{Conditions: d.randomConditions(rng), Order: orders[rng.IntN(len(orders))]}
			if rng.IntN(2) == 0 {
				cq.Segments = memberships[rng.IntN(len(memberships))]
			}
			if rng.IntN(4) == 0 {
				cq.Search = "odd"
			}
			if run%4 == 1 { // segment lists alone: counted from the bitmaps
				cq.Conditions = crm.ContactConditions{}
				cq.Segments = memberships[1+rng.IntN(len(memberships)-1)]
			}
			if cq.Segments.IsZero() && cq.Conditions.IsZero() {
				cq.Conditions.HasEmail = ptr(run%2 == 0) // a filter, always
			}
			what := fmt.Sprintf("run %d: %s", run, d.describe(cq))
			size := 1 + rng.IntN(6)
			counts, err := s.CountContactsOfSegments(ctx, ws.ID, batch, cq)
			if err != nil {
				t.Fatalf("%s: counts: %v", what, err)
			}
			for _, seg := range batch {
				want := []int64{}
				for _, id := range inOrder[cq.Order] {
					if d.members[seg][id] && d.keeps(cq.Conditions, id) && inSegments(cq.Segments, id) &&
						(cq.Search == "" || d.contacts[id].Name != nil && strings.Contains(strings.ToLower(*d.contacts[id].Name), "odd")) {
						want = append(want, id)
					}
				}
				kept += len(want)
				if got := allBatchPages(t, ctx, s, ws.ID, batch, seg, cq, size, false); !slices.Equal(got, want) {
					t.Errorf("%s: segment %d, pages of %d forward %v, want %v", what, seg, size, got, want)
				}
				if got := allBatchPages(t, ctx, s, ws.ID, batch, seg, cq, size, true); !slices.Equal(got, want) {
					t.Errorf("%s: segment %d, pages of %d backward %v, want %v", what, seg, size, got, want)
				}
				if counts[seg] != len(want) {
					t.Errorf("%s: segment %d counted %d, want %d", what, seg, counts[seg], len(want))
				}
			}
		}
	}
	check(s, ctx, 150)
	check(app, store.WithWorkspace(ctx, ws.ID), 50)
	if kept < 200*len(d.contacts)/10 {
		t.Errorf("the filters kept %d members in all: too few to prove much", kept)
	}
}

// TestStatementsOfSegmentBatchesStayTheSame is TestStatementsOfContactQueriesStayTheSame
// for the pages and counts of the contacts of segments read in a list
// (ContactsOfSegments, CountContactsOfSegments) without a filter: searched or not,
// in every order and direction, from either end and from cursors, each statement
// is, byte for byte but for its constants, the one in
// testdata/segmentbatches.golden, which the store wrote before the batches took a
// filter (the same test, its calls in the old signatures, with
// SEGMENTS_UPDATE_STATEMENTS=1): the statements the benchmarks measured.
func TestStatementsOfSegmentBatchesStayTheSame(t *testing.T) {
	ctx := context.Background()
	// A database of its own: its contacts, named as TestStatementsOfContactQueriesStayTheSame's,
	// would change the statistics that test's searches are planned by.
	s := storetest.NewStore(t, store.Options{})
	ws, _ := storetest.Workspace(t, s)
	segs := evenAndOdd(t, s, ws.ID, 86_000, "B")
	capture, record, got := recordStatements(t, ctx)
	three := 3
	for _, search := range []string{"", "odd", "9800086"} {
		for _, field := range []crm.ContactOrderField{crm.ContactsByCreatedAt, crm.ContactsByUpdatedAt, crm.ContactsByName, crm.ContactsByPhone, crm.ContactsByEmail} {
			for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
				order := crm.ContactOrder{Field: field, Direction: dir}
				what := fmt.Sprintf("search %q order %s %s", search, field, dir)
				pages, err := unfilteredBatch(capture, s, ws.ID, segs, search, order, crm.PageArgs{First: &three})
				record(what+" first", err)
				if p := pages[segs[0]]; len(p.Items) > 0 {
					end := p.Cursor(len(p.Items) - 1)
					_, err = unfilteredBatch(capture, s, ws.ID, segs, search, order, crm.PageArgs{First: &three, After: &end})
					record(what+" after", err)
					_, err = unfilteredBatch(capture, s, ws.ID, segs, search, order, crm.PageArgs{Last: &three, Before: &end})
					record(what+" before", err)
				}
				_, err = unfilteredBatch(capture, s, ws.ID, segs, search, order, crm.PageArgs{Last: &three})
				record(what+" last", err)
			}
		}
		_, err := unfilteredBatchCount(capture, s, ws.ID, segs, search)
		record(fmt.Sprintf("search %q count", search), err)
	}
	compareGolden(t, "testdata/segmentbatches.golden", *got)
}

// unfilteredBatch and unfilteredBatchCount read a batch of segments' pages and
// counts without a filter, as the graph's loaders do.
func unfilteredBatch(ctx context.Context, s *store.Store, ws int64, segs []int64, search string, order crm.ContactOrder, args crm.PageArgs) (map[int64]store.Page[crm.Contact], error) {
	return s.ContactsOfSegments(ctx, ws, segs, crm.ContactQuery{Search: search, Order: order}, args)
}

func unfilteredBatchCount(ctx context.Context, s *store.Store, ws int64, segs []int64, search string) (map[int64]int, error) {
	return s.CountContactsOfSegments(ctx, ws, segs, crm.ContactQuery{Search: search})
}
