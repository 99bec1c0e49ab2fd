package loader

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestLoadsOfSiblingsShareABatch: loads made together, before the loader has made
// its dataloader, go out in one fetch, and each gets its own value.
func TestLoadsOfSiblingsShareABatch(t *testing.T) {
	var mu sync.Mutex
	var batches [][]int64
	// A batch goes out when it holds all ten keys, or after a wait long enough that
	// no scheduling on a busy machine splits them.
	l := newLoader(10*time.Second, 10, func(_ context.Context, keys []int64) (map[int64]int64, error) {
		mu.Lock()
		batches = append(batches, append([]int64(nil), keys...))
		mu.Unlock()
		out := map[int64]int64{}
		for _, k := range keys {
			if k != 7 { // 7 is missing: it loads as the zero value
				out[k] = k * 10
			}
		}
		return out, nil
	})
	var wg sync.WaitGroup
	got := make([]int64, 10)
	for i := range got {
		wg.Go(func() {
			v, err := l.Load(context.Background(), int64(i))
			if err != nil {
				t.Errorf("Load(%d): %v", i, err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	if len(batches) != 1 || len(batches[0]) != 10 {
		t.Errorf("the fetches had keys %v; want one batch of all 10", batches)
	}
	for i, v := range got {
		want := int64(i) * 10
		if i == 7 {
			want = 0
		}
		if v != want {
			t.Errorf("Load(%d) = %d, want %d", i, v, want)
		}
	}
}

// TestNewMakesNoDataloaders: a request's loaders cost a few allocations until one of
// them is used (a segment list uses none; a contacts page only prefetches). Making
// the five dataloaders with them cost 25 allocations more.
func TestNewMakesNoDataloaders(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { New(nil, 1, Options{}) })
	if n > 15 {
		t.Errorf("New made %.0f allocations; want at most 15, none of them a dataloader's", n)
	}
	ls := New(nil, 1, Options{})
	for name, made := range map[string]bool{
		"SegmentsOfContact":        ls.SegmentsOfContact.dl != nil,
		"CatalogSegmentsOfContact": ls.CatalogSegmentsOfContact.dl != nil,
		"ContactsOfSegment":        ls.ContactsOfSegment.dl != nil,
		"ContactCountOfSegment":    ls.ContactCountOfSegment.dl != nil,
		"Object":                   ls.Object.dl != nil,
	} {
		if made {
			t.Errorf("New made %s's dataloader", name)
		}
	}
}
