// Package loader batches the lookups of one GraphQL request, so that the number of SQL
// statements a request sends does not grow with the size of its pages.
//
// Each request gets its own Loaders, bound to its workspace (nothing is shared across
// requests or tenants). Two ways fill them:
//
//   - Prefetch: a resolver that has just read a page, and whose selection asks for a
//     field of the page's rows, fetches that field for the whole page at once and
//     keeps the values in the loader. The rows' resolvers then find them without
//     waiting, and without dataloader.
//     This is the hot path (a contacts table with each contact's segments) and has no
//     timer at all.
//   - Load: anywhere else, graph-gophers/dataloader collects the keys that sibling
//     resolvers ask for during a short wait (Options.Wait, about a millisecond) and
//     fetches them in one batch.
package loader

import (
	"context"
	"sync"
	"time"

	"github.com/graph-gophers/dataloader/v7"
)

// Loader loads values by key in batches. Keys missing from a fetch load as the zero V.
type Loader[K comparable, V any] struct {
	fetch    func(context.Context, []K) (map[K]V, error)
	wait     time.Duration
	capacity int
	// dl is made by the first Load that needs it: most requests use one or two of
	// their loaders, or none (a segment list), and a dataloader's cache, options and
	// their closures cost allocations to make.
	once sync.Once
	dl   *dataloader.Loader[K, V]

	// prefetched holds the values Prefetch fetched. Load answers from it without
	// dataloader, which for a key it has cached still makes a channel, a thunk
	// and a tracer's closures: five allocations per contact of a contacts page.
	mu         sync.Mutex
	prefetched map[K]V
}

// newLoader returns a loader whose Loads fetch with fetch, the keys of sibling
// resolvers batched for up to wait, and at most capacity a batch (0: any number).
func newLoader[K comparable, V any](wait time.Duration, capacity int, fetch func(context.Context, []K) (map[K]V, error)) *Loader[K, V] {
	return &Loader[K, V]{fetch: fetch, wait: wait, capacity: capacity}
}

// batcher returns l's dataloader, which it makes at its first call.
func (l *Loader[K, V]) batcher() *dataloader.Loader[K, V] {
	l.once.Do(func() {
		batch := func(ctx context.Context, keys []K) []*dataloader.Result[V] {
			found, err := l.fetch(ctx, keys)
			results := make([]*dataloader.Result[V], len(keys))
			for i, k := range keys { // results in key order, as dataloader requires
				results[i] = &dataloader.Result[V]{Data: found[k], Error: err}
			}
			return results
		}
		opts := []dataloader.Option[K, V]{dataloader.WithWait[K, V](l.wait)}
		if l.capacity > 0 {
			// A batch that holds every key the request will ask for goes out at once.
			opts = append(opts, dataloader.WithBatchCapacity[K, V](l.capacity))
		}
		// The loader and its cache live and die with one request.
		l.dl = dataloader.NewBatchedLoader(batch, opts...)
	})
	return l.dl
}

// Load returns the value of key: prefetched, or batched with the keys its siblings
// load.
func (l *Loader[K, V]) Load(ctx context.Context, key K) (V, error) {
	l.mu.Lock()
	v, ok := l.prefetched[key]
	l.mu.Unlock()
	if ok {
		return v, nil
	}
	return l.batcher().Load(ctx, key)()
}

// Prefetch fetches the values of keys now, in one batch, so that later Loads of them
// return at once.
func (l *Loader[K, V]) Prefetch(ctx context.Context, keys []K) error {
	if len(keys) == 0 {
		return nil
	}
	found, err := l.fetch(ctx, keys)
	if err != nil {
		return err
	}
	l.Prime(keys, found)
	return nil
}

// Prime holds the values of keys that found holds, fetched elsewhere (as the loader's
// fetch would have fetched them: a key missing from found has the zero V), so that
// later Loads of them return at once.
func (l *Loader[K, V]) Prime(keys []K, found map[K]V) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prefetched == nil {
		l.prefetched = make(map[K]V, len(keys))
	}
	for _, k := range keys {
		l.prefetched[k] = found[k]
	}
}
