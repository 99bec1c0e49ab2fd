package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
)

// TestCatalogsKeepTheRecentWithinCapacity checks what the store holds of the
// workspaces' segment catalogs: the newest version of each, never an older one read
// by a slower request, and at most capacity segments in all, dropping the catalog
// read least recently.
func TestCatalogsKeepTheRecentWithinCapacity(t *testing.T) {
	catalog := func(ws, version int64, n int) *segmentCatalog {
		cat := &segmentCatalog{ws: ws, version: version, segments: map[int64]catalogEntry{}}
		for i := range n {
			cat.segments[int64(i+1)] = catalogEntry{segment: &crm.Segment{ID: int64(i + 1)}, rank: i}
		}
		return cat
	}
	c := catalogs{capacity: 10}
	held := func() string {
		s := ""
		for e := c.recent.Front(); e != nil; e = e.Next() {
			cat := e.Value.(*segmentCatalog)
			s += fmt.Sprintf("%d@%d ", cat.ws, cat.version)
		}
		return fmt.Sprintf("%s(%d segments)", s, c.held)
	}
	check := func(step, want string) {
		t.Helper()
		if got := held(); got != want {
			t.Errorf("%s: holds %s; want %s", step, got, want)
		}
	}
	c.put(catalog(1, 1, 4))
	c.put(catalog(2, 1, 4))
	check("two", "2@1 1@1 (8 segments)")
	if got := c.put(catalog(1, 3, 4)); got.version != 3 {
		t.Errorf("a newer version: put returned version %d", got.version)
	}
	check("workspace 1 newer", "1@3 2@1 (8 segments)")
	if got := c.put(catalog(1, 2, 4)); got.version != 3 {
		t.Errorf("an older version: put returned version %d; want the one held, 3", got.version)
	}
	check("workspace 1 older", "1@3 2@1 (8 segments)")
	c.get(2)
	check("workspace 2 read", "2@1 1@3 (8 segments)")
	c.put(catalog(3, 1, 4))
	check("over capacity", "3@1 2@1 (8 segments)")
	if c.get(1) != nil {
		t.Error("workspace 1 was dropped, but get found it")
	}
	c.put(catalog(4, 1, 20))
	check("larger than the capacity alone", "4@1 (20 segments)")

	// Versions gone back (a restore): a read of the older version made after the
	// newer one was read replaces it.
	restored := catalog(4, 1, 2)
	restored.checked = time.Now()
	newer := catalog(4, 9, 2)
	newer.checked = restored.checked.Add(-time.Minute)
	c.put(newer)
	if got := c.put(restored); got != restored {
		t.Errorf("a read after a restore: put returned version %d; want the read, 1", got.version)
	}
	check("after a restore", "4@1 (2 segments)")
}

// TestIDListScansTheTextOfAnArray: the text of a bigint[] as PostgreSQL writes it,
// to the last int64, and nothing else.
func TestIDListScansTheTextOfAnArray(t *testing.T) {
	for text, want := range map[string]string{
		"{}":                      "[]",
		"{7}":                     "[7]",
		"{1,22,333}":              "[1 22 333]",
		"{9223372036854775807,0}": "[9223372036854775807 0]",
	} {
		var l idList
		if err := l.ScanBytes([]byte(text)); err != nil || fmt.Sprint([]int64(l)) != want {
			t.Errorf("%s: %v, %v; want %s", text, []int64(l), err, want)
		}
	}
	for _, text := range []string{"", "{", "1,2", "{1,,2}", "{1,a}", "{-1}", "{9223372036854775808}", "{NULL}"} {
		var l idList
		if err := l.ScanBytes([]byte(text)); err == nil {
			t.Errorf("%q: scanned as %v; want an error", text, []int64(l))
		}
	}
	var l idList = idList{1}
	if err := l.ScanBytes(nil); err != nil || l != nil {
		t.Errorf("NULL: %v, %v; want nil", l, err)
	}
}

// TestSegmentsOfInNameOrder: each contact's segments come in the catalog's order
// (rank), whatever the order of its memberships, grouped by contact or not; a
// segment the catalog lacks is left out and said so; each contact's slice is full,
// so that appending to it copies rather than writing over the next contact's.
func TestSegmentsOfInNameOrder(t *testing.T) {
	// Segment i's rank is 10-i: segment 9 comes first.
	cat := &segmentCatalog{segments: map[int64]catalogEntry{}}
	for i := int64(1); i <= 9; i++ {
		cat.segments[i] = catalogEntry{segment: &crm.Segment{ID: i}, rank: int(10 - i)}
	}
	ids := func(segs []*crm.Segment) []int64 {
		out := []int64{}
		for _, s := range segs {
			out = append(out, s.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		memberships []membership
		want        string // contact: segment IDs, by contact
		complete    bool
	}{
		{"grouped", []membership{{1, 3}, {1, 7}, {1, 5}, {2, 1}, {3, 2}, {3, 9}}, "map[1:[7 5 3] 2:[1] 3:[9 2]]", true},
		{"not grouped", []membership{{1, 3}, {2, 1}, {1, 7}, {3, 2}, {2, 8}, {1, 5}}, "map[1:[7 5 3] 2:[8 1] 3:[2]]", true},
		{"a segment unknown", []membership{{1, 4}, {1, 42}, {1, 6}, {2, 42}}, "map[1:[6 4]]", false},
		{"none", nil, "map[]", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, complete := cat.segmentsOf(tc.memberships)
			byContact := map[int64][]int64{}
			for c, segs := range got {
				byContact[c] = ids(segs)
				if len(segs) != cap(segs) {
					t.Errorf("contact %d: %d segments in a slice of capacity %d; want it full", c, len(segs), cap(segs))
				}
			}
			if s := fmt.Sprint(byContact); s != tc.want || complete != tc.complete {
				t.Errorf("segmentsOf(%v) = %s, complete %v; want %s, %v", tc.memberships, s, complete, tc.want, tc.complete)
			}
		})
	}
}

// BenchmarkSegmentsOf: the segments of a W3 page, 50 contacts of five memberships
// each among a catalog of 1,000 segments.
func BenchmarkSegmentsOf(b *testing.B) {
	cat := &segmentCatalog{segments: map[int64]catalogEntry{}}
	for i := range int64(1000) {
		cat.segments[i] = catalogEntry{segment: &crm.Segment{ID: i}, rank: int((i * 617) % 1000)}
	}
	var memberships []membership
	for c := range int64(50) {
		for k := range int64(5) {
			memberships = append(memberships, membership{contact: c, segment: (c*131 + k*211) % 1000})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		cat.segmentsOf(memberships)
	}
}
