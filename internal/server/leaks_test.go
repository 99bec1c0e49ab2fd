package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/server"
)

// TestNoSuggestionsAnywhere extends TestNoSuggestions to every other place a name
// can be wrong (named fragments and inline fragments on unknown types, unknown
// fragments, directives and their arguments, variables of unknown list and scalar
// types, unknown root fields of mutations, enum values and input fields nested in
// variables), over POST and GET, with introspection on and off: every one is
// refused with a code, and no answer names anything of the schema it was not sent.
func TestNoSuggestionsAnywhere(t *testing.T) {
	on := newAPI(t)
	off := newAPIWith(t, server.Config{Introspection: graph.IntrospectionOff})
	for _, tc := range []struct {
		q    string
		vars map[string]any
	}{
		{`{ node(id: "C_AQ") { ...F } } fragment F on Contakt { id }`, nil},           // named fragment, unknown type
		{`{ workspace { ... on Workspac { id } } }`, nil},                             // inline fragment, unknown type
		{`{ node(id: "C_AQ") { ... on Segmnt { id } } }`, nil},                        // a type close to a member of Node
		{`{ workspace { ...Workspac } } fragment Workspace on Workspace { id }`, nil}, // unknown fragment
		{`{ workspace @skipp(if: true) { id } }`, nil},                                // unknown directive
		{`{ workspace @skip(iff: true) { id } }`, nil},                                // unknown directive argument
		{`query($o: [ContactOrdr!]) { __typename }`, nil},                             // list of an unknown type
		{`query($n: Innt) { contacts(first: $n) { totalCount } }`, nil},               // unknown scalar
		{`query($n: ID) { contacts(first: $n) { totalCount } }`, nil},                 // wrong type of variable
		{`{ segments { nodes { contactz { totalCount } } } }`, nil},                   // nested field
		{`{ contacts(orderBy: {field: NAME, direction: ASCC}) { totalCount } }`, nil}, // enum value, second field
		{`mutation { createSegmnt(input: {name: "x"}) { segment { id } } }`, nil},     // unknown mutation
		{`mutation { createSegment(input: {name: "x", descripton: "y"}) { segment { id } } }`, nil},
		{`mutation { createSegment(inpt: {name: "x"}) { segment { id } } }`, nil},
		{`mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } } }`,
			map[string]any{"in": map[string]any{"name": "x", "contactIDs": []string{"C_AQ"}}}},
		{`query($f: ContactFilter) { contacts(filter: $f) { totalCount } }`,
			map[string]any{"f": map[string]any{"segments": map[string]any{"anyy": []string{"S_AQ"}}}}},
		{`query($o: ContactOrder) { contacts(orderBy: $o) { totalCount } }`,
			map[string]any{"o": map[string]any{"field": "NAME", "direction": "DESCENDING"}}},
		{`{ __schema { queryTyp { name } } }`, nil},
	} {
		for name, a := range map[string]*api{"introspection on": on, "introspection off": off} {
			for _, r := range []reply{a.query(tc.q, tc.vars), a.get(tc.q, tc.vars)} {
				if len(r.res.Errors) == 0 {
					t.Errorf("%s: %s %v: no error: %s", name, tc.q, tc.vars, r.body)
					continue
				}
				if c, _ := r.res.Errors[0].Extensions["code"].(string); c == "" {
					t.Errorf("%s: %s: an error without a code: %s", name, tc.q, r.body)
				}
				if lower := strings.ToLower(r.body); strings.Contains(lower, "did you mean") || strings.Contains(lower, "suggest") {
					t.Errorf("%s: %s %v: suggests: %s", name, tc.q, tc.vars, r.body)
				}
			}
		}
	}
}

// get sends a GraphQL query over GET.
func (a *api) get(q string, vars map[string]any) reply {
	a.t.Helper()
	v := url.Values{"query": {q}}
	if vars != nil {
		b, err := json.Marshal(vars)
		if err != nil {
			a.t.Fatal(err)
		}
		v.Set("variables", string(b))
	}
	return a.send(http.MethodGet, "/graphql?"+v.Encode(), nil, nil)
}
