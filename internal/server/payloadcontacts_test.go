package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The membership mutations with the contacts of their payloads, each with its
// segments as the tests read them.
const (
	changedContactFields = `contacts { id phone segments { ` + segmentFields + ` } }`
	assignContactsDoc    = `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { ` + changedContactFields + ` matchedCount ` + userErrorFields + ` } }`
	removeContactsDoc    = `mutation($in: RemoveContactsFromSegmentsInput!) { removeContactsFromSegments(input: $in) { ` + changedContactFields + ` matchedCount ` + userErrorFields + ` } }`
	createContactsDoc    = `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } ` + changedContactFields + ` ` + userErrorFields + ` } }`
)

// changedContacts is the part of a membership mutation's payload these tests read.
type changedContacts struct {
	Segment      *segment    `json:"segment"`
	Contacts     []contact   `json:"contacts"`
	MatchedCount int         `json:"matchedCount"`
	UserErrors   []userError `json:"userErrors"`
}

// changeContacts runs doc with input in and returns its payload.
func (c mutClient) changeContacts(doc string, in map[string]any) changedContacts {
	c.t.Helper()
	var p changedContacts
	c.mutate(doc, in, &p)
	return p
}

// checkChangedContacts checks that the payload's contacts are want, in that order,
// each with the segments the server holds for it now (contact(id:), every field of
// the segments, their order too), and with the names of those segments in names.
func (c mutClient) checkChangedContacts(p changedContacts, want []string, names map[string][]string) {
	c.t.Helper()
	got := make([]string, len(p.Contacts))
	for i, ct := range p.Contacts {
		got[i] = ct.ID
	}
	if !slices.Equal(got, want) {
		c.t.Fatalf("payload contacts %v, want %v (input order, repeats once)", got, want)
	}
	for _, ct := range p.Contacts {
		truth := c.contact(ct.ID)
		if a, b := asJSON(c.t, ct.Segments), asJSON(c.t, truth.Segments); a != b {
			c.t.Errorf("contact %s: payload segments\n%s\nthe server's\n%s", ct.ID, a, b)
		}
		if ct.Phone != truth.Phone {
			c.t.Errorf("contact %s: payload phone %q, the server's %q", ct.ID, ct.Phone, truth.Phone)
		}
		var segNames []string
		for _, s := range ct.Segments {
			segNames = append(segNames, s.Name)
		}
		if !slices.Equal(segNames, names[ct.ID]) {
			c.t.Errorf("contact %s in %q, want %q", ct.ID, segNames, names[ct.ID])
		}
	}
}

// TestMembershipPayloadsReturnTheirContacts: assignContactsToSegments,
// removeContactsFromSegments and createSegment answer the contacts of contactIds in
// input order (each once), with their segments after the change, so that a client's
// cache of them needs no code and no second request; none for contactsMatching or a
// refused change, and never a contact of another workspace. The payloads had no
// contacts (the dashboard re-implemented the server's order of segments in
// JavaScript to patch its cache).
func TestMembershipPayloadsReturnTheirContacts(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(740_000, 5)...)
	kept := c.addSegment("Kept", ids[0])
	alpha := c.addSegment("Alpha")
	beta := c.addSegment("beta")

	t.Run("assign", func(t *testing.T) {
		c := c.on(t)
		p := c.changeContacts(assignContactsDoc, map[string]any{"contactIds": []string{ids[2], ids[0], ids[2], ids[1]}, "segmentIds": []string{beta, alpha}})
		checkUserErrors(t, p.UserErrors)
		c.checkChangedContacts(p, []string{ids[2], ids[0], ids[1]}, map[string][]string{
			ids[0]: {"Alpha", "beta", "Kept"}, ids[1]: {"Alpha", "beta"}, ids[2]: {"Alpha", "beta"}})
		for _, s := range p.Contacts[0].Segments {
			if s.ContactCount != 3 {
				t.Errorf("%s: contactCount %d in the payload's contact, want 3 after the change", s.Name, s.ContactCount)
			}
		}
	})

	t.Run("remove", func(t *testing.T) {
		c := c.on(t)
		p := c.changeContacts(removeContactsDoc, map[string]any{"contactIds": []string{ids[1], ids[0], ids[1]}, "segmentIds": []string{beta}})
		checkUserErrors(t, p.UserErrors)
		c.checkChangedContacts(p, []string{ids[1], ids[0]}, map[string][]string{ids[0]: {"Alpha", "Kept"}, ids[1]: {"Alpha"}})
	})

	t.Run("create", func(t *testing.T) {
		c := c.on(t)
		p := c.changeContacts(createContactsDoc, map[string]any{"name": "Gamma", "contactIds": []string{ids[3], ids[0], ids[3]}})
		checkUserErrors(t, p.UserErrors)
		c.checkChangedContacts(p, []string{ids[3], ids[0]}, map[string][]string{ids[0]: {"Alpha", "Gamma", "Kept"}, ids[3]: {"Gamma"}})
		p = c.changeContacts(createContactsDoc, map[string]any{"name": "Empty"})
		checkUserErrors(t, p.UserErrors)
		if p.Contacts == nil || len(p.Contacts) != 0 {
			t.Errorf("a segment made without contactIds answered contacts %+v, want []", p.Contacts)
		}
	})

	t.Run("contactsMatching", func(t *testing.T) {
		c := c.on(t)
		matching := map[string]any{"filter": map[string]any{"segments": map[string]any{"any": []string{alpha}}}}
		for _, doc := range []string{assignContactsDoc, removeContactsDoc} {
			p := c.changeContacts(doc, map[string]any{"contactsMatching": matching, "segmentIds": []string{kept}})
			checkUserErrors(t, p.UserErrors)
			if p.MatchedCount != 3 || p.Contacts == nil || len(p.Contacts) != 0 {
				t.Errorf("matchedCount %d, contacts %+v; want 3 and [] (a selection names no contact)", p.MatchedCount, p.Contacts)
			}
		}
		c.do(`mutation($c: [ID!]!, $s: [ID!]!) { assignContactsToSegments(input: {contactIds: $c, segmentIds: $s}) { assignedCount } }`,
			map[string]any{"c": ids[:1], "s": []string{kept}}, nil)
	})

	t.Run("refused", func(t *testing.T) {
		c := c.on(t)
		// A contact of another workspace is NOT_FOUND, as one that does not exist,
		// and appears nowhere; nor do the other contacts of the refused change.
		foreign := mutClient{c.as(t)}.addContacts(phones(750_000, 1)...)[0]
		before := c.dbState()
		for _, tc := range []struct {
			doc  string
			in   map[string]any
			want []wantUserError
		}{
			{assignContactsDoc, map[string]any{"contactIds": []string{ids[0], foreign}, "segmentIds": []string{alpha}}, []wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "1")}},
			{removeContactsDoc, map[string]any{"contactIds": []string{foreign, ids[0]}, "segmentIds": []string{alpha}}, []wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0")}},
			{createContactsDoc, map[string]any{"name": "Foreign", "contactIds": []string{ids[0], foreign}}, []wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "1")}},
			{assignContactsDoc, map[string]any{"contactIds": []string{ids[0], "nope"}, "segmentIds": []string{alpha}}, []wantUserError{userErrAt("INVALID", "input", "contactIds", "1")}},
			{assignContactsDoc, map[string]any{"contactIds": []string{ids[0]}, "contactsMatching": map[string]any{}, "segmentIds": []string{alpha}}, []wantUserError{userErrAt("INVALID", "input", "contactsMatching")}},
			{removeContactsDoc, map[string]any{"contactIds": []string{ids[0]}, "segmentIds": []string{ids[1]}}, []wantUserError{userErrAt("INVALID", "input", "segmentIds", "0")}},
		} {
			p := c.changeContacts(tc.doc, tc.in)
			checkUserErrors(t, p.UserErrors, tc.want...)
			if p.Contacts == nil || len(p.Contacts) != 0 {
				t.Errorf("%v: contacts %+v, want []", tc.in, p.Contacts)
			}
		}
		c.unchanged(before)
	})

	t.Run("one request", func(t *testing.T) {
		// Each root field answers its own change: the contact's segments read by an
		// earlier field of the request never answer for a later one.
		c := c.on(t)
		in := map[string]any{"contactIds": []string{ids[4]}, "segmentIds": []string{beta}}
		res := c.post(`mutation($in: AssignContactsToSegmentsInput!, $out: RemoveContactsFromSegmentsInput!, $up: UpsertContactsInput!) {
			before: upsertContacts(input: $up) { contacts { segments { name } } }
			assignContactsToSegments(input: $in) { contacts { segments { name } } }
			removeContactsFromSegments(input: $out) { contacts { segments { name } } }
			again: assignContactsToSegments(input: $in) { contacts { segments { name contactCount } } }
		}`, map[string]any{"in": in, "out": in, "up": map[string]any{"contacts": []map[string]any{{"phone": phones(740_000, 5)[4]}}}})
		want := `{"before":{"contacts":[{"segments":[]}]},` +
			`"assignContactsToSegments":{"contacts":[{"segments":[{"name":"beta"}]}]},` +
			`"removeContactsFromSegments":{"contacts":[{"segments":[]}]},` +
			`"again":{"contacts":[{"segments":[{"name":"beta","contactCount":2}]}]}}`
		if len(res.Errors) > 0 || string(res.Data) != want {
			t.Errorf("a contact's segments after each change of one request:\n%s %+v\nwant\n%s", res.Data, res.Errors, want)
		}
	})
}

// TestMembershipPayloadContactsStatements proves there is no N+1 in the contacts of a
// membership mutation's payload: 500 contacts with their segments take as many SQL
// statements as 1, one for the contacts and one per kind of segments asked of them
// (the catalog's, or whole with contactCount) beyond the change's own, and none when
// the contacts are not asked for.
func TestMembershipPayloadContactsStatements(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(741_000, 500)...)
	seg := c.addSegment("Target")
	c.addSegment("Other", ids...) // every contact has a segment to read besides Target
	names := 0
	for _, tc := range []struct {
		name, sel string
		extra     int64 // statements beyond those without contacts
		// catalog: the segments are read from the workspace's catalog, which
		// createSegment's new segment makes it read again, a statement more.
		catalog bool
	}{
		{"no contacts", ``, 0, false},
		{"contacts alone", `contacts { id phone }`, 1, false},
		{"the catalog's segments", `contacts { id segments { id name } }`, 2, true},
		{"whole segments", `contacts { id segments { id name contactCount } }`, 2, false},
		// Both loaders: the catalog's for the names, the other for updatedAt.
		{"both, in a fragment", `...P } } fragment P on PAYLOAD { contacts { a: segments { name } b: segments { updatedAt } `, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			for _, m := range []struct{ mutation, input, payload string }{
				{"assignContactsToSegments", "AssignContactsToSegmentsInput", "AssignContactsToSegmentsPayload"},
				{"removeContactsFromSegments", "RemoveContactsFromSegmentsInput", "RemoveContactsFromSegmentsPayload"},
				{"createSegment", "CreateSegmentInput", "CreateSegmentPayload"},
			} {
				sel := strings.ReplaceAll(tc.sel, "PAYLOAD", m.payload)
				doc := fmt.Sprintf(`mutation($in: %s!) { %s(input: $in) { userErrors { code } %s } }`, m.input, m.mutation, sel)
				bare := fmt.Sprintf(`mutation($in: %s!) { %s(input: $in) { userErrors { code } } }`, m.input, m.mutation)
				run := func(doc string, n int) (int64, int) {
					t.Helper()
					in := map[string]any{"contactIds": ids[:n], "segmentIds": []string{seg}}
					if m.mutation == "createSegment" {
						names++
						in = map[string]any{"contactIds": ids[:n], "name": fmt.Sprintf("New %d", names)}
					}
					res := c.post(doc, map[string]any{"in": in})
					var out map[string]struct {
						Contacts   []json.RawMessage `json:"contacts"`
						UserErrors []userError       `json:"userErrors"`
					}
					if err := json.Unmarshal(res.Data, &out); err != nil || len(res.Errors) > 0 {
						t.Fatalf("%s: %s %+v %v", doc, res.Data, res.Errors, err)
					}
					n = -1
					for _, p := range out {
						checkUserErrors(t, p.UserErrors)
						if p.Contacts != nil {
							n = len(p.Contacts)
						}
					}
					return c.statements(), n
				}
				run(doc, 1) // the catalog as the setup left it is read again once
				one, got1 := run(doc, 1)
				many, got500 := run(doc, 500)
				without, _ := run(bare, 500)
				extra := tc.extra
				if tc.catalog && m.mutation == "createSegment" {
					extra++
				}
				if tc.sel != "" && (got1 != 1 || got500 != 500) {
					t.Errorf("%s: %d and %d contacts answered, want 1 and 500", m.mutation, got1, got500)
				}
				if one != many {
					t.Errorf("%s: %d statements for 1 contact, %d for 500", m.mutation, one, many)
				}
				if many-without != extra {
					t.Errorf("%s: %d statements, %d without the contacts; want %d more", m.mutation, many, without, extra)
				}
				t.Logf("%s: %d statements (%d without the contacts)", m.mutation, many, without)
			}
		})
	}
}
