package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestVariablesCoercedAsTheSpecSays: variables gqlparser lets through and the spec's
// input coercion does not are a request error (GRAPHQL_VALIDATION_FAILED at the
// variable, no data), before anything runs. An enum value in another case was
// accepted, then failed as INTERNAL_SERVER_ERROR when its field ran; a string was
// taken as an Int and a number as a String.
func TestVariablesCoercedAsTheSpecSays(t *testing.T) {
	c := mutClient{newAPI(t)}
	const contactsByOrder = `query($o: ContactOrder) { contacts(first: 1, orderBy: $o) { totalCount } }`
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		path  string
	}{
		{"an enum in lower case", contactsByOrder,
			map[string]any{"o": map[string]any{"field": "name", "direction": "ASC"}}, "[variable o field]"},
		{"an enum in mixed case", contactsByOrder,
			map[string]any{"o": map[string]any{"field": "NAME", "direction": "Asc"}}, "[variable o direction]"},
		{"an enum variable", `query($f: SegmentOrderField!) { segments(orderBy: {field: $f, direction: ASC}) { totalCount } }`,
			map[string]any{"f": "created_at"}, "[variable f]"},
		{"a string for an Int", `query($n: Int) { segments(first: $n) { totalCount } }`, map[string]any{"n": "3"}, "[variable n]"},
		{"an Int past 32 bits", `query($n: Int) { segments(first: $n) { totalCount } }`, map[string]any{"n": 3000000000}, "[variable n]"},
		{"a number for a String", `query($s: String) { segments(search: $s) { totalCount } }`, map[string]any{"s": 12}, "[variable s]"},
		{"an enum in a mutation's input", `mutation($in: CreateSegmentInput!, $o: ContactOrder) {
			createSegment(input: $in) { segment { contacts(orderBy: $o) { totalCount } } } }`,
			map[string]any{"in": map[string]any{"name": "Never"}, "o": map[string]any{"field": "phone", "direction": "ASC"}}, "[variable o field]"},
		// A nullable variable sent as null where a non-null value is expected (allowed
		// by validation for its default): before anything runs, not a null or "null"
		// in the resolvers after the mutation was made, nor a panic in @skip.
		{"null for a non-null enum, in a mutation's payload", `mutation($d: OrderDirection = ASC) {
			createSegment(input: {name: "Never"}) { segment { contacts(first: 1, orderBy: {field: NAME, direction: $d}) { totalCount } } } }`,
			map[string]any{"d": nil}, "[variable d]"},
		{"null for @skip(if:)", `query($x: Boolean = true) { workspace @skip(if: $x) { name } __typename }`,
			map[string]any{"x": nil}, "[variable x]"},
		{"null for @include(if:) in a fragment", `mutation($x: Boolean = true) { createSegment(input: {name: "Never"}) { ...P } }
			fragment P on CreateSegmentPayload { segment @include(if: $x) { id } }`, map[string]any{"x": nil}, "[variable x]"},
		{"null for a non-null ID", `query($x: ID = "S_AQ") { segment(id: $x) { name } }`, map[string]any{"x": nil}, "[variable x]"},
		{"null for a list's element", `query($x: ID = "S_AQ") { nodes(ids: [$x]) { id } }`, map[string]any{"x": nil}, "[variable x]"},
		{"null for a non-null list", `mutation($x: [ID!] = ["S_AQ"]) { assignContactsToSegments(input: {contactIds: ["C_AQ"], segmentIds: $x}) { assignedCount } }`,
			map[string]any{"x": nil}, "[variable x]"},
		{"null for an argument with a default", `query($n: Int) { segment(id: "S_AQ") { contacts(first: $n) { totalCount } } }`,
			map[string]any{"n": nil}, ""},
		{"null for the argument of a skipped field", `query($id: ID = "C_AQ", $s: Boolean!) { contact(id: $id) @skip(if: $s) { id } workspace { id } }`,
			map[string]any{"id": nil, "s": true}, ""},
		{"null for the argument of a field not included", `query($id: ID = "C_AQ") { ... on Query @include(if: false) { contact(id: $id) { id } } workspace { id } }`,
			map[string]any{"id": nil}, ""},
	} {
		before := c.dbState()
		res := c.post(tc.query, tc.vars)
		if tc.path == "" { // a nullable argument: null runs
			if len(res.Errors) != 0 {
				t.Errorf("%s: %+v", tc.name, res.Errors)
			}
			continue
		}
		if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" ||
			fmt.Sprint(res.Errors[0].Path) != tc.path || res.Data != nil {
			t.Errorf("%s: %d %+v data %s, want GRAPHQL_VALIDATION_FAILED at %s without data", tc.name, res.Status, res.Errors, res.Data, tc.path)
		}
		c.unchanged(before)
	}
	// The same values spelled right run.
	for _, vars := range []map[string]any{
		{"o": map[string]any{"field": "NAME", "direction": "ASC"}},
		{"o": nil},
	} {
		if res := c.post(contactsByOrder, vars); len(res.Errors) != 0 {
			t.Errorf("%v: %+v", vars, res.Errors)
		}
	}
	if res := c.post(`query($n: Int, $id: ID!, $ids: [ID!]!) { segments(first: $n) { totalCount } node(id: $id) { id } nodes(ids: $ids) { id } }`,
		map[string]any{"n": 3, "id": 12, "ids": "S_AQ"}); len(res.Errors) != 0 {
		t.Errorf("an Int, an integer ID and one ID for a list: %+v", res.Errors)
	}
}

// TestNonObjectAttributesChangeNothing: attributes that are not a JSON object are
// refused before the operation runs, so that none of its root fields does. The
// createSegment before (or after) a refused upsertContacts was applied while the
// response said data: null, and its retry answered TAKEN.
func TestNonObjectAttributesChangeNothing(t *testing.T) {
	c := mutClient{newAPI(t)}
	before := c.dbState()
	for name, tc := range map[string]struct {
		query string
		vars  map[string]any
		field string
	}{
		"a variable, second": {`mutation($in: UpsertContactsInput!) {
			a: createSegment(input: {name: "Lost"}) { segment { id } }
			b: upsertContacts(input: $in) { createdCount } }`,
			map[string]any{"in": map[string]any{"contacts": []any{map[string]any{"phone": "+919000000001"},
				map[string]any{"phone": "+919000000002", "attributes": "oops"}}}}, "[input contacts 1 attributes]"},
		"a literal, first": {`mutation {
			a: upsertContacts(input: {contacts: [{phone: "+919000000001", attributes: [1, 2]}]}) { createdCount }
			b: createSegment(input: {name: "Lost"}) { segment { id } } }`, nil, "[input contacts 0 attributes]"},
		"one contact for the list": {`mutation {
			a: createSegment(input: {name: "Lost"}) { segment { id } }
			b: upsertContacts(input: {contacts: {phone: "+919000000001", attributes: "s"}}) { createdCount } }`, nil, "[input contacts 0 attributes]"},
		"a variable in a literal": {`mutation($a: JSON) {
			a: createSegment(input: {name: "Lost"}) { segment { id } }
			b: upsertContacts(input: {contacts: [{phone: "+919000000001", attributes: $a}]}) { createdCount } }`,
			map[string]any{"a": 5}, "[input contacts 0 attributes]"},
	} {
		res := c.post(tc.query, tc.vars)
		if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" ||
			fmt.Sprint(res.Errors[0].Extensions["field"]) != tc.field || res.Data != nil {
			t.Errorf("%s: %d %+v data %s, want BAD_USER_INPUT at %s without data", name, res.Status, res.Errors, res.Data, tc.field)
		}
	}
	c.unchanged(before)

	// A mutation over GET is refused as such (405, GraphQL over HTTP), whatever its
	// inputs: it was refused for its attributes (400, without Allow).
	r := c.exchange(http.MethodGet, "/graphql?query="+url.QueryEscape(
		`mutation { upsertContacts(input: {contacts: [{phone: "+919000000001", attributes: 1}]}) { createdCount } }`), nil, nil, true)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodPost {
		t.Errorf("a mutation with bad attributes over GET: %d %s", r.status, r.body)
	}
}

// TestLiteralNumbersKeptExactly: a number written in the query's attributes is kept
// as a variable's value keeps it, every digit as written, also where gqlparser reads
// it into an int64 or a float64 that cannot hold it: 9007199254740993.0 was refused
// (a float64 reads it as 9007199254740992), 1e-400 too (0), 12345678901234567890123
// and 1e400 failed validation ("Expected value of type ContactInput!", no path), and
// 1.10 was kept as 1.1 (a variable's as 1.10). In a variable's default (which gqlgen
// reads before anything could keep its digits) such a number is still refused,
// before anything runs.
func TestLiteralNumbersKeptExactly(t *testing.T) {
	c := mutClient{newAPI(t)}
	attributes := func(res response) string {
		t.Helper()
		var out struct {
			UpsertContacts struct {
				Contacts []struct{ Attributes json.RawMessage }
			}
		}
		if len(res.Errors) > 0 || json.Unmarshal(res.Data, &out) != nil || len(out.UpsertContacts.Contacts) != 1 {
			t.Fatalf("%d %+v data %s", res.Status, res.Errors, res.Data)
		}
		return string(out.UpsertContacts.Contacts[0].Attributes)
	}
	for _, n := range []string{"9007199254740993.0", "123.456789012345678901", "1e-400", "0.1000000000000000055511151231257827",
		"12345678901234567890123", "-9223372036854775809", "1e400", "-2.5e-999", "1.10", "2.5e-3", "-0.0", "1e21", "0.1", "9007199254740993"} {
		literal := attributes(c.post(`mutation { upsertContacts(input: {contacts: [{phone: "+919000000003", attributes: {a: {b: [1, `+n+`]}, c: `+n+`}}]}) { contacts { attributes } } }`, nil))
		variable := attributes(c.post(`mutation($a: JSON) { upsertContacts(input: {contacts: [{phone: "+919000000004", attributes: $a}]}) { contacts { attributes } } }`,
			map[string]any{"a": map[string]any{"a": map[string]any{"b": []any{1, json.Number(n)}}, "c": json.Number(n)}}))
		if literal != variable {
			t.Errorf("%s written in the query: attributes %s; in a variable: %s", n, literal, variable)
		}
	}
	if got, want := attributes(c.post(`mutation { upsertContacts(input: {contacts: [{phone: "+919000000005",
		attributes: {a: 1.10, b: 12345678901234567890123, c: 2.5e-3}}]}) { contacts { attributes } } }`, nil)), `{"a":1.10,"b":12345678901234567890123,"c":0.0025}`; got != want {
		t.Errorf("numbers written in the query: %s, want %s", got, want)
	}

	// A variable's default is written in the query too, and read before anything runs.
	before := c.dbState()
	for doc, path := range map[string]string{
		`mutation($a: JSON = {n: 9007199254740993.0}) { upsertContacts(input: {contacts: [{phone: "+919000000006", attributes: $a}]}) { createdCount } }`:       "[variable a]",
		`mutation($in: UpsertContactsInput! = {contacts: [{phone: "+919000000006", attributes: {t: 1e-400}}]}) { upsertContacts(input: $in) { createdCount } }`: "[variable in contacts 0 attributes]",
		`mutation($a: JSON = {n: 12345678901234567890123}) { upsertContacts(input: {contacts: [{phone: "+919000000006", attributes: $a}]}) { createdCount } }`:  "",
	} {
		res := c.post(doc, nil)
		// Past an int64, gqlparser's validation refuses each value around the
		// variable's use, with no path.
		if len(res.Errors) == 0 || res.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || res.Data != nil ||
			(path != "" && (len(res.Errors) != 1 || fmt.Sprint(res.Errors[0].Path) != path)) {
			t.Errorf("%s: %d %+v data %s, want GRAPHQL_VALIDATION_FAILED at %s", doc, res.Status, res.Errors, res.Data, path)
		}
	}
	c.unchanged(before)
}
