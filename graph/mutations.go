package graph

import (
	"context"
	"errors"
	"strings"

	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
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
// says whether the segments are read back.
func (r *Resolver) changeMemberships(ctx context.Context, ids []string, matching *model.ContactSelection, segments []string, payloadType string, change storeChange) (store.MembershipChange, error) {
	ws, back := workspace(ctx).ID, segmentsBack(ctx, payloadType)
	switch {
	case ids == nil && matching == nil:
		return store.MembershipChange{}, crm.Errorf(crm.CodeInvalid, crm.Path("contactIds"), "give the contacts, by contactIds or by contactsMatching")
	case ids != nil && matching != nil:
		return store.MembershipChange{}, crm.ContactsGivenTwice()
	case matching == nil:
		contactIDs, segmentIDs, invalid, err := decodeBulk(ids, segments)
		if err != nil {
			return store.MembershipChange{}, err
		}
		res, err := change.byIDs(ctx, ws, contactIDs, segmentIDs, back)
		return res, withDecodeErrors(err, invalid)
	}
	if err := crm.CheckBulk(0, len(segments)); err != nil {
		return store.MembershipChange{}, err
	}
	segmentIDs, invalid := decodeIDs(globalid.Segment, "segmentIds", segments)
	q, err := contactSelection(matching)
	if err != nil {
		// The selection's problems with the segment IDs', all at once; the store,
		// which would name the segments that do not exist, does not run.
		return store.MembershipChange{}, append(crm.Errors(crm.Prefixed(crm.UserErrors(err), "contactsMatching")), invalid...)
	}
	res, err := change.byQuery(ctx, ws, q, segmentIDs, back)
	return res, withDecodeErrors(err, invalid)
}

// createSegment creates the segment of input with its contacts by contactIds, or by
// contactsMatching (store.CreateSegmentMatching), or none; both is INVALID.
func (r *Resolver) createSegment(ctx context.Context, input model.CreateSegmentInput) (crm.Segment, error) {
	ws := workspace(ctx).ID
	in := crm.NewSegment{Name: input.Name, Description: input.Description}
	if input.ContactsMatching == nil {
		// A list over its limit reaches the store too, which refuses it (reading
		// nothing) along with the name's and the description's problems: a refusal
		// names every problem at once. Its malformed IDs, then, are not named.
		contactIDs, invalid := decodeIDs(globalid.Contact, "contactIds", input.ContactIds)
		in.ContactIDs = contactIDs
		seg, err := r.Store.CreateSegment(ctx, ws, in)
		return seg, withDecodeErrors(err, invalid)
	}
	q, selErr := contactSelection(input.ContactsMatching)
	if input.ContactIds != nil || selErr != nil {
		// Refused before the store runs, with the name's and the description's
		// problems: every problem at once, as with contactIds.
		errs := crm.Errors(crm.UserErrors(in.Normalize()))
		if input.ContactIds != nil {
			return crm.Segment{}, append(errs, crm.ContactsGivenTwice())
		}
		return crm.Segment{}, append(errs, crm.Prefixed(crm.UserErrors(selErr), "contactsMatching")...)
	}
	return r.Store.CreateSegmentMatching(ctx, ws, in, q)
}

// contactSelection decodes a ContactSelection into the query of Query.contacts with
// the same search and filter; its problems are named within the selection.
func contactSelection(sel *model.ContactSelection) (crm.ContactQuery, error) {
	term, termErr := crm.NormalizeSearch(sel.Search)
	segments, filterErr := membershipFilter(sel.Filter)
	if termErr != nil || filterErr != nil {
		return crm.ContactQuery{}, append(crm.Errors(crm.UserErrors(termErr)), crm.UserErrors(filterErr)...)
	}
	return crm.ContactQuery{Search: term, Segments: segments}, nil
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
	return &model.CreateSegmentPayload{UserErrors: ue}, err
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
