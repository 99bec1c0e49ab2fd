package graph

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/execution"
	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/loader"
	"github.com/segments/segments/internal/store"
)

func (r *Resolver) segments(ctx context.Context, search *string, order crm.SegmentOrder, args crm.PageArgs) (*model.SegmentConnection, error) {
	term, err := crm.NormalizeSearch(search)
	if err != nil {
		return nil, err
	}
	ws := workspace(ctx).ID
	q := crm.SegmentQuery{Search: term, Order: order}
	page, err := r.Store.Segments(ctx, ws, q, args)
	if err != nil {
		return nil, err
	}
	return &model.SegmentConnection{Page: page, Counter: countUnlessKnown(page, model.Counter{
		Exact: func(ctx context.Context) (int, error) { return r.Store.CountSegments(ctx, ws, q) },
		UpTo:  func(ctx context.Context, limit int) (int, error) { return r.Store.CountSegmentsUpTo(ctx, ws, q, limit) },
	})}, nil
}

// deletedContacts returns a page of the workspace's contacts deleted since since.
func (r *Resolver) deletedContacts(ctx context.Context, since time.Time, args crm.PageArgs) (*model.DeletedContactConnection, error) {
	page, err := r.Store.DeletedContacts(ctx, workspace(ctx).ID, since, args)
	if err != nil {
		return nil, err
	}
	return &model.DeletedContactConnection{Page: page}, nil
}

// viewer describes the request's credential from its principal, as authentication
// read it: no statement.
func viewer(ctx context.Context) (*model.Viewer, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return nil, errors.New("graph: a request acting for a workspace without a principal has no viewer")
	}
	v := &model.Viewer{Kind: model.CredentialKindSession, Scope: model.CredentialScopeRead, CanMutate: p.CanWrite()}
	if p.CanWrite() {
		v.Scope = model.CredentialScopeReadWrite
	}
	name := p.Subject
	if p.Kind == auth.KindAPIKey {
		id := int(p.KeyID)
		v.Kind, v.APIKeyID, name = model.CredentialKindAPIKey, &id, p.KeyName
	}
	if name != "" {
		v.Name = &name
	}
	if !p.ExpiresAt.IsZero() {
		at := p.ExpiresAt.UTC()
		v.ExpiresAt = &at
	}
	return v, nil
}

// viewerCanUpdate is Segment.viewerCanUpdate: whether the request's principal may
// run mutations (viewer's canMutate), every segment of its workspace alike. A
// request without a principal may not (authorizeWrites refuses its mutations).
func viewerCanUpdate(ctx context.Context) bool {
	p, ok := auth.PrincipalFrom(ctx)
	return ok && p.CanWrite()
}

// contactChanges returns a page of the workspace's change feed of contacts.
func (r *Resolver) contactChanges(ctx context.Context, first *int, after *string) (*model.ContactChangeConnection, error) {
	page, err := r.Store.ContactChanges(ctx, workspace(ctx).ID, crm.PageArgs{First: first, After: after})
	if err != nil {
		return nil, err
	}
	return &model.ContactChangeConnection{Page: page}, nil
}

// membershipChanges returns a page of the workspace's feed of memberships, with the
// segments its entries ask for read in one statement.
func (r *Resolver) membershipChanges(ctx context.Context, first *int, after *string) (*model.MembershipChangeConnection, error) {
	ws := workspace(ctx).ID
	page, err := r.Store.MembershipChanges(ctx, ws, crm.PageArgs{First: first, After: after})
	if err != nil {
		return nil, err
	}
	if len(page.Items) > 0 && len(fieldOnRows(ctx, "MembershipChangeConnection", "MembershipChangeEdge", "MembershipChange", "segment")) > 0 {
		var ids []int64
		for _, c := range page.Items {
			ids = append(ids, c.SegmentID)
		}
		ids = slices.Compact(slices.Sorted(slices.Values(ids)))
		keys := make([]loader.ObjectKey, len(ids))
		for i, id := range ids {
			keys[i] = loader.ObjectKey{Kind: globalid.Segment, ID: id}
		}
		if err := loaders(ctx).Object.Prefetch(ctx, keys); err != nil {
			return nil, err
		}
		execution.Preloaded(ctx, "segment")
	}
	return &model.MembershipChangeConnection{Page: page}, nil
}

// membershipChangeSegment resolves MembershipChange.segment: primed by
// membershipChanges for the whole page, null once the segment is deleted.
func membershipChangeSegment(ctx context.Context, c *model.MembershipChange) (*crm.Segment, error) {
	obj, err := loaders(ctx).Object.Load(ctx, loader.ObjectKey{Kind: globalid.Segment, ID: c.SegmentID})
	seg, _ := obj.(*crm.Segment)
	return seg, err
}

// countUnlessKnown returns c, unless page's statement knows the total (store.Page.Total):
// then no statement need count it again (a search with fewer matches than a page,
// the dashboard's search box; a campaign's audience, which its page counts).
func countUnlessKnown[T any](page store.Page[T], c model.Counter) model.Counter {
	if n, ok := page.Total(); ok {
		return model.Counter{Exact: func(context.Context) (int, error) { return n, nil }}
	}
	return c
}

// contacts resolves Query.contacts: a page of the contacts that search and q (its
// filter and order) select.
func (r *Resolver) contacts(ctx context.Context, search *string, q crm.ContactQuery, args crm.PageArgs) (*model.ContactConnection, error) {
	term, err := crm.NormalizeSearch(search)
	if err != nil {
		return nil, err
	}
	q.Search = term
	return r.contactsOf(ctx, q, args)
}

// contactsOf resolves a page of the contacts that q (its search normalized) selects.
func (r *Resolver) contactsOf(ctx context.Context, q crm.ContactQuery, args crm.PageArgs) (*model.ContactConnection, error) {
	ws := workspace(ctx).ID
	count := model.Counter{
		Exact: func(ctx context.Context) (int, error) { return r.Store.CountContacts(ctx, ws, q) },
		UpTo:  func(ctx context.Context, limit int) (int, error) { return r.Store.CountContactsUpTo(ctx, ws, q, limit) },
	}
	// A count alone (a campaign's audience) reads no page. Cursors are checked by
	// the page's reading, so a request with one reads it anyway.
	if args.After == nil && args.Before == nil && countOnly(ctx, "ContactConnection") {
		if err := args.Validate(); err != nil {
			return nil, err
		}
		return &model.ContactConnection{Counter: count}, nil
	}
	page, err := r.contactsPage(ctx, ws, q, args)
	if err != nil {
		return nil, err
	}
	return &model.ContactConnection{Page: page, Counter: countUnlessKnown(page, count)}, nil
}

// contactsPage reads a page of the contacts q selects, with the segments its rows
// ask for: read with the page where the catalog holds every field asked of them
// (the contacts table), and by the other loaders (contactCount, updatedAt) right
// after it, all contacts in one statement.
func (r *Resolver) contactsPage(ctx context.Context, ws int64, q crm.ContactQuery, args crm.PageArgs) (store.Page[crm.Contact], error) {
	need := rowSegmentsLoaders(ctx)
	if len(need) == 0 {
		return r.Store.Contacts(ctx, ws, q, args)
	}
	catalog := loaders(ctx).CatalogSegmentsOfContact
	var page store.Page[crm.Contact]
	var segments map[int64][]*crm.Segment // the catalog's, read with the page
	var err error
	if slices.Contains(need, catalog) {
		page, segments, err = r.Store.ContactsWithCatalogSegments(ctx, ws, q, args)
	} else {
		page, err = r.Store.Contacts(ctx, ws, q, args)
	}
	if err != nil {
		return page, err
	}
	ids := crm.ContactIDs(page.Items)
	for _, l := range need {
		if l == catalog {
			l.Prime(ids, segments)
		} else if err := l.Prefetch(ctx, ids); err != nil {
			return page, err
		}
	}
	execution.Preloaded(ctx, "segments")
	return page, nil
}

// segmentContacts resolves Segment.contacts: its members that search and q's
// filter (its segment lists and field conditions, as Query.contacts' filter) select,
// in q's order. A segment alone (segment(id:), a mutation's payload) reads its page
// directly; segments in a list load their pages through a loader, one statement for
// all of them, and their counts through another.
func (r *Resolver) segmentContacts(ctx context.Context, seg *crm.Segment, search *string, q crm.ContactQuery, args crm.PageArgs) (*model.ContactConnection, error) {
	term, err := crm.NormalizeSearch(search)
	if err != nil {
		return nil, err
	}
	q.Search = term
	filtered := !q.Segments.IsZero() || !q.Conditions.IsZero()
	if !inList(ctx) {
		members := q
		members.Segments = inSegment(seg.ID, q.Segments)
		conn, err := r.contactsOf(ctx, members, args)
		if err == nil && term == "" && !filtered {
			conn.Counter = memberCount(seg)
		}
		return conn, err
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	ls := loaders(ctx)
	filter := ls.Filter(q)
	// Without a search or a filter, the total is the segment's contactCount, the
	// very value the response shows beside it. With either, the segments of the
	// list are counted together, exactly, and count's limit caps that: a count up
	// to the limit per segment would run the search once per segment, where the
	// exact count joins its matches to the memberships once (50 segments at 1M
	// contacts, up to 10,000: 2.1-3.3 s against 0.27-1.2 s).
	count := memberCount(seg)
	if term != "" || filtered {
		count = model.Counter{Exact: func(ctx context.Context) (int, error) {
			return ls.ContactCountOfSegment.Load(ctx, loader.SegmentSearch{SegmentID: seg.ID, Search: term, Filter: filter})
		}}
	}
	// A count alone reads no page, as contactsOf does: a filtered or searched one
	// (each segment's audience) is counted by its loader, an unfiltered one is the
	// segment's contactCount, read with it, which costs no statement at all (a list
	// of 50 segments read each one's first page for it: 113 ms at 200,000 contacts).
	// Cursors are checked by the page's reading, so a request with one reads it.
	if args.After == nil && args.Before == nil && countOnly(ctx, "ContactConnection") {
		return &model.ContactConnection{Counter: count}, nil
	}
	page, err := ls.ContactsOfSegment.Load(ctx, loader.SegmentPage{SegmentID: seg.ID, Page: loader.NewPageSpec(term, filter, q.Order, args)})
	if err != nil {
		return nil, err
	}
	if term != "" || filtered {
		count = countUnlessKnown(page, count)
	}
	return &model.ContactConnection{Page: page, Counter: count}, nil
}

// inSegment returns membership filter f narrowed to the members of segment seg: as
// an Any list of seg alone when f has no Any list (the query of an unfiltered
// segment's page, as it always was), else with seg added to its All list.
func inSegment(seg int64, f crm.MembershipFilter) crm.MembershipFilter {
	if f.Any == nil {
		f.Any = []int64{seg}
		return f
	}
	f.All = append(slices.Clip(f.All), seg)
	return f
}

// memberCount counts the contacts of seg, unsearched: its contactCount, read with it
// and exact after every committed change, so no statement counts its members again
// and the response's totalCount is the contactCount it may show beside it.
func memberCount(seg *crm.Segment) model.Counter {
	return model.Counter{Exact: func(context.Context) (int, error) { return int(seg.ContactCount), nil }}
}

// rowSegmentsLoaders returns the loaders that the segments fields selected on the
// rows of the connection being resolved need (segmentsLoader), each once: none when
// no row's segments are asked for.
func rowSegmentsLoaders(ctx context.Context) []*loader.Loader[int64, []*crm.Segment] {
	var need []*loader.Loader[int64, []*crm.Segment]
	for _, f := range fieldOnRows(ctx, "ContactConnection", "ContactEdge", "Contact", "segments") {
		if l := segmentsLoader(ctx, f.Selections); !slices.Contains(need, l) {
			need = append(need, l)
		}
	}
	return need
}

// segmentType is what a Segment satisfies, for collecting the fields selected of one;
// contactType the same of a Contact.
var (
	segmentType = []string{"Segment", "Node"}
	contactType = []string{"Contact", "Node"}
)

// catalogFields are the fields of Segment that its workspace's segment catalog holds
// (store.CatalogSegmentsOfContacts): all but those the memberships change.
var catalogFields = map[string]bool{"id": true, "name": true, "description": true, "createdAt": true, "__typename": true}

// segmentsLoader returns the loader of the segments of a contact selected with sel:
// the catalog's when sel asks for no field outside it (the contacts table's names),
// else the one that reads the segments whole.
func segmentsLoader(ctx context.Context, sel ast.SelectionSet) *loader.Loader[int64, []*crm.Segment] {
	ls := loaders(ctx)
	for _, f := range execution.CollectFields(ctx, graphql.GetOperationContext(ctx), sel, segmentType) {
		if !catalogFields[f.Name] {
			return ls.SegmentsOfContact
		}
	}
	return ls.CatalogSegmentsOfContact
}

// segmentsOfContact resolves Contact.segments.
func segmentsOfContact(ctx context.Context, contactID int64) ([]*crm.Segment, error) {
	return segmentsLoader(ctx, graphql.GetFieldContext(ctx).Field.Selections).Load(ctx, contactID)
}

// lookup finds the object with a global ID; nil when this workspace has none.
func (r *Resolver) lookup(ctx context.Context, id string) (model.Node, error) {
	kind, n, err := globalid.Decode(id)
	if err != nil {
		return nil, nil // a malformed ID names nothing, like an unknown one
	}
	if kind == globalid.Workspace {
		if ws := workspace(ctx); ws.ID == n {
			return &ws, nil
		}
		return nil, nil
	}
	// The lookups at the root of a query go out in one batch (loader.Options.
	// RootLookups), one statement per kind of object.
	return loaders(ctx).Object.Load(ctx, loader.ObjectKey{Kind: kind, ID: n})
}

func lookupAs[T any](ctx context.Context, r *Resolver, kind globalid.Kind, id string) (T, error) {
	var none T
	if k, _, err := globalid.Decode(id); err != nil || k != kind {
		return none, nil
	}
	obj, err := r.lookup(ctx, id)
	if t, ok := obj.(T); ok {
		return t, err
	}
	return none, err
}

// lookupMany finds up to MaxLookupIDs objects, with one statement per kind of object.
func (r *Resolver) lookupMany(ctx context.Context, ids []string) ([]model.Node, error) {
	if err := crm.CheckCount("ids", len(ids), crm.MaxLookupIDs); err != nil {
		return nil, err
	}
	ws := workspace(ctx)
	keys := make([]loader.ObjectKey, len(ids))
	byKind := map[globalid.Kind][]int64{}
	for i, id := range ids {
		kind, n, err := globalid.Decode(id)
		if err != nil {
			continue
		}
		keys[i] = loader.ObjectKey{Kind: kind, ID: n}
		byKind[kind] = append(byKind[kind], n)
	}
	found := map[loader.ObjectKey]model.Node{{Kind: globalid.Workspace, ID: ws.ID}: &ws}
	if ids := byKind[globalid.Segment]; len(ids) > 0 {
		segs, err := r.Store.SegmentsByID(ctx, ws.ID, ids)
		if err != nil {
			return nil, err
		}
		for id, s := range segs {
			found[loader.ObjectKey{Kind: globalid.Segment, ID: id}] = &s
		}
	}
	if ids := byKind[globalid.Contact]; len(ids) > 0 {
		contacts, err := r.Store.ContactsByID(ctx, ws.ID, ids)
		if err != nil {
			return nil, err
		}
		for id, c := range contacts {
			found[loader.ObjectKey{Kind: globalid.Contact, ID: id}] = &c
		}
	}
	out := make([]model.Node, len(ids))
	for i, k := range keys {
		out[i] = found[k] // nil for unknown and malformed IDs
	}
	return out, nil
}

// contactsByPhone looks up to crm.MaxLookupPhones phones in one statement. A phone
// contactByPhone would refuse is null in the list with that refusal, BAD_USER_INPUT,
// at its index (["contactsByPhone", 3]): the answer of as many contactByPhone fields,
// the other phones answered. A whole-field error would have nulled the whole
// response's data (the list is non-null) for one stray cell of a partner's file.
func (r *Resolver) contactsByPhone(ctx context.Context, phones []string) ([]*crm.Contact, error) {
	found, refused, err := r.Store.ContactsByPhone(ctx, workspace(ctx).ID, phones)
	if err != nil {
		return nil, err
	}
	for i, err := range refused {
		if err != nil {
			graphql.AddError(graphql.WithPathContext(ctx, graphql.NewPathWithIndex(i)), err)
		}
	}
	return found, nil
}

func isNotFound(err error) bool {
	var e *crm.Error
	return errors.As(err, &e) && e.Code == crm.CodeNotFound
}
