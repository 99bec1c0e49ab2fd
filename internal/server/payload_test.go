package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestPayloadArgumentsCheckedFirst: a mutation whose payload asks for a page, a
// cursor, a search or a count its fields would refuse is refused before it runs
// (400, BAD_USER_INPUT naming the argument and the field's path, not costed) and
// changes nothing. The fields refused them after the change was made, and the client
// heard "bad input" for a segment that had been created.
func TestPayloadArgumentsCheckedFirst(t *testing.T) {
	c := mutClient{newAPI(t)}
	added := c.upsert(map[string]any{"phone": "+919840000001", "name": "Asha"}, map[string]any{"phone": "+919840000002", "name": "Ravi"})
	checkUserErrors(t, added.UserErrors)
	seg := c.createSegment(map[string]any{"name": "Payload", "contactIds": []string{added.Contacts[0].ID, added.Contacts[1].ID}})
	checkUserErrors(t, seg.UserErrors)
	var byName struct {
		Segment struct {
			Contacts struct{ Edges []struct{ Cursor string } }
		}
	}
	c.do(`query($id: ID!) { segment(id: $id) { contacts(first: 1, orderBy: {field: NAME, direction: ASC}) { edges { cursor } } } }`,
		map[string]any{"id": seg.Segment.ID}, &byName)
	nameCursor := byName.Segment.Contacts.Edges[0].Cursor

	// The documents declare the variables $s (String) and $n (Int) that sel uses.
	declare := func(sel string) string {
		var decl []string
		if strings.Contains(sel, "$s") {
			decl = append(decl, "$s: String")
		}
		if strings.Contains(sel, "$n") {
			decl = append(decl, "$n: Int")
		}
		if decl == nil {
			return ""
		}
		return "(" + strings.Join(decl, ", ") + ")"
	}
	create := func(sel string) string {
		return fmt.Sprintf(`mutation%s { createSegment(input: {name: "New", contactIds: [%q]}) { segment { id %s } } }`,
			declare(sel), added.Contacts[0].ID, sel)
	}
	assign := func(sel string) string {
		return fmt.Sprintf(`mutation%s { assignContactsToSegments(input: {contactIds: [%q], segmentIds: [%q]}) { assignedCount segments { %s } } }`,
			declare(sel), added.Contacts[1].ID, seg.Segment.ID, sel)
	}
	before := c.dbState()
	for _, tc := range []struct {
		name, doc string
		vars      map[string]any
		argument  string
		path      string
	}{
		{"a page of 500", create(`contacts(first: 500) { totalCount }`), nil, "first", "[createSegment segment contacts]"},
		{"first and last", assign(`contacts(first: 1, last: 1) { totalCount }`), nil, "last", "[assignContactsToSegments segments contacts]"},
		{"a page size of 0 in a variable", assign(`members: contacts(first: $n) { totalCount }`), map[string]any{"n": 0}, "first", "[assignContactsToSegments segments members]"},
		{"a cursor this API did not make", create(`contacts(after: "bm90LWEtY3Vyc29y") { totalCount }`), nil, "after", "[createSegment segment contacts]"},
		{"a cursor of another order", assign(`contacts(before: $s) { totalCount }`), map[string]any{"s": nameCursor}, "before", "[assignContactsToSegments segments contacts]"},
		{"a search with a NUL", assign(`contacts(search: $s) { totalCount }`), map[string]any{"s": "a\x00b"}, "search", "[assignContactsToSegments segments contacts]"},
		{"a count's limit", create(`contacts { count(limit: 0) { count } }`), nil, "limit", "[createSegment segment contacts count]"},
		{"a count's limit of null", create(`contacts { count(limit: $n) { count } }`), map[string]any{"n": nil}, "limit", "[createSegment segment contacts count]"},
		{"in a fragment", create(`...S`) + ` fragment S on Segment { contacts(last: 101) { totalCount } }`, nil, "last", "[createSegment segment contacts]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.on(t).query(tc.doc, tc.vars)
			r.refused(t, http.StatusBadRequest, "BAD_USER_INPUT")
			e := r.res.Errors[0]
			if e.Extensions["argument"] != tc.argument || fmt.Sprint(e.Path) != tc.path {
				t.Errorf("argument %v at %v, want %s at %s: %s", e.Extensions["argument"], e.Path, tc.argument, tc.path, r.body)
			}
			if r.cost != nil { // refused before it was costed, so not charged
				t.Errorf("costed: %+v", r.cost)
			}
		})
	}
	c.unchanged(before)

	// A field left out is not checked, and pages the fields take are served.
	for _, doc := range []string{
		create(`big: contacts(first: 500) @skip(if: true) { totalCount } contacts(first: 1, search: $s) { totalCount }`),
		assign(`contacts(last: 2, before: $s, orderBy: {field: NAME, direction: ASC}) { totalCount }`),
	} {
		if r := c.query(doc, map[string]any{"s": nameCursor}); r.status != http.StatusOK || len(r.res.Errors) > 0 {
			t.Errorf("%s: %d %s", doc, r.status, r.body)
		}
	}
}
