package graph

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/graph/execution"
	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/loader"
	"github.com/segments/segments/internal/store"
)

// decodeBulk checks the list sizes of a bulk membership change, then decodes its IDs.
// Malformed IDs decode as 0 and come back as INVALID problems, to be merged with the
// store's refusal by withDecodeErrors.
func decodeBulk(contacts, segments []string) (contactIDs, segmentIDs []int64, invalid crm.Errors, err error) {
	if err := crm.CheckBulk(len(contacts), len(segments)); err != nil {
		return nil, nil, nil, err
	}
	contactIDs, conErrs := decodeIDs(globalid.Contact, "contactIds", contacts)
	segmentIDs, segErrs := decodeIDs(globalid.Segment, "segmentIds", segments)
	return contactIDs, segmentIDs, append(conErrs, segErrs...), nil
}

// storeChange is a bulk membership change of the store by contact IDs
// (AssignContactsToSegments, RemoveContactsFromSegments), and byQuery the same change
// of the contacts a query selects (AssignContactsMatching, RemoveContactsMatching).
type storeChange struct {
	byIDs   func(ctx context.Context, ws int64, contactIDs, segmentIDs []int64, back store.SegmentsBack) (store.MembershipChange, error)
	byQuery func(ctx context.Context, ws int64, cq crm.ContactQuery, segmentIDs []int64, back store.SegmentsBack) (store.MembershipChange, error)
}

// changeMemberships runs a bulk membership change of the contacts ids names, or of
// those matching selects: exactly one of them must be given (not null), else the
// change is INVALID and nothing runs. payloadType is the payload's, whose selection
// says whether the segments and the contacts are read back (contactsBack); a change
// by contactsMatching has no contacts to answer.
func (r *Resolver) changeMemberships(ctx context.Context, ids []string, matching *model.ContactSelection, segments []string, payloadType string, change storeChange) (store.MembershipChange, []*crm.Contact, error) {
	ws, back := workspace(ctx).ID, segmentsBack(ctx, payloadType)
	switch {
	case ids == nil && matching == nil:
		return store.MembershipChange{}, nil, crm.Errorf(crm.CodeInvalid, crm.Path("contactIds"), "give the contacts, by contactIds or by contactsMatching")
	case ids != nil && matching != nil:
		return store.MembershipChange{}, nil, crm.ContactsGivenTwice()
	case matching == nil:
		contactIDs, segmentIDs, invalid, err := decodeBulk(ids, segments)
		if err != nil {
			return store.MembershipChange{}, nil, err
		}
		res, err := change.byIDs(ctx, ws, contactIDs, segmentIDs, back)
		if err = withDecodeErrors(err, invalid); err != nil {
			return res, nil, err
		}
		return res, r.contactsBack(ctx, payloadType, contactIDs), nil
	}
	if err := crm.CheckBulk(0, len(segments)); err != nil {
		return store.MembershipChange{}, nil, err
	}
	segmentIDs, invalid := decodeIDs(globalid.Segment, "segmentIds", segments)
	q, err := contactSelection(matching)
	if err != nil {
		// The selection's problems with the segment IDs', all at once; the store,
		// which would name the segments that do not exist, does not run.
		return store.MembershipChange{}, nil, append(crm.Errors(crm.Prefixed(crm.UserErrors(err), "contactsMatching")), invalid...)
	}
	res, err := change.byQuery(ctx, ws, q, segmentIDs, back)
	return res, []*crm.Contact{}, withDecodeErrors(err, invalid)
}

// upsertContacts runs upsertContacts: each entry's addToSegmentIds decoded (a
// malformed ID INVALID at its place, contacts.i.addToSegmentIds.j, and refused with
// every other problem by the store, as withDecodeErrors says), the segments read
// back when the payload asks for them (segmentsBack).
func (r *Resolver) upsertContacts(ctx context.Context, input model.UpsertContactsInput) (*model.UpsertContactsPayload, error) {
	failed := func(err error) (*model.UpsertContactsPayload, error) {
		ue, err := payloadErrors(err)
		return &model.UpsertContactsPayload{Contacts: []*crm.Contact{}, CreatedContactIds: []string{}, Segments: []*crm.Segment{}, UserErrors: ue}, err
	}
	in := make([]crm.ContactInput, len(input.Contacts))
	var invalid crm.Errors
	for i, c := range input.Contacts {
		in[i] = crm.ContactInput{Phone: c.Phone, ContactDetails: contactDetails(c.Name, c.Email, c.Attributes)}
		if len(c.AddToSegmentIds) > crm.MaxBulkSegments {
			in[i].AddToSegments = make([]int64, len(c.AddToSegmentIds)) // refused for its length, not decoded
			continue
		}
		ids, errs := decodeIDs(globalid.Segment, "addToSegmentIds", c.AddToSegmentIds)
		in[i].AddToSegments = ids
		invalid = append(invalid, crm.Prefixed(errs, "contacts", strconv.Itoa(i))...)
	}
	res, err := r.Store.UpsertContactsWith(ctx, workspace(ctx).ID, in, segmentsBack(ctx, "UpsertContactsPayload"))
	if err = withDecodeErrors(err, invalid); err != nil {
		return failed(err)
	}
	created := make([]string, len(res.CreatedIDs))
	for i, id := range res.CreatedIDs {
		created[i] = globalid.Encode(globalid.Contact, id)
	}
	return &model.UpsertContactsPayload{Contacts: pointers(res.Contacts), CreatedCount: res.Created, CreatedContactIds: created,
		UpdatedCount: res.Updated, Segments: pointers(res.Segments), AssignedCount: res.Assigned, UserErrors: []*model.UserError{}}, nil
}

// contactsBack reads back the contacts of ids, the contactIds of a membership change
// that has just committed, for the payload being resolved (of GraphQL type
// payloadType), when it asks for its contacts: one per distinct ID, in the order of
// its first appearance (store.ContactsInOrder), in one statement. The segments that
// its selections ask of them are read right after, for all of them at once, one
// statement per loader they need: as a page of contacts does (contactsPage), and for
// the same reasons, rather than by each contact's resolver.
//
// Read after the commit, their segments are the change's, or a later one's. The
// loaders are the payload's own (each of a mutation's root fields gets new ones,
// handler.go), and Prefetch replaces whatever they held, so no segments read before
// the change can answer.
//
// The change is committed before this reads anything, so a failure here (the
// database gone, the request's time up) must not answer it as failed: the payload
// keeps its segments and counts, its contacts are empty, and the error is reported
// beside the data at each contacts field's path. Answered as the mutation's error,
// a createSegment's retry met TAKEN, and a keyed request's replays repeated the
// error, never the new segment's ID.
func (r *Resolver) contactsBack(ctx context.Context, payloadType string, ids []int64) []*crm.Contact {
	fields := payloadFields(ctx, payloadType, "contacts")
	if len(fields) == 0 || len(ids) == 0 {
		return []*crm.Contact{}
	}
	contacts, err := r.readBack(ctx, fields, ids)
	if err != nil {
		for _, f := range fields {
			graphql.AddError(graphql.WithPathContext(ctx, graphql.NewPathWithField(f.Alias)), err)
		}
		return []*crm.Contact{}
	}
	return contacts
}

// readBack reads the contacts of ids and prefetches the segments fields' selections
// ask of them (contactsBack).
func (r *Resolver) readBack(ctx context.Context, fields []graphql.CollectedField, ids []int64) ([]*crm.Contact, error) {
	contacts, err := r.Store.ContactsInOrder(ctx, workspace(ctx).ID, ids)
	if err != nil {
		return nil, err
	}
	var need []*loader.Loader[int64, []*crm.Segment]
	for _, f := range fields {
		for _, g := range execution.CollectFields(ctx, graphql.GetOperationContext(ctx), f.Selections, contactType) {
			if g.Name != "segments" {
				continue
			}
			if l := segmentsLoader(ctx, g.Selections); !slices.Contains(need, l) {
				need = append(need, l)
			}
		}
	}
	read := crm.ContactIDs(contacts)
	for _, l := range need {
		if err := l.Prefetch(ctx, read); err != nil {
			return nil, err
		}
	}
	return pointers(contacts), nil
}

// createSegment creates the segment of input with its contacts by contactIds, or by
// contactsMatching (store.CreateSegmentMatching), or none; both is INVALID. It
// returns the contactIds decoded, for the payload's contacts (contactsBack): none for
// a selection, whose contacts the payload does not list.
func (r *Resolver) createSegment(ctx context.Context, input model.CreateSegmentInput) (crm.Segment, []int64, error) {
	ws := workspace(ctx).ID
	in := crm.NewSegment{Name: input.Name, Description: input.Description}
	if input.ContactsMatching == nil {
		// A list over its limit reaches the store too, which refuses it (reading
		// nothing) along with the name's and the description's problems: a refusal
		// names every problem at once. Its malformed IDs, then, are not named.
		contactIDs, invalid := decodeIDs(globalid.Contact, "contactIds", input.ContactIds)
		in.ContactIDs = contactIDs
		seg, err := r.Store.CreateSegment(ctx, ws, in)
		return seg, contactIDs, withDecodeErrors(err, invalid)
	}
	q, selErr := contactSelection(input.ContactsMatching)
	if input.ContactIds != nil || selErr != nil {
		// Refused before the store runs, with the name's and the description's
		// problems and a taken name (RefuseNewSegment): every problem at once, as
		// with contactIds.
		errs := crm.Errors(crm.UserErrors(in.Normalize()))
		if input.ContactIds != nil {
			errs = append(errs, crm.ContactsGivenTwice())
		} else {
			errs = append(errs, crm.Prefixed(crm.UserErrors(selErr), "contactsMatching")...)
		}
		return crm.Segment{}, nil, r.Store.RefuseNewSegment(ctx, ws, in.Name, errs)
	}
	seg, err := r.Store.CreateSegmentMatching(ctx, ws, in, q)
	return seg, nil, err
}

// contactSelection decodes a ContactSelection into the query of Query.contacts with
// the same search and filter; its problems are named within the selection.
func contactSelection(sel *model.ContactSelection) (crm.ContactQuery, error) {
	term, termErr := crm.NormalizeSearch(sel.Search)
	segments, conds, filterErr := contactFilter(sel.Filter)
	if termErr != nil || filterErr != nil {
		return crm.ContactQuery{}, append(crm.Errors(crm.UserErrors(termErr)), crm.UserErrors(filterErr)...)
	}
	return crm.ContactQuery{Search: term, Segments: segments, Conditions: conds}, nil
}

// withDecodeErrors completes the store's answer to a change whose input held
// malformed IDs. They reach the store as 0, which names nothing, so the store refuses
// the change and reports them as NOT_FOUND along with every other problem it finds;
// here each of those becomes the INVALID problem found while decoding. So one round
// trip reports every bad element at once, and a change with a malformed ID never
// applies.
func withDecodeErrors(err error, invalid crm.Errors) error {
	if len(invalid) == 0 {
		return err
	}
	refusal := crm.UserErrors(err)
	if refusal == nil {
		if err == nil { // the store accepted an ID of 0: a broken invariant, not bad input
			err = errors.New("a change with malformed IDs was not refused")
		}
		return err
	}
	byPath := make(map[string]*crm.Error, len(invalid))
	for _, e := range invalid {
		byPath[strings.Join(e.Field, ".")] = e
	}
	out := make(crm.Errors, len(refusal))
	for i, e := range refusal {
		if d, ok := byPath[strings.Join(e.Field, ".")]; ok && e.Code == crm.CodeNotFound {
			e = d
		}
		out[i] = e
	}
	return out
}

// The payloads of refused mutations: userErrors for input problems, a top-level error
// for anything else.

func createSegmentFailed(err error) (*model.CreateSegmentPayload, error) {
	ue, err := payloadErrors(err)
	return &model.CreateSegmentPayload{Contacts: []*crm.Contact{}, UserErrors: ue}, err
}

func updateSegmentFailed(err error) (*model.UpdateSegmentPayload, error) {
	ue, err := payloadErrors(err)
	return &model.UpdateSegmentPayload{UserErrors: ue}, err
}

func deleteSegmentFailed(err error) (*model.DeleteSegmentPayload, error) {
	ue, err := payloadErrors(err)
	return &model.DeleteSegmentPayload{UserErrors: ue}, err
}

func updateContactFailed(err error) (*model.UpdateContactPayload, error) {
	ue, err := payloadErrors(err)
	return &model.UpdateContactPayload{UserErrors: ue}, err
}
