package graph

import (
	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
)

// decodeBulk checks the list sizes of a bulk membership change, then decodes its IDs,
// reporting every malformed one.
func decodeBulk(contacts, segments []string) (contactIDs, segmentIDs []int64, err error) {
	if err := crm.CheckBulk(len(contacts), len(segments)); err != nil {
		return nil, nil, err
	}
	contactIDs, errs := decodeIDs(globalid.Contact, "contactIds", contacts)
	segmentIDs, segErrs := decodeIDs(globalid.Segment, "segmentIds", segments)
	return contactIDs, segmentIDs, append(errs, segErrs...).Err()
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
