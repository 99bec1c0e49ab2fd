package store_test

import (
	"cmp"
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSegmentBitmapChunks checks segment_bitmap_chunks, the SQL function from which the
// membership triggers, the check and the backfills build the audience bitmaps: at the
// edges of its 512-bit pieces and 32,768-bit chunks, with repeated pairs, very large IDs
// and random pairs, each membership is one set bit in the right segment's right chunk,
// and no other bit is set.
func TestSegmentBitmapChunks(t *testing.T) {
	s := storetest.Store(t)
	const chunk = 32768
	segs := []int64{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2}
	contacts := []int64{0, 1, 511, 512, 1023, chunk - 1, chunk, 3*chunk + 100,
		chunk - 1, chunk - 1, 1<<40 + 5, 2*chunk - 1}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		segs = append(segs, 3+rng.Int64N(3))
		contacts = append(contacts, rng.Int64N(6*chunk))
	}
	type key struct{ seg, chunk int64 }
	want := map[key][]int64{}
	for i, c := range contacts {
		k := key{segs[i], c / chunk}
		if !slices.Contains(want[k], c%chunk) {
			want[k] = append(want[k], c%chunk)
		}
	}
	for _, bits := range want {
		slices.Sort(bits)
	}

	rows, err := s.DB().QueryContext(context.Background(), `
		SELECT b.segment_id, b.chunk, length(b.bits),
		       (SELECT array_agg(i ORDER BY i) FROM generate_series(0, length(b.bits) - 1) i WHERE get_bit(b.bits, i) = 1)::text
		FROM segment_bitmap_chunks($1::bigint[], $2::bigint[]) b`, pgArray(segs), pgArray(contacts))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[key]string{}
	for rows.Next() {
		var k key
		var length int
		var bits string
		if err := rows.Scan(&k.seg, &k.chunk, &length, &bits); err != nil {
			t.Fatal(err)
		}
		if length != chunk {
			t.Errorf("segment %d chunk %d: %d bits, want %d", k.seg, k.chunk, length, chunk)
		}
		if _, dup := got[k]; dup {
			t.Errorf("segment %d chunk %d: two rows", k.seg, k.chunk)
		}
		got[k] = bits
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range slices.SortedFunc(maps.Keys(want), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.seg, b.seg), cmp.Compare(a.chunk, b.chunk))
	}) {
		if got[k] != pgArray(want[k]) {
			t.Errorf("segment %d chunk %d: bits %v, want %v", k.seg, k.chunk, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d rows, want %d", len(got), len(want))
	}
}

// pgArray writes ids as a PostgreSQL array literal.
func pgArray(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return "{" + strings.Join(s, ",") + "}"
}

// contactsWithIDs adds contacts with the given IDs to workspace ws, so that a test can
// place them on the edges of the bitmaps' bytes, words and chunks.
func contactsWithIDs(t *testing.T, s *store.Store, ws int64, ids []int64) {
	t.Helper()
	if _, err := s.DB().ExecContext(context.Background(), `INSERT INTO contacts (workspace_id, id, phone) OVERRIDING SYSTEM VALUE
		SELECT $1, id, '+9' || lpad((id % 100000000000)::text, 11, '0') FROM unnest($2::bigint[]) AS id`,
		ws, pgArray(ids)); err != nil {
		t.Fatal(err)
	}
}

// TestBitmapsFollowDeletes checks the bitmaps' delete trigger: one statement that
// removes memberships of two workspaces, some chunks keeping members and others left
// empty, then a deletion of contacts through the store. After each, the stored chunks
// are exactly those rebuilt from the memberships (CheckBitmaps: an emptied chunk must
// be deleted, not kept as zeros), and each segment has the chunks expected.
func TestBitmapsFollowDeletes(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	const chunk = 32768
	base := int64(1) << 34 // a chunk's first contact
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	a, b, c, d := base+1, base+2, base+chunk+5, base+3*chunk
	e, f := base+10*chunk+7, base+10*chunk+8
	contactsWithIDs(t, s, ws.ID, []int64{a, b, c, d})
	contactsWithIDs(t, s, other.ID, []int64{e, f})
	segment := func(ws int64, name string, members ...int64) int64 {
		seg, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: name, ContactIDs: members})
		if err != nil {
			t.Fatal(err)
		}
		return seg.ID
	}
	s1 := segment(ws.ID, "One", a, b, c, d)
	s2 := segment(ws.ID, "Two", a, c)
	s3 := segment(other.ID, "Three", e, f)

	names := map[int64]string{s1: "One", s2: "Two", s3: "Three"}
	check := func(step string, chunks map[int64][]int64) {
		t.Helper()
		drift, err := s.CheckBitmaps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dr := range drift {
			if dr.WorkspaceID == ws.ID || dr.WorkspaceID == other.ID {
				t.Errorf("%s: segment %s: %d chunks differ from its memberships", step, dr.SegmentName, dr.Chunks)
			}
		}
		for seg, want := range chunks {
			got := storetest.Column[int64](t, s.DB(), `SELECT chunk FROM segment_bitmaps WHERE segment_id = $1 ORDER BY chunk`, seg)
			if !slices.Equal(got, want) {
				t.Errorf("%s: segment %s has chunks %v, want %v", step, names[seg], got, want)
			}
		}
	}
	x := base / chunk
	check("before", map[int64][]int64{s1: {x, x + 1, x + 3}, s2: {x, x + 1}, s3: {x + 10}})

	// One statement over both workspaces, as the owner's SQL may be: One keeps b in
	// chunk x and d, loses chunk x+1; Two loses both its chunks; Three keeps f.
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM memberships
		WHERE (segment_id, contact_id) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))`,
		pgArray([]int64{s1, s1, s2, s2, s3}), pgArray([]int64{a, c, a, c, e})); err != nil {
		t.Fatal(err)
	}
	check("after the memberships' delete", map[int64][]int64{s1: {x, x + 3}, s2: nil, s3: {x + 10}})

	if _, err := s.DeleteContacts(ctx, ws.ID, []int64{b}, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	check("after the contact's delete", map[int64][]int64{s1: {x + 3}, s2: nil, s3: {x + 10}})
}
