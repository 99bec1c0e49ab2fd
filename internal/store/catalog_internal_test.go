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
