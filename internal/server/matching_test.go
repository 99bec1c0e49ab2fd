package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

const (
	assignMatchingDoc = `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { segments { id contactCount } assignedCount matchedCount ` + userErrorFields + ` } }`
	removeMatchingDoc = `mutation($in: RemoveContactsFromSegmentsInput!) { removeContactsFromSegments(input: $in) { removedCount matchedCount ` + userErrorFields + ` } }`
)

type matchingPayload struct {
	Segments      []segment   `json:"segments"`
	AssignedCount int         `json:"assignedCount"`
	RemovedCount  int         `json:"removedCount"`
	MatchedCount  int         `json:"matchedCount"`
	UserErrors    []userError `json:"userErrors"`
}

// changeMatching runs doc (assignMatchingDoc or removeMatchingDoc) with input in and
// returns its payload and the statements it sent.
func (c mutClient) changeMatching(doc string, in map[string]any) (matchingPayload, int64) {
	c.t.Helper()
	var p matchingPayload
	c.mutate(doc, in, &p)
	return p, c.statements()
}

// listed returns the IDs that contacts(search:, filter:) lists, sorted as members
// does, and its totalCount.
func (c mutClient) listed(sel map[string]any) ([]string, int) {
	c.t.Helper()
	var out struct {
		Contacts struct {
			TotalCount int `json:"totalCount"`
			Nodes      []struct {
				ID string `json:"id"`
			} `json:"nodes"`
		} `json:"contacts"`
	}
	c.do(`query($search: String, $filter: ContactFilter) { contacts(first: 100, search: $search, filter: $filter) { totalCount nodes { id } } }`,
		map[string]any{"search": sel["search"], "filter": sel["filter"]}, &out)
	ids := []string{}
	for _, n := range out.Contacts.Nodes {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	return ids, out.Contacts.TotalCount
}

// TestChangeMembershipsMatchingAPI assigns and removes the contacts a selection
// (contactsMatching) matches, by search, by filter (any, all, none) and by both: the
// change applies to exactly what contacts(search:, filter:) lists, matchedCount counts
// them and assignedCount, removedCount and contactCount the memberships, in as many
// statements as a change by contactIds, however many contacts match (one fewer when
// none does: no insert).
func TestChangeMembershipsMatchingAPI(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(930_000, 6)...)
	low := c.addSegment("Low", ids[:3]...)
	even := c.addSegment("Even", ids[0], ids[2], ids[4])
	target := c.addSegment("Target")
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }

	// The statements of a change by contactIds, segments read back, for comparison.
	_, byIDs := c.changeMatching(assignMatchingDoc, map[string]any{"contactIds": ids[:1], "segmentIds": []string{target}})
	c.changeMatching(removeMatchingDoc, map[string]any{"contactIds": ids[:1], "segmentIds": []string{target}})

	for _, tc := range []struct {
		name string
		sel  map[string]any
		want []string
	}{
		{"search", map[string]any{"search": "0093000"}, sorted(ids...)},
		{"a phone", map[string]any{"search": "+91 98 0093 0004"}, sorted(ids[4])},
		{"any", map[string]any{"filter": map[string]any{"segments": map[string]any{"any": []string{low}}}}, sorted(ids[:3]...)},
		{"all", map[string]any{"filter": map[string]any{"segments": map[string]any{"all": []string{low, even}}}}, sorted(ids[0], ids[2])},
		{"none", map[string]any{"filter": map[string]any{"segments": map[string]any{"none": []string{low}}}}, sorted(ids[3:]...)},
		{"search and filter", map[string]any{"search": "0093000", "filter": map[string]any{"segments": map[string]any{"any": []string{even}, "none": []string{low}}}}, sorted(ids[4])},
		{"nobody", map[string]any{"search": "nobody"}, []string{}},
		{"everybody", map[string]any{}, sorted(ids...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			if listed, total := c.listed(tc.sel); !slices.Equal(listed, tc.want) || total != len(tc.want) {
				t.Fatalf("contacts lists %v (totalCount %d), want %v", listed, total, tc.want)
			}
			p, n := c.changeMatching(assignMatchingDoc, map[string]any{"contactsMatching": tc.sel, "segmentIds": []string{target, target}})
			checkUserErrors(t, p.UserErrors)
			if p.MatchedCount != len(tc.want) || p.AssignedCount != len(tc.want) || len(p.Segments) != 1 || p.Segments[0].ContactCount != len(tc.want) {
				t.Errorf("assigned: %+v; want matchedCount %d, assignedCount %d, Target with %d", p, len(tc.want), len(tc.want), len(tc.want))
			}
			want := byIDs
			if len(tc.want) == 0 {
				want-- // no insert, as for contactIds: []
			}
			if n != want {
				t.Errorf("%d statements, want %d as by contactIds", n, want)
			}
			if m := c.members(target); !slices.Equal(m, tc.want) {
				t.Errorf("members %v, want %v", m, tc.want)
			}
			c.checkCount(target, len(tc.want))
			// Again: the same contacts match, and none is added twice.
			if p, _ := c.changeMatching(assignMatchingDoc, map[string]any{"contactsMatching": tc.sel, "segmentIds": []string{target}}); p.MatchedCount != len(tc.want) || p.AssignedCount != 0 {
				t.Errorf("assigned again: %+v; want matchedCount %d, assignedCount 0", p, len(tc.want))
			}
			p, _ = c.changeMatching(removeMatchingDoc, map[string]any{"contactsMatching": tc.sel, "segmentIds": []string{target}})
			checkUserErrors(t, p.UserErrors)
			if p.MatchedCount != len(tc.want) || p.RemovedCount != len(tc.want) || len(c.members(target)) != 0 {
				t.Errorf("removed: %+v, members left %v; want matchedCount and removedCount %d, none left", p, c.members(target), len(tc.want))
			}
			c.checkCount(target, 0)
		})
	}
	t.Run("an idempotency key", func(t *testing.T) {
		c := c.on(t)
		body := idemBody(assignMatchingDoc, map[string]any{"in": map[string]any{"contactsMatching": map[string]any{"search": "0093000"}, "segmentIds": []string{target}}})
		first := c.idemPost(body, "matching-1")
		// A contact that matches now, after the first request: the replay does not run
		// the change again, so it is not added.
		late := c.addContacts(phones(930_006, 1)...)
		again := c.idemPost(body, "matching-1")
		if first.status != 200 || string(again.body) != string(first.body) || !strings.Contains(string(first.body), `"matchedCount":6`) || slices.Contains(c.members(target), late[0]) {
			t.Errorf("first %d %s, replay %s, members %v; want the same answer (matchedCount 6) and the late contact left out", first.status, first.body, again.body, c.members(target))
		}
		c.changeMatching(removeMatchingDoc, map[string]any{"contactsMatching": map[string]any{}, "segmentIds": []string{target}})
		c.post(`mutation($in: DeleteContactsInput!) { deleteContacts(input: $in) { deletedContactIds } }`, map[string]any{"in": map[string]any{"ids": late}})
	})
	t.Run("matchedCount by contactIds", func(t *testing.T) {
		c := c.on(t)
		p, _ := c.changeMatching(assignMatchingDoc, map[string]any{"contactIds": []string{ids[0], ids[1], ids[0]}, "segmentIds": []string{target}})
		if p.MatchedCount != 2 || p.AssignedCount != 2 {
			t.Errorf("%+v; want matchedCount 2 (repeats once), assignedCount 2", p)
		}
		if p, _ := c.changeMatching(removeMatchingDoc, map[string]any{"contactIds": []string{ids[0], ids[5]}, "segmentIds": []string{target}}); p.MatchedCount != 2 || p.RemovedCount != 1 {
			t.Errorf("%+v; want matchedCount 2, removedCount 1", p)
		}
	})
}

// TestMatchingRefusals: both or neither of contactIds and contactsMatching, a
// selection's bad search or filter, another workspace's segments, and a selection
// over the cap are refused as userErrors naming the field, and nothing changes; a
// read key is FORBIDDEN.
func TestMatchingRefusals(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(931_000, 3)...)
	target := c.addSegment("Target")
	other := mutClient{c.as(t)}
	otherIDs := other.addContacts(phones(931_000, 3)...) // the same phones
	otherSeg := other.addSegment("Theirs", otherIDs...)

	for _, tc := range []struct {
		name  string
		in    map[string]any
		codes []string
		paths []string
	}{
		{"neither", map[string]any{"segmentIds": []string{target}}, []string{"INVALID"}, []string{"input.contactIds"}},
		{"neither, contactIds null", map[string]any{"contactIds": nil, "contactsMatching": nil, "segmentIds": []string{target}}, []string{"INVALID"}, []string{"input.contactIds"}},
		{"both", map[string]any{"contactIds": ids, "contactsMatching": map[string]any{}, "segmentIds": []string{target}}, []string{"INVALID"}, []string{"input.contactsMatching"}},
		{"both, contactIds empty", map[string]any{"contactIds": []string{}, "contactsMatching": map[string]any{"search": "x"}, "segmentIds": []string{target}}, []string{"INVALID"}, []string{"input.contactsMatching"}},
		{"a long search and a malformed segment", map[string]any{"contactsMatching": map[string]any{"search": strings.Repeat("x", 201)}, "segmentIds": []string{"nope"}},
			[]string{"TOO_LONG", "INVALID"}, []string{"input.contactsMatching.search", "input.segmentIds.0"}},
		{"a malformed filter", map[string]any{"contactsMatching": map[string]any{"filter": map[string]any{"segments": map[string]any{"none": []string{target, "nope"}}}}, "segmentIds": []string{target}},
			[]string{"INVALID"}, []string{"input.contactsMatching.filter.segments.none.1"}},
		{"malformed segments and conditions", map[string]any{"contactsMatching": map[string]any{"filter": map[string]any{
			"segments":   map[string]any{"any": []string{"nope"}},
			"attributes": []any{map[string]any{"key": "city", "equals": "Pune"}, map[string]any{"key": "city"}, map[string]any{"key": "", "exists": true, "atLeast": 1}},
		}}, "segmentIds": []string{target}},
			[]string{"INVALID", "INVALID", "BLANK", "INVALID"}, []string{"input.contactsMatching.filter.segments.any.0", "input.contactsMatching.filter.attributes.1",
				"input.contactsMatching.filter.attributes.2.key", "input.contactsMatching.filter.attributes.2"}},
		{"another workspace's segment", map[string]any{"contactsMatching": map[string]any{}, "segmentIds": []string{otherSeg}}, []string{"NOT_FOUND"}, []string{"input.segmentIds.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			before, otherBefore := c.snapshot(), other.snapshot()
			for _, doc := range []string{assignMatchingDoc, removeMatchingDoc} {
				p, _ := c.changeMatching(doc, tc.in)
				var codes, paths []string
				for _, e := range p.UserErrors {
					codes, paths = append(codes, e.Code), append(paths, strings.Join(e.Field, "."))
				}
				if !slices.Equal(codes, tc.codes) || !slices.Equal(paths, tc.paths) || p.MatchedCount != 0 {
					t.Errorf("%v; want %v at %v, matchedCount 0", p.UserErrors, tc.codes, tc.paths)
				}
			}
			if c.snapshot() != before || other.snapshot() != otherBefore {
				t.Error("a refused change changed the data")
			}
		})
	}

	t.Run("another workspace's contacts and segments match nothing", func(t *testing.T) {
		c := c.on(t)
		for _, tc := range []struct {
			sel  map[string]any
			want int
		}{
			{map[string]any{"filter": map[string]any{"segments": map[string]any{"any": []string{otherSeg}}}}, 0},
			{map[string]any{"filter": map[string]any{"segments": map[string]any{"all": []string{otherSeg}}}}, 0},
			{map[string]any{"filter": map[string]any{"segments": map[string]any{"none": []string{otherSeg}}}}, 3},
			{map[string]any{"search": "0093100"}, 3},
		} {
			otherBefore := other.snapshot()
			p, _ := c.changeMatching(assignMatchingDoc, map[string]any{"contactsMatching": tc.sel, "segmentIds": []string{target}})
			checkUserErrors(t, p.UserErrors)
			if p.MatchedCount != tc.want || p.AssignedCount != tc.want || !slices.Equal(c.members(target), slices.Sorted(slices.Values(ids))[:tc.want]) {
				t.Errorf("%v: %+v, members %v; want %d of the workspace's own", tc.sel, p, c.members(target), tc.want)
			}
			if other.snapshot() != otherBefore {
				t.Errorf("%v: the other workspace changed", tc.sel)
			}
			c.changeMatching(removeMatchingDoc, map[string]any{"contactsMatching": map[string]any{}, "segmentIds": []string{target}})
		}
	})

	t.Run("over the cap", func(t *testing.T) {
		c := mutClient{c.as(t)}
		over := crm.MaxMatchedMemberships/100 + 1
		storetest.Exec(t, c.store.DB(), fmt.Sprintf(`
			INSERT INTO contacts (workspace_id, phone) SELECT %[1]d, '+9191' || lpad(g::text, 8, '0') FROM generate_series(1, %[2]d) g;
			INSERT INTO segments (workspace_id, name) SELECT %[1]d, 'Cap ' || g FROM generate_series(1, 100) g`, c.ws.ID, over))
		var segs []string
		for _, id := range storetest.Column[int64](t, c.store.DB(), "SELECT id FROM segments WHERE workspace_id = $1", c.ws.ID) {
			segs = append(segs, globalid.Encode(globalid.Segment, id))
		}
		before := c.snapshot()
		for _, doc := range []string{assignMatchingDoc, removeMatchingDoc} {
			p, _ := c.changeMatching(doc, map[string]any{"contactsMatching": map[string]any{}, "segmentIds": segs})
			want := fmt.Sprintf("selects %d contacts, the maximum for 100 segments is %d", over, over-1)
			if len(p.UserErrors) != 1 || p.UserErrors[0].Code != "TOO_MANY" || strings.Join(p.UserErrors[0].Field, ".") != "input.contactsMatching" ||
				!strings.Contains(p.UserErrors[0].Message, want) || p.MatchedCount != 0 {
				t.Errorf("%+v; want TOO_MANY at input.contactsMatching, %q", p, want)
			}
		}
		if c.snapshot() != before {
			t.Error("a refused change changed the data")
		}
	})

	t.Run("a read key", func(t *testing.T) {
		ro, _ := c.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "BI"})
		before := c.snapshot()
		forbidden(t, ro.post(assignMatchingDoc, map[string]any{"in": map[string]any{"contactsMatching": map[string]any{}, "segmentIds": []string{target}}}))
		forbidden(t, ro.post(removeMatchingDoc, map[string]any{"in": map[string]any{"contactsMatching": map[string]any{}, "segmentIds": []string{target}}}))
		if n := ro.statements(); n != 1 || c.snapshot() != before {
			t.Errorf("%d statements (want 1, the key's), or the data changed", n)
		}
	})
}

// TestCreateSegmentMatchingAPI saves a selection as a segment in one createSegment
// (contactsMatching): by search, by filter (any, all, none) and by both, its members
// are exactly what contacts(search:, filter:) lists, and the payload's contactCount
// counts them. Refusals (contacts given both ways, a bad selection, a taken name)
// create nothing and assign nothing; another workspace's contacts and segments are
// never selected; a retry with the request's Idempotency-Key replays the answer
// rather than answer TAKEN.
func TestCreateSegmentMatchingAPI(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(932_000, 6)...)
	low := c.addSegment("Low", ids[:3]...)
	even := c.addSegment("Even", ids[0], ids[2], ids[4])
	other := mutClient{c.as(t)}
	otherIDs := other.addContacts(phones(932_000, 6)...) // the same phones
	otherSeg := other.addSegment("Theirs", otherIDs[:2]...)
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }

	for _, tc := range []struct {
		name string
		sel  map[string]any
		want []string
	}{
		{"search", map[string]any{"search": "0093200"}, sorted(ids...)},
		{"a phone", map[string]any{"search": "+91 98 0093 2004"}, sorted(ids[4])},
		{"any", map[string]any{"filter": map[string]any{"segments": map[string]any{"any": []string{low}}}}, sorted(ids[:3]...)},
		{"all", map[string]any{"filter": map[string]any{"segments": map[string]any{"all": []string{low, even}}}}, sorted(ids[0], ids[2])},
		{"none", map[string]any{"filter": map[string]any{"segments": map[string]any{"none": []string{low}}}}, sorted(ids[3:]...)},
		{"search and filter", map[string]any{"search": "0093200", "filter": map[string]any{"segments": map[string]any{"any": []string{even}, "none": []string{low}}}}, sorted(ids[4])},
		{"nobody", map[string]any{"search": "nobody"}, []string{}},
		{"everybody", map[string]any{}, sorted(ids...)},
		{"another workspace's segment, any", map[string]any{"filter": map[string]any{"segments": map[string]any{"any": []string{otherSeg}}}}, []string{}},
		{"another workspace's segment, none", map[string]any{"filter": map[string]any{"segments": map[string]any{"none": []string{otherSeg}}}}, sorted(ids...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			otherBefore := other.snapshot()
			if listed, total := c.listed(tc.sel); !slices.Equal(listed, tc.want) || total != len(tc.want) {
				t.Fatalf("contacts lists %v (totalCount %d), want %v", listed, total, tc.want)
			}
			p := c.createSegment(map[string]any{"name": "Saved " + tc.name, "contactsMatching": tc.sel})
			checkUserErrors(t, p.UserErrors)
			if p.Segment == nil || p.Segment.Name != "Saved "+tc.name || p.Segment.ContactCount != len(tc.want) {
				t.Fatalf("%+v; want the segment with contactCount %d", p.Segment, len(tc.want))
			}
			if m := c.members(p.Segment.ID); !slices.Equal(m, tc.want) {
				t.Errorf("members %v, want %v", m, tc.want)
			}
			c.checkCount(p.Segment.ID, len(tc.want))
			if other.snapshot() != otherBefore {
				t.Error("the other workspace changed")
			}
		})
	}

	t.Run("contactsMatching null", func(t *testing.T) {
		c := c.on(t)
		p := c.createSegment(map[string]any{"name": "By IDs", "contactIds": []string{ids[1]}, "contactsMatching": nil})
		checkUserErrors(t, p.UserErrors)
		if p.Segment == nil || p.Segment.ContactCount != 1 || !slices.Equal(c.members(p.Segment.ID), []string{ids[1]}) {
			t.Errorf("%+v; want the segment of contactIds", p.Segment)
		}
	})

	for _, tc := range []struct {
		name string
		in   map[string]any
		want []wantUserError
	}{
		{"both", map[string]any{"name": "Both", "contactIds": ids[:1], "contactsMatching": map[string]any{}},
			[]wantUserError{userErrAt("INVALID", "input", "contactsMatching")}},
		{"both, contactIds empty", map[string]any{"name": "Both", "contactIds": []string{}, "contactsMatching": map[string]any{"search": "x"}},
			[]wantUserError{userErrAt("INVALID", "input", "contactsMatching")}},
		{"both, a blank name and a malformed ID", map[string]any{"name": " ", "contactIds": []string{"C_!!"}, "contactsMatching": map[string]any{}},
			[]wantUserError{userErrAt("BLANK", "input", "name"), userErrAt("INVALID", "input", "contactsMatching")}},
		{"a long search and a long description", map[string]any{"name": "Long", "description": strings.Repeat("x", 1001), "contactsMatching": map[string]any{"search": strings.Repeat("x", 201)}},
			[]wantUserError{userErrAt("TOO_LONG", "input", "description"), userErrAt("TOO_LONG", "input", "contactsMatching", "search")}},
		{"a malformed filter", map[string]any{"name": "Malformed", "contactsMatching": map[string]any{"filter": map[string]any{"segments": map[string]any{"none": []string{low, "nope"}}}}},
			[]wantUserError{userErrAt("INVALID", "input", "contactsMatching", "filter", "segments", "none", "1")}},
		{"a taken name", map[string]any{"name": " low ", "contactsMatching": map[string]any{}},
			[]wantUserError{userErrAt("TAKEN", "input", "name")}},
	} {
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

	t.Run("an idempotency key", func(t *testing.T) {
		c := c.on(t)
		body := idemBody(createSegmentDoc, map[string]any{"in": map[string]any{"name": "Keyed", "contactsMatching": map[string]any{"search": "0093200"}}})
		first := c.idemPost(body, "create-matching-1")
		// A contact that matches now, after the first request: the replay does not run
		// the creation again, so it is neither TAKEN nor adds the contact.
		late := c.addContacts(phones(932_006, 1)...)
		again := c.idemPost(body, "create-matching-1")
		if first.status != 200 || string(again.body) != string(first.body) || !strings.Contains(string(first.body), `"contactCount":6`) {
			t.Errorf("first %d %s, replay %s; want the same answer, contactCount 6", first.status, first.body, again.body)
		}
		n := storetest.Column[int64](c.t, c.store.DB(), "SELECT count(*) FROM segments WHERE workspace_id = $1 AND name = 'Keyed'", c.ws.ID)
		members := storetest.Column[int64](c.t, c.store.DB(), "SELECT count(*) FROM memberships m JOIN segments s ON s.workspace_id = m.workspace_id AND s.id = m.segment_id WHERE s.workspace_id = $1 AND s.name = 'Keyed'", c.ws.ID)
		if n[0] != 1 || members[0] != 6 {
			t.Errorf("%d segments named Keyed with %d members, want one with 6 (the late contact %s left out)", n[0], members[0], late[0])
		}
	})
}
