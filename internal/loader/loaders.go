package loader

import (
	"context"
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
}

// SegmentPage names a page of a segment's contacts.
type SegmentPage struct {
	SegmentID int64
	Page      PageSpec
}

// PageSpec is a comparable form of a page's arguments: requests for the same page of
// several segments share one batch.
type PageSpec struct {
	Search              string
	Order               crm.ContactOrder
	First, Last         int // 0: not given
	After, Before       string
	HasAfter, HasBefore bool
}

// NewPageSpec captures page arguments.
func NewPageSpec(search string, order crm.ContactOrder, args crm.PageArgs) PageSpec {
	p := PageSpec{Search: search, Order: order}
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

// SegmentSearch names the contacts of a segment that match a search.
type SegmentSearch struct {
	SegmentID int64
	Search    string
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
	return &Loaders{
		SegmentsOfContact: newLoader(wait, 0, func(ctx context.Context, ids []int64) (map[int64][]*crm.Segment, error) {
			return s.SegmentsOfContacts(ctx, ws, ids)
		}),
		CatalogSegmentsOfContact: newLoader(wait, 0, func(ctx context.Context, ids []int64) (map[int64][]*crm.Segment, error) {
			return s.CatalogSegmentsOfContacts(ctx, ws, ids)
		}),
		ContactsOfSegment: newLoader(wait, 0, func(ctx context.Context, keys []SegmentPage) (map[SegmentPage]store.Page[crm.Contact], error) {
			out := make(map[SegmentPage]store.Page[crm.Contact], len(keys))
			for spec, ids := range groupBy(keys, func(k SegmentPage) (PageSpec, int64) { return k.Page, k.SegmentID }) {
				pages, err := s.ContactsOfSegments(ctx, ws, ids, spec.Search, spec.Order, spec.Args())
				if err != nil {
					return nil, err
				}
				for id, p := range pages {
					out[SegmentPage{SegmentID: id, Page: spec}] = p
				}
			}
			return out, nil
		}),
		ContactCountOfSegment: newLoader(wait, 0, func(ctx context.Context, keys []SegmentSearch) (map[SegmentSearch]int, error) {
			out := make(map[SegmentSearch]int, len(keys))
			for search, ids := range groupBy(keys, func(k SegmentSearch) (string, int64) { return k.Search, k.SegmentID }) {
				counts, err := s.CountContactsOfSegments(ctx, ws, ids, search)
				if err != nil {
					return nil, err
				}
				for _, id := range ids {
					out[SegmentSearch{SegmentID: id, Search: search}] = counts[id]
				}
			}
			return out, nil
		}),
		Object: newLoader(wait, opts.RootLookups, func(ctx context.Context, keys []ObjectKey) (map[ObjectKey]any, error) {
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
		}),
	}
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
