package graph

import (
	"errors"
	"strings"

	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
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
