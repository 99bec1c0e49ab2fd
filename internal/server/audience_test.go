package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
)

// TestAudienceCountReadsNoPage proves that a connection asked for its totalCount alone
// (a campaign's audience) reads the count and no page: one statement after the key's,
// whatever the filter; that the count is the deduplicated audience; and that the
// page's arguments are still checked, so that skipping the page never turns a refusal
// into an answer. With a page, the count comes from the page's statement where that
// counts the audience anyway, and a segment's contacts are counted by its
// contactCount.
func TestAudienceCountReadsNoPage(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	var ids []int64
	in := make([]crm.ContactInput, 6)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", i)}
	}
	res, err := a.store.UpsertContacts(ctx, a.ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Contacts {
		ids = append(ids, c.ID)
	}
	seg := func(name string, members ...int64) string {
		t.Helper()
		s, err := a.store.CreateSegment(ctx, a.ws.ID, crm.NewSegment{Name: name, ContactIDs: members})
		if err != nil {
			t.Fatal(err)
		}
		return globalid.Encode(globalid.Segment, s.ID)
	}
	s1 := seg("One", ids[0], ids[1], ids[2])
	s2 := seg("Two", ids[2], ids[3], ids[4])
	none := seg("None", ids[1], ids[5])

	const countQ = `query($f: ContactFilter, $first: Int, $after: String) { contacts(filter: $f, first: $first, after: $after) { __typename totalCount } }`
	filter := map[string]any{"segments": map[string]any{"any": []string{s1, s2}, "none": []string{none}}}

	// Refusals first: bad page arguments are refused as before.
	a.fails("BAD_USER_INPUT", countQ, map[string]any{"f": filter, "first": 0})
	a.fails("BAD_USER_INPUT", countQ, map[string]any{"f": filter, "after": "not-a-cursor"})

	var out struct {
		Contacts struct {
			TotalCount int `json:"totalCount"`
		} `json:"contacts"`
	}
	a.do(countQ, map[string]any{"f": filter}, &out)
	// Any of One and Two: contacts 0 to 4, 2 once; none of None: without 1.
	if out.Contacts.TotalCount != 4 {
		t.Errorf("audience %d, want 4", out.Contacts.TotalCount)
	}
	if n := a.statements(); n != 2 {
		t.Errorf("%d statements, want 2: the key's and the count", n)
	}
	// With rows selected too, the page is read as well. Its statement counts an
	// audience that the None list narrows (to know how far its walk goes), and
	// returns that count, from any page.
	const pageQ = `query($f: ContactFilter, $first: Int, $after: String) { contacts(filter: $f, first: $first, after: $after) {
		totalCount nodes { id } pageInfo { endCursor } } }`
	var page struct {
		Contacts struct {
			TotalCount int `json:"totalCount"`
			Nodes      []struct{ ID string }
			PageInfo   struct{ EndCursor string } `json:"pageInfo"`
		} `json:"contacts"`
	}
	a.do(pageQ, map[string]any{"f": filter, "first": 2}, &page)
	if n := a.statements(); n != 2 || page.Contacts.TotalCount != 4 {
		t.Errorf("a page of 2: %d statements, audience %d; want 2 (the key's and the page, which counts), 4", n, page.Contacts.TotalCount)
	}
	a.do(pageQ, map[string]any{"f": filter, "first": 1, "after": page.Contacts.PageInfo.EndCursor}, &page)
	if n := a.statements(); n != 2 || page.Contacts.TotalCount != 4 || len(page.Contacts.Nodes) != 1 {
		t.Errorf("a page of 1 after 2: %d statements, audience %d, %d nodes; want 2, 4, 1", n, page.Contacts.TotalCount, len(page.Contacts.Nodes))
	}
	// An Any list alone needs no count to read its page: the audience is counted
	// apart, unless the page holds all of it.
	anyOnly := map[string]any{"segments": map[string]any{"any": []string{s1, s2}}}
	a.do(pageQ, map[string]any{"f": anyOnly, "first": 2}, &out)
	if n := a.statements(); n != 3 || out.Contacts.TotalCount != 5 {
		t.Errorf("any, a page of 2: %d statements, audience %d; want 3 (the key's, the page and the count), 5", n, out.Contacts.TotalCount)
	}
	a.do(pageQ, map[string]any{"f": anyOnly, "first": 5}, &out)
	if n := a.statements(); n != 2 || out.Contacts.TotalCount != 5 {
		t.Errorf("any, a page of all 5: %d statements, audience %d; want 2 (the key's and the page), 5", n, out.Contacts.TotalCount)
	}

	// A segment's own contacts number its contactCount, read with it: no statement
	// counts them, with a page or without.
	const segQ = `query($id: ID!, $first: Int, $nodes: Boolean!) { segment(id: $id) { contactCount contacts(first: $first) { totalCount count { count precision } nodes @include(if: $nodes) { id } } } }`
	var one struct {
		Segment struct {
			ContactCount int `json:"contactCount"`
			Contacts     struct {
				TotalCount int `json:"totalCount"`
				Count      struct {
					Count     int
					Precision string
				}
				Nodes []struct{ ID string }
			}
		}
	}
	for _, nodes := range []bool{false, true} {
		a.do(segQ, map[string]any{"id": s1, "first": 2, "nodes": nodes}, &one)
		c := one.Segment.Contacts
		want := int64(2) // the key's and the segment's
		if nodes {
			want = 3 // and the page
		}
		if n := a.statements(); n != want || one.Segment.ContactCount != 3 || c.TotalCount != 3 || c.Count.Count != 3 || c.Count.Precision != "EXACT" || (nodes && len(c.Nodes) != 2) {
			t.Errorf("segment One, nodes %v: %d statements, %+v; want %d statements, 3 contacts, a page of 2", nodes, n, one.Segment, want)
		}
	}
}
