package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// conditionsDoc lists the contacts a filter keeps, with both counts.
const conditionsDoc = `query($filter: ContactFilter) {
	contacts(first: 100, filter: $filter) { totalCount count(limit: 2) { count precision } nodes { id } } }`

// literalConditionsDoc is conditionsDoc with the filter written in the query.
func literalConditionsDoc(filter string) string {
	return strings.Replace(strings.Replace(conditionsDoc, "filter: $filter", "filter: "+filter, 1), "($filter: ContactFilter)", "", 1)
}

type conditionsPage struct {
	Contacts struct {
		TotalCount int `json:"totalCount"`
		Count      struct {
			Count     int    `json:"count"`
			Precision string `json:"precision"`
		} `json:"count"`
		Nodes []contact `json:"nodes"`
	} `json:"contacts"`
}

// TestContactFilterConditions: Query.contacts' filter keeps contacts by their dates,
// email, name, being in any segment and attributes, through the API as the store
// does (TestContactConditionsMatchBruteForce): values compare as JSON (the number 5
// is not the string "5", 5.0 is 5), whether written in the query or sent in
// variables; totalCount and count(limit:) count what the page lists; and
// createSegment's contactsMatching puts exactly them in the segment.
func TestContactFilterConditions(t *testing.T) {
	a := newAPI(t)
	var up struct {
		UpsertContacts struct {
			Contacts []struct {
				ID        string    `json:"id"`
				CreatedAt time.Time `json:"createdAt"`
			} `json:"contacts"`
		} `json:"upsertContacts"`
	}
	in := []map[string]any{
		{"phone": phones(77_000, 1)[0], "name": "Asha", "email": "asha@example.com", "attributes": map[string]any{"city": "Pune", "orders": 5}},
		{"phone": phones(77_001, 1)[0], "name": "Bala", "attributes": map[string]any{"city": "Mumbai", "orders": "5"}},
		{"phone": phones(77_002, 1)[0], "attributes": map[string]any{"city": "Pune", "orders": 12.5, "tags": []any{"gold"}}},
		{"phone": phones(77_003, 1)[0], "email": "d@example.com"},
	}
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id createdAt } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, &up)
	c := up.UpsertContacts.Contacts
	ids := []string{c[0].ID, c[1].ID, c[2].ID, c[3].ID}
	a.addSegment("Some", ids[1])
	// Created after the others, in a transaction of its own.
	time.Sleep(2 * time.Millisecond)
	late := a.addContacts(phones(77_004, 1)...)[0]
	var lateAt struct {
		Contact struct {
			CreatedAt string `json:"createdAt"`
		} `json:"contact"`
	}
	a.do(`query($id: ID!) { contact(id: $id) { createdAt } }`, map[string]any{"id": late}, &lateAt)

	list := func(filter map[string]any) []string {
		t.Helper()
		var p conditionsPage
		a.do(conditionsDoc, map[string]any{"filter": filter}, &p)
		var got []string
		for _, n := range p.Contacts.Nodes {
			got = append(got, n.ID)
		}
		wantCount, precision := min(len(got), 2), "EXACT"
		if len(got) > 2 {
			precision = "AT_LEAST"
		}
		if p.Contacts.TotalCount != len(got) || p.Contacts.Count.Count != wantCount || p.Contacts.Count.Precision != precision {
			t.Errorf("%v: totalCount %d, count %+v; the page lists %d", filter, p.Contacts.TotalCount, p.Contacts.Count, len(got))
		}
		slices.Sort(got)
		return got
	}
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
	attr := func(conds ...map[string]any) map[string]any {
		l := make([]any, len(conds))
		for i, c := range conds {
			l[i] = c
		}
		return map[string]any{"attributes": l}
	}
	for _, tc := range []struct {
		filter map[string]any
		want   []string
	}{
		{attr(map[string]any{"key": "orders", "equals": 5}), sorted(ids[0])},
		{attr(map[string]any{"key": "orders", "equals": json.Number("5.0")}), sorted(ids[0])},
		{attr(map[string]any{"key": "orders", "equals": "5"}), sorted(ids[1])},
		{attr(map[string]any{"key": "orders", "in": []any{"5", 12.5}}), sorted(ids[1], ids[2])},
		{attr(map[string]any{"key": "orders", "atLeast": 5}), sorted(ids[0], ids[2])},
		{attr(map[string]any{"key": "orders", "atLeast": 5, "atMost": 10}), sorted(ids[0])},
		{attr(map[string]any{"key": "tags", "equals": []any{"gold"}}), sorted(ids[2])},
		{attr(map[string]any{"key": "tags", "equals": "gold"}), nil},
		{attr(map[string]any{"key": "city", "equals": "Pune"}, map[string]any{"key": "orders", "exists": true}), sorted(ids[0], ids[2])},
		{attr(map[string]any{"key": "city", "exists": false}), sorted(ids[3], late)},
		{attr(), sorted(append(ids, late)...)},
		{map[string]any{"hasEmail": true}, sorted(ids[0], ids[3])},
		{map[string]any{"hasName": false}, sorted(ids[2], ids[3], late)},
		{map[string]any{"segments": map[string]any{"inAnySegment": false}, "hasName": true}, sorted(ids[0])},
		{map[string]any{"segments": map[string]any{"inAnySegment": true}}, sorted(ids[1])},
		{map[string]any{"createdAt": map[string]any{"from": lateAt.Contact.CreatedAt}}, sorted(late)},
		{map[string]any{"createdAt": map[string]any{"to": lateAt.Contact.CreatedAt}}, sorted(ids...)},
		{map[string]any{"createdAt": map[string]any{"from": lateAt.Contact.CreatedAt, "to": lateAt.Contact.CreatedAt}}, nil},
	} {
		if got := list(tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.filter, got, tc.want)
		}
	}

	// Written in the query: the number 5, the string "5", a list of both.
	for literal, want := range map[string][]string{
		`{attributes: [{key: "orders", equals: 5}]}`:        sorted(ids[0]),
		`{attributes: [{key: "orders", equals: "5"}]}`:      sorted(ids[1]),
		`{attributes: [{key: "orders", in: [5, "5"]}]}`:     sorted(ids[0], ids[1]),
		`{attributes: [{key: "tags", equals: ["gold"]}]}`:   sorted(ids[2]),
		`{attributes: [{key: "orders", atLeast: 12.25}]}`:   sorted(ids[2]),
		`{segments: {inAnySegment: false}, hasEmail: true}`: sorted(ids[0], ids[3]),
	} {
		var p conditionsPage
		a.do(literalConditionsDoc(literal), nil, &p)
		var got []string
		for _, n := range p.Contacts.Nodes {
			got = append(got, n.ID)
		}
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", literal, got, want)
		}
	}

	// A segment of every Pune contact with an order count.
	var created struct {
		CreateSegment struct {
			Segment struct {
				ID           string `json:"id"`
				ContactCount int    `json:"contactCount"`
			} `json:"segment"`
			UserErrors []userError `json:"userErrors"`
		} `json:"createSegment"`
	}
	a.do(`mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id contactCount } userErrors { field message code } } }`,
		map[string]any{"in": map[string]any{"name": "Pune buyers", "contactsMatching": map[string]any{"filter": attr(
			map[string]any{"key": "city", "equals": "Pune"}, map[string]any{"key": "orders", "atLeast": 1})}}}, &created)
	if seg := created.CreateSegment; len(seg.UserErrors) > 0 || seg.Segment.ContactCount != 2 {
		t.Fatalf("createSegment: %+v", seg)
	}
	got := list(map[string]any{"segments": map[string]any{"any": []string{created.CreateSegment.Segment.ID}}})
	if want := sorted(ids[0], ids[2]); !slices.Equal(got, want) {
		t.Errorf("the segment of Pune buyers holds %v, want %v", got, want)
	}
}

// TestContactFilterConditionsRefused: a malformed condition refuses Query.contacts
// with BAD_USER_INPUT naming it (extensions.field from the argument), the first
// problem of the filter as for its segments.
func TestContactFilterConditionsRefused(t *testing.T) {
	a := newAPI(t)
	for _, tc := range []struct {
		filter map[string]any
		fields []string
	}{
		{map[string]any{"attributes": []any{map[string]any{"key": "city"}}}, []string{"[filter attributes 0]"}},
		{map[string]any{"attributes": []any{map[string]any{"key": "city", "equals": "Pune", "exists": true}}}, []string{"[filter attributes 0]"}},
		{map[string]any{"attributes": []any{map[string]any{"key": " ", "in": []any{1}}}}, []string{"[filter attributes 0 key]"}},
		{map[string]any{"attributes": []any{map[string]any{"key": "k", "in": make([]any, 101)}}}, nil}, // null items: validation
		{map[string]any{"attributes": []any{map[string]any{"key": "k", "equals": "a\u0000"}}}, []string{"[filter attributes 0 equals]"}},
		{map[string]any{"attributes": slices.Repeat([]any{map[string]any{"key": "k", "exists": true}}, 11)}, []string{"[filter attributes]"}},
		{map[string]any{"createdAt": map[string]any{"from": "0000-01-01T00:00:00Z"}}, []string{"[filter createdAt from]"}},
		{map[string]any{"segments": map[string]any{"none": []string{"nope"}}, "attributes": []any{map[string]any{"key": "k"}}},
			[]string{"[filter segments none 0]"}}, // a query's error names the first problem
	} {
		res := a.post(conditionsDoc, map[string]any{"filter": tc.filter})
		var fields []string
		for _, e := range res.Errors {
			if tc.fields != nil && e.Extensions["code"] != "BAD_USER_INPUT" {
				t.Errorf("%v: %s %v", tc.filter, e.Message, e.Extensions)
			}
			fields = append(fields, fmt.Sprint(e.Extensions["field"]))
		}
		if tc.fields == nil {
			if len(res.Errors) == 0 {
				t.Errorf("%v: accepted", tc.filter)
			}
			continue
		}
		if !slices.Equal(fields, tc.fields) {
			t.Errorf("%v: refused at %v, want %v (%+v)", tc.filter, fields, tc.fields, res.Errors)
		}
	}
	values := make([]any, 101)
	for i := range values {
		values[i] = i
	}
	res := a.post(conditionsDoc, map[string]any{"filter": map[string]any{"attributes": []any{map[string]any{"key": "k", "in": values}}}})
	if len(res.Errors) != 1 || fmt.Sprint(res.Errors[0].Extensions["field"]) != "[filter attributes 0 in]" || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
		t.Errorf("101 values: %+v", res.Errors)
	}
}

// TestLiteralConditionNumbersAsVariables: a number written in a condition's value
// gives what the same number in a variable's value gives: the contacts with that
// attribute, every digit compared, or the same refusal (status, code, path). Past an
// int64 or a float64 (12345678901234567890123, 1e400) it was GRAPHQL_VALIDATION_FAILED
// ("Expected value of type AttributeCondition!", no path), and one a float64 does not
// hold exactly (9007199254740993.0) BAD_USER_INPUT "send it in a variable".
func TestLiteralConditionNumbersAsVariables(t *testing.T) {
	a := newAPI(t)
	numbers := []string{"12345678901234567890123", "-12345678901234567890123", "9007199254740993.0", "1e400", "1e-400",
		"1e2000000000", "5"}
	var in []map[string]any
	for i, n := range numbers {
		in = append(in, map[string]any{"phone": phones(79_100, len(numbers))[i], "attributes": map[string]any{"n": json.Number(n)}})
	}
	var up struct {
		UpsertContacts struct {
			Contacts   []contact   `json:"contacts"`
			UserErrors []userError `json:"userErrors"`
		} `json:"upsertContacts"`
	}
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } userErrors { field message code } } }`,
		map[string]any{"in": map[string]any{"contacts": in[:len(in)-2]}}, &up) // not 1e2000000000 (TOO_LONG), nor 5
	if len(up.UpsertContacts.UserErrors) > 0 {
		t.Fatal(up.UpsertContacts.UserErrors)
	}
	outcome := func(res response) string {
		var codes []string
		for _, e := range res.Errors {
			codes = append(codes, fmt.Sprint(e.Extensions["code"], e.Extensions["field"]))
		}
		return fmt.Sprintf("%d %v %s", res.Status, codes, res.Data)
	}
	for i, n := range numbers {
		for _, op := range []string{"equals", "in"} {
			value := any(json.Number(n))
			literal := n
			if op == "in" {
				value, literal = []any{value}, "["+n+"]"
			}
			byVar := a.post(conditionsDoc, map[string]any{"filter": map[string]any{"attributes": []any{map[string]any{"key": "n", op: value}}}})
			byLiteral := a.post(literalConditionsDoc(fmt.Sprintf(`{attributes: [{key: "n", %s: %s}]}`, op, literal)), nil)
			if got, want := outcome(byLiteral), outcome(byVar); got != want {
				t.Errorf("%s: %s written in the query: %s; in a variable: %s", op, n, got, want)
			}
			var p conditionsPage
			if i < len(up.UpsertContacts.Contacts) && (json.Unmarshal(byLiteral.Data, &p) != nil || len(p.Contacts.Nodes) != 1 ||
				p.Contacts.Nodes[0].ID != up.UpsertContacts.Contacts[i].ID) {
				t.Errorf("%s: %s written in the query finds %s, want the contact of attributes %v", op, n, byLiteral.Data, in[i]["attributes"])
			}
		}
	}
}

// TestContactFilterConditionsStatements: a filtered page with its contacts' segments
// sends as many statements for 2 contacts as for 40 (the page, its segments with the
// catalog, the count), as an unfiltered one does.
func TestContactFilterConditionsStatements(t *testing.T) {
	a := newAPI(t)
	var in []map[string]any
	for i, p := range phones(78_000, 40) {
		in = append(in, map[string]any{"phone": p, "attributes": map[string]any{"city": "Pune", "orders": i}})
	}
	var up struct {
		UpsertContacts struct {
			Contacts []contact `json:"contacts"`
		} `json:"upsertContacts"`
	}
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, &up)
	a.addSegment("Pune", up.UpsertContacts.Contacts[0].ID, up.UpsertContacts.Contacts[1].ID)
	doc := `query($filter: ContactFilter, $first: Int) { contacts(first: $first, filter: $filter) {
		totalCount nodes { id segments { id name } } pageInfo { hasNextPage endCursor } } }`
	count := map[int]int64{}
	for _, first := range []int{2, 40} {
		for _, filter := range []map[string]any{
			{"attributes": []any{map[string]any{"key": "city", "equals": "Pune"}}},
			{"attributes": []any{map[string]any{"key": "orders", "atLeast": 0}}, "hasEmail": false, "segments": map[string]any{"inAnySegment": false, "none": []string{}}},
		} {
			a.do(doc, map[string]any{"filter": filter, "first": first}, nil)
			if n := a.statements(); count[first] < n {
				count[first] = n
			}
		}
	}
	if count[2] != count[40] || count[2] == 0 {
		t.Errorf("statements of pages of 2 and 40: %v", count)
	}
}

// TestDateTimeInputsRefused: a DateTime that is not RFC 3339 with a time and a zone
// ("2026-12-07", "", a 30th of February), in a variable or written in the query, is
// BAD_USER_INPUT at its place before anything runs: it was INTERNAL_SERVER_ERROR
// (which clients retry), after a mutation's earlier root fields had been applied,
// and "" was read as the year 1, keeping every contact or none with no error.
func TestDateTimeInputsRefused(t *testing.T) {
	a := newAPI(t)
	for _, bad := range []string{"2026-12-07", "", "2026-12-07T00:00:00", "2026-02-30T00:00:00Z", "yesterday"} {
		for _, end := range []string{"from", "to"} {
			res := a.post(conditionsDoc, map[string]any{"filter": map[string]any{"createdAt": map[string]any{end: bad}}})
			if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" ||
				fmt.Sprint(res.Errors[0].Extensions["field"]) != "[filter createdAt "+end+"]" {
				t.Errorf("createdAt.%s %q in a variable: %+v", end, bad, res.Errors)
			}
			// A query's request error: 200 with application/json (docs/api.md).
			if res.Status != http.StatusOK || res.Data != nil && string(res.Data) != "null" {
				t.Errorf("createdAt.%s %q in a variable: status %d, data %s; want 200 and no data", end, bad, res.Status, res.Data)
			}
		}
		res := a.post(literalConditionsDoc(fmt.Sprintf(`{updatedAt: {to: %q}}`, bad)), nil)
		if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" ||
			fmt.Sprint(res.Errors[0].Extensions["field"]) != "[filter updatedAt to]" {
			t.Errorf("updatedAt.to %q in the query: %+v", bad, res.Errors)
		}
	}
	res := a.post(`{ deletedContacts(since: "2026-12-07") { nodes { id } } }`, nil)
	if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
		t.Errorf("deletedContacts(since:) of a date: %+v", res.Errors)
	}
	// A mutation's second root field's bad date stops the first too.
	res = a.post(`mutation {
		a: createSegment(input: {name: "dt-first"}) { segment { id } }
		b: createSegment(input: {name: "dt-second", contactsMatching: {filter: {createdAt: {from: "2026-12-01"}}}}) { segment { id } } }`, nil)
	if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" || res.Status != http.StatusBadRequest {
		t.Errorf("a mutation with a bad date: status %d, %+v; want 400 (refused before it ran)", res.Status, res.Errors)
	}
	var found struct {
		SegmentByName *struct{ ID string } `json:"segmentByName"`
	}
	a.do(`{ segmentByName(name: "dt-first") { id } }`, nil, &found)
	if found.SegmentByName != nil {
		t.Errorf("the mutation's first field ran: segment %s was created", found.SegmentByName.ID)
	}
}

// TestDateTimeInputsOfNanoseconds: every DateTime argument finer than PostgreSQL's
// microseconds compares exactly, in a variable or written in the query: a contact
// created (updated, deleted) at .349684 is before .349684001 and not at or after it.
// deletedContacts(since: .349684001) listed the deletion at .349684 (the end was
// truncated), where a filter's range rounded its ends up; the scalar now rounds every
// DateTime up, and the ranges keep their behaviour.
func TestDateTimeInputsOfNanoseconds(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(79_000, 1)...)
	one := c.contact(ids[0])
	finer := func(at string) string {
		tm, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Add(time.Nanosecond).Format(time.RFC3339Nano)
	}
	for _, field := range []string{"createdAt", "updatedAt"} {
		at := one.CreatedAt
		if field == "updatedAt" {
			at = one.UpdatedAt
		}
		for _, tc := range []struct {
			end, at string
			holds   bool // whether the range keeps the contact
		}{
			{"from", finer(at), false},
			{"to", finer(at), true},
			{"from", at, true},
			{"to", at, false},
		} {
			filter := fmt.Sprintf("{%s: {%s: %q}}", field, tc.end, tc.at)
			var byVar, byLiteral conditionsPage
			c.do(conditionsDoc, map[string]any{"filter": map[string]any{field: map[string]any{tc.end: tc.at}}}, &byVar)
			c.do(literalConditionsDoc(filter), nil, &byLiteral)
			for how, p := range map[string]conditionsPage{"in a variable": byVar, "in the query": byLiteral} {
				kept := slices.ContainsFunc(p.Contacts.Nodes, func(n contact) bool { return n.ID == ids[0] })
				if kept != tc.holds {
					t.Errorf("%s of %s %s: kept %t, want %t", filter, at, how, kept, tc.holds)
				}
			}
		}
	}
	// A mutation's filter, as a query's: from the instant to just after it.
	seg := c.createSegment(map[string]any{"name": "ns", "contactsMatching": map[string]any{
		"filter": map[string]any{"createdAt": map[string]any{"from": one.CreatedAt, "to": finer(one.CreatedAt)}}}})
	if len(seg.UserErrors) > 0 || seg.Segment == nil || seg.Segment.ContactCount != 1 {
		t.Errorf("createSegment of the contacts created from %s to %s: %+v", one.CreatedAt, finer(one.CreatedAt), seg)
	}

	// deletedContacts(since:).
	if p := c.deleteContacts(ids[0]); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	all := c.deleted("2000-01-01T00:00:00Z", nil, nil)
	if len(all.Edges) != 1 {
		t.Fatalf("%d deletions listed, want 1", len(all.Edges))
	}
	at := all.Edges[0].Node.DeletedAt
	if got := c.deletedIDs(at, 100); !slices.Equal(got, ids[:1]) {
		t.Errorf("since %s, the deletion's instant: %v, want %v", at, got, ids[:1])
	}
	if got := c.deletedIDs(finer(at), 100); len(got) != 0 {
		t.Errorf("since %s, after the deletion at %s: %v", finer(at), at, got)
	}
	var literal struct {
		DeletedContacts struct {
			Nodes []struct{ ID string } `json:"nodes"`
		} `json:"deletedContacts"`
	}
	c.do(fmt.Sprintf(`{ deletedContacts(since: %q) { nodes { id } } }`, finer(at)), nil, &literal)
	if got := literal.DeletedContacts.Nodes; len(got) != 0 {
		t.Errorf("since %s written in the query, after the deletion at %s: %v", finer(at), at, got)
	}
}
