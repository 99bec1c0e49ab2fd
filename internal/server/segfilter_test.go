package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/globalid"
)

// segfilterPage is a page of Segment.contacts as these tests ask for it.
type segfilterPage struct {
	TotalCount int `json:"totalCount"`
	Count      struct {
		Count     int    `json:"count"`
		Precision string `json:"precision"`
	} `json:"count"`
	PageInfo struct {
		HasNextPage     bool    `json:"hasNextPage"`
		HasPreviousPage bool    `json:"hasPreviousPage"`
		StartCursor     *string `json:"startCursor"`
		EndCursor       *string `json:"endCursor"`
	} `json:"pageInfo"`
	Nodes []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

const segfilterFields = `totalCount count(limit: 2) { count precision } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { id }`

// TestSegmentContactsFilter: Segment.contacts(filter:) keeps the segment's members
// that the filter keeps, each field as Query.contacts reads it (its segment lists
// too: any, all, none and inAnySegment with "in this segment"), read alone
// (segment(id:), its own statement) and in a list (segments, nodes: the loaders'
// batch), in several orders, page by page forward and backward: each page holds,
// in order, the members of Query.contacts(filter:)'s list (computed here from the
// members each segment was given), and totalCount and count(limit:) count them
// exactly, not contactCount. Before the argument existed, every such query failed
// validation.
func TestSegmentContactsFilter(t *testing.T) {
	a := newAPI(t)
	var in []map[string]any
	cities := []string{"Pune", "Mumbai", "Pune", "Delhi"}
	for i, p := range phones(87_000, 24) {
		c := map[string]any{"phone": p, "attributes": map[string]any{"city": cities[i%4], "orders": i}}
		if i%3 != 0 {
			c["name"] = fmt.Sprintf("Member %c", 'A'+(i*7)%24)
		}
		if i%4 != 1 {
			c["email"] = fmt.Sprintf("m%02d@example.com", (i*5)%24)
		}
		in = append(in, c)
	}
	var up struct {
		UpsertContacts struct {
			Contacts []struct {
				ID        string    `json:"id"`
				CreatedAt time.Time `json:"createdAt"`
			} `json:"contacts"`
		} `json:"upsertContacts"`
	}
	// Two batches, two creation times.
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id createdAt } } }`,
		map[string]any{"in": map[string]any{"contacts": in[:12]}}, &up)
	ids := []string{}
	for _, c := range up.UpsertContacts.Contacts {
		ids = append(ids, c.ID)
	}
	time.Sleep(5 * time.Millisecond)
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id createdAt } } }`,
		map[string]any{"in": map[string]any{"contacts": in[12:]}}, &up)
	second := up.UpsertContacts.Contacts[0].CreatedAt
	for _, c := range up.UpsertContacts.Contacts {
		ids = append(ids, c.ID)
	}
	members := map[string][]string{}
	var segs []string
	for k, pick := range []func(i int) bool{
		func(i int) bool { return i%2 == 0 },
		func(i int) bool { return i%3 != 1 },
		func(i int) bool { return i >= 8 && i < 20 },
		func(int) bool { return false },
	} {
		var in []string
		for i, id := range ids {
			if pick(i) && i != 23 { // the last contact is in no segment
				in = append(in, id)
			}
		}
		seg := a.addSegment(fmt.Sprintf("Filtered %d", k), in...)
		segs, members[seg] = append(segs, seg), in
	}
	filters := []map[string]any{
		{"hasEmail": false},
		{"hasName": true, "hasEmail": true},
		{"attributes": []any{map[string]any{"key": "city", "equals": "Pune"}}},
		{"attributes": []any{map[string]any{"key": "orders", "atLeast": 6, "atMost": 17}, map[string]any{"key": "city", "in": []any{"Delhi", "Pune"}}}},
		{"createdAt": map[string]any{"from": second.Format(time.RFC3339Nano)}},
		{"createdAt": map[string]any{"to": second.Format(time.RFC3339Nano)}, "hasName": false},
		{"segments": map[string]any{"none": []string{segs[1]}}},
		{"segments": map[string]any{"any": []string{segs[1], segs[2]}}},
		{"segments": map[string]any{"any": []string{}}},
		{"segments": map[string]any{"all": []string{segs[2]}}, "attributes": []any{map[string]any{"key": "city", "exists": true}}},
		{"segments": map[string]any{"inAnySegment": true, "none": []string{segs[2]}}},
		{"segments": map[string]any{"inAnySegment": false}},
		{"segments": map[string]any{"all": []string{segs[0], segs[1]}}, "hasEmail": true},
	}
	orders := []string{`{field: CREATED_AT, direction: DESC}`, `{field: NAME, direction: ASC}`, `{field: PHONE, direction: DESC}`,
		`{field: EMAIL, direction: ASC}`, `{field: UPDATED_AT, direction: ASC}`, `{field: NAME, direction: DESC}`}
	for fi, filter := range filters {
		for oi, order := range []string{orders[fi%len(orders)], orders[(fi+3)%len(orders)]} {
			what := fmt.Sprintf("filter %v order %s", mustJSON(filter), order)
			// The expected lists: Query.contacts' list of the filter, in order, kept
			// where the segment was given the contact.
			var all struct {
				Contacts struct {
					Nodes []struct {
						ID string `json:"id"`
					} `json:"nodes"`
				} `json:"contacts"`
			}
			a.do(`query($f: ContactFilter) { contacts(first: 100, filter: $f, orderBy: `+order+`) { nodes { id } } }`, map[string]any{"f": filter}, &all)
			size := 2 + (fi+oi)%3
			for _, seg := range segs {
				want := []string{}
				for _, n := range all.Contacts.Nodes {
					if slices.Contains(members[seg], n.ID) {
						want = append(want, n.ID)
					}
				}
				for _, backward := range []bool{false, true} {
					for _, listed := range []bool{false, true} {
						got, first := a.segfilterPages(seg, filter, order, size, backward, listed)
						where := fmt.Sprintf("%s: segment %s (listed: %v, backward: %v, pages of %d)", what, seg, listed, backward, size)
						if !slices.Equal(got, want) {
							t.Errorf("%s: %v, want %v", where, got, want)
						}
						count := min(len(want), 2)
						precision := map[bool]string{true: "EXACT", false: "AT_LEAST"}[len(want) <= 2]
						if first.TotalCount != len(want) || first.Count.Count != count || first.Count.Precision != precision {
							t.Errorf("%s: totalCount %d, count %+v; want %d, %d %s", where, first.TotalCount, first.Count, len(want), count, precision)
						}
					}
				}
			}
		}
	}

	// The count alone, in a list (no page read), and through nodes(ids:).
	filter := filters[2]
	type segmentCount struct {
		ID       string `json:"id"`
		Contacts struct {
			TotalCount int `json:"totalCount"`
		} `json:"contacts"`
	}
	var counted struct {
		Segments struct {
			Nodes []segmentCount `json:"nodes"`
		} `json:"segments"`
		Nodes []segmentCount `json:"nodes"`
	}
	a.do(`query($f: ContactFilter, $ids: [ID!]!) { segments(first: 100) { nodes { id contacts(filter: $f) { totalCount } } }
		nodes(ids: $ids) { ... on Segment { id contacts(filter: $f) { totalCount } } } }`, map[string]any{"f": filter, "ids": segs}, &counted)
	pune := func(seg string) int {
		n := 0
		for _, id := range members[seg] {
			if cities[slices.Index(ids, id)%4] == "Pune" {
				n++
			}
		}
		return n
	}
	for _, n := range counted.Segments.Nodes {
		if n.Contacts.TotalCount != pune(n.ID) {
			t.Errorf("segment %s in a list: %d of Pune, want %d", n.ID, n.Contacts.TotalCount, pune(n.ID))
		}
	}
	for _, n := range counted.Nodes {
		if n.Contacts.TotalCount != pune(n.ID) {
			t.Errorf("segment %s through nodes: %d of Pune, want %d", n.ID, n.Contacts.TotalCount, pune(n.ID))
		}
	}
	// An empty filter is none: totalCount is contactCount.
	var plain struct {
		Segment struct {
			ContactCount int `json:"contactCount"`
			Contacts     struct {
				TotalCount int `json:"totalCount"`
			} `json:"contacts"`
		} `json:"segment"`
	}
	a.do(`query($id: ID!) { segment(id: $id) { contactCount contacts(filter: {attributes: [], segments: {all: []}}) { totalCount } } }`, map[string]any{"id": segs[0]}, &plain)
	if plain.Segment.Contacts.TotalCount != len(members[segs[0]]) || plain.Segment.ContactCount != len(members[segs[0]]) {
		t.Errorf("an empty filter: totalCount %d, contactCount %d, want %d", plain.Segment.Contacts.TotalCount, plain.Segment.ContactCount, len(members[segs[0]]))
	}
}

// segfilterPages reads every page of segment seg's contacts that filter keeps, in
// order, of size contacts, forward or backward, alone (segment(id:)) or listed
// (segments, the loaders' batch), and returns their IDs in the list's order and the
// first page read.
func (a *api) segfilterPages(seg string, filter map[string]any, order string, size int, backward, listed bool) ([]string, segfilterPage) {
	a.t.Helper()
	var out []string
	var first segfilterPage
	var cursor *string
	for page := 0; ; page++ {
		args := fmt.Sprintf("first: %d, after: $c", size)
		if backward {
			args = fmt.Sprintf("last: %d, before: $c", size)
		}
		args += ", filter: $f, orderBy: " + order
		vars := map[string]any{"f": filter, "c": cursor, "id": seg}
		var p segfilterPage
		if listed {
			var res struct {
				Segments struct {
					Nodes []struct {
						ID       string        `json:"id"`
						Contacts segfilterPage `json:"contacts"`
					} `json:"nodes"`
				} `json:"segments"`
			}
			a.do(`query($f: ContactFilter, $c: String) { segments(first: 100) { nodes { id contacts(`+args+`) { `+segfilterFields+` } } } }`, vars, &res)
			found := false
			for _, n := range res.Segments.Nodes {
				if n.ID == seg {
					p, found = n.Contacts, true
				}
			}
			if !found {
				a.t.Fatalf("segment %s not in the list", seg)
			}
		} else {
			var res struct {
				Segment struct {
					Contacts segfilterPage `json:"contacts"`
				} `json:"segment"`
			}
			a.do(`query($id: ID!, $f: ContactFilter, $c: String) { segment(id: $id) { contacts(`+args+`) { `+segfilterFields+` } } }`, vars, &res)
			p = res.Segment.Contacts
		}
		if page == 0 {
			first = p
		}
		var got []string
		for _, n := range p.Nodes {
			got = append(got, n.ID)
		}
		more := p.PageInfo.HasNextPage
		if backward {
			out, more, cursor = append(got, out...), p.PageInfo.HasPreviousPage, p.PageInfo.StartCursor
		} else {
			out, cursor = append(out, got...), p.PageInfo.EndCursor
		}
		if !more {
			if out == nil {
				out = []string{}
			}
			return out, first
		}
		if page > 50 || cursor == nil {
			a.t.Fatalf("segment %s: pages do not end", seg)
		}
	}
}

// TestSegmentContactsFilterStatements: a list of segments with each one's filtered
// contacts (a page with its rows' segments, totalCount and count(limit:); the counts
// alone) sends as many statements for 2 segments as for 40: each segment's pages are
// one batch, and their counts another. So does a segment alone for pages of 2 and 40.
// Every filtered list is longer than its page (a page that holds its whole list
// knows its totalCount, one statement fewer).
func TestSegmentContactsFilterStatements(t *testing.T) {
	a := newAPI(t)
	var in []map[string]any
	for i, p := range phones(88_000, 180) {
		in = append(in, map[string]any{"phone": p, "attributes": map[string]any{"city": []string{"Pune", "Delhi"}[i%2], "orders": i}})
	}
	var up struct {
		UpsertContacts struct {
			Contacts []contact `json:"contacts"`
		} `json:"upsertContacts"`
	}
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, &up)
	var ids, tenth []string
	for i, c := range up.UpsertContacts.Contacts {
		ids = append(ids, c.ID)
		if i%10 == 0 {
			tenth = append(tenth, c.ID)
		}
	}
	var segs []string
	for k := range 40 {
		segs = append(segs, a.addSegment(fmt.Sprintf("Stmt %02d", k), ids[2*k:2*k+100]...))
	}
	segs = append(segs, a.addSegment("Stmt tenth", tenth...)) // the newest: the first of the list
	filters := []map[string]any{
		{"attributes": []any{map[string]any{"key": "city", "equals": "Pune"}}},
		{"attributes": []any{map[string]any{"key": "orders", "atLeast": 3}}, "hasEmail": false, "segments": map[string]any{"none": []string{segs[40]}}},
		{"segments": map[string]any{"any": []string{segs[39], segs[20]}}},
	}
	for _, doc := range []string{
		`query($n: Int, $f: ContactFilter) { segments(first: $n) { nodes { id contacts(first: 3, filter: $f) { totalCount count(limit: 2) { count } nodes { id segments { name } } } } } }`,
		`query($n: Int, $f: ContactFilter) { segments(first: $n) { nodes { contacts(last: 2, search: "98", filter: $f, orderBy: {field: PHONE, direction: ASC}) { totalCount edges { cursor node { phone } } } } } }`,
		`query($n: Int, $f: ContactFilter) { segments(first: $n) { nodes { contacts(filter: $f) { totalCount count(limit: 5) { count precision } } } } }`,
		`query($n: Int, $f: ContactFilter, $s: ID!) { segment(id: $s) { contacts(first: $n, filter: $f) { totalCount nodes { id segments { id name } } } } }`,
	} {
		for _, f := range filters {
			count := map[int]int64{}
			for _, n := range []int{2, 40} {
				a.do(doc, map[string]any{"n": n, "f": f, "s": segs[3]}, nil)
				count[n] = a.statements()
				// A late sibling of a batch adds a statement (see
				// TestStatementsDoNotGrowWithPageSize): the fewest of a few tries.
				for try := 0; try < 3; try++ {
					a.do(doc, map[string]any{"n": n, "f": f, "s": segs[3]}, nil)
					count[n] = min(count[n], a.statements())
				}
			}
			if count[2] != count[40] || count[2] == 0 || count[40] > 8 {
				t.Errorf("%s with %v: statements for 2 and 40: %v", doc, mustJSON(f), count)
			}
		}
	}
}

// TestSegmentCountsAloneReadNoPage: a list of segments asked only for each one's
// contacts' totalCount sends no statement for their pages. Unfiltered, the count is
// contactCount, read with the segments: the request sends what asking for
// contactCount does. Searched, it sends one statement more, the batch's count. (Both
// read each segment's first page too, as they did before.)
func TestSegmentCountsAloneReadNoPage(t *testing.T) {
	a := newAPI(t)
	ids := a.addContacts(phones(90_500, 30)...)
	for k := range 3 {
		a.addSegment(fmt.Sprintf("Counted %d", k), ids[k:k+20]...)
	}
	var base struct {
		Segments struct {
			Nodes []struct {
				ContactCount int `json:"contactCount"`
			} `json:"nodes"`
		} `json:"segments"`
	}
	a.do(`{ segments(first: 10) { nodes { contactCount } } }`, nil, &base)
	want := a.statements()
	if len(base.Segments.Nodes) != 3 {
		t.Fatalf("segments: %+v", base)
	}
	for _, c := range []struct {
		doc   string
		extra int64
	}{
		{`{ segments(first: 10) { nodes { contacts { totalCount } } } }`, 0},
		{`{ segments(first: 10) { nodes { contacts(first: 5, orderBy: {field: PHONE, direction: DESC}) { __typename totalCount } } } }`, 0},
		{`{ segments(first: 10) { nodes { contacts(search: "90") { totalCount } } } }`, 1},
	} {
		var out struct {
			Segments struct {
				Nodes []struct {
					Contacts struct {
						TotalCount int `json:"totalCount"`
					} `json:"contacts"`
				} `json:"nodes"`
			} `json:"segments"`
		}
		a.do(c.doc, nil, &out)
		if got := a.statements(); got != want+c.extra {
			t.Errorf("%s: %d statements, want %d", c.doc, got, want+c.extra)
		}
		for i, n := range out.Segments.Nodes {
			if n.Contacts.TotalCount != base.Segments.Nodes[i].ContactCount {
				t.Errorf("%s: segment %d counts %d, contactCount %d", c.doc, i, n.Contacts.TotalCount, base.Segments.Nodes[i].ContactCount)
			}
		}
	}
}

// TestSegmentContactsFilterRefused: a malformed filter of Segment.contacts is
// refused as Query.contacts' is (BAD_USER_INPUT, extensions.field its path from the
// argument), for a segment alone and in a list; in a mutation's payload, before
// the mutation changes anything.
func TestSegmentContactsFilterRefused(t *testing.T) {
	a := newAPI(t)
	seg := a.addSegment("Refusing", a.addContacts(phones(89_000, 2)...)...)
	for _, tc := range []struct {
		filter map[string]any
		field  string
	}{
		{map[string]any{"attributes": []any{map[string]any{"key": "city", "exists": true}, map[string]any{"key": "city"}}}, "[filter attributes 1]"},
		{map[string]any{"attributes": []any{map[string]any{"key": " ", "in": []any{1}}}}, "[filter attributes 0 key]"},
		{map[string]any{"attributes": slices.Repeat([]any{map[string]any{"key": "k", "exists": true}}, 11)}, "[filter attributes]"},
		{map[string]any{"createdAt": map[string]any{"from": "0000-01-01T00:00:00Z"}}, "[filter createdAt from]"},
		{map[string]any{"segments": map[string]any{"none": []string{"nope"}}}, "[filter segments none 0]"},
		{map[string]any{"segments": map[string]any{"any": slices.Repeat([]string{seg}, 101)}}, "[filter segments any]"},
	} {
		for _, doc := range []string{
			`query($f: ContactFilter, $id: ID!) { segment(id: $id) { contacts(filter: $f) { totalCount nodes { id } } } }`,
			`query($f: ContactFilter, $id: ID!) { segments { nodes { contacts(first: 2, filter: $f) { nodes { id } } } } node(id: $id) { id } }`,
			`query($f: ContactFilter, $id: ID!) { nodes(ids: [$id]) { ... on Segment { contacts(filter: $f) { totalCount } } } }`,
		} {
			res := a.post(doc, map[string]any{"f": tc.filter, "id": seg})
			if len(res.Errors) == 0 {
				t.Errorf("%v in %s: accepted", tc.filter, doc)
				continue
			}
			e := res.Errors[0]
			if e.Extensions["code"] != "BAD_USER_INPUT" || fmt.Sprint(e.Extensions["field"]) != tc.field || e.Extensions["argument"] != "filter" {
				t.Errorf("%v in %s: %s %v, want BAD_USER_INPUT at %s", tc.filter, doc, e.Message, e.Extensions, tc.field)
			}
			if !strings.Contains(fmt.Sprint(e.Path), "contacts") {
				t.Errorf("%v in %s: error at %v, want at the segment's contacts", tc.filter, doc, e.Path)
			}
		}
		// In a payload, before the segment is created.
		res := a.post(`mutation($f: ContactFilter) { createSegment(input: {name: "Refused payload"}) { segment { contacts(filter: $f) { nodes { id } } } } }`,
			map[string]any{"f": tc.filter})
		if len(res.Errors) == 0 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" || fmt.Sprint(res.Errors[0].Extensions["field"]) != tc.field {
			t.Errorf("%v in a payload: %+v", tc.filter, res.Errors)
		}
		if n := a.segmentNamed("Refused payload"); n != 0 {
			t.Fatalf("%v in a payload: the segment was created", tc.filter)
		}
	}
	// A good filter in a payload is taken.
	var out struct {
		CreateSegment struct {
			Segment struct {
				Contacts struct {
					TotalCount int `json:"totalCount"`
				} `json:"contacts"`
			} `json:"segment"`
		} `json:"createSegment"`
	}
	a.do(`mutation($ids: [ID!]) { createSegment(input: {name: "Taken payload", contactIds: $ids}) { segment { contacts(filter: {hasEmail: false, attributes: [{key: "k", in: "v"}, {key: "k", exists: false}], createdAt: {from: "2020-01-01T00:00:00Z"}}) { totalCount } } } }`,
		map[string]any{"ids": a.addContacts(phones(89_010, 2)...)}, &out)
	if out.CreateSegment.Segment.Contacts.TotalCount != 0 {
		t.Errorf("a payload's filtered contacts: %+v", out)
	}
}

// TestCrossTenantNestedArguments is TestCrossTenantFromSchema for the arguments of
// fields below the root, which it selects without arguments: every field of a Node
// type whose arguments take IDs (or attribute keys and values, or a search), such as
// Segment.contacts(filter:), is called on workspace A's own objects, alone
// (node(id:)) and in a list (nodes(ids:), the loaders' batch), with workspace B's
// IDs of each type in every ID slot of its arguments, one slot at a time and all
// at once, alone and among A's own, and with B's attribute key, value and name to
// search. Nothing of B may appear. A positive control first: B, asking so with its
// own IDs, sees its data through each such field.
func TestCrossTenantNestedArguments(t *testing.T) {
	a := newAPI(t)
	b := a.as(t)
	tag := randomTag(t)
	bData := seedTenant(t, b, "B"+tag, 820_000)
	aData := seedTenant(t, a, "A"+tag, 830_000)
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()

	type probed struct {
		typ   string
		kind  globalid.Kind
		field string
	}
	var fields []probed
	for _, def := range schema.Types {
		kind := map[string]globalid.Kind{"Segment": globalid.Segment, "Contact": globalid.Contact}[def.Name]
		if kind == "" {
			continue
		}
		for _, f := range def.Fields {
			var slots []idSlot
			g := &opGen{schema: schema}
			for _, arg := range f.Arguments {
				g.slots(arg.Type, arg.Name, arg.Name, "", &slots, map[string]bool{})
			}
			if len(slots) > 0 {
				fields = append(fields, probed{def.Name, kind, f.Name})
			}
		}
	}
	if !slices.Contains(fields, probed{"Segment", globalid.Segment, "contacts"}) {
		t.Fatalf("no nested field with ID arguments found: %v", fields)
	}
	ops := func(g *opGen, p probed) []operation {
		f := schema.Types[p.typ].Fields.ForName(p.field)
		var slots []idSlot
		for _, arg := range f.Arguments {
			g.slots(arg.Type, arg.Name, arg.Name, "", &slots, map[string]bool{})
		}
		// The first variant leaves optional arguments out, for the control.
		variants := []map[string][]string{{bareVariant: nil}, {}}
		for _, k := range idKinds {
			all := map[string][]string{}
			for _, s := range slots {
				all[s.path] = g.other.ids(k)
			}
			variants = append(variants, all)
			for _, s := range slots {
				variants = append(variants, map[string][]string{s.path: g.other.ids(k)})
				if s.list {
					variants = append(variants, map[string][]string{s.path: slices.Concat(g.own.ids(orKind(s.kind)), g.other.ids(k))})
				}
			}
		}
		var out []operation
		for _, v := range variants {
			var params, args []string
			vars := map[string]any{"ids": g.own.ids(p.kind), "id": g.own.ids(p.kind)[0]}
			for _, arg := range f.Arguments {
				val, ok := g.value(arg.Type, arg.Name, arg.Name, "", false, slots, v, map[string]bool{})
				if !ok {
					continue
				}
				params = append(params, fmt.Sprintf("$%s: %s", arg.Name, arg.Type.String()))
				args = append(args, fmt.Sprintf("%s: $%s", arg.Name, arg.Name))
				vars[arg.Name] = val
			}
			call := p.field
			if len(args) > 0 {
				call += "(" + strings.Join(args, ", ") + ")"
			}
			call += g.selection(f.Type, 1)
			q := fmt.Sprintf("query Probe($ids: [ID!]!, $id: ID!%s) { nodes(ids: $ids) { ... on %s { %s } } node(id: $id) { ... on %s { %s } } }",
				strings.Join(append([]string{""}, params...), ", "), p.typ, call, p.typ, call)
			out = append(out, operation{field: p.typ + "." + p.field, query: q, vars: vars})
		}
		return out
	}
	// The attribute conditions and the search must find B's own contacts for B.
	for _, p := range fields {
		seen := false
		for _, op := range ops(&opGen{schema: schema, own: bData, other: bData, tag: tag}, p) {
			if res := sendOK(t, b, op); len(leakedSecrets(res.body, bData.secrets())) > 0 {
				seen = true
			}
		}
		if !seen {
			t.Errorf("control: B never saw its own data through %s.%s", p.typ, p.field)
		}
	}
	n := 0
	for _, p := range fields {
		for _, op := range ops(&opGen{schema: schema, own: aData, other: bData, tag: tag}, p) {
			n++
			res := sendOK(t, a, op)
			if found := leakedSecrets(res.body, bData.secrets()); len(found) > 0 {
				t.Errorf("%s leaks workspace B's %q\nquery: %s\nvariables: %s\nresponse: %s", op.field, found, op.query, mustJSON(op.vars), res.body)
			}
		}
	}
	t.Logf("%d operations over %d fields", n, len(fields))

	// And filters written to find B's contacts: B's segments in each list, B's
	// attribute values, B's name to search.
	filters := func(d tenantData) []map[string]any {
		return []map[string]any{
			{"segments": map[string]any{"any": d.segments}},
			{"segments": map[string]any{"all": d.segments[:1]}},
			{"segments": map[string]any{"any": d.segments, "none": d.segments[:1]}},
			{"attributes": []any{map[string]any{"key": "secret", "equals": "attr" + d.label + "0"}}},
			{"attributes": []any{map[string]any{"key": "secret", "in": []any{"attr" + d.label + "1"}}}},
		}
	}
	const doc = `query($ids: [ID!]!, $id: ID!, $f: ContactFilter, $s: String) {
		nodes(ids: $ids) { ... on Segment { contacts(filter: $f, search: $s) { totalCount nodes { id name phone email attributes segments { id name } } } } }
		node(id: $id) { ... on Segment { contacts(filter: $f) { totalCount nodes { id name phone email attributes segments { id name } } } } } }`
	type counted struct {
		Contacts struct {
			TotalCount int `json:"totalCount"`
		} `json:"contacts"`
	}
	for i, f := range filters(bData) {
		if res := b.post(doc, map[string]any{"ids": bData.segments, "id": bData.segments[2], "f": f, "s": bData.label}); len(res.Errors) > 0 ||
			len(leakedSecrets(res.Data, bData.secrets())) == 0 {
			t.Errorf("control: B's filter %d %v finds nothing of its own: %s %+v", i, f, res.Data, res.Errors)
		}
		res := a.post(doc, map[string]any{"ids": aData.segments, "id": aData.segments[2], "f": f, "s": bData.label})
		if len(res.Errors) > 0 {
			t.Fatalf("B's filter %d %v: %+v", i, f, res.Errors)
		}
		if found := leakedSecrets(res.Data, bData.secrets()); len(found) > 0 {
			t.Errorf("B's filter %d %v leaks %q: %s", i, f, found, res.Data)
		}
		var out struct {
			Nodes []counted `json:"nodes"`
			Node  counted   `json:"node"`
		}
		if err := json.Unmarshal(res.Data, &out); err != nil {
			t.Fatal(err)
		}
		for _, c := range append(out.Nodes, out.Node) {
			if c.Contacts.TotalCount != 0 {
				t.Errorf("B's filter %d %v: A's segment counts %d of B's contacts: %s", i, f, c.Contacts.TotalCount, res.Data)
			}
		}
	}
}
