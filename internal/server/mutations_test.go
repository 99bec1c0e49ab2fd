package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/globalid"
)

// The documents of the mutations, each returning its whole payload.
const (
	userErrorFields   = `userErrors { field message code }`
	createSegmentDoc  = `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { ` + segmentFields + ` } ` + userErrorFields + ` } }`
	updateSegmentDoc  = `mutation($in: UpdateSegmentInput!) { updateSegment(input: $in) { segment { ` + segmentFields + ` } ` + userErrorFields + ` } }`
	deleteSegmentDoc  = `mutation($in: DeleteSegmentInput!) { deleteSegment(input: $in) { deletedSegmentId ` + userErrorFields + ` } }`
	assignDoc         = `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { segments { ` + segmentFields + ` } assignedCount ` + userErrorFields + ` } }`
	removeDoc         = `mutation($in: RemoveContactsFromSegmentsInput!) { removeContactsFromSegments(input: $in) { segments { ` + segmentFields + ` } removedCount ` + userErrorFields + ` } }`
	upsertContactsDoc = `mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { ` + contactFields + ` } createdCount createdContactIds updatedCount ` + userErrorFields + ` } }`
	updateContactDoc  = `mutation($in: UpdateContactInput!) { updateContact(input: $in) { contact { ` + contactFields + ` } ` + userErrorFields + ` } }`
	deleteContactsDoc = `mutation($in: DeleteContactsInput!) { deleteContacts(input: $in) { deletedContactIds segments { ` + segmentFields + ` } ` + userErrorFields + ` } }`
)

// mutClient wraps a client with one method per mutation and the checks of their
// effects.
type mutClient struct{ *api }

// on returns the client reporting to t, for use in subtests.
func (c mutClient) on(t testing.TB) mutClient {
	b := *c.api
	b.t = t
	return mutClient{&b}
}

type segmentPayload struct {
	Segment    *segment    `json:"segment"`
	UserErrors []userError `json:"userErrors"`
}

type deleteSegmentPayload struct {
	DeletedSegmentID *string     `json:"deletedSegmentId"`
	UserErrors       []userError `json:"userErrors"`
}

type membershipPayload struct {
	Segments      []segment   `json:"segments"`
	AssignedCount int         `json:"assignedCount"`
	RemovedCount  int         `json:"removedCount"`
	UserErrors    []userError `json:"userErrors"`
}

type upsertPayload struct {
	Contacts          []contact   `json:"contacts"`
	CreatedCount      int         `json:"createdCount"`
	CreatedContactIDs []string    `json:"createdContactIds"`
	UpdatedCount      int         `json:"updatedCount"`
	UserErrors        []userError `json:"userErrors"`
}

type contactPayload struct {
	Contact    *contact    `json:"contact"`
	UserErrors []userError `json:"userErrors"`
}

type deleteContactsPayload struct {
	DeletedContactIDs []string    `json:"deletedContactIds"`
	Segments          []segment   `json:"segments"`
	UserErrors        []userError `json:"userErrors"`
}

// mutate runs a mutation document with input in and decodes its one payload into dst.
func (c mutClient) mutate(doc string, in map[string]any, dst any) {
	c.t.Helper()
	var out map[string]json.RawMessage
	c.do(doc, map[string]any{"in": in}, &out)
	if len(out) != 1 {
		c.t.Fatalf("want one payload, got %v", out)
	}
	for _, raw := range out {
		if err := json.Unmarshal(raw, dst); err != nil {
			c.t.Fatalf("decode %s: %v", raw, err)
		}
	}
}

func (c mutClient) createSegment(in map[string]any) segmentPayload {
	c.t.Helper()
	var p segmentPayload
	c.mutate(createSegmentDoc, in, &p)
	return p
}

func (c mutClient) updateSegment(in map[string]any) segmentPayload {
	c.t.Helper()
	var p segmentPayload
	c.mutate(updateSegmentDoc, in, &p)
	return p
}

func (c mutClient) deleteSegment(id string) deleteSegmentPayload {
	c.t.Helper()
	var p deleteSegmentPayload
	c.mutate(deleteSegmentDoc, map[string]any{"id": id}, &p)
	return p
}

func (c mutClient) assign(contactIDs, segmentIDs []string) membershipPayload {
	c.t.Helper()
	var p membershipPayload
	c.mutate(assignDoc, map[string]any{"contactIds": orEmpty(contactIDs), "segmentIds": orEmpty(segmentIDs)}, &p)
	return p
}

func (c mutClient) remove(contactIDs, segmentIDs []string) membershipPayload {
	c.t.Helper()
	var p membershipPayload
	c.mutate(removeDoc, map[string]any{"contactIds": orEmpty(contactIDs), "segmentIds": orEmpty(segmentIDs)}, &p)
	return p
}

func (c mutClient) upsert(entries ...map[string]any) upsertPayload {
	c.t.Helper()
	if entries == nil {
		entries = []map[string]any{}
	}
	var p upsertPayload
	c.mutate(upsertContactsDoc, map[string]any{"contacts": entries}, &p)
	return p
}

func (c mutClient) updateContact(in map[string]any) contactPayload {
	c.t.Helper()
	var p contactPayload
	c.mutate(updateContactDoc, in, &p)
	return p
}

func (c mutClient) deleteContacts(ids ...string) deleteContactsPayload {
	c.t.Helper()
	var p deleteContactsPayload
	c.mutate(deleteContactsDoc, map[string]any{"ids": orEmpty(ids)}, &p)
	return p
}

// segment reads a segment with segment(id:); nil when there is none.
func (c mutClient) segment(id string) *segment {
	c.t.Helper()
	var out struct {
		Segment *segment `json:"segment"`
	}
	c.do(`query($id: ID!) { segment(id: $id) { `+segmentFields+` } }`, map[string]any{"id": id}, &out)
	return out.Segment
}

// contact reads a contact with contact(id:), with its segments; nil when there is none.
func (c mutClient) contact(id string) *contact {
	c.t.Helper()
	var out struct {
		Contact *contact `json:"contact"`
	}
	c.do(`query($id: ID!) { contact(id: $id) { `+contactFields+` segments { `+segmentFields+` } } }`, map[string]any{"id": id}, &out)
	return out.Contact
}

// contactCount returns the number of contacts of the workspace.
func (c mutClient) contactCount() int {
	c.t.Helper()
	var out struct {
		Contacts struct {
			TotalCount int `json:"totalCount"`
		} `json:"contacts"`
	}
	c.do(`{ contacts(first: 1) { totalCount } }`, nil, &out)
	return out.Contacts.TotalCount
}

// dbState returns everything the database holds for the workspace: its segments (with
// their counters and timestamps), contacts and memberships. Two equal states prove
// that nothing changed in between.
func (c mutClient) dbState() string {
	c.t.Helper()
	var s string
	err := c.store.DB().QueryRowContext(context.Background(), `
		SELECT json_build_object(
			'segments', (SELECT coalesce(json_agg(s ORDER BY s.id), '[]') FROM segments s WHERE s.workspace_id = $1),
			'contacts', (SELECT coalesce(json_agg(c ORDER BY c.id), '[]') FROM contacts c WHERE c.workspace_id = $1),
			'memberships', (SELECT coalesce(json_agg(m ORDER BY m.segment_id, m.contact_id), '[]') FROM memberships m WHERE m.workspace_id = $1),
			'deleted_contacts', (SELECT coalesce(json_agg(d ORDER BY d.deleted_at, d.id), '[]') FROM deleted_contacts d WHERE d.workspace_id = $1)
		)::text`, c.ws.ID).Scan(&s)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// unchanged fails the test when the workspace's state is not before.
func (c mutClient) unchanged(before string) {
	c.t.Helper()
	if after := c.dbState(); after != before {
		c.t.Errorf("a refused mutation changed the workspace:\nbefore %s\nafter  %s", before, after)
	}
}

// members returns the IDs of the contacts of a segment in the database, sorted.
func (c mutClient) members(segmentID string) []string {
	c.t.Helper()
	rows, err := c.store.DB().QueryContext(context.Background(),
		"SELECT contact_id FROM memberships WHERE workspace_id = $1 AND segment_id = $2 ORDER BY contact_id",
		c.ws.ID, mustDecode(c.t, globalid.Segment, segmentID))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, globalid.Encode(globalid.Contact, id))
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// checkCount checks that a segment's contactCount, as segment(id:) shows it and as
// Segment.contacts counts it, is the number of its memberships in the database, and
// is want.
func (c mutClient) checkCount(segmentID string, want int) {
	c.t.Helper()
	var out struct {
		Segment *struct {
			ContactCount int `json:"contactCount"`
			Contacts     struct {
				TotalCount int `json:"totalCount"`
			} `json:"contacts"`
		} `json:"segment"`
	}
	c.do(`query($id: ID!) { segment(id: $id) { contactCount contacts(first: 1) { totalCount } } }`, map[string]any{"id": segmentID}, &out)
	if out.Segment == nil {
		c.t.Fatalf("segment %s not found", segmentID)
	}
	real := c.realCount(mustDecode(c.t, globalid.Segment, segmentID))
	if out.Segment.ContactCount != want || out.Segment.Contacts.TotalCount != want || real != want {
		c.t.Errorf("segment %s: contactCount %d, contacts.totalCount %d, memberships %d; want %d",
			segmentID, out.Segment.ContactCount, out.Segment.Contacts.TotalCount, real, want)
	}
}

// checkPayloadCounts checks that the counts of segments in a payload are exact.
func (c mutClient) checkPayloadCounts(segs []segment) {
	c.t.Helper()
	for _, s := range segs {
		if real := c.realCount(mustDecode(c.t, globalid.Segment, s.ID)); s.ContactCount != real {
			c.t.Errorf("payload shows segment %s (%s) with %d contacts, the database has %d", s.ID, s.Name, s.ContactCount, real)
		}
	}
}

// mustDecode returns the number of a global ID of kind k.
func mustDecode(t testing.TB, k globalid.Kind, id string) int64 {
	t.Helper()
	n, err := globalid.DecodeAs(k, id)
	if err != nil {
		t.Fatalf("decode %q: %v", id, err)
	}
	return n
}

// absentID returns a well-formed ID of kind k that names nothing.
func absentID(k globalid.Kind, i int) string {
	return globalid.Encode(k, 1<<50+int64(i))
}

// absentIDs returns n distinct well-formed IDs of kind k that name nothing.
func absentIDs(k globalid.Kind, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = absentID(k, i)
	}
	return out
}

func orEmpty(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// wantUserError is an expected user error: its code and field path.
type wantUserError struct {
	code  string
	field string // the path joined with dots, such as "input.contactIds.3"
}

func (w wantUserError) String() string { return w.code + " at " + w.field }

func userErrAt(code string, field ...string) wantUserError {
	return wantUserError{code: code, field: strings.Join(field, ".")}
}

// checkUserErrors checks that got holds exactly the expected errors, in any order, each
// with a message.
func checkUserErrors(t testing.TB, got []userError, want ...wantUserError) {
	t.Helper()
	var g, w []string
	for _, e := range got {
		if e.Message == "" {
			t.Errorf("user error %v without a message", e)
		}
		g = append(g, wantUserError{code: e.Code, field: strings.Join(e.Field, ".")}.String())
	}
	for _, e := range want {
		w = append(w, e.String())
	}
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		t.Errorf("user errors:\n got  %q\n want %q\n (all: %v)", g, w, got)
	}
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return ts
}

func textPtr(s string) *string { return &s }

func showText(p *string) string {
	if p == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", *p)
}

func idsOf(segs []segment) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.ID
	}
	return out
}

// TestTakenNamesTheSegmentThatHasIt proves that a TAKEN name, creating or renaming,
// quotes the segment that has the name as it is written, not the input: a user sees
// which segment clashes.
func TestTakenNamesTheSegmentThatHasIt(t *testing.T) {
	c := mutClient{newAPI(t)}
	c.addSegment("Dup Test")
	seg := c.addSegment("Other")
	const want = `a segment named "Dup Test" already exists`
	for _, tc := range []struct {
		name string
		send func(in map[string]any) segmentPayload
		in   map[string]any
	}{
		{"create", c.createSegment, map[string]any{"name": "dup test"}},
		{"create, spaced", c.createSegment, map[string]any{"name": "  DUP TEST "}},
		{"rename", c.updateSegment, map[string]any{"id": seg, "name": "dup TEST"}},
	} {
		p := tc.send(tc.in)
		checkUserErrors(t, p.UserErrors, userErrAt("TAKEN", "input", "name"))
		if len(p.UserErrors) == 1 && p.UserErrors[0].Message != want {
			t.Errorf("%s: message %q, want %q", tc.name, p.UserErrors[0].Message, want)
		}
	}
	// Refused for another problem too, found before the name was tried.
	long := strings.Repeat("d", 1001)
	for _, tc := range []struct {
		name string
		send func(in map[string]any) segmentPayload
		in   map[string]any
	}{
		{"create, long description", c.createSegment, map[string]any{"name": "dup test", "description": long}},
		{"rename, long description", c.updateSegment, map[string]any{"id": seg, "name": "dup TEST", "description": long}},
	} {
		p := tc.send(tc.in)
		checkUserErrors(t, p.UserErrors, userErrAt("TAKEN", "input", "name"), userErrAt("TOO_LONG", "input", "description"))
		if len(p.UserErrors) == 2 && p.UserErrors[0].Message != want {
			t.Errorf("%s: message %q, want %q", tc.name, p.UserErrors[0].Message, want)
		}
	}
}

// TestCreateSegment covers createSegment: every refusal (which creates nothing), then
// the segments it creates, with and without their first contacts.
func TestCreateSegment(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(100_000, 4)...)
	other := mutClient{c.as(t)}
	otherContact := other.addContacts(phones(100_100, 1)...)[0]
	c.addSegment("VIP Users")
	segID := c.addSegment("Existing")

	long := func(n int) string { return strings.Repeat("é", n) } // runes, not bytes
	refusals := []struct {
		name string
		in   map[string]any
		want []wantUserError
	}{
		{"empty name", map[string]any{"name": ""}, []wantUserError{userErrAt("BLANK", "input", "name")}},
		{"blank name", map[string]any{"name": " \t\n "}, []wantUserError{userErrAt("BLANK", "input", "name")}},
		{"name of 101 characters", map[string]any{"name": long(101)}, []wantUserError{userErrAt("TOO_LONG", "input", "name")}},
		{"description of 1001 characters", map[string]any{"name": "New", "description": long(1001)}, []wantUserError{userErrAt("TOO_LONG", "input", "description")}},
		{"blank name and long description", map[string]any{"name": " ", "description": long(1001)},
			[]wantUserError{userErrAt("BLANK", "input", "name"), userErrAt("TOO_LONG", "input", "description")}},
		{"name taken, same case", map[string]any{"name": "VIP Users"}, []wantUserError{userErrAt("TAKEN", "input", "name")}},
		{"name taken, other case", map[string]any{"name": "vip USERS"}, []wantUserError{userErrAt("TAKEN", "input", "name")}},
		{"name taken, after trimming", map[string]any{"name": "  Vip Users "}, []wantUserError{userErrAt("TAKEN", "input", "name")}},
		{"unknown contact", map[string]any{"name": "New", "contactIds": []string{ids[0], absentID(globalid.Contact, 1)}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "1")}},
		{"contact of another workspace", map[string]any{"name": "New", "contactIds": []string{otherContact, ids[1]}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0")}},
		{"malformed contact ID", map[string]any{"name": "New", "contactIds": []string{ids[0], ids[1], "C_!!"}},
			[]wantUserError{userErrAt("INVALID", "input", "contactIds", "2")}},
		{"segment ID as contact ID", map[string]any{"name": "New", "contactIds": []string{segID}},
			[]wantUserError{userErrAt("INVALID", "input", "contactIds", "0")}},
		{"several bad contacts", map[string]any{"name": "New", "contactIds": []string{absentID(globalid.Contact, 1), ids[0], otherContact}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "contactIds", "2")}},
		{"every problem named", map[string]any{"name": "vip users", "description": long(1001), "contactIds": []string{"C_!!", ids[0], absentID(globalid.Contact, 1)}},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("TOO_LONG", "input", "description"), userErrAt("INVALID", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "contactIds", "2")}},
		{"name taken and contacts unknown or malformed", map[string]any{"name": "Existing", "contactIds": []string{otherContact, ids[1], segID}},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("INVALID", "input", "contactIds", "2")}},
		{"1001 contacts", map[string]any{"name": "New", "contactIds": append(absentIDs(globalid.Contact, 1000), ids[0])},
			[]wantUserError{userErrAt("TOO_MANY", "input", "contactIds")}},
		// A taken name is TAKEN along with any other problem, however early that
		// one refuses the request.
		{"name taken and long description", map[string]any{"name": "VIP Users", "description": long(1001)},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("TOO_LONG", "input", "description")}},
		{"name taken and 1001 contacts", map[string]any{"name": "vip users", "contactIds": append(absentIDs(globalid.Contact, 1000), ids[0])},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("TOO_MANY", "input", "contactIds")}},
		{"name taken and a selection by an unknown segment", map[string]any{"name": "VIP Users", "contactsMatching": map[string]any{"filter": map[string]any{"segments": map[string]any{"any": []string{"S_!!"}}}}},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("INVALID", "input", "contactsMatching", "filter", "segments", "any", "0")}},
		{"name taken, long description and both contactIds and contactsMatching", map[string]any{"name": "VIP Users", "description": long(1001), "contactIds": []string{ids[0]}, "contactsMatching": map[string]any{}},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("TOO_LONG", "input", "description"), userErrAt("INVALID", "input", "contactsMatching")}},
		{"1001 contacts, blank name and long description", map[string]any{"name": "", "description": long(1001), "contactIds": append(absentIDs(globalid.Contact, 1000), "C_!!")},
			[]wantUserError{userErrAt("BLANK", "input", "name"), userErrAt("TOO_LONG", "input", "description"), userErrAt("TOO_MANY", "input", "contactIds")}},
	}
	for _, tc := range refusals {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			c := c.on(t)
			before := c.dbState()
			p := c.createSegment(tc.in)
			if p.Segment != nil {
				t.Errorf("segment %+v created", p.Segment)
			}
			checkUserErrors(t, p.UserErrors, tc.want...)
			c.unchanged(before)
		})
	}

	t.Run("refused with contacts, the name stays free", func(t *testing.T) {
		c := c.on(t)
		p := c.createSegment(map[string]any{"name": "New", "contactIds": []string{absentID(globalid.Contact, 9)}})
		checkUserErrors(t, p.UserErrors, userErrAt("NOT_FOUND", "input", "contactIds", "0"))
		p = c.createSegment(map[string]any{"name": "New"})
		checkUserErrors(t, p.UserErrors)
		if p.Segment == nil || p.Segment.Name != "New" || p.Segment.ContactCount != 0 {
			t.Fatalf("%+v", p.Segment)
		}
	})

	t.Run("longest name and description", func(t *testing.T) {
		c := c.on(t)
		p := c.createSegment(map[string]any{"name": long(100), "description": long(1000)})
		checkUserErrors(t, p.UserErrors)
		if p.Segment == nil || p.Segment.Name != long(100) || showText(p.Segment.Description) != showText(textPtr(long(1000))) {
			t.Fatalf("%+v", p.Segment)
		}
	})

	t.Run("fields and trimming", func(t *testing.T) {
		c := c.on(t)
		start := time.Now().Add(-time.Minute)
		p := c.createSegment(map[string]any{"name": "  Festival Buyers ", "description": " Diwali 2026 "})
		checkUserErrors(t, p.UserErrors)
		s := p.Segment
		if s == nil {
			t.Fatal("no segment")
		}
		if s.Name != "Festival Buyers" || showText(s.Description) != `"Diwali 2026"` || s.ContactCount != 0 {
			t.Errorf("%+v, description %s", s, showText(s.Description))
		}
		if _, err := globalid.DecodeAs(globalid.Segment, s.ID); err != nil {
			t.Errorf("ID %q: %v", s.ID, err)
		}
		if created := mustTime(t, s.CreatedAt); created.Before(start) || !strings.HasSuffix(s.CreatedAt, "Z") {
			t.Errorf("createdAt %s", s.CreatedAt)
		}
		if got := c.segment(s.ID); asJSON(t, got) != asJSON(t, s) {
			t.Errorf("segment(id:) = %+v, payload %+v", got, s)
		}
	})

	t.Run("description null or empty is null", func(t *testing.T) {
		c := c.on(t)
		for i, d := range []any{nil, "", "   "} {
			p := c.createSegment(map[string]any{"name": fmt.Sprintf("No description %d", i), "description": d})
			checkUserErrors(t, p.UserErrors)
			if p.Segment == nil || p.Segment.Description != nil {
				t.Errorf("description %q: %+v", d, p.Segment)
			}
		}
	})

	t.Run("with contacts, repeats counted once", func(t *testing.T) {
		c := c.on(t)
		p := c.createSegment(map[string]any{"name": "Starters", "contactIds": []string{ids[2], ids[0], ids[2], ids[0], ids[3]}})
		checkUserErrors(t, p.UserErrors)
		if p.Segment == nil || p.Segment.ContactCount != 3 {
			t.Fatalf("%+v", p.Segment)
		}
		c.checkCount(p.Segment.ID, 3)
		want := []string{ids[0], ids[2], ids[3]}
		slices.Sort(want)
		if got := c.members(p.Segment.ID); !slices.Equal(got, want) {
			t.Errorf("members %v, want %v", got, want)
		}
		for _, id := range want {
			if !slices.Contains(idsOf(c.contact(id).Segments), p.Segment.ID) {
				t.Errorf("contact %s does not list the new segment", id)
			}
		}
	})

	t.Run("with an empty contact list", func(t *testing.T) {
		c := c.on(t)
		p := c.createSegment(map[string]any{"name": "Empty", "contactIds": []string{}})
		checkUserErrors(t, p.UserErrors)
		c.checkCount(p.Segment.ID, 0)
	})

	t.Run("same name in another workspace", func(t *testing.T) {
		other := other.on(t)
		p := other.createSegment(map[string]any{"name": "VIP USERS", "contactIds": []string{otherContact}})
		checkUserErrors(t, p.UserErrors)
		if p.Segment == nil || p.Segment.ContactCount != 1 {
			t.Fatalf("%+v", p.Segment)
		}
	})
}

// TestUpdateSegment covers updateSegment: refusals that change nothing, then each way
// of changing a field or leaving it, and when updatedAt moves.
func TestUpdateSegment(t *testing.T) {
	c := mutClient{newAPI(t)}
	contactID := c.addContacts(phones(110_000, 1)...)[0]
	taken := c.addSegment("Taken Name")
	p := c.createSegment(map[string]any{"name": "Original", "description": "First words", "contactIds": []string{contactID}})
	checkUserErrors(t, p.UserErrors)
	seg := *p.Segment
	other := mutClient{c.as(t)}
	otherSeg := other.addSegment("Elsewhere")

	refusals := []struct {
		name string
		in   map[string]any
		want []wantUserError
	}{
		{"unknown ID", map[string]any{"id": absentID(globalid.Segment, 1), "name": "X"}, []wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"segment of another workspace", map[string]any{"id": otherSeg, "name": "X"}, []wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"malformed ID", map[string]any{"id": "S_!!", "name": "X"}, []wantUserError{userErrAt("INVALID", "input", "id")}},
		{"contact ID", map[string]any{"id": contactID, "name": "X"}, []wantUserError{userErrAt("INVALID", "input", "id")}},
		{"malformed ID, blank name and long description", map[string]any{"id": "zzz", "name": "", "description": strings.Repeat("d", 1001)},
			[]wantUserError{userErrAt("INVALID", "input", "id"), userErrAt("BLANK", "input", "name"), userErrAt("TOO_LONG", "input", "description")}},
		{"malformed ID and null name", map[string]any{"id": "zzz", "name": nil}, []wantUserError{userErrAt("INVALID", "input", "id"), userErrAt("BLANK", "input", "name")}},
		{"null name", map[string]any{"id": seg.ID, "name": nil}, []wantUserError{userErrAt("BLANK", "input", "name")}},
		{"empty name", map[string]any{"id": seg.ID, "name": ""}, []wantUserError{userErrAt("BLANK", "input", "name")}},
		{"blank name", map[string]any{"id": seg.ID, "name": "   "}, []wantUserError{userErrAt("BLANK", "input", "name")}},
		{"name of 101 characters", map[string]any{"id": seg.ID, "name": strings.Repeat("n", 101)}, []wantUserError{userErrAt("TOO_LONG", "input", "name")}},
		{"description of 1001 characters", map[string]any{"id": seg.ID, "description": strings.Repeat("d", 1001)}, []wantUserError{userErrAt("TOO_LONG", "input", "description")}},
		{"rename to a taken name", map[string]any{"id": seg.ID, "name": "Taken Name"}, []wantUserError{userErrAt("TAKEN", "input", "name")}},
		{"rename to a taken name in another case", map[string]any{"id": seg.ID, "name": "TAKEN name", "description": "new"}, []wantUserError{userErrAt("TAKEN", "input", "name")}},
		{"rename to a taken name with a long description", map[string]any{"id": seg.ID, "name": "taken name", "description": strings.Repeat("d", 1001)},
			[]wantUserError{userErrAt("TAKEN", "input", "name"), userErrAt("TOO_LONG", "input", "description")}},
		// Its own name, in another case, is not taken.
		{"rename to its own name with a long description", map[string]any{"id": seg.ID, "name": "ORIGINAL", "description": strings.Repeat("d", 1001)},
			[]wantUserError{userErrAt("TOO_LONG", "input", "description")}},
	}
	for _, tc := range refusals {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			c := c.on(t)
			before, otherBefore := c.dbState(), other.on(t).dbState()
			p := c.updateSegment(tc.in)
			if p.Segment != nil {
				t.Errorf("payload segment %+v", p.Segment)
			}
			checkUserErrors(t, p.UserErrors, tc.want...)
			c.unchanged(before)
			other.on(t).unchanged(otherBefore)
		})
	}

	// Each step applies a change and says what the segment must then hold, and whether
	// updatedAt moves.
	steps := []struct {
		name     string
		in       map[string]any
		wantName string
		wantDesc *string
		moves    bool
	}{
		{"nothing given", map[string]any{}, "Original", textPtr("First words"), false},
		{"same values", map[string]any{"name": "Original", "description": "First words"}, "Original", textPtr("First words"), false},
		{"same values with spaces", map[string]any{"name": " Original ", "description": "First words  "}, "Original", textPtr("First words"), false},
		{"name only", map[string]any{"name": "Renamed"}, "Renamed", textPtr("First words"), true},
		{"description only", map[string]any{"description": "Second words"}, "Renamed", textPtr("Second words"), true},
		{"own name in another case", map[string]any{"name": "RENAMED"}, "RENAMED", textPtr("Second words"), true},
		{"description null clears", map[string]any{"description": nil}, "RENAMED", nil, true},
		{"description null again", map[string]any{"description": nil}, "RENAMED", nil, false},
		{"description set", map[string]any{"description": "Third"}, "RENAMED", textPtr("Third"), true},
		{"description empty clears", map[string]any{"description": ""}, "RENAMED", nil, true},
		{"description blank is empty", map[string]any{"description": "  "}, "RENAMED", nil, false},
		{"both", map[string]any{"name": "Final", "description": "Last"}, "Final", textPtr("Last"), true},
		{"longest values", map[string]any{"name": strings.Repeat("n", 100), "description": strings.Repeat("d", 1000)},
			strings.Repeat("n", 100), textPtr(strings.Repeat("d", 1000)), true},
		{"name of a deleted segment", map[string]any{"name": "taken name"}, "taken name", textPtr(strings.Repeat("d", 1000)), true},
	}
	prev := seg
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			c := c.on(t)
			if step.name == "name of a deleted segment" {
				if d := c.deleteSegment(taken); d.DeletedSegmentID == nil {
					t.Fatalf("delete: %v", d.UserErrors)
				}
				prev = *c.segment(seg.ID) // the deletion does not touch seg
			}
			in := map[string]any{"id": seg.ID}
			for k, v := range step.in {
				in[k] = v
			}
			p := c.updateSegment(in)
			checkUserErrors(t, p.UserErrors)
			got := p.Segment
			if got == nil {
				t.Fatal("no segment")
			}
			if got.ID != seg.ID || got.Name != step.wantName || showText(got.Description) != showText(step.wantDesc) {
				t.Errorf("name %q description %s, want %q %s", got.Name, showText(got.Description), step.wantName, showText(step.wantDesc))
			}
			if got.CreatedAt != seg.CreatedAt || got.ContactCount != 1 {
				t.Errorf("createdAt %s (was %s), contactCount %d", got.CreatedAt, seg.CreatedAt, got.ContactCount)
			}
			before, after := mustTime(t, prev.UpdatedAt), mustTime(t, got.UpdatedAt)
			if step.moves && !after.After(before) {
				t.Errorf("updatedAt %s did not move from %s", got.UpdatedAt, prev.UpdatedAt)
			}
			if !step.moves && !after.Equal(before) {
				t.Errorf("updatedAt moved from %s to %s without a change", prev.UpdatedAt, got.UpdatedAt)
			}
			if stored := c.segment(seg.ID); asJSON(t, stored) != asJSON(t, got) {
				t.Errorf("stored %+v, payload %+v", stored, got)
			}
			prev = *got
		})
	}
	c.checkCount(seg.ID, 1)
}

// TestDeleteSegment covers deleteSegment: refusals, then a deletion that keeps the
// contacts, takes the segment off their lists and leaves other segments alone.
func TestDeleteSegment(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(120_000, 3)...)
	doomed := c.addSegment("Doomed", ids...)
	kept := c.addSegment("Kept", ids[:2]...)
	other := mutClient{c.as(t)}
	otherSeg := other.addSegment("Doomed", other.addContacts(phones(120_000, 1)...)...)

	refusals := []struct {
		name string
		id   string
		want wantUserError
	}{
		{"unknown ID", absentID(globalid.Segment, 1), userErrAt("NOT_FOUND", "input", "id")},
		{"segment of another workspace", otherSeg, userErrAt("NOT_FOUND", "input", "id")},
		{"malformed ID", "Doomed", userErrAt("INVALID", "input", "id")},
		{"contact ID", ids[0], userErrAt("INVALID", "input", "id")},
		{"workspace ID", globalid.Encode(globalid.Workspace, c.ws.ID), userErrAt("INVALID", "input", "id")},
	}
	for _, tc := range refusals {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			c, other := c.on(t), other.on(t)
			before, otherBefore := c.dbState(), other.dbState()
			p := c.deleteSegment(tc.id)
			if p.DeletedSegmentID != nil {
				t.Errorf("deletedSegmentId %s", *p.DeletedSegmentID)
			}
			checkUserErrors(t, p.UserErrors, tc.want)
			c.unchanged(before)
			other.unchanged(otherBefore)
		})
	}

	t.Run("deleted", func(t *testing.T) {
		c := c.on(t)
		keptBefore := c.segment(kept)
		p := c.deleteSegment(doomed)
		checkUserErrors(t, p.UserErrors)
		if p.DeletedSegmentID == nil || *p.DeletedSegmentID != doomed {
			t.Fatalf("deletedSegmentId %v, want %s", p.DeletedSegmentID, doomed)
		}
		if s := c.segment(doomed); s != nil {
			t.Errorf("segment(id:) still finds %+v", s)
		}
		if n := c.realCount(mustDecode(t, globalid.Segment, doomed)); n != 0 {
			t.Errorf("%d memberships left", n)
		}
		if n := c.contactCount(); n != 3 {
			t.Errorf("%d contacts, want 3: contacts must stay", n)
		}
		for i, id := range ids {
			ct := c.contact(id)
			if ct == nil {
				t.Fatalf("contact %s deleted with its segment", id)
			}
			want := []string{kept}
			if i == 2 {
				want = []string{}
			}
			if got := idsOf(ct.Segments); !slices.Equal(got, want) {
				t.Errorf("contact %d segments %v, want %v", i, got, want)
			}
		}
		if s := c.segment(kept); asJSON(t, s) != asJSON(t, keptBefore) {
			t.Errorf("other segment changed: %+v, was %+v", s, keptBefore)
		}
		c.checkCount(kept, 2)
		other.on(t).checkCount(otherSeg, 1)
	})

	t.Run("deleted twice", func(t *testing.T) {
		p := c.on(t).deleteSegment(doomed)
		checkUserErrors(t, p.UserErrors, userErrAt("NOT_FOUND", "input", "id"))
	})

	t.Run("memberships of the deleted segment are refused", func(t *testing.T) {
		c := c.on(t)
		p := c.assign(ids[:1], []string{kept, doomed})
		checkUserErrors(t, p.UserErrors, userErrAt("NOT_FOUND", "input", "segmentIds", "1"))
		c.checkCount(kept, 2)
	})

	t.Run("its name is free again", func(t *testing.T) {
		c := c.on(t)
		s := c.addSegment("DOOMED", ids[2])
		if s == doomed {
			t.Errorf("ID %s reused", s)
		}
		c.checkCount(s, 1)
	})
}

// membershipMutation is assignContactsToSegments or removeContactsFromSegments.
type membershipMutation struct {
	name  string
	run   func(c mutClient, contactIDs, segmentIDs []string) membershipPayload
	count func(p membershipPayload) int
}

var membershipMutations = []membershipMutation{
	{"assign", mutClient.assign, func(p membershipPayload) int { return p.AssignedCount }},
	{"remove", mutClient.remove, func(p membershipPayload) int { return p.RemovedCount }},
}

// TestMembershipChangesRefused proves that assignContactsToSegments and
// removeContactsFromSegments change nothing when any element of the input is bad, and
// name each bad element.
func TestMembershipChangesRefused(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(130_000, 5)...)
	s0 := c.addSegment("Zero", ids[0], ids[1])
	s1 := c.addSegment("One", ids[2])
	s2 := c.addSegment("Two")
	gone := c.addContacts(phones(130_100, 1)...)[0]
	if d := c.deleteContacts(gone); len(d.UserErrors) > 0 {
		t.Fatal(d.UserErrors)
	}
	goneSeg := c.addSegment("Gone")
	if d := c.deleteSegment(goneSeg); len(d.UserErrors) > 0 {
		t.Fatal(d.UserErrors)
	}
	other := mutClient{c.as(t)}
	otherContacts := other.addContacts(phones(130_000, 2)...) // the same phones, another workspace
	otherSeg := other.addSegment("Zero", otherContacts...)
	ws := globalid.Encode(globalid.Workspace, c.ws.ID)

	cases := []struct {
		name     string
		contacts []string
		segments []string
		want     []wantUserError
	}{
		{"unknown contact", []string{ids[0], ids[3], absentID(globalid.Contact, 1), ids[4]}, []string{s0, s1},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "2")}},
		{"deleted contact", []string{gone, ids[3]}, []string{s2},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0")}},
		{"contact of another workspace", []string{ids[3], ids[4], ids[0], otherContacts[0]}, []string{s0, s2},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "3")}},
		{"malformed contact ID", []string{ids[3], "not-an-id"}, []string{s2},
			[]wantUserError{userErrAt("INVALID", "input", "contactIds", "1")}},
		{"empty contact ID", []string{""}, []string{s2},
			[]wantUserError{userErrAt("INVALID", "input", "contactIds", "0")}},
		{"segment ID in contactIds", []string{ids[3], s1}, []string{s2},
			[]wantUserError{userErrAt("INVALID", "input", "contactIds", "1")}},
		{"workspace ID in contactIds", []string{ws}, []string{s2},
			[]wantUserError{userErrAt("INVALID", "input", "contactIds", "0")}},
		{"unknown segment", []string{ids[3]}, []string{s2, s1, absentID(globalid.Segment, 1)},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "segmentIds", "2")}},
		{"deleted segment", []string{ids[0], ids[3]}, []string{goneSeg, s2},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "segmentIds", "0")}},
		{"segment of another workspace", []string{ids[0], ids[1], ids[3]}, []string{s0, otherSeg, s1},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "segmentIds", "1")}},
		{"malformed segment ID", []string{ids[3]}, []string{s2, "S_"},
			[]wantUserError{userErrAt("INVALID", "input", "segmentIds", "1")}},
		{"contact ID in segmentIds", []string{ids[3]}, []string{ids[4], s2},
			[]wantUserError{userErrAt("INVALID", "input", "segmentIds", "0")}},
		{"every bad element named", []string{absentID(globalid.Contact, 1), ids[0], otherContacts[1], gone},
			[]string{s0, absentID(globalid.Segment, 2), otherSeg},
			[]wantUserError{
				userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "contactIds", "2"), userErrAt("NOT_FOUND", "input", "contactIds", "3"),
				userErrAt("NOT_FOUND", "input", "segmentIds", "1"), userErrAt("NOT_FOUND", "input", "segmentIds", "2"),
			}},
		{"every malformed element named", []string{"x", ids[0], s0}, []string{ids[1], s0, "y"},
			[]wantUserError{
				userErrAt("INVALID", "input", "contactIds", "0"), userErrAt("INVALID", "input", "contactIds", "2"),
				userErrAt("INVALID", "input", "segmentIds", "0"), userErrAt("INVALID", "input", "segmentIds", "2"),
			}},
		{"malformed and unknown elements named", []string{"x", ids[3], absentID(globalid.Contact, 1)}, []string{s2, absentID(globalid.Segment, 1), ids[0]},
			[]wantUserError{
				userErrAt("INVALID", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "contactIds", "2"),
				userErrAt("NOT_FOUND", "input", "segmentIds", "1"), userErrAt("INVALID", "input", "segmentIds", "2"),
			}},
		{"the same unknown contact twice", []string{absentID(globalid.Contact, 1), ids[3], absentID(globalid.Contact, 1)}, []string{s2},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "contactIds", "2")}},
		{"1001 contacts", append(absentIDs(globalid.Contact, 1000), ids[3]), []string{s2},
			[]wantUserError{userErrAt("TOO_MANY", "input", "contactIds")}},
		{"101 segments", []string{ids[3]}, append(absentIDs(globalid.Segment, 100), s2),
			[]wantUserError{userErrAt("TOO_MANY", "input", "segmentIds")}},
	}
	for _, m := range membershipMutations {
		for _, tc := range cases {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				c, other := c.on(t), other.on(t)
				before, otherBefore := c.dbState(), other.dbState()
				p := m.run(c, tc.contacts, tc.segments)
				checkUserErrors(t, p.UserErrors, tc.want...)
				if len(p.Segments) != 0 || m.count(p) != 0 {
					t.Errorf("refused, yet segments %v and count %d", idsOf(p.Segments), m.count(p))
				}
				c.unchanged(before)
				other.unchanged(otherBefore)
			})
		}
	}
	c.checkCount(s0, 2)
	c.checkCount(s1, 1)
	c.checkCount(s2, 0)
	other.checkCount(otherSeg, 2)
}

// TestAssignContactsToSegments covers what an accepted assignment does: memberships,
// exact counts, input order, idempotence, repeats, and when updatedAt moves.
func TestAssignContactsToSegments(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(140_000, 6)...)
	gamma := c.addSegment("gamma", ids[0])
	alpha := c.addSegment("Alpha")
	beta := c.addSegment("beta", ids[0], ids[1])
	untouched := c.addSegment("Untouched", ids[5])

	t.Run("new and existing memberships", func(t *testing.T) {
		c := c.on(t)
		before := map[string]*segment{gamma: c.segment(gamma), alpha: c.segment(alpha), beta: c.segment(beta), untouched: c.segment(untouched)}
		// 3 contacts x 3 segments = 9 pairs, of which ids[0] in gamma, ids[0] and
		// ids[1] in beta exist.
		p := c.assign([]string{ids[0], ids[1], ids[2]}, []string{beta, gamma, alpha})
		checkUserErrors(t, p.UserErrors)
		if p.AssignedCount != 6 {
			t.Errorf("assignedCount %d, want 6", p.AssignedCount)
		}
		if got := idsOf(p.Segments); !slices.Equal(got, []string{beta, gamma, alpha}) {
			t.Errorf("segments %v, want input order %v", got, []string{beta, gamma, alpha})
		}
		for _, s := range p.Segments {
			if s.ContactCount != 3 {
				t.Errorf("%s: payload contactCount %d, want 3", s.Name, s.ContactCount)
			}
			if !mustTime(t, s.UpdatedAt).After(mustTime(t, before[s.ID].UpdatedAt)) {
				t.Errorf("%s: updatedAt %s did not move", s.Name, s.UpdatedAt)
			}
		}
		c.checkPayloadCounts(p.Segments)
		for _, s := range []string{alpha, beta, gamma} {
			c.checkCount(s, 3)
		}
		c.checkCount(untouched, 1)
		if s := c.segment(untouched); asJSON(t, s) != asJSON(t, before[untouched]) {
			t.Errorf("segment not named changed: %+v", s)
		}
	})

	t.Run("contact segments ordered by name", func(t *testing.T) {
		c := c.on(t)
		for _, id := range ids[:3] {
			ct := c.contact(id)
			var names []string
			for _, s := range ct.Segments {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, []string{"Alpha", "beta", "gamma"}) {
				t.Errorf("contact %s segments %v", id, names)
			}
		}
		if ct := c.contact(ids[3]); len(ct.Segments) != 0 {
			t.Errorf("unassigned contact in %v", idsOf(ct.Segments))
		}
		// In no segment is an empty list, not null: the loader has no entry for it.
		res := c.post(`query($id: ID!) { contact(id: $id) { segments { id } } }`, map[string]any{"id": ids[3]})
		if want := `{"contact":{"segments":[]}}`; string(res.Data) != want || len(res.Errors) > 0 {
			t.Errorf("unassigned contact: %s %+v, want %s", res.Data, res.Errors, want)
		}
	})

	t.Run("again is a no-op", func(t *testing.T) {
		c := c.on(t)
		before := c.dbState()
		p := c.assign([]string{ids[2], ids[1], ids[0]}, []string{alpha, gamma, beta})
		checkUserErrors(t, p.UserErrors)
		if p.AssignedCount != 0 || len(p.Segments) != 3 {
			t.Errorf("assignedCount %d, %d segments", p.AssignedCount, len(p.Segments))
		}
		c.checkPayloadCounts(p.Segments)
		c.unchanged(before) // updatedAt included
	})

	t.Run("repeats count once", func(t *testing.T) {
		c := c.on(t)
		p := c.assign([]string{ids[3], ids[4], ids[3], ids[4], ids[0]}, []string{untouched, alpha, untouched})
		checkUserErrors(t, p.UserErrors)
		// ids[3], ids[4] into both; ids[0] into Untouched only (it is in Alpha).
		if p.AssignedCount != 5 {
			t.Errorf("assignedCount %d, want 5", p.AssignedCount)
		}
		if got := idsOf(p.Segments); !slices.Equal(got, []string{untouched, alpha}) {
			t.Errorf("segments %v, want %v once each", got, []string{untouched, alpha})
		}
		c.checkPayloadCounts(p.Segments)
		c.checkCount(untouched, 4)
		c.checkCount(alpha, 5)
	})

	t.Run("empty lists", func(t *testing.T) {
		c := c.on(t)
		before := c.dbState()
		p := c.assign(nil, []string{gamma})
		checkUserErrors(t, p.UserErrors)
		if p.AssignedCount != 0 || !slices.Equal(idsOf(p.Segments), []string{gamma}) {
			t.Errorf("%+v", p)
		}
		p = c.assign(ids[:2], nil)
		checkUserErrors(t, p.UserErrors)
		if p.AssignedCount != 0 || len(p.Segments) != 0 {
			t.Errorf("%+v", p)
		}
		c.unchanged(before)
	})

	t.Run("segment contacts", func(t *testing.T) {
		c := c.on(t)
		var out struct {
			Segment struct {
				Contacts struct {
					TotalCount int `json:"totalCount"`
					Nodes      []struct {
						ID string `json:"id"`
					} `json:"nodes"`
				} `json:"contacts"`
			} `json:"segment"`
		}
		c.do(`query($id: ID!) { segment(id: $id) { contacts(first: 100) { totalCount nodes { id } } } }`, map[string]any{"id": alpha}, &out)
		var got []string
		for _, n := range out.Segment.Contacts.Nodes {
			got = append(got, n.ID)
		}
		slices.Sort(got)
		if want := c.members(alpha); !slices.Equal(got, want) || out.Segment.Contacts.TotalCount != len(want) {
			t.Errorf("contacts %v (total %d), want %v", got, out.Segment.Contacts.TotalCount, want)
		}
	})
}

// TestRemoveContactsFromSegments covers what an accepted removal does.
func TestRemoveContactsFromSegments(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(150_000, 5)...)
	s0 := c.addSegment("Zero", ids...)
	s1 := c.addSegment("One", ids[:2]...)
	s2 := c.addSegment("Two", ids[4])

	t.Run("existing and missing memberships", func(t *testing.T) {
		c := c.on(t)
		before := c.segment(s1)
		// ids[0], ids[1], ids[2] out of s1 and s0: s1 holds two of them, s0 three.
		p := c.remove([]string{ids[2], ids[1], ids[0]}, []string{s1, s0})
		checkUserErrors(t, p.UserErrors)
		if p.RemovedCount != 5 {
			t.Errorf("removedCount %d, want 5", p.RemovedCount)
		}
		if got := idsOf(p.Segments); !slices.Equal(got, []string{s1, s0}) {
			t.Errorf("segments %v, want input order", got)
		}
		if p.Segments[0].ContactCount != 0 || p.Segments[1].ContactCount != 2 {
			t.Errorf("counts %d, %d; want 0, 2", p.Segments[0].ContactCount, p.Segments[1].ContactCount)
		}
		if !mustTime(t, p.Segments[0].UpdatedAt).After(mustTime(t, before.UpdatedAt)) {
			t.Errorf("updatedAt did not move")
		}
		c.checkPayloadCounts(p.Segments)
		c.checkCount(s0, 2)
		c.checkCount(s1, 0)
		c.checkCount(s2, 1)
		want := []string{ids[3], ids[4]}
		slices.Sort(want) // as members sorts: global IDs do not sort as their numbers
		if got := c.members(s0); !slices.Equal(got, want) {
			t.Errorf("members %v, want %v", got, want)
		}
		for _, id := range ids[:3] {
			if ct := c.contact(id); ct == nil || len(ct.Segments) != 0 {
				t.Errorf("contact %s: %+v", id, ct)
			}
		}
		if ct := c.contact(ids[4]); !slices.Equal(idsOf(ct.Segments), []string{s2, s0}) {
			t.Errorf("contact segments %v, want Two, Zero", idsOf(ct.Segments))
		}
	})

	t.Run("again is a no-op", func(t *testing.T) {
		c := c.on(t)
		before := c.dbState()
		p := c.remove([]string{ids[0], ids[1], ids[2]}, []string{s0, s1})
		checkUserErrors(t, p.UserErrors)
		if p.RemovedCount != 0 || len(p.Segments) != 2 {
			t.Errorf("removedCount %d, %d segments", p.RemovedCount, len(p.Segments))
		}
		c.unchanged(before)
	})

	t.Run("repeats count once", func(t *testing.T) {
		c := c.on(t)
		p := c.remove([]string{ids[4], ids[4], ids[3]}, []string{s2, s0, s2, s0})
		checkUserErrors(t, p.UserErrors)
		if p.RemovedCount != 3 {
			t.Errorf("removedCount %d, want 3", p.RemovedCount)
		}
		if got := idsOf(p.Segments); !slices.Equal(got, []string{s2, s0}) {
			t.Errorf("segments %v", got)
		}
		c.checkPayloadCounts(p.Segments)
		c.checkCount(s0, 0)
		c.checkCount(s2, 0)
	})

	t.Run("contacts stay", func(t *testing.T) {
		if n := c.on(t).contactCount(); n != 5 {
			t.Errorf("%d contacts, want 5", n)
		}
	})
}

// TestBulkChangesReadSegmentsWhenAsked: assigning, removing and deleting contacts
// read the segments back (a statement of their own) only when the payload selects
// them, through a fragment or not, and not when @include leaves them out; the change
// is the same either way.
func TestBulkChangesReadSegmentsWhenAsked(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(160_000, 4)...)
	seg := c.addSegment("Synced")
	const (
		assignCounted = `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount userErrors { code } } }`
		removeCounted = `mutation($in: RemoveContactsFromSegmentsInput!) { removeContactsFromSegments(input: $in) { removedCount userErrors { code } } }`
	)
	// change runs doc on contacts and returns the statements it sent and its payload.
	change := func(t *testing.T, doc string, vars map[string]any, contacts []string) (int64, membershipPayload) {
		t.Helper()
		vars["in"] = map[string]any{"contactIds": contacts, "segmentIds": []string{seg}}
		res := c.post(doc, vars)
		var out map[string]membershipPayload
		if err := json.Unmarshal(res.Data, &out); len(res.Errors) > 0 || err != nil || len(out) != 1 {
			t.Fatalf("%s: %s %+v %v", doc, res.Data, res.Errors, err)
		}
		for _, p := range out {
			checkUserErrors(t, p.UserErrors)
			return c.statements(), p
		}
		return 0, membershipPayload{}
	}
	withSegments, p := change(t, assignDoc, map[string]any{}, ids[:1])
	if p.AssignedCount != 1 || len(p.Segments) != 1 || p.Segments[0].ContactCount != 1 {
		t.Fatalf("with segments: %+v; want 1 assigned, the segment with 1 contact", p)
	}
	for _, tc := range []struct {
		name, doc string
		vars      map[string]any
		segments  bool
	}{
		{"counted", assignCounted, map[string]any{}, false},
		{"in a fragment", `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { ...P } }
			fragment P on AssignContactsToSegmentsPayload { assignedCount segments { contactCount } userErrors { code } }`, map[string]any{}, true},
		{"left out by @include", `mutation($in: AssignContactsToSegmentsInput!, $more: Boolean!) { assignContactsToSegments(input: $in) {
			assignedCount segments @include(if: $more) { contactCount } userErrors { code } } }`, map[string]any{"more": false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			c.post(removeCounted, map[string]any{"in": map[string]any{"contactIds": ids[1:], "segmentIds": []string{seg}}})
			n, p := change(t, tc.doc, tc.vars, ids[1:])
			want := withSegments - 1
			if tc.segments {
				want = withSegments
				if len(p.Segments) != 1 || p.Segments[0].ContactCount != 4 {
					t.Errorf("segments %+v; want the segment with its 4 contacts", p.Segments)
				}
			}
			if n != want {
				t.Errorf("%d statements; want %d (%d with segments)", n, want, withSegments)
			}
			if all := slices.Sorted(slices.Values(ids)); p.AssignedCount != 3 || !slices.Equal(c.members(seg), all) {
				t.Errorf("assignedCount %d, members %v; want 3, all four contacts", p.AssignedCount, c.members(seg))
			}
		})
	}
	t.Run("removal counted", func(t *testing.T) {
		c := c.on(t)
		n, p := change(t, removeCounted, map[string]any{}, ids[1:])
		if n != withSegments-1 || p.RemovedCount != 3 || len(c.members(seg)) != 1 {
			t.Errorf("%d statements, removedCount %d, %d members left; want %d, 3, 1", n, p.RemovedCount, len(c.members(seg)), withSegments-1)
		}
	})
	t.Run("deletion", func(t *testing.T) {
		c := c.on(t)
		p := c.deleteContacts(ids[0])
		checkUserErrors(t, p.UserErrors)
		withSegments := c.statements()
		if len(p.Segments) != 1 || p.Segments[0].ContactCount != 0 {
			t.Errorf("segments %+v; want the segment, now empty", p.Segments)
		}
		var out struct {
			DeleteContacts deleteContactsPayload `json:"deleteContacts"`
		}
		c.do(`mutation($in: DeleteContactsInput!) { deleteContacts(input: $in) { deletedContactIds userErrors { code } } }`,
			map[string]any{"in": map[string]any{"ids": ids[1:2]}}, &out)
		checkUserErrors(t, out.DeleteContacts.UserErrors)
		if n := c.statements(); n != withSegments-1 || !slices.Equal(out.DeleteContacts.DeletedContactIDs, ids[1:2]) {
			t.Errorf("%d statements, deleted %v; want %d, one fewer than with segments, and %v", n, out.DeleteContacts.DeletedContactIDs, withSegments-1, ids[1:2])
		}
		var left int
		if err := c.store.DB().QueryRow("SELECT count(*) FROM contacts WHERE workspace_id = $1", c.ws.ID).Scan(&left); err != nil || left != 2 {
			t.Errorf("%d contacts left, %v; want 2", left, err)
		}
	})
}

// TestMembershipMaximum proves that one call takes exactly 1,000 contacts and 100
// segments, and refuses one more of either without changing anything.
func TestMembershipMaximum(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(200_000, 1000)...)
	extra := c.addContacts(phones(201_000, 1)...)[0]
	var segs []string
	for i := range 101 {
		segs = append(segs, c.addSegment(fmt.Sprintf("Max %03d", i)))
	}
	all := append(slices.Clone(ids), extra)

	for _, m := range membershipMutations {
		t.Run(m.name+"/1001 contacts", func(t *testing.T) {
			c := c.on(t)
			before := c.dbState()
			p := m.run(c, all, segs[:1])
			checkUserErrors(t, p.UserErrors, userErrAt("TOO_MANY", "input", "contactIds"))
			c.unchanged(before)
		})
		t.Run(m.name+"/101 segments", func(t *testing.T) {
			c := c.on(t)
			before := c.dbState()
			p := m.run(c, ids[:1], segs)
			checkUserErrors(t, p.UserErrors, userErrAt("TOO_MANY", "input", "segmentIds"))
			c.unchanged(before)
		})
		t.Run(m.name+"/1001 contacts and 101 segments", func(t *testing.T) {
			c := c.on(t)
			before := c.dbState()
			p := m.run(c, all, segs)
			checkUserErrors(t, p.UserErrors, userErrAt("TOO_MANY", "input", "contactIds"), userErrAt("TOO_MANY", "input", "segmentIds"))
			c.unchanged(before)
		})
	}

	t.Run("assign 1000 x 100", func(t *testing.T) {
		c := c.on(t)
		p := c.assign(ids, segs[:100])
		checkUserErrors(t, p.UserErrors)
		if p.AssignedCount != 100_000 {
			t.Errorf("assignedCount %d, want 100000", p.AssignedCount)
		}
		if !slices.Equal(idsOf(p.Segments), segs[:100]) {
			t.Errorf("segments not in input order")
		}
		for _, s := range p.Segments {
			if s.ContactCount != 1000 {
				t.Fatalf("%s: contactCount %d, want 1000", s.Name, s.ContactCount)
			}
		}
		c.checkPayloadCounts(p.Segments)
		c.checkCount(segs[100], 0)
	})

	t.Run("contact in 100 segments", func(t *testing.T) {
		ct := c.on(t).contact(ids[999])
		if len(ct.Segments) != 100 || ct.Segments[0].Name != "Max 000" || ct.Segments[99].Name != "Max 099" {
			t.Errorf("%d segments", len(ct.Segments))
		}
	})

	t.Run("assign 1000 x 100 again", func(t *testing.T) {
		c := c.on(t)
		// The extra contact replaces one already there: only its 100 memberships are new.
		p := c.assign(append(slices.Clone(ids[1:]), extra), segs[:100])
		checkUserErrors(t, p.UserErrors)
		if p.AssignedCount != 100 {
			t.Errorf("assignedCount %d, want 100", p.AssignedCount)
		}
		c.checkPayloadCounts(p.Segments)
	})

	t.Run("remove 1000 x 100", func(t *testing.T) {
		c := c.on(t)
		p := c.remove(ids, segs[:100])
		checkUserErrors(t, p.UserErrors)
		if p.RemovedCount != 100_000 {
			t.Errorf("removedCount %d, want 100000", p.RemovedCount)
		}
		for _, s := range p.Segments {
			if s.ContactCount != 1 {
				t.Fatalf("%s: contactCount %d, want 1", s.Name, s.ContactCount)
			}
		}
		c.checkPayloadCounts(p.Segments)
	})

	t.Run("delete 1000 contacts", func(t *testing.T) {
		c := c.on(t)
		p := c.deleteContacts(append(slices.Clone(ids[1:]), extra)...)
		checkUserErrors(t, p.UserErrors)
		if len(p.DeletedContactIDs) != 1000 || len(p.Segments) != 100 {
			t.Errorf("%d deleted, %d segments", len(p.DeletedContactIDs), len(p.Segments))
		}
		for _, s := range p.Segments {
			if s.ContactCount != 0 {
				t.Fatalf("%s: contactCount %d, want 0", s.Name, s.ContactCount)
			}
		}
		c.checkPayloadCounts(p.Segments)
		if n := c.contactCount(); n != 1 {
			t.Errorf("%d contacts left, want 1", n)
		}
	})
}

// nestedArrays is levels arrays, each the only element of the one around it.
func nestedArrays(levels int) any {
	var v any = "x"
	for range levels {
		v = []any{v}
	}
	return v
}

// TestUpsertContactsRefused proves that a bad entry refuses the whole upsert, naming
// each bad value, and changes nothing.
func TestUpsertContactsRefused(t *testing.T) {
	c := mutClient{newAPI(t)}
	existing := c.upsert(map[string]any{"phone": "+919800000001", "name": "Asha", "email": "asha@example.com", "attributes": map[string]any{"city": "Pune"}})
	checkUserErrors(t, existing.UserErrors)
	good := map[string]any{"phone": "+919800000002", "name": "New"}
	update := map[string]any{"phone": "+919800000001", "name": "Changed"}
	cases := []struct {
		name    string
		entries []map[string]any
		want    []wantUserError
	}{
		{"phone without country code", []map[string]any{good, {"phone": "98765 43210"}},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "1", "phone")}},
		{"national format", []map[string]any{{"phone": "09876543210"}, update},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "0", "phone")}},
		{"letters", []map[string]any{{"phone": "call me"}}, []wantUserError{userErrAt("INVALID", "input", "contacts", "0", "phone")}},
		{"letters after the country code", []map[string]any{good, {"phone": "+91 98765 HELLO"}, {"phone": "+1-800-GO-FEDEX"}},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "1", "phone"), userErrAt("INVALID", "input", "contacts", "2", "phone")}},
		{"too short", []map[string]any{{"phone": "+91 123"}}, []wantUserError{userErrAt("INVALID", "input", "contacts", "0", "phone")}},
		{"too long", []map[string]any{{"phone": "+91 98765 43210 12345"}}, []wantUserError{userErrAt("INVALID", "input", "contacts", "0", "phone")}},
		{"unknown country code", []map[string]any{{"phone": "+999 1234567"}}, []wantUserError{userErrAt("INVALID", "input", "contacts", "0", "phone")}},
		{"valid in Germany, longer than E.164", []map[string]any{good, {"phone": "+49 30 123779185060"}}, []wantUserError{userErrAt("INVALID", "input", "contacts", "1", "phone")}},
		{"empty phone", []map[string]any{good, update, {"phone": ""}}, []wantUserError{userErrAt("BLANK", "input", "contacts", "2", "phone")}},
		{"invalid email", []map[string]any{update, {"phone": "+919800000003", "email": "not-an-email"}},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "1", "email")}},
		{"email with a display name", []map[string]any{{"phone": "+919800000003", "email": "Asha <asha@example.com>"}},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "0", "email")}},
		{"name of 256 characters", []map[string]any{{"phone": "+919800000003", "name": strings.Repeat("ñ", 256)}},
			[]wantUserError{userErrAt("TOO_LONG", "input", "contacts", "0", "name")}},
		{"attributes over 16 KB", []map[string]any{{"phone": "+919800000003", "attributes": map[string]any{"blob": strings.Repeat("x", 16<<10)}}},
			[]wantUserError{userErrAt("TOO_LONG", "input", "contacts", "0", "attributes")}},
		{"blank attribute name", []map[string]any{update, {"phone": "+919800000003", "attributes": map[string]any{" ": 1}}},
			[]wantUserError{userErrAt("BLANK", "input", "contacts", "1", "attributes")}},
		{"attributes nested 11 levels", []map[string]any{update, {"phone": "+919800000003", "attributes": map[string]any{"d": nestedArrays(11)}}},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "1", "attributes")}},
		{"attributes nested 8,000 levels", []map[string]any{{"phone": "+919800000003", "attributes": map[string]any{"d": nestedArrays(8_000)}}},
			[]wantUserError{userErrAt("INVALID", "input", "contacts", "0", "attributes")}},
		{"every bad value named", []map[string]any{
			{"phone": "12345", "email": "@"}, good, {"phone": "+919800000004", "name": strings.Repeat("n", 256)}, update, {"phone": "nope"},
		}, []wantUserError{
			userErrAt("INVALID", "input", "contacts", "0", "phone"), userErrAt("INVALID", "input", "contacts", "0", "email"),
			userErrAt("TOO_LONG", "input", "contacts", "2", "name"), userErrAt("INVALID", "input", "contacts", "4", "phone"),
		}},
		{"1001 contacts", func() []map[string]any {
			var in []map[string]any
			for _, p := range phones(300_000, 1001) {
				in = append(in, map[string]any{"phone": p})
			}
			return in
		}(), []wantUserError{userErrAt("TOO_MANY", "input", "contacts")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			before := c.dbState()
			p := c.upsert(tc.entries...)
			checkUserErrors(t, p.UserErrors, tc.want...)
			if len(p.Contacts) != 0 || p.CreatedCount != 0 || p.UpdatedCount != 0 {
				t.Errorf("refused, yet %d contacts, created %d, updated %d", len(p.Contacts), p.CreatedCount, p.UpdatedCount)
			}
			c.unchanged(before)
		})
	}
}

// A phone given exactly as a contact of the workspace has it is that contact's (a
// sync sends back the phones it was given), even where its numbering plan, changed
// since it was stored, rejects it or would write it otherwise: such a stored phone is
// still updated by it. Given in any other form, or by another workspace, it is
// checked as any phone is. Only such doubtful phones are looked up: an upsert of
// valid phones sends as many statements as one of phones that cannot be stored as
// given.
func TestUpsertContactsKnownPhones(t *testing.T) {
	c := mutClient{newAPI(t)}
	const legacy = "+9112345"         // E.164 in form (the table's check) but too short for India
	const prefixed = "+4407911123456" // the plan would strip the UK's national prefix: +447911123456
	for _, phone := range []string{legacy, prefixed} {
		if _, err := c.store.DB().Exec(`INSERT INTO contacts (workspace_id, phone, name) VALUES ($1, $2, 'Legacy')`, c.ws.ID, phone); err != nil {
			t.Fatal(err)
		}
	}
	p := c.upsert(map[string]any{"phone": legacy, "attributes": map[string]any{"tier": "gold"}}, map[string]any{"phone": "+919800000009"},
		map[string]any{"phone": prefixed, "attributes": map[string]any{"tier": "silver"}})
	checkUserErrors(t, p.UserErrors)
	if len(p.Contacts) != 3 || p.Contacts[0].Phone != legacy || p.Contacts[0].Name == nil || *p.Contacts[0].Name != "Legacy" || p.Contacts[0].Attributes["tier"] != "gold" ||
		p.Contacts[2].Phone != prefixed || p.Contacts[2].Name == nil || *p.Contacts[2].Name != "Legacy" || p.Contacts[2].Attributes["tier"] != "silver" ||
		p.CreatedCount != 1 || p.UpdatedCount != 2 {
		t.Errorf("upsert of the stored phones and a new one: %+v, created %d, updated %d; want both Legacy updated, one created", p.Contacts, p.CreatedCount, p.UpdatedCount)
	}

	c.upsert(map[string]any{"phone": "+919800000010"})
	valid := c.statements()
	c.upsert(map[string]any{"phone": "+91 98000 00011"})
	if formatted := c.statements(); valid != formatted {
		t.Errorf("an upsert of a new phone in E.164 sent %d statements, of one written with spaces %d: want as many", valid, formatted)
	}
	for name, c := range map[string]mutClient{"in another form": c.on(t), "by another workspace": {c.as(t)}} {
		phone := legacy
		if name == "in another form" {
			phone = "+91 12345"
		}
		before := c.dbState()
		p := c.upsert(map[string]any{"phone": phone, "name": "Other"})
		checkUserErrors(t, p.UserErrors, userErrAt("INVALID", "input", "contacts", "0", "phone"))
		c.unchanged(before)
	}
}

// TestPhonesWithLettersRefused: contactByPhone and updateContact refuse a phone with
// letters as upsertContacts does. libphonenumber read them as a keypad's digits:
// "+91 98765 HELLO" found, and moved a contact to, +919876543556, a stranger's number.
func TestPhonesWithLettersRefused(t *testing.T) {
	c := mutClient{newAPI(t)}
	p := c.upsert(map[string]any{"phone": "+919876543556"}, map[string]any{"phone": "+919800000001"})
	checkUserErrors(t, p.UserErrors)
	c.fails("BAD_USER_INPUT", `query($p: String!) { contactByPhone(phone: $p) { id phone } }`, map[string]any{"p": "+91 98765 HELLO"})
	before := c.dbState()
	u := c.updateContact(map[string]any{"id": p.Contacts[1].ID, "phone": "+91 98765 HELLO"})
	checkUserErrors(t, u.UserErrors, userErrAt("INVALID", "input", "phone"))
	c.unchanged(before)
}

// TestKnownPhonesAreTheirContacts holds contactByPhone and updateContact to
// upsertContacts' rule for stored phones that the numbering plans now refuse or write
// otherwise: given exactly as a contact has it, the phone is that contact's. Before,
// contactByPhone answered INVALID for the one and the other form's contact for the
// other, and an edit that sent a contact's phone back unchanged was refused.
func TestKnownPhonesAreTheirContacts(t *testing.T) {
	c := mutClient{newAPI(t)}
	const legacy = "+9112345"                                     // too short for India's plan today
	const prefixed, rewritten = "+4407911123456", "+447911123456" // the UK plan strips the 0
	for _, phone := range []string{legacy, prefixed} {
		if _, err := c.store.DB().Exec(`INSERT INTO contacts (workspace_id, phone, name) VALUES ($1, $2, 'Legacy')`, c.ws.ID, phone); err != nil {
			t.Fatal(err)
		}
	}
	p := c.upsert(map[string]any{"phone": legacy}, map[string]any{"phone": prefixed}, map[string]any{"phone": rewritten, "name": "Today's"})
	checkUserErrors(t, p.UserErrors)
	legacyID, prefixedID, rewrittenID := p.Contacts[0].ID, p.Contacts[1].ID, p.Contacts[2].ID
	if p.CreatedCount != 1 || legacyID == prefixedID || rewrittenID == legacyID || rewrittenID == prefixedID {
		t.Fatalf("the stored phones and the rewritten one: %+v", p)
	}

	const byPhone = `query($p: String!) { contactByPhone(phone: $p) { id phone } }`
	for phone, want := range map[string]string{
		legacy:              legacyID,
		prefixed:            prefixedID,  // not the contact of the form the plan writes
		rewritten:           rewrittenID, // nor the other way round
		"+44 07911 123456":  rewrittenID, // not in E.164 form: only as the plan writes it
		"0044 7911 123 456": rewrittenID,
	} {
		var out struct{ ContactByPhone *contact }
		c.do(byPhone, map[string]any{"p": phone}, &out)
		if out.ContactByPhone == nil || out.ContactByPhone.ID != want {
			t.Errorf("contactByPhone(%q): %+v, want %s", phone, out.ContactByPhone, want)
		}
	}
	for name, c := range map[string]*api{"in another form": c.api, "by another workspace": c.as(t)} {
		phone := legacy
		if name == "in another form" {
			phone = "+91 12345"
		}
		c.fails("BAD_USER_INPUT", byPhone, map[string]any{"p": phone})
	}

	t.Run("an edit that sends the phone back", func(t *testing.T) {
		c := c.on(t)
		for id, phone := range map[string]string{legacyID: legacy, prefixedID: prefixed} {
			p := c.updateContact(map[string]any{"id": id, "phone": phone, "name": "Edited"})
			checkUserErrors(t, p.UserErrors)
			if p.Contact == nil || p.Contact.Phone != phone || showText(p.Contact.Name) != `"Edited"` {
				t.Errorf("update of %s with its phone: %+v", phone, p.Contact)
			}
		}
	})
	t.Run("another contact's phone, or the phone written otherwise", func(t *testing.T) {
		c := c.on(t)
		for _, in := range []map[string]any{
			{"id": rewrittenID, "phone": legacy, "name": "X"},
			{"id": legacyID, "phone": "+91 12345", "name": "X"},
		} {
			before := c.dbState()
			p := c.updateContact(in)
			checkUserErrors(t, p.UserErrors, userErrAt("INVALID", "input", "phone"))
			c.unchanged(before)
		}
	})
}

// TestUpsertContacts covers what an accepted upsert does: phone normalization,
// matching by phone, field semantics, attribute merging, and the counts.
func TestUpsertContacts(t *testing.T) {
	c := mutClient{newAPI(t)}

	t.Run("phones are stored in E.164", func(t *testing.T) {
		c := c.on(t)
		for i, raw := range []string{"+91 98765 43210", "0091-98765-43210", "+91 (98765) 43210", " +919876543210 ", "+91.98765.43210"} {
			p := c.upsert(map[string]any{"phone": raw})
			checkUserErrors(t, p.UserErrors)
			if len(p.Contacts) != 1 || p.Contacts[0].Phone != "+919876543210" {
				t.Fatalf("%q: %+v", raw, p.Contacts)
			}
			if wantCreated := map[bool]int{true: 1, false: 0}[i == 0]; p.CreatedCount != wantCreated || p.UpdatedCount != 0 {
				t.Errorf("%q: created %d, updated %d", raw, p.CreatedCount, p.UpdatedCount)
			}
		}
		if n := c.contactCount(); n != 1 {
			t.Errorf("%d contacts, want 1", n)
		}
		p := c.upsert(map[string]any{"phone": "+1 415 555 2671"}, map[string]any{"phone": "+44 20 7946 0958"})
		checkUserErrors(t, p.UserErrors)
		if p.Contacts[0].Phone != "+14155552671" || p.Contacts[1].Phone != "+442079460958" || p.CreatedCount != 2 {
			t.Errorf("%+v", p)
		}
	})

	t.Run("a new contact", func(t *testing.T) {
		c := c.on(t)
		p := c.upsert(map[string]any{"phone": "+919811111111", "name": " Asha ", "email": "asha@example.com",
			"attributes": map[string]any{"city": "Pune", "vip": true, "visits": 3, "tags": []any{"a"}, "gone": nil}})
		checkUserErrors(t, p.UserErrors)
		ct := p.Contacts[0]
		if showText(ct.Name) != `"Asha"` || showText(ct.Email) != `"asha@example.com"` || p.CreatedCount != 1 || p.UpdatedCount != 0 {
			t.Errorf("%+v name %s email %s", p, showText(ct.Name), showText(ct.Email))
		}
		want := map[string]any{"city": "Pune", "vip": true, "visits": float64(3), "tags": []any{"a"}}
		if asJSON(t, ct.Attributes) != asJSON(t, want) {
			t.Errorf("attributes %v, want %v", ct.Attributes, want)
		}
		if ct.CreatedAt != ct.UpdatedAt {
			t.Errorf("createdAt %s, updatedAt %s", ct.CreatedAt, ct.UpdatedAt)
		}
		if got := c.contact(ct.ID); got == nil || asJSON(t, got.Attributes) != asJSON(t, want) || got.Phone != ct.Phone {
			t.Errorf("stored %+v", got)
		}
		bare := c.upsert(map[string]any{"phone": "+919811111112"})
		if b := bare.Contacts[0]; b.Name != nil || b.Email != nil || len(b.Attributes) != 0 || b.Attributes == nil {
			t.Errorf("bare contact %+v", b)
		}
	})

	// Attributes come back as they were given: an integer past 2^53 (a partner's
	// order number) exact, where a float64 would round it, and a decimal as written,
	// from the mutation and from a page.
	t.Run("attribute numbers are exact", func(t *testing.T) {
		c := c.on(t)
		attrs := map[string]any{"orderId": json.Number("9007199254740993"), "score": json.Number("1.50")}
		res := c.post(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []any{
			map[string]any{"phone": "+919811111113", "attributes": attrs}}}})
		page := c.post(`{ contacts(first: 1, search: "+919811111113") { nodes { attributes } } }`, nil)
		for name, data := range map[string]json.RawMessage{"upsertContacts": res.Data, "contacts": page.Data} {
			if !bytes.Contains(data, []byte(`"orderId":9007199254740993`)) || !bytes.Contains(data, []byte(`"score":1.50`)) {
				t.Errorf("%s: attributes not exact: %s", name, data)
			}
		}
	})

	// Each step upserts one entry for the same phone and says what the contact then
	// holds, and whether it counts as updated.
	const phone = "+919822222222"
	steps := []struct {
		name      string
		entry     map[string]any
		wantName  *string
		wantEmail *string
		wantAttrs map[string]any
		updated   bool
	}{
		{"create", map[string]any{"name": "Ravi", "email": "ravi@example.com", "attributes": map[string]any{"city": "Pune", "lang": "mr"}},
			textPtr("Ravi"), textPtr("ravi@example.com"), map[string]any{"city": "Pune", "lang": "mr"}, false},
		{"identical", map[string]any{"name": "Ravi", "email": "ravi@example.com", "attributes": map[string]any{"city": "Pune", "lang": "mr"}},
			textPtr("Ravi"), textPtr("ravi@example.com"), map[string]any{"city": "Pune", "lang": "mr"}, false},
		{"nothing but the phone", map[string]any{},
			textPtr("Ravi"), textPtr("ravi@example.com"), map[string]any{"city": "Pune", "lang": "mr"}, false},
		{"identical with spaces", map[string]any{"name": " Ravi ", "attributes": map[string]any{}},
			textPtr("Ravi"), textPtr("ravi@example.com"), map[string]any{"city": "Pune", "lang": "mr"}, false},
		{"name only", map[string]any{"name": "Ravi K"},
			textPtr("Ravi K"), textPtr("ravi@example.com"), map[string]any{"city": "Pune", "lang": "mr"}, true},
		{"email only", map[string]any{"email": "rk@example.com"},
			textPtr("Ravi K"), textPtr("rk@example.com"), map[string]any{"city": "Pune", "lang": "mr"}, true},
		{"attributes merge", map[string]any{"attributes": map[string]any{"lang": "hi", "tier": "gold"}},
			textPtr("Ravi K"), textPtr("rk@example.com"), map[string]any{"city": "Pune", "lang": "hi", "tier": "gold"}, true},
		{"attribute removed by null", map[string]any{"attributes": map[string]any{"city": nil, "absent": nil}},
			textPtr("Ravi K"), textPtr("rk@example.com"), map[string]any{"lang": "hi", "tier": "gold"}, true},
		{"removing an absent attribute", map[string]any{"attributes": map[string]any{"city": nil}},
			textPtr("Ravi K"), textPtr("rk@example.com"), map[string]any{"lang": "hi", "tier": "gold"}, false},
		{"nested value replaced whole", map[string]any{"attributes": map[string]any{"tier": map[string]any{"level": 2}}},
			textPtr("Ravi K"), textPtr("rk@example.com"), map[string]any{"lang": "hi", "tier": map[string]any{"level": float64(2)}}, true},
		{"name null clears", map[string]any{"name": nil},
			nil, textPtr("rk@example.com"), map[string]any{"lang": "hi", "tier": map[string]any{"level": float64(2)}}, true},
		{"email empty clears", map[string]any{"email": ""},
			nil, nil, map[string]any{"lang": "hi", "tier": map[string]any{"level": float64(2)}}, true},
		{"name empty when already empty", map[string]any{"name": "", "email": nil},
			nil, nil, map[string]any{"lang": "hi", "tier": map[string]any{"level": float64(2)}}, false},
		{"attributes null removes all", map[string]any{"attributes": nil},
			nil, nil, map[string]any{}, true},
		{"attributes null when there are none", map[string]any{"attributes": nil},
			nil, nil, map[string]any{}, false},
		{"all fields", map[string]any{"name": "Ravi", "email": "ravi@example.com", "attributes": map[string]any{"city": "Mumbai"}},
			textPtr("Ravi"), textPtr("ravi@example.com"), map[string]any{"city": "Mumbai"}, true},
	}
	var first, prev contact
	for i, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			c := c.on(t)
			entry := map[string]any{"phone": phone}
			if i%2 == 1 {
				entry["phone"] = "0091 98222 22222" // the same phone, written otherwise
			}
			for k, v := range step.entry {
				entry[k] = v
			}
			p := c.upsert(entry)
			checkUserErrors(t, p.UserErrors)
			if len(p.Contacts) != 1 {
				t.Fatalf("%d contacts", len(p.Contacts))
			}
			got := p.Contacts[0]
			wantCreated, wantUpdated := 0, 0
			if i == 0 {
				wantCreated, first, prev = 1, got, got
			} else if step.updated {
				wantUpdated = 1
			}
			if p.CreatedCount != wantCreated || p.UpdatedCount != wantUpdated {
				t.Errorf("created %d updated %d, want %d %d", p.CreatedCount, p.UpdatedCount, wantCreated, wantUpdated)
			}
			if got.ID != first.ID || got.Phone != phone || got.CreatedAt != first.CreatedAt {
				t.Errorf("another contact: %+v, first %+v", got, first)
			}
			if showText(got.Name) != showText(step.wantName) || showText(got.Email) != showText(step.wantEmail) {
				t.Errorf("name %s email %s, want %s %s", showText(got.Name), showText(got.Email), showText(step.wantName), showText(step.wantEmail))
			}
			if asJSON(t, got.Attributes) != asJSON(t, step.wantAttrs) {
				t.Errorf("attributes %s, want %s", asJSON(t, got.Attributes), asJSON(t, step.wantAttrs))
			}
			before, after := mustTime(t, prev.UpdatedAt), mustTime(t, got.UpdatedAt)
			if i > 0 && step.updated && !after.After(before) {
				t.Errorf("updatedAt %s did not move from %s", got.UpdatedAt, prev.UpdatedAt)
			}
			if i > 0 && !step.updated && !after.Equal(before) {
				t.Errorf("updatedAt moved from %s to %s without a change", prev.UpdatedAt, got.UpdatedAt)
			}
			stored := c.contact(got.ID)
			if stored == nil || asJSON(t, stored.Attributes) != asJSON(t, got.Attributes) || showText(stored.Name) != showText(got.Name) ||
				showText(stored.Email) != showText(got.Email) || stored.UpdatedAt != got.UpdatedAt {
				t.Errorf("stored %+v, payload %+v", stored, got)
			}
			prev = got
		})
	}

	t.Run("same phone twice in one call, new contact", func(t *testing.T) {
		c := c.on(t)
		p := c.upsert(
			map[string]any{"phone": "+919833333333", "name": "First", "attributes": map[string]any{"a": 1, "b": 2}},
			map[string]any{"phone": "+919833333334"},
			map[string]any{"phone": "0091 98333 33333", "email": "x@example.com", "attributes": map[string]any{"b": nil, "c": 3}},
			map[string]any{"phone": "+91 98333 33333", "name": "Second"},
		)
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 2 || p.UpdatedCount != 0 || len(p.Contacts) != 4 {
			t.Fatalf("created %d updated %d, %d contacts", p.CreatedCount, p.UpdatedCount, len(p.Contacts))
		}
		a := p.Contacts[0]
		for _, i := range []int{2, 3} {
			if p.Contacts[i].ID != a.ID || asJSON(t, p.Contacts[i]) != asJSON(t, a) {
				t.Errorf("position %d: %+v, position 0: %+v", i, p.Contacts[i], a)
			}
		}
		if p.Contacts[1].ID == a.ID || p.Contacts[1].Phone != "+919833333334" {
			t.Errorf("position 1: %+v", p.Contacts[1])
		}
		if showText(a.Name) != `"Second"` || showText(a.Email) != `"x@example.com"` || asJSON(t, a.Attributes) != `{"a":1,"c":3}` {
			t.Errorf("entries not applied in order: name %s email %s attributes %s", showText(a.Name), showText(a.Email), asJSON(t, a.Attributes))
		}
		var out struct {
			Contacts struct {
				TotalCount int `json:"totalCount"`
			} `json:"contacts"`
		}
		c.do(`{ contacts(search: "98333333", first: 10) { totalCount } }`, nil, &out)
		if out.Contacts.TotalCount != 2 {
			t.Errorf("%d contacts with the phones, want 2", out.Contacts.TotalCount)
		}
	})

	t.Run("same phone twice in one call, existing contact", func(t *testing.T) {
		c := c.on(t)
		p := c.upsert(
			map[string]any{"phone": "+919833333333", "name": "Third"},
			map[string]any{"phone": "+919833333333", "attributes": nil},
		)
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 0 || p.UpdatedCount != 1 {
			t.Errorf("created %d updated %d, want 0 1", p.CreatedCount, p.UpdatedCount)
		}
		if a := p.Contacts[0]; p.Contacts[1].ID != a.ID || showText(a.Name) != `"Third"` || len(a.Attributes) != 0 || showText(a.Email) != `"x@example.com"` {
			t.Errorf("%+v", p.Contacts)
		}
		// Changes that cancel out leave the contact as it was.
		p = c.upsert(
			map[string]any{"phone": "+919833333333", "name": "Fourth"},
			map[string]any{"phone": "+919833333333", "name": "Third"},
		)
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 0 || p.UpdatedCount != 0 {
			t.Errorf("created %d updated %d, want 0 0", p.CreatedCount, p.UpdatedCount)
		}
	})

	t.Run("input order and counts, mixed", func(t *testing.T) {
		c := c.on(t)
		ps := phones(310_000, 6)
		p := c.upsert(map[string]any{"phone": ps[0], "name": "zero"}, map[string]any{"phone": ps[1], "name": "one"}, map[string]any{"phone": ps[2], "name": "two"})
		checkUserErrors(t, p.UserErrors)
		old := map[string]string{}
		for _, ct := range p.Contacts {
			old[ct.Phone] = ct.ID
		}
		total := c.contactCount()
		// New, unchanged, changed, new, changed: in an order unlike phone order.
		p = c.upsert(
			map[string]any{"phone": ps[5]},
			map[string]any{"phone": ps[2], "name": "two"},
			map[string]any{"phone": ps[0], "name": "ZERO"},
			map[string]any{"phone": ps[3], "name": "three"},
			map[string]any{"phone": ps[1], "email": "one@example.com"},
		)
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 2 || p.UpdatedCount != 2 {
			t.Errorf("created %d updated %d, want 2 2", p.CreatedCount, p.UpdatedCount)
		}
		for i, want := range []string{ps[5], ps[2], ps[0], ps[3], ps[1]} {
			if p.Contacts[i].Phone != want {
				t.Errorf("position %d: phone %s, want %s", i, p.Contacts[i].Phone, want)
			}
			if id, ok := old[want]; ok && p.Contacts[i].ID != id {
				t.Errorf("position %d: a new ID for an existing phone", i)
			}
		}
		if n := c.contactCount(); n != total+2 {
			t.Errorf("%d contacts, want %d", n, total+2)
		}
	})

	t.Run("empty list", func(t *testing.T) {
		c := c.on(t)
		before := c.dbState()
		p := c.upsert()
		checkUserErrors(t, p.UserErrors)
		if len(p.Contacts) != 0 || p.CreatedCount != 0 || p.UpdatedCount != 0 {
			t.Errorf("%+v", p)
		}
		c.unchanged(before)
	})

	t.Run("1000 contacts, then the same 1000", func(t *testing.T) {
		c := c.on(t)
		var in []map[string]any
		for i, ph := range phones(320_000, 1000) {
			in = append(in, map[string]any{"phone": ph, "name": fmt.Sprintf("Bulk %d", i), "attributes": map[string]any{"i": i}})
		}
		p := c.upsert(in...)
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 1000 || p.UpdatedCount != 0 || len(p.Contacts) != 1000 {
			t.Fatalf("created %d updated %d", p.CreatedCount, p.UpdatedCount)
		}
		before := c.dbState()
		p = c.upsert(in...)
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 0 || p.UpdatedCount != 0 {
			t.Errorf("re-upsert: created %d updated %d, want 0 0", p.CreatedCount, p.UpdatedCount)
		}
		c.unchanged(before)
		in[500]["name"] = "Changed"
		p = c.upsert(in...)
		if p.CreatedCount != 0 || p.UpdatedCount != 1 {
			t.Errorf("one change: created %d updated %d, want 0 1", p.CreatedCount, p.UpdatedCount)
		}
	})

	t.Run("memberships and counts untouched", func(t *testing.T) {
		c := c.on(t)
		ids := c.addContacts(phones(330_000, 3)...)
		seg := c.addSegment("Upserted", ids...)
		p := c.upsert(map[string]any{"phone": phones(330_000, 1)[0], "name": "In a segment"}, map[string]any{"phone": phones(330_003, 1)[0]})
		checkUserErrors(t, p.UserErrors)
		if p.Contacts[0].ID != ids[0] {
			t.Errorf("ID changed")
		}
		c.checkCount(seg, 3)
		if ct := c.contact(ids[0]); !slices.Equal(idsOf(ct.Segments), []string{seg}) {
			t.Errorf("segments %v", idsOf(ct.Segments))
		}
	})
}

// TestUpdateContact covers updateContact: refusals, then each way of changing a
// field, and when updatedAt moves.
func TestUpdateContact(t *testing.T) {
	c := mutClient{newAPI(t)}
	ps := phones(400_000, 3)
	p := c.upsert(
		map[string]any{"phone": ps[0], "name": "Meera", "email": "meera@example.com", "attributes": map[string]any{"city": "Pune", "lang": "mr"}},
		map[string]any{"phone": ps[1], "name": "Other"},
	)
	checkUserErrors(t, p.UserErrors)
	ct, otherContact := p.Contacts[0], p.Contacts[1]
	seg := c.addSegment("Has Meera", ct.ID)
	otherWS := mutClient{c.as(t)}
	foreign := otherWS.addContacts(ps[2])[0]

	refusals := []struct {
		name string
		in   map[string]any
		want []wantUserError
	}{
		{"unknown ID", map[string]any{"id": absentID(globalid.Contact, 1), "name": "X"}, []wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"contact of another workspace", map[string]any{"id": foreign, "name": "X"}, []wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"malformed ID", map[string]any{"id": "C_???", "name": "X"}, []wantUserError{userErrAt("INVALID", "input", "id")}},
		{"segment ID", map[string]any{"id": seg, "name": "X"}, []wantUserError{userErrAt("INVALID", "input", "id")}},
		{"phone of another contact", map[string]any{"id": ct.ID, "phone": ps[1], "name": "X"}, []wantUserError{userErrAt("TAKEN", "input", "phone")}},
		{"phone of another contact, written otherwise", map[string]any{"id": ct.ID, "phone": "0091 " + ps[1][3:]}, []wantUserError{userErrAt("TAKEN", "input", "phone")}},
		{"phone without country code", map[string]any{"id": ct.ID, "phone": ps[1][3:]}, []wantUserError{userErrAt("INVALID", "input", "phone")}},
		{"invalid phone", map[string]any{"id": ct.ID, "phone": "+91 12"}, []wantUserError{userErrAt("INVALID", "input", "phone")}},
		{"valid in Germany, shorter than E.164", map[string]any{"id": ct.ID, "phone": "+49 1641"}, []wantUserError{userErrAt("INVALID", "input", "phone")}},
		{"null phone", map[string]any{"id": ct.ID, "phone": nil}, []wantUserError{userErrAt("BLANK", "input", "phone")}},
		{"empty phone", map[string]any{"id": ct.ID, "phone": ""}, []wantUserError{userErrAt("BLANK", "input", "phone")}},
		{"invalid email", map[string]any{"id": ct.ID, "email": "meera@"}, []wantUserError{userErrAt("INVALID", "input", "email")}},
		{"name of 256 characters", map[string]any{"id": ct.ID, "name": strings.Repeat("m", 256)}, []wantUserError{userErrAt("TOO_LONG", "input", "name")}},
		{"attributes over 16 KB", map[string]any{"id": ct.ID, "attributes": map[string]any{"k": strings.Repeat("v", 16<<10)}}, []wantUserError{userErrAt("TOO_LONG", "input", "attributes")}},
		{"attributes nested 11 levels", map[string]any{"id": ct.ID, "attributes": map[string]any{"d": nestedArrays(11)}}, []wantUserError{userErrAt("INVALID", "input", "attributes")}},
		{"several bad values", map[string]any{"id": ct.ID, "phone": "x", "email": "y", "name": strings.Repeat("m", 256)},
			[]wantUserError{userErrAt("INVALID", "input", "phone"), userErrAt("INVALID", "input", "email"), userErrAt("TOO_LONG", "input", "name")}},
	}
	for _, tc := range refusals {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			c, otherWS := c.on(t), otherWS.on(t)
			before, otherBefore := c.dbState(), otherWS.dbState()
			p := c.updateContact(tc.in)
			if p.Contact != nil {
				t.Errorf("contact %+v", p.Contact)
			}
			checkUserErrors(t, p.UserErrors, tc.want...)
			c.unchanged(before)
			otherWS.unchanged(otherBefore)
		})
	}

	steps := []struct {
		name      string
		in        map[string]any
		wantPhone string
		wantName  *string
		wantEmail *string
		wantAttrs string
		moves     bool
	}{
		{"nothing given", map[string]any{}, ps[0], textPtr("Meera"), textPtr("meera@example.com"), `{"city":"Pune","lang":"mr"}`, false},
		{"same values", map[string]any{"phone": "+91 " + ps[0][3:], "name": "Meera ", "email": "meera@example.com", "attributes": map[string]any{"city": "Pune"}},
			ps[0], textPtr("Meera"), textPtr("meera@example.com"), `{"city":"Pune","lang":"mr"}`, false},
		{"name only", map[string]any{"name": "Meera S"}, ps[0], textPtr("Meera S"), textPtr("meera@example.com"), `{"city":"Pune","lang":"mr"}`, true},
		{"phone of a contact of another workspace", map[string]any{"phone": ps[2]}, ps[2], textPtr("Meera S"), textPtr("meera@example.com"), `{"city":"Pune","lang":"mr"}`, true},
		{"phone in international format", map[string]any{"phone": "0091-98-" + ps[0][5:]}, ps[0], textPtr("Meera S"), textPtr("meera@example.com"), `{"city":"Pune","lang":"mr"}`, true},
		{"attributes merge", map[string]any{"attributes": map[string]any{"lang": nil, "tier": 1}}, ps[0], textPtr("Meera S"), textPtr("meera@example.com"), `{"city":"Pune","tier":1}`, true},
		{"name null clears", map[string]any{"name": nil}, ps[0], nil, textPtr("meera@example.com"), `{"city":"Pune","tier":1}`, true},
		{"name again", map[string]any{"name": "Meera S"}, ps[0], textPtr("Meera S"), textPtr("meera@example.com"), `{"city":"Pune","tier":1}`, true},
		{"name blank clears, not BLANK", map[string]any{"name": " \u200b\t "}, ps[0], nil, textPtr("meera@example.com"), `{"city":"Pune","tier":1}`, true},
		{"email empty clears", map[string]any{"email": ""}, ps[0], nil, nil, `{"city":"Pune","tier":1}`, true},
		{"attributes null removes all", map[string]any{"attributes": nil}, ps[0], nil, nil, `{}`, true},
		{"clearing what is clear", map[string]any{"name": "", "email": nil, "attributes": nil}, ps[0], nil, nil, `{}`, false},
		{"all fields", map[string]any{"phone": ps[1][:len(ps[1])-1] + "9", "name": "M", "email": "m@example.com", "attributes": map[string]any{"x": "y"}},
			ps[1][:len(ps[1])-1] + "9", textPtr("M"), textPtr("m@example.com"), `{"x":"y"}`, true},
	}
	prev := ct
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			c := c.on(t)
			in := map[string]any{"id": ct.ID}
			for k, v := range step.in {
				in[k] = v
			}
			p := c.updateContact(in)
			checkUserErrors(t, p.UserErrors)
			got := p.Contact
			if got == nil {
				t.Fatal("no contact")
			}
			if got.ID != ct.ID || got.CreatedAt != ct.CreatedAt || got.Phone != step.wantPhone ||
				showText(got.Name) != showText(step.wantName) || showText(got.Email) != showText(step.wantEmail) || asJSON(t, got.Attributes) != step.wantAttrs {
				t.Errorf("got %s name %s email %s attributes %s; want %s %s %s %s", got.Phone, showText(got.Name), showText(got.Email), asJSON(t, got.Attributes),
					step.wantPhone, showText(step.wantName), showText(step.wantEmail), step.wantAttrs)
			}
			before, after := mustTime(t, prev.UpdatedAt), mustTime(t, got.UpdatedAt)
			if step.moves && !after.After(before) {
				t.Errorf("updatedAt %s did not move from %s", got.UpdatedAt, prev.UpdatedAt)
			}
			if !step.moves && !after.Equal(before) {
				t.Errorf("updatedAt moved from %s to %s without a change", prev.UpdatedAt, got.UpdatedAt)
			}
			stored := c.contact(ct.ID)
			if stored == nil || stored.Phone != got.Phone || stored.UpdatedAt != got.UpdatedAt || asJSON(t, stored.Attributes) != asJSON(t, got.Attributes) {
				t.Errorf("stored %+v, payload %+v", stored, got)
			}
			if !slices.Equal(idsOf(stored.Segments), []string{seg}) {
				t.Errorf("segments %v", idsOf(stored.Segments))
			}
			prev = *got
		})
	}

	t.Run("the old phone is free, the new one found", func(t *testing.T) {
		c := c.on(t)
		var out struct {
			Old, New *contact
		}
		c.do(`query($old: String!, $new: String!) { old: contactByPhone(phone: $old) { id } new: contactByPhone(phone: $new) { id } }`,
			map[string]any{"old": ps[0], "new": prev.Phone}, &out)
		if out.Old != nil || out.New == nil || out.New.ID != ct.ID {
			t.Errorf("old %+v new %+v", out.Old, out.New)
		}
		c.checkCount(seg, 1)
		if o := c.contact(otherContact.ID); o == nil || o.Phone != ps[1] {
			t.Errorf("other contact %+v", o)
		}
		if f := otherWS.on(t).contact(foreign); f == nil || f.Phone != ps[2] {
			t.Errorf("contact of the other workspace %+v", f)
		}
	})
}

// TestDeleteContacts covers deleteContacts: refusals that delete nothing, then a
// deletion that takes the contacts out of their segments with exact counts.
func TestDeleteContacts(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(500_000, 6)...)
	s0 := c.addSegment("Zero", ids[0], ids[1], ids[2])
	s1 := c.addSegment("One", ids[1], ids[3])
	s2 := c.addSegment("Two", ids[4])
	otherWS := mutClient{c.as(t)}
	foreign := otherWS.addContacts(phones(500_000, 1)...)[0]
	foreignSeg := otherWS.addSegment("Zero", foreign)

	refusals := []struct {
		name string
		ids  []string
		want []wantUserError
	}{
		{"unknown ID", []string{ids[0], absentID(globalid.Contact, 1)}, []wantUserError{userErrAt("NOT_FOUND", "input", "ids", "1")}},
		{"contact of another workspace", []string{foreign, ids[0], ids[1]}, []wantUserError{userErrAt("NOT_FOUND", "input", "ids", "0")}},
		{"malformed ID", []string{ids[0], "nope", ids[1]}, []wantUserError{userErrAt("INVALID", "input", "ids", "1")}},
		{"segment ID", []string{ids[0], s0}, []wantUserError{userErrAt("INVALID", "input", "ids", "1")}},
		{"every bad ID named", []string{absentID(globalid.Contact, 1), ids[2], foreign, absentID(globalid.Contact, 2)},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "ids", "0"), userErrAt("NOT_FOUND", "input", "ids", "2"), userErrAt("NOT_FOUND", "input", "ids", "3")}},
		{"malformed and unknown IDs named", []string{"nope", ids[2], foreign, s1},
			[]wantUserError{userErrAt("INVALID", "input", "ids", "0"), userErrAt("NOT_FOUND", "input", "ids", "2"), userErrAt("INVALID", "input", "ids", "3")}},
		{"1001 IDs", append(absentIDs(globalid.Contact, 1000), ids[0]), []wantUserError{userErrAt("TOO_MANY", "input", "ids")}},
	}
	for _, tc := range refusals {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			c, otherWS := c.on(t), otherWS.on(t)
			before, otherBefore := c.dbState(), otherWS.dbState()
			p := c.deleteContacts(tc.ids...)
			checkUserErrors(t, p.UserErrors, tc.want...)
			if len(p.DeletedContactIDs) != 0 || len(p.Segments) != 0 {
				t.Errorf("refused, yet deleted %v, segments %v", p.DeletedContactIDs, idsOf(p.Segments))
			}
			c.unchanged(before)
			otherWS.unchanged(otherBefore)
		})
	}

	t.Run("deleted", func(t *testing.T) {
		c := c.on(t)
		untouched := c.segment(s2)
		p := c.deleteContacts(ids[3], ids[1], ids[3], ids[5])
		checkUserErrors(t, p.UserErrors)
		if want := []string{ids[3], ids[1], ids[5]}; !slices.Equal(p.DeletedContactIDs, want) {
			t.Errorf("deletedContactIds %v, want %v", p.DeletedContactIDs, want)
		}
		got := idsOf(p.Segments)
		slices.Sort(got)
		want := []string{s0, s1}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("segments %v, want %v", got, want)
		}
		counts := map[string]int{}
		for _, s := range p.Segments {
			counts[s.ID] = s.ContactCount
		}
		if counts[s0] != 2 || counts[s1] != 0 {
			t.Errorf("payload counts %v", counts)
		}
		c.checkPayloadCounts(p.Segments)
		c.checkCount(s0, 2)
		c.checkCount(s1, 0)
		c.checkCount(s2, 1)
		if s := c.segment(s2); asJSON(t, s) != asJSON(t, untouched) {
			t.Errorf("segment without deleted contacts changed: %+v", s)
		}
		for _, id := range []string{ids[1], ids[3], ids[5]} {
			if ct := c.contact(id); ct != nil {
				t.Errorf("contact %s still found", id)
			}
		}
		if n := c.contactCount(); n != 3 {
			t.Errorf("%d contacts, want 3", n)
		}
		otherWS.on(t).checkCount(foreignSeg, 1)
	})

	t.Run("deleted again", func(t *testing.T) {
		c := c.on(t)
		before := c.dbState()
		p := c.deleteContacts(ids[0], ids[1])
		checkUserErrors(t, p.UserErrors, userErrAt("NOT_FOUND", "input", "ids", "1"))
		c.unchanged(before)
	})

	t.Run("the phone is free again", func(t *testing.T) {
		c := c.on(t)
		p := c.upsert(map[string]any{"phone": phones(500_001, 1)[0]})
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 1 || p.Contacts[0].ID == ids[1] || len(c.contact(p.Contacts[0].ID).Segments) != 0 {
			t.Errorf("%+v", p)
		}
	})

	t.Run("empty list", func(t *testing.T) {
		c := c.on(t)
		before := c.dbState()
		p := c.deleteContacts()
		checkUserErrors(t, p.UserErrors)
		if len(p.DeletedContactIDs) != 0 || len(p.Segments) != 0 {
			t.Errorf("%+v", p)
		}
		c.unchanged(before)
	})
}

// TestContactCountStaysExact runs a long random sequence of every kind of committed
// change and checks, after each one, every segment's count against a model, the
// memberships in the database, the counts in the payload, Segment.contacts and
// Contact.segments.
func TestContactCountStaysExact(t *testing.T) {
	c := mutClient{newAPI(t)}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]map[string]bool{} // segment -> contacts
	var contacts []string
	nextPhone, nextSegment := 600_000, 0

	pick := func(list []string, max int) []string {
		n := rng.IntN(max + 1)
		out := make([]string, 0, n)
		for range n {
			if len(list) > 0 {
				out = append(out, list[rng.IntN(len(list))]) // repeats on purpose
			}
		}
		return out
	}
	segList := func() []string {
		var out []string
		for s := range model {
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
	checkPayload := func(t *testing.T, segs []segment) {
		t.Helper()
		for _, s := range segs {
			if s.ContactCount != len(model[s.ID]) {
				t.Errorf("payload: %s has %d contacts, model %d", s.Name, s.ContactCount, len(model[s.ID]))
			}
		}
	}
	verify := func(t *testing.T) {
		t.Helper()
		c := c.on(t)
		var out struct {
			Segments struct {
				TotalCount int `json:"totalCount"`
				Nodes      []struct {
					ID           string `json:"id"`
					ContactCount int    `json:"contactCount"`
					Contacts     struct {
						TotalCount int `json:"totalCount"`
					} `json:"contacts"`
				} `json:"nodes"`
			} `json:"segments"`
			Contacts struct {
				TotalCount int `json:"totalCount"`
				Nodes      []struct {
					ID       string `json:"id"`
					Segments []struct {
						ID string `json:"id"`
					} `json:"segments"`
				} `json:"nodes"`
			} `json:"contacts"`
		}
		c.do(`{ segments(first: 100) { totalCount nodes { id contactCount contacts(first: 1) { totalCount } } }
			contacts(first: 100) { totalCount nodes { id segments { id } } } }`, nil, &out)
		if out.Segments.TotalCount != len(model) || out.Contacts.TotalCount != len(contacts) {
			t.Fatalf("%d segments, %d contacts; model %d, %d", out.Segments.TotalCount, out.Contacts.TotalCount, len(model), len(contacts))
		}
		for _, s := range out.Segments.Nodes {
			want := len(model[s.ID])
			real := c.realCount(mustDecode(t, globalid.Segment, s.ID))
			if s.ContactCount != want || s.Contacts.TotalCount != want || real != want {
				t.Errorf("segment %s: contactCount %d, contacts.totalCount %d, memberships %d; model %d", s.ID, s.ContactCount, s.Contacts.TotalCount, real, want)
			}
		}
		for _, ct := range out.Contacts.Nodes {
			var got, want []string
			for _, s := range ct.Segments {
				got = append(got, s.ID)
			}
			for s, members := range model {
				if members[ct.ID] {
					want = append(want, s)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("contact %s in %v, model %v", ct.ID, got, want)
			}
		}
	}

	ops := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"upsert", func(t *testing.T) {
			var in []map[string]any
			n := 1 + rng.IntN(8)
			if len(contacts) > 80 { // stay on one page of contacts
				n = 0
			}
			for _, p := range phones(nextPhone, n) {
				in = append(in, map[string]any{"phone": p, "name": p})
			}
			nextPhone += n
			for _, id := range pick(contacts, 3) { // existing ones too: no count changes
				in = append(in, map[string]any{"phone": c.on(t).contact(id).Phone, "attributes": map[string]any{"seen": nextPhone}})
			}
			p := c.on(t).upsert(in...)
			checkUserErrors(t, p.UserErrors)
			if p.CreatedCount != n {
				t.Fatalf("created %d, want %d", p.CreatedCount, n)
			}
			for _, ct := range p.Contacts[:n] {
				contacts = append(contacts, ct.ID)
			}
		}},
		{"createSegment", func(t *testing.T) {
			if len(model) >= 12 {
				return
			}
			members := pick(contacts, 10)
			p := c.on(t).createSegment(map[string]any{"name": fmt.Sprintf("Random %d", nextSegment), "contactIds": orEmpty(members)})
			nextSegment++
			checkUserErrors(t, p.UserErrors)
			model[p.Segment.ID] = map[string]bool{}
			for _, id := range members {
				model[p.Segment.ID][id] = true
			}
			checkPayload(t, []segment{*p.Segment})
		}},
		{"assign", func(t *testing.T) {
			cs, ss := pick(contacts, 15), pick(segList(), 4)
			p := c.on(t).assign(cs, ss)
			checkUserErrors(t, p.UserErrors)
			want := 0
			seen := map[[2]string]bool{}
			for _, s := range ss {
				for _, ct := range cs {
					if !model[s][ct] && !seen[[2]string{s, ct}] {
						want++
						seen[[2]string{s, ct}] = true
					}
				}
			}
			for k := range seen {
				model[k[0]][k[1]] = true
			}
			if p.AssignedCount != want {
				t.Errorf("assignedCount %d, want %d", p.AssignedCount, want)
			}
			checkPayload(t, p.Segments)
		}},
		{"remove", func(t *testing.T) {
			cs, ss := pick(contacts, 15), pick(segList(), 4)
			p := c.on(t).remove(cs, ss)
			checkUserErrors(t, p.UserErrors)
			want := 0
			for _, s := range ss {
				for _, ct := range cs {
					if model[s][ct] {
						want++
						delete(model[s], ct)
					}
				}
			}
			if p.RemovedCount != want {
				t.Errorf("removedCount %d, want %d", p.RemovedCount, want)
			}
			checkPayload(t, p.Segments)
		}},
		{"deleteContacts", func(t *testing.T) {
			doomed := pick(contacts, 3)
			p := c.on(t).deleteContacts(doomed...)
			checkUserErrors(t, p.UserErrors)
			var affected []string
			for s, members := range model {
				hit := false
				for _, id := range doomed {
					hit = hit || members[id]
					delete(members, id)
				}
				if hit {
					affected = append(affected, s)
				}
			}
			contacts = slices.DeleteFunc(contacts, func(id string) bool { return slices.Contains(doomed, id) })
			got := idsOf(p.Segments)
			slices.Sort(got)
			slices.Sort(affected)
			if !slices.Equal(got, affected) {
				t.Errorf("segments %v, want %v", got, affected)
			}
			checkPayload(t, p.Segments)
		}},
		{"deleteSegment", func(t *testing.T) {
			segs := segList()
			if len(segs) < 4 {
				return
			}
			s := segs[rng.IntN(len(segs))]
			p := c.on(t).deleteSegment(s)
			checkUserErrors(t, p.UserErrors)
			delete(model, s)
		}},
	}
	weights := []int{3, 2, 5, 4, 2, 1}
	var bag []int
	for i, w := range weights {
		for range w {
			bag = append(bag, i)
		}
	}
	ops[0].run(t)
	ops[0].run(t)
	for i := range 80 {
		op := ops[bag[rng.IntN(len(bag))]]
		t.Run(fmt.Sprintf("%02d %s", i, op.name), func(t *testing.T) {
			op.run(t)
			verify(t)
		})
		if t.Failed() {
			break
		}
	}
}

// TestMutationsOfOneRequestSeeEachOther: the root fields of a mutation run one after
// the other, and each one's payload shows what the ones before it did. They shared
// the request's loaders, so a payload read the memberships an earlier field had
// loaded: a contact still without the segment it had just been added to, and a
// segment with a contactCount of 1 and no contacts.
func TestMutationsOfOneRequestSeeEachOther(t *testing.T) {
	a := newAPI(t)
	ids := a.addContacts(phones(161_000, 1)...)
	seg := a.addSegment("Festival Buyers")
	vars := map[string]any{"c": ids, "s": []string{seg}, "in": map[string]any{"contacts": []map[string]any{{"phone": phones(161_000, 1)[0]}}}}

	res := a.post(`mutation($c: [ID!]!, $s: [ID!]!, $in: UpsertContactsInput!) {
		before: upsertContacts(input: $in) { contacts { segments { id } } }
		assignContactsToSegments(input: {contactIds: $c, segmentIds: $s}) { assignedCount }
		after: upsertContacts(input: $in) { contacts { segments { id } } }
	}`, vars)
	want := fmt.Sprintf(`{"before":{"contacts":[{"segments":[]}]},"assignContactsToSegments":{"assignedCount":1},"after":{"contacts":[{"segments":[{"id":%q}]}]}}`, seg)
	if len(res.Errors) > 0 || string(res.Data) != want {
		t.Errorf("a contact's segments after its assignment, in one request:\n%s %+v\nwant\n%s", res.Data, res.Errors, want)
	}

	res = a.post(`mutation($c: [ID!]!, $s: [ID!]!) {
		removeContactsFromSegments(input: {contactIds: $c, segmentIds: $s}) { segments { contactCount contacts(first: 1) { nodes { id } } } }
		assignContactsToSegments(input: {contactIds: $c, segmentIds: $s}) { segments { contactCount contacts(first: 1) { nodes { id } } } }
	}`, vars)
	want = fmt.Sprintf(`{"removeContactsFromSegments":{"segments":[{"contactCount":0,"contacts":{"nodes":[]}}]},"assignContactsToSegments":{"segments":[{"contactCount":1,"contacts":{"nodes":[{"id":%q}]}}]}}`, ids[0])
	if len(res.Errors) > 0 || string(res.Data) != want {
		t.Errorf("a segment's contacts after removal and assignment, in one request:\n%s %+v\nwant\n%s", res.Data, res.Errors, want)
	}
}

// TestNamesComposed: a name written with combining accents is the same name as the
// one written composed (NFC): it is TAKEN, as creating or renaming, and a search in
// either form finds the contact named in the other. "Café" and "Cafe\u0301" were two
// segments that looked the same.
func TestNamesComposed(t *testing.T) {
	c := mutClient{newAPI(t)}
	first := c.createSegment(map[string]any{"name": "Café"})
	checkUserErrors(t, first.UserErrors)
	if p := c.createSegment(map[string]any{"name": "Cafe\u0301"}); len(p.UserErrors) != 1 || p.UserErrors[0].Code != "TAKEN" {
		t.Errorf("a second Café, decomposed: %+v, want TAKEN", p)
	}
	other := c.createSegment(map[string]any{"name": "Other"})
	if p := c.updateSegment(map[string]any{"id": other.Segment.ID, "name": "CAFE\u0301"}); len(p.UserErrors) != 1 || p.UserErrors[0].Code != "TAKEN" {
		t.Errorf("renamed to CAFÉ, decomposed: %+v, want TAKEN", p)
	}
	up := c.upsert(map[string]any{"phone": "+919000000005", "name": "Rene\u0301e"})
	checkUserErrors(t, up.UserErrors)
	if got := up.Contacts[0].Name; got == nil || *got != "Renée" {
		t.Errorf("a contact named Rene\\u0301e is named %+q, want Renée", deref(got))
	}
	for _, term := range []string{"renée", "rene\u0301e"} {
		var out struct{ Contacts struct{ TotalCount int } }
		c.do(`query($s: String) { contacts(search: $s) { totalCount } }`, map[string]any{"s": term}, &out)
		if out.Contacts.TotalCount != 1 {
			t.Errorf("search %q: %d contacts, want 1", term, out.Contacts.TotalCount)
		}
	}
}

// deref is *s, or "<nil>".
func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestNamesPrintable: a segment's name or description with an escape sequence, BEL
// or a bidi override is refused, as creating and as renaming, and nothing is stored;
// a description keeps its line breaks and tabs. A zero-width space, word joiner or
// byte order mark inside a name is removed, so "VIP\u200bUsers" is TAKEN when
// "VIPUsers" exists, and so are a tag, variation selector or deprecated invisible
// vowel that modifies nothing there (a name of nothing else is BLANK). Contacts' names are cleaned instead, so that a partner's sync
// of 1,000 contacts is not refused for one stray character. All were stored as sent.
func TestNamesPrintable(t *testing.T) {
	c := mutClient{newAPI(t)}
	seg := c.addSegment("VIPUsers")
	for _, name := range []string{"VIP\u001b[31mUsers", "VIP\u0007Users", "VIP\u202eUsers"} {
		before := c.dbState()
		p := c.createSegment(map[string]any{"name": name, "description": "About\u001b[2J"})
		checkUserErrors(t, p.UserErrors, userErrAt("INVALID", "input", "name"), userErrAt("INVALID", "input", "description"))
		p = c.updateSegment(map[string]any{"id": seg, "name": name, "description": "About\u2066x\u2069"})
		checkUserErrors(t, p.UserErrors, userErrAt("INVALID", "input", "name"), userErrAt("INVALID", "input", "description"))
		c.unchanged(before)
	}
	for _, name := range []string{"VIP\u200bUsers", "vip\u2060users", "VIP\ufeffUSERS",
		"VIPUsers\U000E0020", "VIP\U000E0020Users", "VIPUsers\ufe0f", "VIPUsers\u180b", "VIPUsers\u17b4"} {
		before := c.dbState()
		p := c.createSegment(map[string]any{"name": name})
		checkUserErrors(t, p.UserErrors, userErrAt("TAKEN", "input", "name"))
		c.unchanged(before)
	}
	// Names that show as nothing: a variation selector or tags with nothing to modify.
	for _, name := range []string{"\ufe0f", "\U000E0020\U000E0020", "\U000E0041"} {
		before := c.dbState()
		p := c.createSegment(map[string]any{"name": name})
		checkUserErrors(t, p.UserErrors, userErrAt("BLANK", "input", "name"))
		c.unchanged(before)
	}
	desc := "One\n\tTwo\r\nThree"
	p := c.createSegment(map[string]any{"name": "Multi\u200bLine", "description": desc})
	checkUserErrors(t, p.UserErrors)
	if p.Segment == nil {
		t.Fatal("no segment")
	}
	if p.Segment.Name != "MultiLine" || deref(p.Segment.Description) != desc {
		t.Errorf("segment %q, description %s; want MultiLine with its description's lines", p.Segment.Name, showText(p.Segment.Description))
	}

	up := c.upsert(
		map[string]any{"phone": "+919000000011", "name": "Asha\u0001Rao"},
		map[string]any{"phone": "+919000000012", "name": "Bob\u007f"},
		map[string]any{"phone": "+919000000013", "name": "Ali \u202eKhan"},
		map[string]any{"phone": "+919000000014", "name": "Zero\u200bWidth"},
	)
	checkUserErrors(t, up.UserErrors)
	if len(up.Contacts) != 4 {
		t.Fatalf("%d contacts stored, want 4", len(up.Contacts))
	}
	for i, want := range []string{"Asha Rao", "Bob", "Ali Khan", "ZeroWidth"} {
		if got := deref(up.Contacts[i].Name); got != want {
			t.Errorf("contact %d named %q, want %q", i, got, want)
			continue
		}
		if got := c.contact(up.Contacts[i].ID); deref(got.Name) != want {
			t.Errorf("contact %d stored as %q, want %q", i, deref(got.Name), want)
		}
	}
	u := c.updateContact(map[string]any{"id": up.Contacts[0].ID, "name": "\u001b[31mRed"})
	checkUserErrors(t, u.UserErrors)
	if u.Contact == nil || deref(u.Contact.Name) != "[31mRed" {
		t.Errorf("renamed contact %+v, want the name [31mRed", u.Contact)
	}
}

// TestSegmentByName: segmentByName finds a segment under any name createSegment
// would refuse as TAKEN for it (composed, spaces folded, invisible characters
// dropped, case ignored), and no other workspace's. A partner keying segments by
// name found the existing one only through the TAKEN message's wording.
func TestSegmentByName(t *testing.T) {
	c := mutClient{newAPI(t)}
	holi := c.createSegment(map[string]any{"name": "Holi Buyers 2026"})
	cafe := c.createSegment(map[string]any{"name": "Café"})
	checkUserErrors(t, holi.UserErrors)
	checkUserErrors(t, cafe.UserErrors)
	const byName = `query($n: String!) { segmentByName(name: $n) { id name } }`
	for name, want := range map[string]string{
		"Holi Buyers 2026":        holi.Segment.ID,
		" holi\u00a0buyers 2026 ": holi.Segment.ID,
		"HOLI BUYERS\u200b 2026":  holi.Segment.ID,
		"Cafe\u0301":              cafe.Segment.ID,
		"CAFÉ":                    cafe.Segment.ID,
		"Holi Buyers":             "",
	} {
		if taken := c.createSegment(map[string]any{"name": name}); want != "" && (len(taken.UserErrors) != 1 || taken.UserErrors[0].Code != "TAKEN") {
			t.Fatalf("createSegment(%q): %+v, want TAKEN", name, taken)
		}
		var out struct{ SegmentByName *struct{ ID, Name string } }
		c.do(byName, map[string]any{"n": name}, &out)
		got := ""
		if out.SegmentByName != nil {
			got = out.SegmentByName.ID
		}
		if want == "" && got != "" {
			c.deleteSegment(got) // made by the createSegment above: none had the name
			continue
		}
		if got != want {
			t.Errorf("segmentByName(%q): %+v, want %s", name, out.SegmentByName, want)
		}
	}
	c.fails("BAD_USER_INPUT", byName, map[string]any{"n": " \u200b "})
	var other struct{ SegmentByName *struct{ ID string } }
	c.as(t).do(byName, map[string]any{"n": "Holi Buyers 2026"}, &other)
	if other.SegmentByName != nil {
		t.Errorf("another workspace's segmentByName: %+v, want null", other.SegmentByName)
	}
}
