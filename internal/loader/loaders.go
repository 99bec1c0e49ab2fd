package loader

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

// DefaultWait is how long a Load waits for its siblings before its batch goes out.
const DefaultWait = time.Millisecond

// Options configure the loaders of a request.
type Options struct {
	// Wait is how long a Load waits for sibling keys; 0 means DefaultWait.
	Wait time.Duration
	// RootLookups is the number of node, segment and contact fields at the root of the
	// operation: once that many objects are asked for, their batch goes out without
	// waiting.
	RootLookups int
}

// Loaders are the batch loaders of one request, for one workspace.
type Loaders struct {
	// SegmentsOfContact loads the segments a contact is in, ordered by name.
	SegmentsOfContact *Loader[int64, []*crm.Segment]
	// CatalogSegmentsOfContact loads the same from the workspace's segment catalog,
	// without their contactCount and updatedAt (store.CatalogSegmentsOfContacts).
	CatalogSegmentsOfContact *Loader[int64, []*crm.Segment]
	// ContactsOfSegment loads a page of a segment's contacts.
	ContactsOfSegment *Loader[SegmentPage, store.Page[crm.Contact]]
	// ContactCountOfSegment counts the contacts of a segment that match a search.
	ContactCountOfSegment *Loader[SegmentSearch, int]
	// Object loads segments and contacts by ID, for node(id:) and its kin.
	Object *Loader[ObjectKey, any]

	// filters are the filters of the pages and counts of segments' contacts, by
	// their keys (Filter).
	mu      sync.Mutex
	filters map[string]crm.ContactQuery
}

// Filter returns the key of the filter of q (its segment lists and field
// conditions), for a PageSpec or a SegmentSearch: "" when it keeps every contact,
// else the same key for the same filter, so that the segments of a list asked for
// the same filtered page share one batch (each of their resolvers decodes the
// arguments anew). The loaders read the filter back by its key.
func (ls *Loaders) Filter(q crm.ContactQuery) string {
	if q.Segments.IsZero() && q.Conditions.IsZero() {
		return ""
	}
	f := crm.ContactQuery{Segments: q.Segments, Conditions: q.Conditions}
	key := ""
	if b, err := json.Marshal(f); err == nil {
		key = string(b)
	} else {
		// Unbatched rather than wrong: %p keys each call apart.
		key = fmt.Sprintf("%p", &f)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.filters == nil {
		ls.filters = map[string]crm.ContactQuery{}
	}
	if _, ok := ls.filters[key]; !ok {
		ls.filters[key] = f
	}
	return key
}

// query returns the query of the contacts that search and the filter of key
// select, in order.
func (ls *Loaders) query(search, key string, order crm.ContactOrder) crm.ContactQuery {
	var q crm.ContactQuery
	if key != "" {
		ls.mu.Lock()
		q = ls.filters[key]
		ls.mu.Unlock()
	}
	q.Search, q.Order = search, order
	return q
}

// SegmentPage names a page of a segment's contacts.
type SegmentPage struct {
	SegmentID int64
	Page      PageSpec
}

// PageSpec is a comparable form of a page's arguments: requests for the same page of
// several segments share one batch.
type PageSpec struct {
	Search string
	// Filter is the key of the page's filter (Loaders.Filter): "" for none.
	Filter              string
	Order               crm.ContactOrder
	First, Last         int // 0: not given
	After, Before       string
	HasAfter, HasBefore bool
}

// NewPageSpec captures page arguments; filter is the key of the page's filter
// (Loaders.Filter).
func NewPageSpec(search, filter string, order crm.ContactOrder, args crm.PageArgs) PageSpec {
	p := PageSpec{Search: search, Filter: filter, Order: order}
	if args.First != nil {
		p.First = *args.First
	}
	if args.Last != nil {
		p.Last = *args.Last
	}
	if args.After != nil {
		p.After, p.HasAfter = *args.After, true
	}
	if args.Before != nil {
		p.Before, p.HasBefore = *args.Before, true
	}
	return p
}

// Args returns the page arguments p captured.
func (p PageSpec) Args() crm.PageArgs {
	var a crm.PageArgs
	if p.First != 0 {
		a.First = &p.First
	}
	if p.Last != 0 {
		a.Last = &p.Last
	}
	if p.HasAfter {
		a.After = &p.After
	}
	if p.HasBefore {
		a.Before = &p.Before
	}
	return a
}

// SegmentSearch names the contacts of a segment that match a search and a filter
// (the key of Loaders.Filter: "" for none).
type SegmentSearch struct {
	SegmentID int64
	Search    string
	Filter    string
}

// ObjectKey names an object by its kind and number.
type ObjectKey struct {
	Kind globalid.Kind
	ID   int64
}

// New returns the loaders of one request acting for workspace ws.
func New(s *store.Store, ws int64, opts Options) *Loaders {
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	// The loaders of pages and counts read their filters from ls (Filter).
	ls := &Loaders{}
	ls.SegmentsOfContact = newLoader(wait, 0, func(ctx context.Context, ids []int64) (map[int64][]*crm.Segment, error) {
		return s.SegmentsOfContacts(ctx, ws, ids)
	})
	ls.CatalogSegmentsOfContact = newLoader(wait, 0, func(ctx context.Context, ids []int64) (map[int64][]*crm.Segment, error) {
		return s.CatalogSegmentsOfContacts(ctx, ws, ids)
	})
	ls.ContactsOfSegment = newLoader(wait, 0, func(ctx context.Context, keys []SegmentPage) (map[SegmentPage]store.Page[crm.Contact], error) {
		out := make(map[SegmentPage]store.Page[crm.Contact], len(keys))
		for spec, ids := range groupBy(keys, func(k SegmentPage) (PageSpec, int64) { return k.Page, k.SegmentID }) {
			pages, err := s.ContactsOfSegments(ctx, ws, ids, ls.query(spec.Search, spec.Filter, spec.Order), spec.Args())
			if err != nil {
				return nil, err
			}
			for id, p := range pages {
				out[SegmentPage{SegmentID: id, Page: spec}] = p
			}
		}
		return out, nil
	})
	ls.ContactCountOfSegment = newLoader(wait, 0, func(ctx context.Context, keys []SegmentSearch) (map[SegmentSearch]int, error) {
		out := make(map[SegmentSearch]int, len(keys))
		type counted struct{ search, filter string }
		for c, ids := range groupBy(keys, func(k SegmentSearch) (counted, int64) { return counted{k.Search, k.Filter}, k.SegmentID }) {
			counts, err := s.CountContactsOfSegments(ctx, ws, ids, ls.query(c.search, c.filter, crm.ContactOrder{}))
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				out[SegmentSearch{SegmentID: id, Search: c.search, Filter: c.filter}] = counts[id]
			}
		}
		return out, nil
	})
	ls.Object = newLoader(wait, opts.RootLookups, func(ctx context.Context, keys []ObjectKey) (map[ObjectKey]any, error) {
		out := make(map[ObjectKey]any, len(keys))
		for kind, ids := range groupBy(keys, func(k ObjectKey) (globalid.Kind, int64) { return k.Kind, k.ID }) {
			switch kind {
			case globalid.Segment:
				found, err := s.SegmentsByID(ctx, ws, ids)
				if err != nil {
					return nil, err
				}
				for id, seg := range found {
					out[ObjectKey{kind, id}] = &seg
				}
			case globalid.Contact:
				found, err := s.ContactsByID(ctx, ws, ids)
				if err != nil {
					return nil, err
				}
				for id, c := range found {
					out[ObjectKey{kind, id}] = &c
				}
			}
		}
		return out, nil
	})
	return ls
}

func groupBy[K any, G comparable](keys []K, split func(K) (G, int64)) map[G][]int64 {
	out := map[G][]int64{}
	for _, k := range keys {
		g, id := split(k)
		out[g] = append(out[g], id)
	}
	return out
}

type loadersKey struct{}

// With returns a context carrying ls.
func With(ctx context.Context, ls *Loaders) context.Context {
	return context.WithValue(ctx, loadersKey{}, ls)
}

// From returns the loaders of the request.
func From(ctx context.Context) *Loaders {
	ls, _ := ctx.Value(loadersKey{}).(*Loaders)
	return ls
}
