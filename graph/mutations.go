package graph

import (
	"context"

	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
)

// decodeBulk checks the list sizes of a bulk membership change, then decodes its IDs,
// reporting every malformed one. The change is then refused; so that the caller learns
// about every bad element at once, the well-formed IDs that name nothing in the
// workspace are reported too, as the store would have reported them.
func (r *Resolver) decodeBulk(ctx context.Context, contacts, segments []string) (contactIDs, segmentIDs []int64, err error) {
	if err := crm.CheckBulk(len(contacts), len(segments)); err != nil {
		return nil, nil, err
	}
	contactIDs, conErrs := decodeIDs(globalid.Contact, "contactIds", contacts)
	segmentIDs, segErrs := decodeIDs(globalid.Segment, "segmentIds", segments)
	if len(conErrs)+len(segErrs) == 0 {
		return contactIDs, segmentIDs, nil
	}
	ws := workspace(ctx).ID
	contactsFound, err := r.Store.ContactsByID(ctx, ws, contactIDs)
	if err != nil {
		return nil, nil, err
	}
	segmentsFound, err := r.Store.SegmentsByID(ctx, ws, segmentIDs)
	if err != nil {
		return nil, nil, err
	}
	var errs crm.Errors
	for _, list := range []struct {
		field, what string
		ids         []int64
		invalid     crm.Errors
		found       func(int64) bool
	}{
		{"contactIds", "contact", contactIDs, conErrs, func(id int64) bool { _, ok := contactsFound[id]; return ok }},
		{"segmentIds", "segment", segmentIDs, segErrs, func(id int64) bool { _, ok := segmentsFound[id]; return ok }},
	} {
		invalid := list.invalid // in index order, one per ID decoded as 0
		for i, id := range list.ids {
			switch {
			case id == 0: // malformed or of another type
				errs, invalid = append(errs, invalid[0]), invalid[1:]
			case !list.found(id):
				errs = append(errs, crm.Errorf(crm.CodeNotFound, crm.Path(list.field, i), "no %s with this ID", list.what))
			}
		}
	}
	return nil, nil, errs
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
