package server_test

// The paging tests read the connections (Query.segments, Query.contacts and
// Segment.contacts) through the HTTP handler and compare every page with orders and
// sets computed here, independently, from the data the tests created: they never
// compare the server with itself.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/globalid"
)

// The parts of the documents of the connections under test. Every connection takes its
// arguments as variables; a variable left out is an argument left out.
const (
	listPageFields = `totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } nodes { id }`
	listVarDefs    = `$first: Int, $after: String, $last: Int, $before: String, $search: String`
	listArgs       = `first: $first, after: $after, last: $last, before: $before, search: $search`
)

// listConn is a connection the tests page through: a document whose connection takes
// the variables of listVarDefs and orderBy (and filter, for Query.contacts), and the
// path from the response's data to the connection.
type listConn struct {
	name string
	doc  string
	vars map[string]any // fixed variables, such as the ID of the segment
	path []any          // object keys (string) and list indexes (int)
}

// segmentsList is Query.segments.
var segmentsList = listConn{
	name: "Query.segments",
	doc:  `query(` + listVarDefs + `, $orderBy: SegmentOrder) { list: segments(` + listArgs + `, orderBy: $orderBy) { ` + listPageFields + ` } }`,
	path: []any{"list"},
}

// contactsList is Query.contacts.
var contactsList = listConn{
	name: "Query.contacts",
	doc: `query(` + listVarDefs + `, $orderBy: ContactOrder, $filter: ContactFilter) {
		list: contacts(` + listArgs + `, orderBy: $orderBy, filter: $filter) { ` + listPageFields + ` } }`,
	path: []any{"list"},
}

// segmentContactsLists returns Segment.contacts of one segment, read both ways the
// server resolves it: on a segment alone (segment(id:)), and on a segment in a list
// (nodes(ids:)), whose pages a loader reads in one statement for all segments.
func segmentContactsLists(segmentID string) []listConn {
	return []listConn{{
		name: "Segment.contacts of segment(id:)",
		doc: `query($id: ID!, ` + listVarDefs + `, $orderBy: ContactOrder) {
			s: segment(id: $id) { list: contacts(` + listArgs + `, orderBy: $orderBy) { ` + listPageFields + ` } } }`,
		vars: map[string]any{"id": segmentID},
		path: []any{"s", "list"},
	}, {
		name: "Segment.contacts of nodes(ids:)",
		doc: `query($ids: [ID!]!, ` + listVarDefs + `, $orderBy: ContactOrder) {
			s: nodes(ids: $ids) { ... on Segment { list: contacts(` + listArgs + `, orderBy: $orderBy) { ` + listPageFields + ` } } } }`,
		vars: map[string]any{"ids": []string{segmentID}},
		path: []any{"s", 0, "list"},
	}}
}

// searchedLists returns every connection under test, Segment.contacts of segment seg
// among them, with the search each is given: segmentTerm for the segments,
// contactTerm for each list of contacts.
func searchedLists(seg, segmentTerm, contactTerm string) ([]listConn, map[string]string) {
	lists := append([]listConn{segmentsList, contactsList}, segmentContactsLists(seg)...)
	search := map[string]string{}
	for _, c := range lists {
		search[c.name] = contactTerm
	}
	search[segmentsList.name] = segmentTerm
	return lists, search
}

// listPage is one page of a connection, as the tests read it.
type listPage struct {
	TotalCount int        `json:"totalCount"`
	UpTo       *countUpTo `json:"upTo"` // count(limit:), where a document asks for it as upTo
	PageInfo   struct {
		HasNextPage     bool    `json:"hasNextPage"`
		HasPreviousPage bool    `json:"hasPreviousPage"`
		StartCursor     *string `json:"startCursor"`
		EndCursor       *string `json:"endCursor"`
	} `json:"pageInfo"`
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			ID string `json:"id"`
		} `json:"node"`
	} `json:"edges"`
	Nodes []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

// countUpTo is a connection's count(limit:).
type countUpTo struct {
	Count     int    `json:"count"`
	Precision string `json:"precision"`
}

// ids returns the IDs of the page's items, in page order.
func (p listPage) ids() []string {
	out := make([]string, len(p.Edges))
	for i, e := range p.Edges {
		out[i] = e.Node.ID
	}
	return out
}

// cursors returns the cursors of the page's items, in page order.
func (p listPage) cursors() []string {
	out := make([]string, len(p.Edges))
	for i, e := range p.Edges {
		out[i] = e.Cursor
	}
	return out
}

// listOn returns the client reporting to t, for use in subtests.
func (a *api) listOn(t testing.TB) *api {
	b := *a
	b.t = t
	return &b
}

// withVars returns the connection's fixed variables together with vars.
func (c listConn) withVars(vars map[string]any) map[string]any {
	all := maps.Clone(c.vars)
	if all == nil {
		all = map[string]any{}
	}
	maps.Copy(all, vars)
	return all
}

// page reads one page of the connection with the given variables, and checks that the
// page agrees with itself: nodes are the edges' nodes, startCursor and endCursor are
// the cursors of the first and last edges (null when the page is empty), and every
// cursor is set and distinct.
func (c listConn) page(a *api, vars map[string]any) listPage {
	a.t.Helper()
	var raw json.RawMessage
	a.do(c.doc, c.withVars(vars), &raw)
	for _, step := range c.path {
		switch s := step.(type) {
		case string:
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil || m[s] == nil {
				a.t.Fatalf("%s: no %q in %s", c.name, s, raw)
			}
			raw = m[s]
		case int:
			var l []json.RawMessage
			if err := json.Unmarshal(raw, &l); err != nil || s >= len(l) {
				a.t.Fatalf("%s: no element %d in %s", c.name, s, raw)
			}
			raw = l[s]
		}
	}
	var p listPage
	if err := json.Unmarshal(raw, &p); err != nil || string(raw) == "null" {
		a.t.Fatalf("%s: decode page %s: %v", c.name, raw, err)
	}
	if len(p.Nodes) != len(p.Edges) {
		a.t.Errorf("%s: %d nodes but %d edges", c.name, len(p.Nodes), len(p.Edges))
	}
	for i := range min(len(p.Nodes), len(p.Edges)) {
		if p.Nodes[i].ID != p.Edges[i].Node.ID {
			a.t.Errorf("%s: nodes[%d] is %s, edges[%d].node is %s", c.name, i, p.Nodes[i].ID, i, p.Edges[i].Node.ID)
		}
	}
	seen := map[string]bool{}
	for i, e := range p.Edges {
		if e.Cursor == "" || seen[e.Cursor] {
			a.t.Errorf("%s: edges[%d] has an empty or repeated cursor %q", c.name, i, e.Cursor)
		}
		seen[e.Cursor] = true
	}
	start, end := p.PageInfo.StartCursor, p.PageInfo.EndCursor
	if n := len(p.Edges); n == 0 {
		if start != nil || end != nil {
			a.t.Errorf("%s: empty page with startCursor %v, endCursor %v; want null", c.name, listShow(start), listShow(end))
		}
	} else if start == nil || end == nil || *start != p.Edges[0].Cursor || *end != p.Edges[n-1].Cursor {
		a.t.Errorf("%s: startCursor %s, endCursor %s; want the first and last edges' cursors %q, %q",
			c.name, listShow(start), listShow(end), p.Edges[0].Cursor, p.Edges[n-1].Cursor)
	}
	return p
}

// refused sends a page request that must fail with a top-level BAD_USER_INPUT error,
// and returns the error's message and the argument it names (extensions.argument).
func (c listConn) refused(a *api, vars map[string]any) (message, argument string) {
	a.t.Helper()
	res := a.post(c.doc, c.withVars(vars))
	if len(res.Errors) == 0 {
		a.t.Fatalf("%s with %v: no error, want BAD_USER_INPUT; data: %s", c.name, vars, res.Data)
	}
	e := res.Errors[0]
	if code := e.Extensions["code"]; code != "BAD_USER_INPUT" {
		a.t.Fatalf("%s with %v: error code %v, want BAD_USER_INPUT: %+v", c.name, vars, code, res.Errors)
	}
	arg, _ := e.Extensions["argument"].(string)
	return e.Message, arg
}

// idNames shows IDs by the names the test gave their objects, for readable failures.
type idNames map[string]string

func (n idNames) of(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if s, ok := n[id]; ok {
			out[i] = s
		} else {
			out[i] = id
		}
	}
	return out
}

// pageWant is what a page must be: its items, whether items precede and follow it, and the
// size of the whole list.
type pageWant struct {
	items            []string
	hasPrev, hasNext bool
	total            int
}

// check compares a page with w, and reports whether they agree.
func (w pageWant) check(t testing.TB, what string, p listPage, n idNames) bool {
	t.Helper()
	ok := true
	if got := p.ids(); !slices.Equal(got, w.items) {
		t.Errorf("%s: items\n got  %q\n want %q", what, n.of(got), n.of(w.items))
		ok = false
	}
	if p.PageInfo.HasPreviousPage != w.hasPrev || p.PageInfo.HasNextPage != w.hasNext {
		t.Errorf("%s: hasPreviousPage %v, hasNextPage %v; want %v, %v",
			what, p.PageInfo.HasPreviousPage, p.PageInfo.HasNextPage, w.hasPrev, w.hasNext)
		ok = false
	}
	if p.TotalCount != w.total {
		t.Errorf("%s: totalCount %d, want %d", what, p.TotalCount, w.total)
		ok = false
	}
	return ok
}

// checkWalk pages through the whole list the connection gives for vars, size items a
// page: forward (first/after) from the start, or backward (last/before) from the end,
// each page from the cursor the previous page ended (or started) with. Every page must
// hold exactly its part of all, the whole list in order, with hasPreviousPage and
// hasNextPage telling exactly whether items precede and follow it, and the list's size
// as totalCount. After the final page, a page beyond it must be empty. The walk stops
// at the first wrong page.
func (c listConn) checkWalk(a *api, vars map[string]any, size int, backward bool, all []string, n idNames) {
	a.t.Helper()
	total := len(all)
	pages := max(1, (total+size-1)/size)
	var cursor *string
	for k := range pages {
		v := maps.Clone(vars)
		if v == nil {
			v = map[string]any{}
		}
		var lo, hi int
		if backward {
			hi = total - k*size
			lo = max(0, hi-size)
			v["last"] = size
			if cursor != nil {
				v["before"] = *cursor
			}
		} else {
			lo = k * size
			hi = min(total, lo+size)
			v["first"] = size
			if cursor != nil {
				v["after"] = *cursor
			}
		}
		p := c.page(a, v)
		what := fmt.Sprintf("%s %v, page %d", c.name, v, k)
		if !(pageWant{items: all[lo:hi], hasPrev: lo > 0, hasNext: hi < total, total: total}).check(a.t, what, p, n) {
			return
		}
		cursor = p.PageInfo.EndCursor
		if backward {
			cursor = p.PageInfo.StartCursor
		}
	}
	if total == 0 {
		return
	}
	// Past the end: nothing, and the whole list on the other side.
	v := maps.Clone(vars)
	if v == nil {
		v = map[string]any{}
	}
	if backward {
		v["last"], v["before"] = size, *cursor
	} else {
		v["first"], v["after"] = size, *cursor
	}
	p := c.page(a, v)
	pageWant{items: []string{}, hasPrev: !backward, hasNext: backward, total: total}.check(a.t, c.name+" past the end", p, n)
}

// checkWalks walks the list in both directions with pages of each size (1, 4 and 100
// when none is given).
func (c listConn) checkWalks(a *api, vars map[string]any, all []string, n idNames, sizes ...int) {
	a.t.Helper()
	if sizes == nil {
		sizes = []int{1, 4, 100}
	}
	for _, size := range sizes {
		c.checkWalk(a, vars, size, false, all, n)
		c.checkWalk(a, vars, size, true, all, n)
	}
}

// cursorsOf reads the whole list (at most 100 items) with first: 100 and returns the
// cursor of each item, by ID.
func (c listConn) cursorsOf(a *api, vars map[string]any) map[string]string {
	a.t.Helper()
	v := maps.Clone(vars)
	if v == nil {
		v = map[string]any{}
	}
	v["first"] = 100
	p := c.page(a, v)
	out := map[string]string{}
	for i, id := range p.ids() {
		out[id] = p.cursors()[i]
	}
	return out
}

// sortedIDs returns the IDs of items in the order cmp gives, ties in the order of items
// (which the tests create them in: creation order), all reversed when desc. A
// descending order is its ascending order reversed, ties included: the store breaks
// ties by the row's ID in the direction of the order.
func sortedIDs[T any](items []T, id func(T) string, cmp func(a, b T) int, desc bool) []string {
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int { return cmp(items[i], items[j]) })
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = id(items[i])
	}
	if desc {
		slices.Reverse(out)
	}
	return out
}

// compareNamesFolded orders names ignoring case (the tests' names are ASCII), nameless
// last, as the NAME orderings do.
func compareNamesFolded(a, b *string) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return strings.Compare(strings.ToLower(*a), strings.ToLower(*b))
}

// orderArg returns an orderBy argument.
func orderArg(field, direction string) map[string]any {
	return map[string]any{"field": field, "direction": direction}
}

// listT0 is the instant the fixtures' times count from.
var listT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// listSetTimes overwrites the createdAt and updatedAt of a segment or contact with
// listT0 plus the given microseconds, so that the time orderings have known values,
// ties and neighbours one microsecond apart. The API offers no way to choose them.
func (a *api) listSetTimes(id string, created, updated int64) {
	a.t.Helper()
	kind, n, err := globalid.Decode(id)
	if err != nil {
		a.t.Fatal(err)
	}
	table := map[globalid.Kind]string{globalid.Segment: "segments", globalid.Contact: "contacts"}[kind]
	res, err := a.store.DB().ExecContext(context.Background(),
		"UPDATE "+table+" SET created_at = $1, updated_at = $2 WHERE workspace_id = $3 AND id = $4",
		listT0.Add(time.Duration(created)*time.Microsecond), listT0.Add(time.Duration(updated)*time.Microsecond), a.ws.ID, n)
	if err != nil {
		a.t.Fatal(err)
	}
	if rows, _ := res.RowsAffected(); rows != 1 {
		a.t.Fatalf("set times of %s: %d rows", id, rows)
	}
}

// listMutate runs a mutation whose one payload has userErrors, which must be empty, and
// returns the payload.
func (a *api) listMutate(doc string, in map[string]any) json.RawMessage {
	a.t.Helper()
	var out map[string]json.RawMessage
	a.do(doc, map[string]any{"in": in}, &out)
	for _, raw := range out {
		var p struct {
			UserErrors []userError `json:"userErrors"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			a.t.Fatal(err)
		}
		if len(p.UserErrors) > 0 {
			a.t.Fatalf("%s: %v", doc, p.UserErrors)
		}
		return raw
	}
	a.t.Fatalf("%s: no payload", doc)
	return nil
}

// listAddContact creates a contact with a name and an email (nil for none), and
// returns its ID.
func (a *api) listAddContact(phone string, name, email *string) string {
	a.t.Helper()
	raw := a.listMutate(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } createdCount userErrors { field message code } } }`,
		map[string]any{"contacts": []map[string]any{{"phone": phone, "name": name, "email": email}}})
	var p struct {
		Contacts     []contact `json:"contacts"`
		CreatedCount int       `json:"createdCount"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || len(p.Contacts) != 1 || p.CreatedCount != 1 {
		a.t.Fatalf("upsert %s: %s", phone, raw)
	}
	return p.Contacts[0].ID
}

// listAddSegment creates a segment with a description (nil for none) holding the given
// contacts, and returns its ID.
func (a *api) listAddSegment(name string, description *string, contactIDs ...string) string {
	a.t.Helper()
	raw := a.listMutate(`mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } userErrors { field message code } } }`,
		map[string]any{"name": name, "description": description, "contactIds": append([]string{}, contactIDs...)})
	var p struct {
		Segment segment `json:"segment"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		a.t.Fatal(err)
	}
	return p.Segment.ID
}

func (a *api) listDeleteSegment(id string) {
	a.t.Helper()
	a.listMutate(`mutation($in: DeleteSegmentInput!) { deleteSegment(input: $in) { userErrors { field message code } } }`, map[string]any{"id": id})
}

func (a *api) listRenameSegment(id, name string) {
	a.t.Helper()
	a.listMutate(`mutation($in: UpdateSegmentInput!) { updateSegment(input: $in) { userErrors { field message code } } }`, map[string]any{"id": id, "name": name})
}

func (a *api) listDeleteContacts(ids ...string) {
	a.t.Helper()
	a.listMutate(`mutation($in: DeleteContactsInput!) { deleteContacts(input: $in) { userErrors { field message code } } }`, map[string]any{"ids": ids})
}

func (a *api) listAssign(contactIDs []string, segmentIDs ...string) {
	a.t.Helper()
	a.listMutate(`mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { userErrors { field message code } } }`,
		map[string]any{"contactIds": contactIDs, "segmentIds": segmentIDs})
}

func (a *api) listRemove(contactIDs []string, segmentIDs ...string) {
	a.t.Helper()
	a.listMutate(`mutation($in: RemoveContactsFromSegmentsInput!) { removeContactsFromSegments(input: $in) { userErrors { field message code } } }`,
		map[string]any{"contactIds": contactIDs, "segmentIds": segmentIDs})
}

// TestSegmentsOrderings walks Query.segments through every ordering, both directions,
// with pages of 1, 4 and 100, on segments whose names differ in case, whose counts
// tie, and whose times tie or lie one microsecond apart, out of creation order.
func TestSegmentsOrderings(t *testing.T) {
	a := newAPI(t)
	other := a.as(t) // another workspace's segments never show
	other.addSegment("alpha other", other.addContacts(phones(31_000, 2)...)...)

	contacts := a.addContacts(phones(30_000, 5)...)
	type seg struct {
		id, name         string
		count            int
		created, updated int64 // microseconds after listT0
	}
	segs := []seg{
		{name: "beta", count: 2, created: 3_000_000, updated: 5},
		{name: "Alpha", count: 0, created: 0, updated: 5},
		{name: "alpha2", count: 2, created: 1, updated: 5},
		{name: "GAMMA", count: 5, created: 1, updated: 0},
		{name: "delta", count: 0, created: 0, updated: 7_000_000},
		{name: "Beta2", count: 2, created: 1_000_000, updated: 1},
		{name: "epsilon", count: 1, created: 3_000_000, updated: 1},
		{name: "Zeta", count: 0, created: 2_000_001, updated: 5},
		{name: "zz", count: 5, created: 2_000_000, updated: 2},
		{name: "10items", count: 1, created: 1, updated: 0},
		{name: "9lives", count: 2, created: 3_000_000, updated: 7_000_000},
	}
	n := idNames{}
	for i := range segs {
		s := &segs[i]
		s.id = a.addSegment(s.name, contacts[:s.count]...)
		a.listSetTimes(s.id, s.created, s.updated)
		n[s.id] = s.name
	}
	id := func(s seg) string { return s.id }
	byField := map[string]func(x, y seg) int{
		"CREATED_AT":    func(x, y seg) int { return int(x.created - y.created) },
		"UPDATED_AT":    func(x, y seg) int { return int(x.updated - y.updated) },
		"NAME":          func(x, y seg) int { return compareNamesFolded(&x.name, &y.name) },
		"CONTACT_COUNT": func(x, y seg) int { return x.count - y.count },
	}
	for _, field := range []string{"CREATED_AT", "UPDATED_AT", "NAME", "CONTACT_COUNT"} {
		for _, dir := range []string{"ASC", "DESC"} {
			t.Run(field+" "+dir, func(t *testing.T) {
				all := sortedIDs(segs, id, byField[field], dir == "DESC")
				segmentsList.checkWalks(a.listOn(t), map[string]any{"orderBy": orderArg(field, dir)}, all, n)
			})
		}
	}
	t.Run("default order", func(t *testing.T) {
		all := sortedIDs(segs, id, byField["CREATED_AT"], true) // newest first
		segmentsList.checkWalks(a.listOn(t), nil, all, n)
	})
}

// contactFixture is a contact of the ordering tests, created one request at a time so
// that its creation order is the order of the fixture.
type contactFixture struct {
	id               string
	name             *string
	created, updated int64 // microseconds after listT0
	email            *string
	phone            string
}

// TestContactsOrderings walks Query.contacts, and Segment.contacts read both ways,
// through every ordering, both directions, with pages of 1, 4 and 100, on contacts
// whose names and emails tie (equal, or equal ignoring case) or are missing, whose
// times tie or lie one microsecond apart, and whose phones lie, out of creation
// order.
func TestContactsOrderings(t *testing.T) {
	a := newAPI(t)
	other := a.as(t) // another workspace's contacts never show
	other.addSegment("other", other.addContacts(phones(41_000, 3)...)...)

	cs := []contactFixture{
		{name: listText("anna"), created: 5, updated: 9_000_000, email: listText("anna@x.in")},
		{name: listText("Bob"), created: 5, updated: 5, email: nil},
		{name: nil, created: 0, updated: 7, email: listText("Zoe@x.in")},
		{name: listText("Anna"), created: 1_000_000, updated: 7, email: listText("ANNA@x.in")},
		{name: listText("zoe"), created: 1, updated: 9_000_000, email: nil},
		{name: nil, created: 5, updated: 1, email: listText("anna@x.in")},
		{name: listText("anna"), created: 0, updated: 7, email: listText("anna.b@x.in")},
		{name: listText("ANNA B"), created: 2_000_000, updated: 2_000_000, email: nil},
		{name: nil, created: 1, updated: 0, email: listText("3po@x.in")},
		{name: listText("3po"), created: 1_000_000, updated: 7, email: listText("bob@x.in")},
		{name: listText("bob"), created: 5, updated: 9_000_000, email: listText("Bob@X.in")},
		{name: listText("Zoe"), created: 3, updated: 3, email: listText("zoe@x.in")},
	}
	n := idNames{}
	for i := range cs {
		c := &cs[i]
		c.phone = phones(40_000+i*7%len(cs), 1)[0] // a permutation: phones out of creation order
		c.id = a.listAddContact(c.phone, c.name, c.email)
		a.listSetTimes(c.id, c.created, c.updated)
		n[c.id] = fmt.Sprintf("#%d %s", i, listShow(c.name))
	}
	// A segment of some of them, in an order other than creation order.
	memberIdx := []int{11, 0, 2, 3, 5, 7, 9, 10}
	var members []string
	for _, i := range memberIdx {
		members = append(members, cs[i].id)
	}
	seg := a.addSegment("members", members...)

	id := func(c contactFixture) string { return c.id }
	byField := map[string]func(x, y contactFixture) int{
		"CREATED_AT": func(x, y contactFixture) int { return int(x.created - y.created) },
		"UPDATED_AT": func(x, y contactFixture) int { return int(x.updated - y.updated) },
		"NAME":       func(x, y contactFixture) int { return compareNamesFolded(x.name, y.name) },
		"PHONE":      func(x, y contactFixture) int { return strings.Compare(x.phone, y.phone) },
		"EMAIL":      func(x, y contactFixture) int { return compareNamesFolded(x.email, y.email) },
	}
	isMember := func(c contactFixture) bool { return slices.Contains(members, c.id) }
	var memberFixtures []contactFixture
	for _, c := range cs {
		if isMember(c) {
			memberFixtures = append(memberFixtures, c)
		}
	}
	for _, field := range []string{"CREATED_AT", "UPDATED_AT", "NAME", "PHONE", "EMAIL", ""} {
		for _, dir := range []string{"ASC", "DESC"} {
			if field == "" && dir == "ASC" {
				continue
			}
			vars := map[string]any{"orderBy": orderArg(field, dir)}
			name := field + " " + dir
			if field == "" {
				field, vars, name = "CREATED_AT", nil, "default order" // newest first
			}
			t.Run(name, func(t *testing.T) {
				a := a.listOn(t)
				contactsList.checkWalks(a, vars, sortedIDs(cs, id, byField[field], dir == "DESC"), n)
				// Each page of a segment in a list waits for the loader's batch: the list
				// is walked with fewer, larger pages.
				lists := segmentContactsLists(seg)
				inMembers := sortedIDs(memberFixtures, id, byField[field], dir == "DESC")
				lists[0].checkWalks(a, vars, inMembers, n)
				lists[1].checkWalks(a, vars, inMembers, n, 5)
			})
		}
	}
	// The new orders with a search, and with a filter of segments.
	searched := func(c contactFixture) bool {
		for _, s := range []*string{c.name, c.email} {
			if s != nil && strings.Contains(strings.ToLower(*s), "anna") {
				return true
			}
		}
		return false
	}
	for _, field := range []string{"PHONE", "EMAIL"} {
		for _, dir := range []string{"ASC", "DESC"} {
			t.Run(field+" "+dir+" searched and filtered", func(t *testing.T) {
				a := a.listOn(t)
				var found, foundMembers []contactFixture
				for _, c := range cs {
					if searched(c) {
						found = append(found, c)
						if isMember(c) {
							foundMembers = append(foundMembers, c)
						}
					}
				}
				vars := map[string]any{"orderBy": orderArg(field, dir), "search": "anna"}
				contactsList.checkWalks(a, vars, sortedIDs(found, id, byField[field], dir == "DESC"), n, 1, 3)
				inMembers := sortedIDs(memberFixtures, id, byField[field], dir == "DESC")
				contactsList.checkWalks(a, map[string]any{"orderBy": orderArg(field, dir), "filter": map[string]any{"segments": map[string]any{"any": []string{seg}}}},
					inMembers, n, 1, 3)
				searchedMembers := sortedIDs(foundMembers, id, byField[field], dir == "DESC")
				contactsList.checkWalks(a, listVars(vars, "filter", map[string]any{"segments": map[string]any{"all": []string{seg}}}), searchedMembers, n, 1, 3)
				segmentContactsLists(seg)[0].checkWalks(a, vars, searchedMembers, n, 2)
			})
		}
	}
}

// listText returns a pointer to s.
func listText(s string) *string { return &s }

// listShow shows an optional text.
func listShow(p *string) string {
	if p == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", *p)
}

// listPick returns the IDs of the given names.
func listPick(ids map[string]string, keys ...string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		id, ok := ids[k]
		if !ok {
			panic("no object named " + k)
		}
		out[i] = id
	}
	return out
}

// listVars returns vars with more variables added, as name, value pairs.
func listVars(vars map[string]any, kv ...any) map[string]any {
	out := maps.Clone(vars)
	if out == nil {
		out = map[string]any{}
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestPagingAcrossChanges proves that a cursor stays a position in its list while the
// list changes between pages: after the row it points at is deleted (or leaves the
// list) the next page continues where it was, rows inserted behind it do not show
// again, rows inserted ahead of it do, and hasPreviousPage / hasNextPage follow the
// list as it now is.
func TestPagingAcrossChanges(t *testing.T) {
	t.Run("segments by name", func(t *testing.T) {
		a := newAPI(t)
		ids, n := map[string]string{}, idNames{}
		add := func(name string) {
			ids[name] = a.addSegment(name)
			n[ids[name]] = name
		}
		for i := 1; i <= 9; i++ {
			add(fmt.Sprintf("s0%d", i))
		}
		byName := map[string]any{"orderBy": orderArg("NAME", "ASC")}
		p := segmentsList.page(a, listVars(byName, "first", 3))
		pageWant{listPick(ids, "s01", "s02", "s03"), false, true, 9}.check(t, "first page", p, n)
		cursor := *p.PageInfo.EndCursor // s03

		a.listDeleteSegment(ids["s03"])         // the cursor's row
		a.listDeleteSegment(ids["s02"])         // behind
		a.listDeleteSegment(ids["s05"])         // ahead
		add("s00")                              // behind
		add("s055")                             // ahead
		a.listRenameSegment(ids["s08"], "s015") // moves from ahead to behind
		// Now: s00 s01 s015 | s04 s055 s06 s07 s09.
		p = segmentsList.page(a, listVars(byName, "first", 3, "after", cursor))
		pageWant{listPick(ids, "s04", "s055", "s06"), true, true, 8}.check(t, "after the deleted cursor", p, n)
		p = segmentsList.page(a, listVars(byName, "first", 3, "after", *p.PageInfo.EndCursor))
		pageWant{listPick(ids, "s07", "s09"), true, false, 8}.check(t, "last page", p, n)
		p = segmentsList.page(a, listVars(byName, "last", 10, "before", cursor))
		pageWant{listPick(ids, "s00", "s01", "s08"), false, true, 8}.check(t, "before the deleted cursor", p, n)
		p = segmentsList.page(a, listVars(byName, "last", 2, "before", cursor))
		pageWant{listPick(ids, "s01", "s08"), true, true, 8}.check(t, "last 2 before the deleted cursor", p, n)
	})

	t.Run("contacts by name, from a nameless contact", func(t *testing.T) {
		a := newAPI(t)
		ids, n := map[string]string{}, idNames{}
		add := func(key string, name *string) {
			ids[key] = a.listAddContact(phones(60_000+len(ids), 1)[0], name, nil)
			n[ids[key]] = key
		}
		add("a", listText("a"))
		add("b", listText("B"))
		for i := 1; i <= 4; i++ {
			add(fmt.Sprintf("n%d", i), nil)
		}
		byName := map[string]any{"orderBy": orderArg("NAME", "ASC")}
		p := contactsList.page(a, listVars(byName, "first", 3))
		pageWant{listPick(ids, "a", "b", "n1"), false, true, 6}.check(t, "first page", p, n)
		cursor := *p.PageInfo.EndCursor // n1, nameless

		a.listDeleteContacts(ids["n1"]) // the cursor's row
		add("n5", nil)                  // nameless and newest: ahead
		add("c", listText("c"))         // named: behind
		p = contactsList.page(a, listVars(byName, "first", 10, "after", cursor))
		pageWant{listPick(ids, "n2", "n3", "n4", "n5"), true, false, 7}.check(t, "after the deleted nameless cursor", p, n)
		p = contactsList.page(a, listVars(byName, "last", 10, "before", cursor))
		pageWant{listPick(ids, "a", "b", "c"), false, true, 7}.check(t, "before the deleted nameless cursor", p, n)

		// A cursor on the first row, deleted: nothing precedes any more.
		p = contactsList.page(a, listVars(byName, "first", 1))
		first := *p.PageInfo.EndCursor // a
		a.listDeleteContacts(ids["a"])
		p = contactsList.page(a, listVars(byName, "first", 2, "after", first))
		pageWant{listPick(ids, "b", "c"), false, true, 6}.check(t, "after the deleted first row", p, n)
		p = contactsList.page(a, listVars(byName, "last", 2, "before", first))
		pageWant{[]string{}, false, true, 6}.check(t, "before the deleted first row", p, n)
	})

	t.Run("contacts newest first, with new contacts", func(t *testing.T) {
		a := newAPI(t)
		ids, n := map[string]string{}, idNames{}
		add := func(key string) {
			ids[key] = a.listAddContact(phones(61_000+len(ids), 1)[0], listText(key), nil)
			n[ids[key]] = key
		}
		for i := 1; i <= 6; i++ {
			add(fmt.Sprintf("k%d", i))
		}
		p := contactsList.page(a, map[string]any{"first": 2})
		pageWant{listPick(ids, "k6", "k5"), false, true, 6}.check(t, "first page", p, n)
		cursor := *p.PageInfo.EndCursor // k5

		add("k7")                       // newest: behind the cursor
		a.listDeleteContacts(ids["k5"]) // the cursor's row
		p = contactsList.page(a, map[string]any{"first": 10, "after": cursor})
		pageWant{listPick(ids, "k4", "k3", "k2", "k1"), true, false, 6}.check(t, "after the deleted cursor", p, n)
		p = contactsList.page(a, map[string]any{"last": 10, "before": cursor})
		pageWant{listPick(ids, "k7", "k6"), false, true, 6}.check(t, "before the deleted cursor", p, n)
	})

	t.Run("contacts of a segment", func(t *testing.T) {
		a := newAPI(t)
		ids, n := map[string]string{}, idNames{}
		add := func(key string) {
			ids[key] = a.listAddContact(phones(62_000+len(ids), 1)[0], listText(key), nil)
			n[ids[key]] = key
		}
		for i := 1; i <= 6; i++ {
			add(fmt.Sprintf("m%d", i))
		}
		seg := a.addSegment("members", listPick(ids, "m1", "m2", "m3", "m4", "m5", "m6")...)
		byName := map[string]any{"orderBy": orderArg("NAME", "ASC")}
		lists := segmentContactsLists(seg)
		cursors := make([]string, len(lists))
		for i, c := range lists {
			p := c.page(a, listVars(byName, "first", 2))
			pageWant{listPick(ids, "m1", "m2"), false, true, 6}.check(t, c.name+" first page", p, n)
			cursors[i] = *p.PageInfo.EndCursor // m2
		}

		a.listRemove(listPick(ids, "m2"), seg) // the cursor's row leaves the segment
		add("m0")                              // behind
		add("m25")                             // ahead
		add("m35")                             // ahead, but not a member
		a.listAssign(listPick(ids, "m0", "m25"), seg)
		for i, c := range lists {
			p := c.page(a, listVars(byName, "first", 10, "after", cursors[i]))
			pageWant{listPick(ids, "m25", "m3", "m4", "m5", "m6"), true, false, 7}.check(t, c.name+" after the removed cursor", p, n)
			p = c.page(a, listVars(byName, "last", 10, "before", cursors[i]))
			pageWant{listPick(ids, "m0", "m1"), false, true, 7}.check(t, c.name+" before the removed cursor", p, n)
		}
	})
}

// TestPageSizesRefused proves that first and last outside 1..100, and first together
// with last, are refused on every connection with a top-level BAD_USER_INPUT error that
// names the argument, and that the bounds themselves are accepted.
func TestPageSizesRefused(t *testing.T) {
	a := newAPI(t)
	seg := a.addSegment("sizes", a.addContacts(phones(50_000, 3)...)...)
	for _, c := range append([]listConn{segmentsList, contactsList}, segmentContactsLists(seg)...) {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			for _, tc := range []struct {
				vars     map[string]any
				argument string
			}{
				{map[string]any{"first": 0}, "first"},
				{map[string]any{"first": -1}, "first"},
				{map[string]any{"first": 101}, "first"},
				{map[string]any{"first": 1 << 30}, "first"},
				{map[string]any{"last": 0}, "last"},
				{map[string]any{"last": -5}, "last"},
				{map[string]any{"last": 101}, "last"},
				{map[string]any{"first": 0, "last": 0}, "last"},
				{map[string]any{"first": 1, "last": 1}, "last"},
				{map[string]any{"first": 2, "last": 2, "search": "x"}, "last"},
			} {
				msg, arg := c.refused(a, tc.vars)
				if arg != tc.argument || !strings.Contains(msg, tc.argument) {
					t.Errorf("%v: refused naming argument %q with message %q; want the argument %q named", tc.vars, arg, msg, tc.argument)
				}
			}
			if msg, _ := c.refused(a, map[string]any{"first": 1, "last": 1}); !strings.Contains(msg, "first") {
				t.Errorf("first with last: message %q does not name first", msg)
			}
			// The bounds: a page of that many, or of the whole list when it is shorter.
			listLen := 3
			if c.name == segmentsList.name {
				listLen = 1
			}
			for _, arg := range []string{"first", "last"} {
				for _, size := range []int{1, 100} {
					if got := len(c.page(a, map[string]any{arg: size}).Edges); got != min(size, listLen) {
						t.Errorf("%s: %d: %d items, want %d", arg, size, got, min(size, listLen))
					}
				}
			}
		})
	}
}

// tamperedCursor returns a cursor-looking string that no list made: base64url of raw.
func tamperedCursor(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }

// TestCursorsRefused proves that, on every connection, an after or before that is not
// a cursor this list's ordering returned is refused with a top-level BAD_USER_INPUT
// error naming the argument: garbage, tampered cursors, and real cursors of another
// ordering of the same list.
func TestCursorsRefused(t *testing.T) {
	a := newAPI(t)
	cs := a.addContacts(phones(51_000, 3)...)
	seg := a.addSegment("cursors", cs...)
	a.addSegment("cursors 2", cs[:1]...)
	malformed := []string{
		"",
		"not a cursor",
		"!!!!",
		base64.StdEncoding.EncodeToString([]byte(`{"k":"created_at","v":"2026-01-01T00:00:00Z","i":12}`)), // padded
		tamperedCursor(`{}`),
		tamperedCursor(`null`),
		tamperedCursor(`{"k":"created_at","v":"2026-01-01T00:00:00Z","i":0}`),
		tamperedCursor(`{"k":"created_at","v":"2026-01-01T00:00:00Z","i":-3}`),
		tamperedCursor(`{"k":"created_at","v":"yesterday","i":1}`),
		tamperedCursor(`{"k":"created_at","v":12,"i":1}`),
		tamperedCursor(`{"k":"created_at","v":"2026-01-01T00:00:00Z","i":1}{}`),
		tamperedCursor(`{"k":"no such ordering","v":1,"i":1}`),
	}
	// Real cursors of one ordering, for a list read in another.
	segmentCursor := func(field string) string {
		return *segmentsList.page(a, map[string]any{"first": 1, "orderBy": orderArg(field, "ASC")}).PageInfo.EndCursor
	}
	contactCursor := func(field string) string {
		return *contactsList.page(a, map[string]any{"first": 1, "orderBy": orderArg(field, "ASC")}).PageInfo.EndCursor
	}
	type misuse struct {
		cursor  string
		orderBy map[string]any
	}
	segmentMisuses := []misuse{
		{segmentCursor("NAME"), orderArg("CREATED_AT", "ASC")},
		{segmentCursor("CREATED_AT"), orderArg("UPDATED_AT", "DESC")},
		{segmentCursor("CONTACT_COUNT"), orderArg("NAME", "ASC")},
		{segmentCursor("UPDATED_AT"), orderArg("CONTACT_COUNT", "ASC")},
		{segmentCursor("NAME"), nil}, // the default order: CREATED_AT
	}
	contactMisuses := []misuse{
		{contactCursor("NAME"), orderArg("CREATED_AT", "ASC")},
		{contactCursor("CREATED_AT"), orderArg("NAME", "DESC")},
		{contactCursor("UPDATED_AT"), orderArg("CREATED_AT", "DESC")},
		{contactCursor("NAME"), nil},
	}
	for _, c := range append([]listConn{segmentsList, contactsList}, segmentContactsLists(seg)...) {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			misuses := contactMisuses
			if c.name == segmentsList.name {
				misuses = segmentMisuses
			}
			refused := func(vars map[string]any, argument string) {
				t.Helper()
				msg, arg := c.refused(a, vars)
				if arg != argument || !strings.Contains(msg, argument) {
					t.Errorf("%v: refused naming argument %q with message %q; want %q named", vars, arg, msg, argument)
				}
			}
			malformed, misuses := malformed, misuses
			if c.name == segmentContactsLists(seg)[1].name {
				// Each request of a segment in a list waits for its batch: a sample.
				malformed, misuses = malformed[:3], misuses[:1]
			}
			for i, cursor := range malformed {
				refused(map[string]any{"first": 2, "after": cursor}, "after")
				refused(map[string]any{"last": 2, "before": cursor}, "before")
				if i%3 == 0 { // without first and last: a sample
					refused(map[string]any{"after": cursor}, "after")
					refused(map[string]any{"before": cursor}, "before")
				}
			}
			for _, m := range misuses {
				vars := map[string]any{"first": 2, "after": m.cursor}
				if m.orderBy != nil {
					vars["orderBy"] = m.orderBy
				}
				refused(vars, "after")
				refused(map[string]any{"last": 2, "before": m.cursor, "orderBy": vars["orderBy"]}, "before")
			}
		})
	}
}

// TestAfterAndBefore proves that after and before together select the items strictly
// between the two cursors, counted from the front with first and from the back with
// last, on every connection.
func TestAfterAndBefore(t *testing.T) {
	a := newAPI(t)
	ids, segIDs, n := map[string]string{}, map[string]string{}, idNames{}
	var all []string
	for i := 1; i <= 9; i++ {
		key := fmt.Sprintf("w%d", i)
		ids[key] = a.listAddContact(phones(52_000+i, 1)[0], listText(key), nil)
		n[ids[key]] = key
		all = append(all, ids[key])
		segIDs[key] = a.addSegment(key)
		n[segIDs[key]] = key
	}
	seg := a.addSegment("window", all...)
	n[seg] = "window"
	byName := map[string]any{"orderBy": orderArg("NAME", "ASC")}
	for _, c := range append([]listConn{segmentsList, contactsList}, segmentContactsLists(seg)...) {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			cursors := c.cursorsOf(a, byName)
			list := all // the list in name order: w1 ... w9
			if c.name == segmentsList.name {
				list = listPick(segIDs, "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9")
				list = append(list, seg) // "window" sorts last
			}
			after, before := cursors[list[1]], cursors[list[7]] // between: list[2:7]
			p := c.page(a, listVars(byName, "first", 2, "after", after, "before", before))
			pageWant{list[2:4], true, true, len(list)}.check(t, "first 2 between", p, n)
			p = c.page(a, listVars(byName, "last", 2, "after", after, "before", before))
			pageWant{list[5:7], true, true, len(list)}.check(t, "last 2 between", p, n)
			// Pages as large as the window or larger hold the whole window. Whether
			// hasNextPage (forward) and hasPreviousPage (backward) then look past the
			// other cursor is left open: Relay counts only the window.
			for _, vars := range []map[string]any{
				listVars(byName, "first", 5, "after", after, "before", before),
				listVars(byName, "first", 100, "after", after, "before", before),
				listVars(byName, "last", 100, "after", after, "before", before),
				listVars(byName, "after", after, "before", before),
			} {
				p = c.page(a, vars)
				if got := p.ids(); !slices.Equal(got, list[2:7]) {
					t.Errorf("%v: got %q, want %q", vars, n.of(got), n.of(list[2:7]))
				}
			}
			// Cursors that leave nothing between them.
			p = c.page(a, listVars(byName, "first", 3, "after", cursors[list[4]], "before", cursors[list[5]]))
			if len(p.Edges) != 0 {
				t.Errorf("between neighbours: %q", n.of(p.ids()))
			}
			p = c.page(a, listVars(byName, "first", 3, "after", cursors[list[6]], "before", cursors[list[2]]))
			if len(p.Edges) != 0 {
				t.Errorf("after a later cursor than before: %q", n.of(p.ids()))
			}
		})
	}
}

// TestDefaultPageSize proves that a page without first and last holds 20 items: the
// first 20, the 20 after after, or the 20 before before.
func TestDefaultPageSize(t *testing.T) {
	a := newAPI(t)
	n := idNames{}
	var contacts, segs []string // in creation order
	for i := range 25 {
		key := fmt.Sprintf("d%02d", i)
		id := a.listAddContact(phones(53_000+i, 1)[0], listText(key), nil)
		contacts = append(contacts, id)
		n[id] = key
		s := a.addSegment(key)
		segs = append(segs, s)
		n[s] = key
	}
	seg := a.addSegment("all", contacts...)
	segsInOrder := listReversed(segs)
	// The default order is newest first; the segment "all" itself is the newest.
	segsInOrder = append([]string{seg}, segsInOrder...)
	n[seg] = "all"
	byList := map[string][]string{segmentsList.name: segsInOrder}
	for _, c := range append([]listConn{contactsList}, segmentContactsLists(seg)...) {
		byList[c.name] = listReversed(contacts)
	}
	for _, c := range append([]listConn{segmentsList, contactsList}, segmentContactsLists(seg)...) {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			list := byList[c.name]
			total := len(list)
			p := c.page(a, nil)
			pageWant{list[:20], false, true, total}.check(t, "no arguments", p, n)
			cursors := c.cursorsOf(a, nil)
			p = c.page(a, map[string]any{"after": cursors[list[2]]})
			pageWant{list[3:23], true, true, total}.check(t, "after only", p, n)
			p = c.page(a, map[string]any{"before": cursors[list[total-1]]})
			pageWant{list[total-21 : total-1], true, true, total}.check(t, "before only", p, n)
			p = c.page(a, map[string]any{"search": "d"})
			if len(p.Edges) != 20 {
				t.Errorf("search only: %d items, want 20", len(p.Edges))
			}
		})
	}
}

// TestTotalCountOfAWholePage checks that a page read without a cursor that holds the
// whole list gives its totalCount without a statement of its own (a search with fewer
// matches than a page: the dashboard's search box), and that every other page (cut
// short, or read from a cursor) still counts the list with one. Each list, read with
// and without totalCount, in both directions; the totals themselves are checked by
// every walk of this file.
func TestTotalCountOfAWholePage(t *testing.T) {
	a := newAPI(t)
	seg := a.addSegment("whole 0", a.addContacts(phones(54_000, 3)...)...)
	a.addSegment("whole 1")
	a.addSegment("whole 2")
	// Searches that find exactly the three items of each list (a segment's contacts
	// are counted from its contactCount without a search, so these lists search).
	lists, search := searchedLists(seg, "whole", "9198000540")
	for _, c := range lists {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			uncounted := c
			uncounted.doc = strings.Replace(c.doc, "totalCount ", "", 1)
			// statements returns what a page costs with totalCount beyond what it
			// costs without, and checks the total.
			statements := func(vars map[string]any) int64 {
				vars["search"] = search[c.name]
				uncounted.page(a, vars)
				without := a.statements()
				if p := c.page(a, vars); p.TotalCount != 3 {
					t.Errorf("%v: totalCount %d, want 3", vars, p.TotalCount)
				}
				return a.statements() - without
			}
			for _, size := range []string{"first", "last"} {
				if extra := statements(map[string]any{size: 3}); extra != 0 {
					t.Errorf("%s: 3, the whole list: %d statements more for totalCount, want none", size, extra)
				}
				if extra := statements(map[string]any{size: 2}); extra != 1 {
					t.Errorf("%s: 2 of 3: %d statements more for totalCount, want 1", size, extra)
				}
			}
			// Any cursor: a page read from one may hold the rest of the list, but
			// not that nothing lies beyond the cursor.
			for _, cursor := range c.cursorsOf(a, map[string]any{"search": search[c.name]}) {
				for _, arg := range []string{"after", "before"} {
					if extra := statements(map[string]any{arg: cursor}); extra != 1 {
						t.Errorf("%s a cursor: %d statements more for totalCount, want 1", arg, extra)
					}
				}
				break
			}
		})
	}
}

// TestCountUpToALimit checks count(limit:) on every connection, for a list of 12:
// exact up to the limit, the limit marked AT_LEAST beyond it, 10,000 by default, and
// limits out of 1..100,000 refused; the same whether the page read holds the whole
// list or not; one statement more than the page without it, as for totalCount, and
// none where a page read without a cursor holds the whole list; and a segment
// filter's audience, counted without a page, capped too.
func TestCountUpToALimit(t *testing.T) {
	a := newAPI(t)
	contacts := a.addContacts(phones(55_000, 12)...)
	seg := a.addSegment("upto 0", contacts...)
	for i := 1; i < 12; i++ {
		a.addSegment(fmt.Sprintf("upto %d", i))
	}
	lists, search := searchedLists(seg, "upto", "919800055")
	for _, c := range lists {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			counted, uncounted := c, c
			counted.doc = strings.Replace(strings.Replace(c.doc, "totalCount ", "upTo: count(limit: $limit) { count precision } ", 1),
				listVarDefs, listVarDefs+", $limit: Int", 1)
			uncounted.doc = strings.Replace(c.doc, "totalCount ", "", 1)
			for _, first := range []int{5, 12} { // part of the list, the whole list
				for _, tc := range []struct {
					limit any // nil: the default
					want  countUpTo
				}{
					{1, countUpTo{1, "AT_LEAST"}},
					{11, countUpTo{11, "AT_LEAST"}},
					{12, countUpTo{12, "EXACT"}},
					{13, countUpTo{12, "EXACT"}},
					{nil, countUpTo{12, "EXACT"}},
					{100_000, countUpTo{12, "EXACT"}},
				} {
					vars := map[string]any{"first": first, "search": search[c.name]}
					uncounted.page(a, vars)
					without := a.statements()
					if tc.limit != nil {
						vars["limit"] = tc.limit
					}
					p := counted.page(a, vars)
					if p.UpTo == nil || *p.UpTo != tc.want {
						t.Errorf("first %d, limit %v: count %+v, want %+v", first, tc.limit, p.UpTo, tc.want)
					}
					want := int64(1)
					if first == 12 {
						want = 0 // the page is the whole list
					}
					if extra := a.statements() - without; extra != want {
						t.Errorf("first %d, limit %v: %d statements more for count, want %d", first, tc.limit, extra, want)
					}
				}
			}
			for _, limit := range []int{0, -1, 100_001} {
				msg, arg := counted.refused(a, map[string]any{"first": 5, "search": search[c.name], "limit": limit})
				if arg != "limit" || !strings.Contains(msg, "between 1 and 100000") {
					t.Errorf("limit %d: refused with %q naming %q, want the limit's range naming limit", limit, msg, arg)
				}
			}
			// An explicit null replaces the default: refused for what it is, not as
			// the 0 the client never sent.
			msg, arg := counted.refused(a, map[string]any{"first": 5, "search": search[c.name], "limit": nil})
			if arg != "limit" || !strings.Contains(msg, "cannot be null") {
				t.Errorf("limit null: refused with %q naming %q, want a null limit refused naming limit", msg, arg)
			}
		})
	}

	// An audience counted alone, as a campaign's preview does: no page is read, and
	// its count (from the segments' bitmaps) is capped like any other.
	const audience = `query($any: [ID!], $limit: Int) { contacts(filter: {segments: {any: $any}}) { upTo: count(limit: $limit) { count precision } } }`
	const total = `query($any: [ID!]) { contacts(filter: {segments: {any: $any}}) { totalCount } }`
	a.do(total, map[string]any{"any": []string{seg}}, nil)
	totalStatements := a.statements()
	for limit, want := range map[int]countUpTo{5: {5, "AT_LEAST"}, 12: {12, "EXACT"}} {
		var got struct {
			Contacts struct {
				UpTo countUpTo `json:"upTo"`
			} `json:"contacts"`
		}
		a.do(audience, map[string]any{"any": []string{seg}, "limit": limit}, &got)
		if got.Contacts.UpTo != want {
			t.Errorf("audience up to %d: %+v, want %+v", limit, got.Contacts.UpTo, want)
		}
		if n := a.statements(); n != totalStatements {
			t.Errorf("audience up to %d: %d statements, want %d as for its totalCount alone", limit, n, totalStatements)
		}
	}
}

// searchCase is a search and the names of the objects it must find.
type searchCase struct {
	search string
	found  []string
}

// checkSearches runs each search on the connection, in one page, and checks that it
// finds exactly the named objects (byName maps names to IDs), with their number as
// totalCount.
func (c listConn) checkSearches(a *api, byName map[string]string, cases []searchCase) {
	a.t.Helper()
	n := idNames{}
	for name, id := range byName {
		n[id] = name
	}
	for _, sc := range cases {
		p := c.page(a, map[string]any{"first": 100, "search": sc.search})
		got := n.of(p.ids())
		slices.Sort(got)
		wantNames := slices.Sorted(slices.Values(sc.found))
		if !slices.Equal(got, wantNames) || p.TotalCount != len(sc.found) {
			a.t.Errorf("%s search %q: found %q (totalCount %d), want %q", c.name, sc.search, got, p.TotalCount, wantNames)
		}
	}
}

// TestSegmentsSearch proves that search keeps the segments whose name or description
// contains the text, ignoring case; that %, _ and \ match only themselves; that a text
// spanning name and description matches neither; that totalCount counts the matches;
// and that the matches page like any list, in both directions.
func TestSegmentsSearch(t *testing.T) {
	a := newAPI(t)
	a.as(t).addSegment("Diwali other workspace")
	ids := map[string]string{}
	for _, s := range []struct{ name, description string }{
		{"Festival Buyers", "Diwali 2026 campaign"},
		{"Other", "diwali lights"},
		{"VIP users", ""},
		{"100% loyal", "pct"},
		{"1000 loyal", ""}, // would match 0% if % were a wildcard
		{"a_b team", ""},
		{"axb team", "bait"}, // would match a_b if _ were a wildcard
		{`back\slash`, ""},
		{"Marks", ""}, // would match k\s if \ escaped
		{"North", "Star"},
		{"Team A", ""},
		{"TEAM B", ""},
		{"steamers", ""},
		{"Ops", "the ops Team"},
	} {
		var desc *string
		if s.description != "" {
			desc = listText(s.description)
		}
		ids[s.name] = a.listAddSegment(s.name, desc)
	}
	everything := slices.Collect(maps.Keys(ids))
	teams := []string{"a_b team", "axb team", "Team A", "TEAM B", "steamers", "Ops"}
	segmentsList.checkSearches(a, ids, []searchCase{
		{"", everything},
		{"diwali", []string{"Festival Buyers", "Other"}},
		{"DIWALI 2026", []string{"Festival Buyers"}},
		{"vip", []string{"VIP users"}},
		{"VIP USERS", []string{"VIP users"}},
		{"%", []string{"100% loyal"}},
		{"0%", []string{"100% loyal"}},
		{"100% L", []string{"100% loyal"}},
		{"_", []string{"a_b team"}},
		{"a_b", []string{"a_b team"}},
		{`\`, []string{`back\slash`}},
		{`k\s`, []string{`back\slash`}},
		{`\%`, nil},
		{`%%`, nil},
		{"north", []string{"North"}},
		{"STAR", []string{"North"}},
		{"NorthStar", nil},
		{"North Star", nil},
		{"team", teams},
		{"TEAM", teams},
		{"no such text", nil},
	})

	t.Run("paging through matches", func(t *testing.T) {
		a := a.listOn(t)
		n := idNames{}
		type match struct {
			id, name string
			created  int // creation order
		}
		var matches []match
		for i, name := range teams {
			matches = append(matches, match{ids[name], name, i})
			n[ids[name]] = name
		}
		byName := func(x, y match) int { return compareNamesFolded(&x.name, &y.name) }
		byCreation := func(x, y match) int { return x.created - y.created }
		id := func(m match) string { return m.id }
		segmentsList.checkWalks(a, map[string]any{"search": "team", "orderBy": orderArg("NAME", "ASC")}, sortedIDs(matches, id, byName, false), n)
		segmentsList.checkWalks(a, map[string]any{"search": "TEAM", "orderBy": orderArg("NAME", "DESC")}, sortedIDs(matches, id, byName, true), n)
		segmentsList.checkWalks(a, map[string]any{"search": "Team"}, sortedIDs(matches, id, byCreation, true), n)
	})
}

// TestSearchLength proves that a search of more than 200 characters is refused on every
// connection with a top-level BAD_USER_INPUT error naming search, and that 200
// characters, however many bytes, are accepted.
func TestSearchLength(t *testing.T) {
	a := newAPI(t)
	seg := a.addSegment("search length", a.addContacts(phones(55_000, 2)...)...)
	for _, c := range append([]listConn{segmentsList, contactsList}, segmentContactsLists(seg)...) {
		t.Run(c.name, func(t *testing.T) {
			a := a.listOn(t)
			for _, search := range []string{strings.Repeat("a", 201), strings.Repeat("é", 201), strings.Repeat("ab", 1000)} {
				msg, arg := c.refused(a, map[string]any{"first": 5, "search": search})
				if arg != "search" || !strings.Contains(msg, "search") {
					t.Errorf("search of %d characters: refused naming %q with message %q", len([]rune(search)), arg, msg)
				}
			}
			for _, search := range []string{strings.Repeat("a", 200), strings.Repeat("é", 200)} {
				if p := c.page(a, map[string]any{"first": 5, "search": search}); len(p.Edges) != 0 || p.TotalCount != 0 {
					t.Errorf("search of 200 characters: %d items, totalCount %d", len(p.Edges), p.TotalCount)
				}
			}
		})
	}
}

// TestContactsSearch proves that search keeps the contacts whose name, phone or email
// contains the text, ignoring case, on Query.contacts and Segment.contacts: %, _ and \
// match only themselves; a text of digits and phone punctuation (+ - ( ) . and
// spaces) finds the phone numbers holding its digits, as the store promises; an
// empty search keeps everyone; totalCount counts the matches; and the matches page in
// both directions.
func TestContactsSearch(t *testing.T) {
	a := newAPI(t)
	a.as(t).listAddContact("+919800000001", listText("Priya elsewhere"), nil)
	ids, n := map[string]string{}, idNames{}
	var fixtures []contactFixture
	for _, c := range []struct{ key, phone, name, email string }{
		{"priya sharma", "+919800000001", "Priya Sharma", ""},
		{"priya k", "+919800000002", "PRIYA K", "pk@example.com"},
		{"rahul", "+919811112222", "Rahul", "rahul@Example.com"},
		{"priya email", "+919822223333", "", "priya@example.com"},
		{"sam", "+447911123456", "Sam", ""},
		{"50%", "+919833334444", "50% off", ""},
		{"5000", "+919844445555", "5000 off", ""}, // would match 0% if % were a wildcard
		{"a_b", "+919855556666", "Ab Test", "a_b@x.io"},
		{"axb", "+919866667777", "axb", "axb@x.io"}, // would match a_b if _ were a wildcard
		{"backslash", "+919877778888", `back\slash`, ""},
		{"marks", "+919888889999", "Marks", ""}, // would match k\s if \ escaped
		{"nobody", "+919899990000", "", ""},
		{"élodie", "+919812345678", "Élodie Durand", "ELODIE@Durand.fr"},
	} {
		var name, email *string
		if c.name != "" {
			name = listText(c.name)
		}
		if c.email != "" {
			email = listText(c.email)
		}
		ids[c.key] = a.listAddContact(c.phone, name, email)
		n[ids[c.key]] = c.key
		fixtures = append(fixtures, contactFixture{id: ids[c.key], name: name})
	}
	priyas := []string{"priya sharma", "priya k", "priya email"}
	cases := []searchCase{
		{"", slices.Collect(maps.Keys(ids))},
		{"priya", priyas},
		{"PRIYA", priyas},
		{"Priya Sharma", []string{"priya sharma"}},
		{"example.com", []string{"priya k", "rahul", "priya email"}},
		{"EXAMPLE", []string{"priya k", "rahul", "priya email"}},
		{"rahul@example", []string{"rahul"}},
		// Case is ignored beyond ASCII, in the pattern and in the text.
		{"élodie", []string{"élodie"}},
		{"ÉLODIE", []string{"élodie"}},
		{"elodie@", []string{"élodie"}},
		{"%", []string{"50%"}},
		{"0%", []string{"50%"}},
		{"_", []string{"a_b"}},
		{"a_b", []string{"a_b"}},
		{`\`, []string{"backslash"}},
		{`k\s`, []string{"backslash"}},
		{`\_`, nil},
		// Phones, however written.
		{"9800000001", []string{"priya sharma"}},
		{"+919800000001", []string{"priya sharma"}},
		{"98 0000 0001", []string{"priya sharma"}},
		{"+91 98000-00001", []string{"priya sharma"}},
		{"(981) 111-2222", []string{"rahul"}},
		{"1111 2222", []string{"rahul"}},
		{"98.22.22.33.33", []string{"priya email"}},
		{"+44 7911 123456", []string{"sam"}},
		{"+44-7911", []string{"sam"}},
		{"+91 98000 0000", []string{"priya sharma", "priya k"}},
		{"0000", []string{"priya sharma", "priya k", "nobody"}},
		{"98 0000 0009", nil},
		{"no such text", nil},
	}
	contactsList.checkSearches(a, ids, cases)

	// The same searches among the contacts of a segment.
	memberKeys := []string{"priya sharma", "rahul", "priya email", "50%", "5000", "a_b", "backslash", "nobody"}
	seg := a.addSegment("searched", listPick(ids, memberKeys...)...)
	var segCases []searchCase
	for _, sc := range cases {
		var found []string
		for _, key := range sc.found {
			if slices.Contains(memberKeys, key) {
				found = append(found, key)
			}
		}
		segCases = append(segCases, searchCase{sc.search, found})
	}
	segmentContactsLists(seg)[0].checkSearches(a, ids, segCases)
	// Each request of a segment in a list waits for its batch: a sample.
	segmentContactsLists(seg)[1].checkSearches(a, ids, []searchCase{segCases[1], segCases[5], segCases[8], segCases[11], segCases[17]})

	t.Run("paging through matches", func(t *testing.T) {
		a := a.listOn(t)
		id := func(c contactFixture) string { return c.id }
		byName := func(x, y contactFixture) int { return compareNamesFolded(x.name, y.name) }
		var examples, priyaFixtures []contactFixture // in creation order
		for _, f := range fixtures {
			switch n[f.id] {
			case "priya k", "rahul", "priya email":
				examples = append(examples, f)
			}
			if slices.Contains(priyas, n[f.id]) {
				priyaFixtures = append(priyaFixtures, f)
			}
		}
		contactsList.checkWalks(a, map[string]any{"search": "Example", "orderBy": orderArg("NAME", "ASC")}, sortedIDs(examples, id, byName, false), n)
		contactsList.checkWalks(a, map[string]any{"search": "priya", "orderBy": orderArg("NAME", "DESC")}, sortedIDs(priyaFixtures, id, byName, true), n)
		contactsList.checkWalks(a, map[string]any{"search": "+91 98"}, reversedIDs(fixtures, func(f contactFixture) bool { return n[f.id] != "sam" }), n)
		var memberExamples []contactFixture
		for _, f := range examples {
			if slices.Contains(memberKeys, n[f.id]) {
				memberExamples = append(memberExamples, f)
			}
		}
		lists := segmentContactsLists(seg)
		lists[0].checkWalks(a, map[string]any{"search": "EXAMPLE", "orderBy": orderArg("NAME", "ASC")}, sortedIDs(memberExamples, id, byName, false), n)
		lists[1].checkWalks(a, map[string]any{"search": "EXAMPLE", "orderBy": orderArg("NAME", "ASC")}, sortedIDs(memberExamples, id, byName, false), n, 1)
	})
}

// listReversed returns ids in reverse order.
func listReversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// reversedIDs returns the IDs of the fixtures that keep holds, newest first.
func reversedIDs(fixtures []contactFixture, keep func(contactFixture) bool) []string {
	var out []string
	for _, f := range slices.Backward(fixtures) {
		if keep(f) {
			out = append(out, f.id)
		}
	}
	return out
}

// TestContactFilter proves the any/all/none semantics of ContactFilter.segments on a
// hand-built membership matrix, for every combination of a set of lists: the contacts
// returned and totalCount (the deduplicated audience) equal the set computed here,
// without and with a search. An empty any keeps nobody, empty all and none keep
// everyone, and IDs of another workspace's segment or of no segment stand for an
// empty segment.
func TestContactFilter(t *testing.T) {
	a := newAPI(t)
	b := a.as(t)
	bContacts := b.addContacts(phones(71_000, 8)...)
	otherWS := b.addSegment("other workspace", bContacts...) // holds B's contacts only

	const contacts = 8
	n := idNames{}
	var cs []string
	for i := range contacts {
		parity := "even"
		if i%2 == 1 {
			parity = "odd"
		}
		key := fmt.Sprintf("%s %d", parity, i)
		cs = append(cs, a.listAddContact(phones(70_000+i, 1)[0], listText(key), nil))
		n[cs[i]] = key
	}
	// The matrix: contact 7 is in no segment, S3 holds nobody.
	members := [][]int{
		{0, 1, 2, 3}, // S0
		{2, 3, 4, 5}, // S1
		{3, 5, 6},    // S2
		{},           // S3
	}
	var segs []string
	for i, m := range members {
		var ids []string
		for _, c := range m {
			ids = append(ids, cs[c])
		}
		segs = append(segs, a.addSegment(fmt.Sprintf("S%d", i), ids...))
	}
	absent := globalid.Encode(globalid.Segment, 1<<50)
	// memberSet returns the members of the segment with the given ID: nobody for
	// otherWS and absent.
	memberSet := func(id string) map[int]bool {
		out := map[int]bool{}
		if i := slices.Index(segs, id); i >= 0 {
			for _, c := range members[i] {
				out[c] = true
			}
		}
		return out
	}
	// expected computes the audience of a filter from the matrix.
	expected := func(anyOf, allOf, noneOf []string) []string {
		var out []string
		for c := range contacts {
			keep := true
			if anyOf != nil {
				keep = slices.ContainsFunc(anyOf, func(s string) bool { return memberSet(s)[c] })
			}
			for _, s := range allOf {
				keep = keep && memberSet(s)[c]
			}
			for _, s := range noneOf {
				keep = keep && !memberSet(s)[c]
			}
			if keep {
				out = append(out, cs[c])
			}
		}
		return out
	}
	lists := map[string][]string{
		"nil":           nil,
		"[]":            {},
		"[S0]":          {segs[0]},
		"[S1 S2]":       {segs[1], segs[2]},
		"[S0 S1 S2]":    {segs[0], segs[1], segs[2]},
		"[S3]":          {segs[3]},
		"[S2 S2]":       {segs[2], segs[2]},
		"[other]":       {otherWS},
		"[absent S2]":   {absent, segs[2]},
		"[S0 S3 other]": {segs[0], segs[3], otherWS},
	}
	anyLists := []string{"nil", "[]", "[S0]", "[S1 S2]", "[S3]", "[S2 S2]", "[other]", "[absent S2]", "[S0 S3 other]"}
	allLists := []string{"nil", "[]", "[S0]", "[S1 S2]", "[S3]", "[other]"}
	noneLists := []string{"nil", "[]", "[S2]", "[S0 S1 S2]", "[other]", "[absent S2]"}
	type result struct {
		TotalCount int `json:"totalCount"`
		Nodes      []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
	idsOfResult := func(r result) []string {
		out := []string{}
		for _, x := range r.Nodes {
			out = append(out, x.ID)
		}
		return out
	}
	// One request per any list, with every all and none list: each combination twice,
	// as fN without a search and as sN with the search "odd".
	for _, anyName := range anyLists {
		type combination struct{ what, allName, noneName string }
		var combos []combination
		var defs, fields []string
		vars := map[string]any{"odd": "odd"}
		for _, allName := range allLists {
			for _, noneName := range noneLists {
				i := len(combos)
				combos = append(combos, combination{fmt.Sprintf("any %s, all %s, none %s", anyName, allName, noneName), allName, noneName})
				filter := map[string]any{}
				for key, name := range map[string]string{"any": anyName, "all": allName, "none": noneName} {
					if lists[name] != nil {
						filter[key] = lists[name]
					}
				}
				vars[fmt.Sprintf("v%d", i)] = map[string]any{"segments": filter}
				defs = append(defs, fmt.Sprintf("$v%d: ContactFilter", i))
				const page = `(first: 100, filter: $v%d%s, orderBy: {field: CREATED_AT, direction: ASC}) { totalCount nodes { id } }`
				fields = append(fields, fmt.Sprintf("f%d: contacts"+page, i, i, ""), fmt.Sprintf("s%d: contacts"+page, i, i, ", search: $odd"))
			}
		}
		var out map[string]result
		a.do("query($odd: String, "+strings.Join(defs, ", ")+") { "+strings.Join(fields, "\n")+" }", vars, &out)
		for i, c := range combos {
			all := expected(lists[anyName], lists[c.allName], lists[c.noneName])
			odd := []string{}
			for _, id := range all {
				if strings.HasPrefix(n[id], "odd") {
					odd = append(odd, id)
				}
			}
			if r := out[fmt.Sprintf("f%d", i)]; !slices.Equal(idsOfResult(r), all) || r.TotalCount != len(all) {
				t.Errorf("%s: got %q (totalCount %d), want %q", c.what, n.of(idsOfResult(r)), r.TotalCount, n.of(all))
			}
			if r := out[fmt.Sprintf("s%d", i)]; !slices.Equal(idsOfResult(r), odd) || r.TotalCount != len(odd) {
				t.Errorf("%s, search odd: got %q (totalCount %d), want %q", c.what, n.of(idsOfResult(r)), r.TotalCount, n.of(odd))
			}
		}
	}

	t.Run("paging through an audience", func(t *testing.T) {
		a := a.listOn(t)
		// any S0 S1 (contacts 0-5) but none S2 (3, 5): 0 1 2 4.
		filter := map[string]any{"segments": map[string]any{"any": []string{segs[0], segs[1]}, "none": []string{segs[2]}}}
		audience := []string{cs[0], cs[1], cs[2], cs[4]} // in creation order
		byName := []string{cs[0], cs[2], cs[4], cs[1]}   // even 0, even 2, even 4, odd 1
		contactsList.checkWalks(a, map[string]any{"filter": filter, "orderBy": orderArg("NAME", "ASC")}, byName, n)
		contactsList.checkWalks(a, map[string]any{"filter": filter}, listReversed(audience), n)
		// With a search: the even ones.
		contactsList.checkWalks(a, map[string]any{"filter": filter, "search": "EVEN", "orderBy": orderArg("NAME", "DESC")},
			[]string{cs[4], cs[2], cs[0]}, n)
	})
}

// TestContactFilterRefused proves that a membership filter with a malformed ID, an ID
// of another type, or more than 100 IDs in a list is refused with a top-level
// BAD_USER_INPUT error naming filter, and that 100 IDs are accepted in any, all and none.
func TestContactFilterRefused(t *testing.T) {
	a := newAPI(t)
	cs := a.addContacts(phones(72_000, 2)...)
	seg := a.addSegment("filter", cs...)
	hundred := make([]string, 100)
	for i := range hundred {
		hundred[i] = globalid.Encode(globalid.Segment, 1<<50+int64(i))
	}
	hundred[99] = seg
	for _, key := range []string{"any", "all", "none"} {
		for _, ids := range [][]string{
			{"nope"},
			{""},
			{seg, "S_"},
			{cs[0]}, // a contact's ID
			{globalid.Encode(globalid.Workspace, a.ws.ID)},
			append(slices.Clone(hundred), seg),
		} {
			vars := map[string]any{"first": 5, "filter": map[string]any{"segments": map[string]any{key: ids}}}
			msg, arg := contactsList.refused(a, vars)
			if arg != "filter" || msg == "" {
				t.Errorf("%s %q: refused naming %q with message %q; want filter named", key, ids[len(ids)-1], arg, msg)
			}
		}
		// 99 of the IDs name no segment: any keeps the members of the one that does,
		// all keeps nobody (those are empty segments), none drops its members.
		p := contactsList.page(a, map[string]any{"first": 5, "filter": map[string]any{"segments": map[string]any{key: hundred}}})
		wantLen := map[string]int{"any": 2, "all": 0, "none": 0}[key]
		if len(p.Edges) != wantLen || p.TotalCount != wantLen {
			t.Errorf("%s of 100 IDs: %d contacts, totalCount %d; want %d", key, len(p.Edges), p.TotalCount, wantLen)
		}
	}
}

// TestContactSegments proves that Contact.segments lists every segment of a contact,
// ordered by name ignoring case, however the contact is read.
func TestContactSegments(t *testing.T) {
	a := newAPI(t)
	cs := a.addContacts(phones(73_000, 3)...)
	in, out := cs[0], cs[1] // out is in no segment; cs[2] is in every one
	var segs []string       // the segments of in, by name ignoring case
	for _, name := range []string{"zulu", "Beta", "alpha", "Charlie", "apple", "ALPINE"} {
		id := a.addSegment(name, in, cs[2])
		segs = append(segs, id)
	}
	notIn := a.addSegment("Not in it", cs[2])
	wantSegments := map[string][]string{
		in:    {segs[2], segs[5], segs[4], segs[1], segs[3], segs[0]},        // alpha ALPINE apple Beta Charlie zulu
		cs[2]: {segs[2], segs[5], segs[4], segs[1], segs[3], notIn, segs[0]}, // and Not in it
	}
	type withSegments struct {
		ID       string `json:"id"`
		Segments []struct {
			ID string `json:"id"`
		} `json:"segments"`
	}
	check := func(what string, c withSegments) {
		t.Helper()
		var got []string
		for _, s := range c.Segments {
			got = append(got, s.ID)
		}
		wantIDs := wantSegments[c.ID] // none for out
		if !slices.Equal(got, wantIDs) {
			t.Errorf("%s: segments of %s are %q, want %q", what, c.ID, got, wantIDs)
		}
	}
	var one struct{ Contact withSegments }
	a.do(`query($id: ID!) { contact(id: $id) { id segments { id } } }`, map[string]any{"id": in}, &one)
	check("contact(id:)", one.Contact)
	var list struct {
		Contacts struct {
			Nodes []withSegments `json:"nodes"`
			Edges []struct {
				Node withSegments `json:"node"`
			} `json:"edges"`
		} `json:"contacts"`
	}
	a.do(`{ contacts(first: 10) { nodes { id segments { id } } edges { node { id segments { id } } } } }`, nil, &list)
	for _, c := range list.Contacts.Nodes {
		check("contacts.nodes", c)
	}
	for _, e := range list.Contacts.Edges {
		check("contacts.edges", e.Node)
	}
	var nodes struct{ Nodes []withSegments }
	a.do(`query($ids: [ID!]!) { nodes(ids: $ids) { ... on Contact { id segments { id } } } }`, map[string]any{"ids": []string{in, out}}, &nodes)
	for _, c := range nodes.Nodes {
		check("nodes(ids:)", c)
	}
	if len(list.Contacts.Nodes) != 3 || len(nodes.Nodes) != 2 {
		t.Errorf("read %d and %d contacts", len(list.Contacts.Nodes), len(nodes.Nodes))
	}
}

// TestCursorOfAnotherListRefused proves that a cursor of one list is refused by a list
// of another type whose ordering has the same name: a segment's cursor where contacts
// are paged, and a contact's cursor where segments are paged.
func TestCursorOfAnotherListRefused(t *testing.T) {
	a := newAPI(t)
	cs := a.addContacts(phones(74_000, 3)...)
	seg := a.addSegment("another list", cs...)
	for _, field := range []string{"CREATED_AT", "UPDATED_AT", "NAME"} {
		segCursor := *segmentsList.page(a, map[string]any{"first": 1, "orderBy": orderArg(field, "ASC")}).PageInfo.EndCursor
		conCursor := *contactsList.page(a, map[string]any{"first": 1, "orderBy": orderArg(field, "ASC")}).PageInfo.EndCursor
		for _, c := range append([]listConn{contactsList}, segmentContactsLists(seg)...) {
			if _, arg := c.refused(a, map[string]any{"first": 2, "after": segCursor, "orderBy": orderArg(field, "ASC")}); arg != "after" {
				t.Errorf("%s with a segment's cursor: refused naming %q, want after", c.name, arg)
			}
		}
		if _, arg := segmentsList.refused(a, map[string]any{"last": 2, "before": conCursor, "orderBy": orderArg(field, "ASC")}); arg != "before" {
			t.Errorf("%s with a contact's cursor: refused naming %q, want before", segmentsList.name, arg)
		}
	}
}

// TestTamperedCursorValuesRefused proves that a cursor whose value PostgreSQL cannot
// take is refused as a bad cursor, not failed as an internal error.
func TestTamperedCursorValuesRefused(t *testing.T) {
	a := newAPI(t)
	a.addSegment("tampered", a.addContacts(phones(75_000, 2)...)...)
	for _, tc := range []struct {
		list   listConn
		field  string
		cursor string
	}{
		{contactsList, "NAME", `{"k":"name","v":"a\u0000b","i":1}`},
		{segmentsList, "NAME", `{"k":"name","v":"a\u0000b","i":1}`},
		{contactsList, "CREATED_AT", `{"k":"created_at","v":"0000-01-01T00:00:00Z","i":1}`},
		{segmentsList, "UPDATED_AT", `{"k":"updated_at","v":"0000-01-01T00:00:00Z","i":1}`},
	} {
		if _, arg := tc.list.refused(a, map[string]any{"first": 2, "after": tamperedCursor(tc.cursor), "orderBy": orderArg(tc.field, "ASC")}); arg != "after" {
			t.Errorf("%s %s: refused naming %q, want after", tc.list.name, tc.cursor, arg)
		}
	}
}

// TestContactSearchMatchesTextWithDigits proves that a search of digits and phone
// punctuation still finds the names and emails that contain it as written, and only
// those, as the schema promises ("contains this text"), and finds a phone written in
// the forms the API takes phones in: with the 00 prefix, a non-breaking space or an en
// dash, in Arabic-Indic or Devanagari digits (none of which its search found). A term
// starting with + or 00 starts the number ("+91 98" found +44 7919 812345), and 00 may
// also be inside one.
func TestContactSearchMatchesTextWithDigits(t *testing.T) {
	a := newAPI(t)
	ids := map[string]string{
		"flat":  a.listAddContact("+919800000001", listText("Flat 12-34"), nil),
		"room":  a.listAddContact("+919800000002", listText("Room 1234"), nil),
		"email": a.listAddContact("+919800000003", nil, listText("john.2024.01@x.io")),
		"uk":    a.listAddContact("+447919876543", nil, nil), // 9198 inside, not after +
		"inner": a.listAddContact("+919800765432", nil, nil), // 00 inside
	}
	contactsList.checkSearches(a, ids, []searchCase{
		{"12-34", []string{"flat"}},
		{"2024.01", []string{"email"}},
		{"98000-00001", []string{"flat"}}, // the phone, however written, still
		{"0091 98000 00001", []string{"flat"}},
		{"0091 98000 0000", []string{"flat", "room", "email"}},
		{"0098000", nil}, // +98000…: no phone starts so, though they all hold 98000
		{"98000\u00a000002", []string{"room"}},
		{"98000\u201300003", []string{"email"}},
		{"+91/98000/00001", []string{"flat"}},
		{"+٩١ ٩٨٠٠٠ ٠٠٠٠٢", []string{"room"}},
		{"+९१ ९८०००", []string{"flat", "room", "email"}},
		{"+91 98", []string{"flat", "room", "email", "inner"}}, // + starts the number: not the UK one
		{"0091 98", []string{"flat", "room", "email", "inner"}},
		{"919 8", []string{"flat", "room", "email", "uk", "inner"}},
		{"0076 5432", []string{"inner"}},     // 00 inside a number
		{"00919800000001", []string{"flat"}}, // digits alone, after the prefix
	})
}

// TestContactSearchFindsPhonesAsContactByPhone proves that a term contactByPhone
// reads as a whole number finds that number's contact, and that a short term in
// another script's digits or with a fullwidth plus finds what its ASCII form finds in
// the phones. A number written with its trunk prefix ("+44 (0) 7911 …"), which
// contactByPhone found, was searched for with the 0 among its digits and found
// nothing; "+٩١", "＋９１" and "٩٨" found nothing where "+91" and "98" found the
// numbers of India and those holding 98.
func TestContactSearchFindsPhonesAsContactByPhone(t *testing.T) {
	a := newAPI(t)
	ids := map[string]string{
		"uk":   a.listAddContact("+447911123418", nil, nil),
		"id":   a.listAddContact("+6281234567817", nil, nil),
		"ae":   a.listAddContact("+971501234501", nil, nil),
		"br":   a.listAddContact("+5511912345616", nil, nil),
		"in":   a.listAddContact("+919876500001", nil, nil),
		"in2":  a.listAddContact("+919100000002", nil, nil),
		"flat": a.listAddContact("+442071234567", listText("Flat 98"), nil),
	}
	wholes := []searchCase{
		{"+44 (0) 7911 123418", []string{"uk"}},
		{"+44 07911 123418", []string{"uk"}},
		{"0044 (0)7911 123418", []string{"uk"}},
		{"+62 0812-3456-7817", []string{"id"}},
		{"+971 050 123 4501", []string{"ae"}},
		{"+55 011 91234-5616", []string{"br"}},
		{"+91 0 98765 00001", []string{"in"}},
		{"+٩١ ٠ ٩٨٧٦٥ ٠٠٠٠١", []string{"in"}},
	}
	for _, w := range wholes {
		r := a.post(`query($p: String!) { contactByPhone(phone: $p) { id } }`, map[string]any{"p": w.search})
		var d struct{ ContactByPhone *struct{ ID string } }
		if err := json.Unmarshal(r.Data, &d); err != nil || d.ContactByPhone == nil || d.ContactByPhone.ID != ids[w.found[0]] {
			t.Errorf("contactByPhone %q: %s %v, want %s", w.search, r.Data, r.Errors, w.found[0])
		}
	}
	contactsList.checkSearches(a, ids, append(wholes, []searchCase{
		// Fragments as before: the 0 is a digit of the number searched for.
		{"+44 07911", nil},
		{"7911 123418", []string{"uk"}},
		{"+44 7911", []string{"uk"}},
		// Fewer than three digits, in any script's.
		{"+91", []string{"in", "in2"}},
		{"+٩١", []string{"in", "in2"}},
		{"＋９１", []string{"in", "in2"}},
		{"+९१", []string{"in", "in2"}},
		{"+٩١ ٩", []string{"in", "in2"}},
		{"98", []string{"in", "flat"}},
		{"٩٨", []string{"in"}}, // the phone's digits, not a name's as written
	}...))
}

// TestContactFilterAllOfManySegments proves that a filter with all of 100 segments,
// the documented maximum, is answered promptly even in a workspace of two contacts.
func TestContactFilterAllOfManySegments(t *testing.T) {
	a := newAPI(t)
	cs := a.addContacts(phones(76_000, 2)...)
	seg := a.addSegment("every", cs...)
	ids := []string{seg}
	for i := range 99 {
		ids = append(ids, a.addSegment(fmt.Sprintf("every %d", i), cs...))
	}
	start := time.Now()
	p := contactsList.page(a, map[string]any{"first": 5, "filter": map[string]any{"segments": map[string]any{"all": ids}}})
	if took := time.Since(start); took > time.Second {
		t.Errorf("all of 100 segments took %v", took)
	}
	if len(p.Edges) != 2 || p.TotalCount != 2 {
		t.Errorf("all of 100 segments: %d contacts, totalCount %d; want 2", len(p.Edges), p.TotalCount)
	}
}

// TestSearchFindsNamesByTheirText: a name sent with a tab or a line break is found
// by searching its own text. Searches read those as spaces, which separate the
// fields of the searched text, and the names kept them: no search found them.
func TestSearchFindsNamesByTheirText(t *testing.T) {
	a := newAPI(t)
	segIDs := map[string]string{"tab": a.listAddSegment("Tab\tSeg", nil), "other": a.listAddSegment("Tab Segment", nil)}
	segmentsList.checkSearches(a, segIDs, []searchCase{{"Tab\tSeg", []string{"tab", "other"}}, {"Tab Seg\u200b", []string{"tab", "other"}}})
	contactIDs := map[string]string{"tab": a.listAddContact("+919800000011", listText("tab\tin"), nil)}
	contactsList.checkSearches(a, contactIDs, []searchCase{{"tab\tin", []string{"tab"}}, {"tab in", []string{"tab"}}})
}
