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
