package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// updateStatements, when set, makes the test rewrite testdata/statements.golden from
// the statements sent.
var updateStatements = os.Getenv("SEGMENTS_UPDATE_STATEMENTS") != ""

// TestStatementsOfContactQueriesStayTheSame sends every kind of read of the contacts
// a ContactQuery of a search and a membership filter selects (pages of each order
// and direction, from either end and from cursors, with the catalog's segments or
// without, counts, counts up to a limit, and the three select-alls), and compares
// the statements it sends, as sent, with testdata/statements.golden: their SHA-256
// after numbers and string constants are blanked (IDs, cursors' values and
// timestamps change from run to run). The golden file was written by the store
// before ContactQuery had field conditions (go test -run
// TestStatementsOfContactQueriesStayTheSame with SEGMENTS_UPDATE_STATEMENTS=1), so that a query
// without them sends, byte for byte, the statements the benchmarks measured.
func TestStatementsOfContactQueriesStayTheSame(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 4}) // its own: other tests ANALYZE the shared database, and a search's statement follows the statistics
	ws, _ := storetest.Workspace(t, s)

	segs := evenAndOdd(t, s, ws.ID, 83_000, "T")

	filters := []crm.MembershipFilter{
		{},
		{Any: []int64{segs[0]}},
		{Any: []int64{segs[0], segs[1]}},
		{All: []int64{segs[0]}},
		{All: []int64{segs[0], segs[1]}},
		{None: []int64{segs[2]}},
		{Any: []int64{segs[0]}, None: []int64{segs[2]}},
		{Any: []int64{segs[1]}, All: []int64{segs[0]}},
		{All: []int64{segs[0], segs[1], segs[2], segs[0] + 1000, segs[0] + 1001}}, // more than four
	}
	capture, record, got := recordStatements(t, ctx)
	five := 5
	for fi, f := range filters {
		for _, search := range []string{"", "odd", "9800083"} {
			for _, field := range []crm.ContactOrderField{crm.ContactsByCreatedAt, crm.ContactsByUpdatedAt, crm.ContactsByName} {
				for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
					cq := crm.ContactQuery{Search: search, Segments: f, Order: crm.ContactOrder{Field: field, Direction: dir}}
					what := fmt.Sprintf("filter %d search %q order %s %s", fi, search, field, dir)
					p, err := s.Contacts(capture, ws.ID, cq, crm.PageArgs{First: &five})
					record(what+" first", err)
					if len(p.Items) > 0 {
						end := p.Cursor(len(p.Items) - 1)
						_, err = s.Contacts(capture, ws.ID, cq, crm.PageArgs{First: &five, After: &end})
						record(what+" after", err)
						_, err = s.Contacts(capture, ws.ID, cq, crm.PageArgs{Last: &five, Before: &end})
						record(what+" before", err)
					}
					_, err = s.Contacts(capture, ws.ID, cq, crm.PageArgs{Last: &five})
					record(what+" last", err)
					_, _, err = s.ContactsWithCatalogSegments(capture, ws.ID, cq, crm.PageArgs{First: &five})
					record(what+" catalog", err)
				}
			}
			cq := crm.ContactQuery{Search: search, Segments: f}
			what := fmt.Sprintf("filter %d search %q", fi, search)
			_, err := s.CountContacts(capture, ws.ID, cq)
			record(what+" count", err)
			_, err = s.CountContactsUpTo(capture, ws.ID, cq, 3)
			record(what+" count up to", err)
		}
	}
	for fi, f := range filters[:3] {
		cq := crm.ContactQuery{Search: "odd", Segments: f}
		what := fmt.Sprintf("select-all %d", fi)
		_, err := s.AssignContactsMatching(capture, ws.ID, cq, []int64{segs[2]}, store.WithSegments)
		record(what+" assign", err)
		_, err = s.RemoveContactsMatching(capture, ws.ID, cq, []int64{segs[2]}, store.WithSegments)
		record(what+" remove", err)
		_, err = s.CreateSegmentMatching(capture, ws.ID, crm.NewSegment{Name: fmt.Sprintf("M%d", fi)}, cq)
		record(what+" create", err)
	}

	compareGolden(t, "testdata/statements.golden", *got)
}

var (
	stringConstant = regexp.MustCompile(`'(?:[^']|'')*'`)
	numberConstant = regexp.MustCompile(`\b\d+\b`)
)

// statementHash is the SHA-256 of statement q with its string constants and numbers
// blanked, in hex: what it does, whatever the IDs and times it names.
func statementHash(q string) string {
	q = numberConstant.ReplaceAllString(stringConstant.ReplaceAllString(q, "''"), "0")
	return fmt.Sprintf("%x", sha256.Sum256([]byte(q)))[:16]
}

// evenAndOdd gives workspace ws the contacts and segments of the statements' golden
// tests: 30 contacts named "even N" and "odd N" (phones from +9198 and phoneBase on),
// and three segments named prefix and 0, 1, 2, of every second, third and fourth
// contact. It returns the segments' IDs.
func evenAndOdd(t *testing.T, s *store.Store, ws int64, phoneBase int, prefix string) []int64 {
	t.Helper()
	ctx := context.Background()
	in := make([]crm.ContactInput, 30)
	for i := range in {
		name := fmt.Sprintf("even %d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("odd %d", i)
		}
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", phoneBase+i), ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}}
	}
	up, err := s.UpsertContacts(ctx, ws, in)
	if err != nil {
		t.Fatal(err)
	}
	segs := make([]int64, 3)
	for k := range segs {
		var ids []int64
		for i, c := range up.Contacts {
			if i%(k+2) == 0 {
				ids = append(ids, c.ID)
			}
		}
		seg, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: fmt.Sprintf("%s%d", prefix, k), ContactIDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		segs[k] = seg.ID
	}
	return segs
}

// compareGolden compares the recorded statements got with the golden file's, or
// rewrites the file with SEGMENTS_UPDATE_STATEMENTS set.
func compareGolden(t *testing.T, golden string, got []string) {
	t.Helper()
	if updateStatements {
		if err := os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing statement: %s", want[i])
		case i >= len(want):
			t.Errorf("statement more: %s", got[i])
		case got[i] != want[i]:
			t.Errorf("statement changed: %s, want %s", got[i], want[i])
		}
	}
}

// recordStatements returns a context whose statements are captured, a record that
// adds those sent since its last call to got, each as what, its place and its hash
// (statementHash), failing the test on err, and got.
func recordStatements(t *testing.T, ctx context.Context) (capture context.Context, record func(what string, err error), got *[]string) {
	got = new([]string)
	capture, sent := store.CaptureStatements(ctx)
	record = func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for i, q := range sent() {
			*got = append(*got, fmt.Sprintf("%s #%d %s", what, i, statementHash(q)))
		}
	}
	return capture, record, got
}
