package server_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

const upsertIntoSegmentsDoc = `mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) {
  contacts { id segments { id } } createdContactIds assignedCount segments { id name contactCount } ` + userErrorFields + ` } }`

type upsertIntoSegmentsPayload struct {
	Contacts []struct {
		ID       string `json:"id"`
		Segments []struct {
			ID string `json:"id"`
		} `json:"segments"`
	} `json:"contacts"`
	CreatedContactIDs []string    `json:"createdContactIds"`
	AssignedCount     int         `json:"assignedCount"`
	Segments          []segment   `json:"segments"`
	UserErrors        []userError `json:"userErrors"`
}

// TestUpsertContactsAddToSegmentIds: upsertContacts with addToSegmentIds adds each
// contact to its segments in its own transaction, and answers as an assignment does:
// the segments once each with their new counts, assignedCount not counting a contact
// already in a segment, the contacts' segments holding them. A keyed retry replays
// the answer and changes nothing. A malformed ID is INVALID and an unknown one
// NOT_FOUND at its place in the entry's list, with the other entries' problems, and
// nothing is written. Before, ContactInput had no addToSegmentIds (a validation
// error): a partner sent an assignment per set of segments after the upsert.
func TestUpsertContactsAddToSegmentIds(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	vip := c.createSegment(map[string]any{"name": "VIP"}).Segment.ID
	gold := c.createSegment(map[string]any{"name": "Gold"}).Segment.ID
	old := c.upsert(map[string]any{"phone": "+919800000501"})
	checkUserErrors(t, c.assign([]string{old.Contacts[0].ID}, []string{vip}).UserErrors)

	in := map[string]any{"contacts": []map[string]any{
		{"phone": "+919800000501", "addToSegmentIds": []string{vip, gold}},
		{"phone": "+919800000502", "addToSegmentIds": []string{gold, gold}},
		{"phone": "+919800000503"},
	}}
	body := idemBody(upsertIntoSegmentsDoc, map[string]any{"in": in})
	key := newKey()
	first := a.idemPost(body, key)
	var p upsertIntoSegmentsPayload
	first.payload(t, &p)
	checkUserErrors(t, p.UserErrors)
	if p.AssignedCount != 2 || len(p.CreatedContactIDs) != 2 {
		t.Errorf("assignedCount %d, createdContactIds %q; want 2 and 2", p.AssignedCount, p.CreatedContactIDs)
	}
	var segs []string
	for _, s := range p.Segments {
		segs = append(segs, s.ID+" "+s.Name+" "+string(rune('0'+s.ContactCount)))
	}
	if want := []string{vip + " VIP 1", gold + " Gold 2"}; !slices.Equal(segs, want) {
		t.Errorf("segments %q, want %q", segs, want)
	}
	c.checkPayloadCounts(p.Segments)
	for i, want := range [][]string{{gold, vip}, {gold}, {}} {
		var got []string
		for _, s := range p.Contacts[i].Segments {
			got = append(got, s.ID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(orEmpty(got), want) {
			t.Errorf("contact %d's segments %q, want %q", i, got, want)
		}
	}
	c.checkCount(vip, 1)
	c.checkCount(gold, 2)

	before := c.dbState()
	a.idemPost(body, key).sameAs(t, first)
	c.unchanged(before)

	bad := func(entries ...map[string]any) upsertIntoSegmentsPayload {
		t.Helper()
		var p upsertIntoSegmentsPayload
		c.mutate(upsertIntoSegmentsDoc, map[string]any{"contacts": entries}, &p)
		if len(p.Contacts) != 0 || len(p.Segments) != 0 || p.AssignedCount != 0 {
			t.Errorf("refused, yet %+v", p)
		}
		return p
	}
	contactID := old.Contacts[0].ID
	checkUserErrors(t, bad(
		map[string]any{"phone": "+919800000504", "addToSegmentIds": []string{vip, absentID(globalid.Segment, 1)}},
		map[string]any{"phone": "+919800000505", "addToSegmentIds": []string{"not an ID", gold, contactID}},
	).UserErrors,
		userErrAt("NOT_FOUND", "input", "contacts", "0", "addToSegmentIds", "1"),
		userErrAt("INVALID", "input", "contacts", "1", "addToSegmentIds", "0"),
		userErrAt("INVALID", "input", "contacts", "1", "addToSegmentIds", "2"))
	checkUserErrors(t, bad(
		map[string]any{"phone": "12345", "addToSegmentIds": []string{vip}},
		map[string]any{"phone": "+919800000505", "addToSegmentIds": []string{"not an ID"}},
	).UserErrors,
		userErrAt("INVALID", "input", "contacts", "0", "phone"),
		userErrAt("INVALID", "input", "contacts", "1", "addToSegmentIds", "0"))
	many := make([]string, 101)
	for i := range many {
		many[i] = vip
	}
	checkUserErrors(t, bad(map[string]any{"phone": "+919800000504", "addToSegmentIds": many}).UserErrors,
		userErrAt("TOO_MANY", "input", "contacts", "0", "addToSegmentIds"))
	c.unchanged(before)
}

// TestSegmentViewerCanUpdate: Segment.viewerCanUpdate is true for a read_write key
// and false for a read key, on every segment of a list, and sends no statement: a
// page of segments selecting it sends as many as one without it.
func TestSegmentViewerCanUpdate(t *testing.T) {
	rw := newAPI(t)
	mutClient{rw}.createSegment(map[string]any{"name": "VIP"})
	mutClient{rw}.createSegment(map[string]any{"name": "Gold"})
	ro, _ := rw.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "BI export"})
	for _, tc := range []struct {
		name string
		c    *api
		want bool
	}{{"read_write", rw, true}, {"read", ro, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.using(t, tc.c.key)
			c.post(`{ segments(first: 10) { nodes { id name } } }`, nil)
			without := c.statements()
			res := c.post(`{ segments(first: 10) { nodes { id name viewerCanUpdate } } }`, nil)
			if len(res.Errors) > 0 {
				t.Fatalf("errors %+v", res.Errors)
			}
			if n := c.statements(); n != without {
				t.Errorf("%d statements with viewerCanUpdate, %d without", n, without)
			}
			var out struct {
				Segments struct {
					Nodes []struct {
						ViewerCanUpdate bool `json:"viewerCanUpdate"`
					} `json:"nodes"`
				} `json:"segments"`
			}
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Segments.Nodes) != 2 {
				t.Fatalf("%d segments, want 2", len(out.Segments.Nodes))
			}
			for _, s := range out.Segments.Nodes {
				if s.ViewerCanUpdate != tc.want {
					t.Errorf("viewerCanUpdate %v, want %v", s.ViewerCanUpdate, tc.want)
				}
			}
		})
	}
}
