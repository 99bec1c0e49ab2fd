package server_test

import (
	"strings"
	"testing"
)

// TestDeferIsInlined proves that a query with @defer gets every deferred field in its
// one response, the same data as without @defer. The API has no incremental delivery:
// before the executor inlined @defer, a deferred field with a resolver (a contact's
// segments) came back null, with no error.
func TestDeferIsInlined(t *testing.T) {
	a := newAPI(t)
	ids := a.addContacts(phones(13_000, 3)...)
	seg := a.addSegment("All", ids...)
	a.addSegment("First", ids[0])

	vars := map[string]any{"s": seg, "later": true}
	for _, c := range []struct{ name, deferred string }{
		{"an inline fragment", `{ contacts(first: 3) { nodes { id ... @defer { segments { name } } } } }`},
		{"a labelled fragment", `{ contacts(first: 3) { nodes { id ... @defer(label: "segs") { phone segments { id name } } } } }`},
		{"a fragment spread", `{ contacts(first: 3) { nodes { id ...S @defer } } } fragment S on Contact { segments { name contactCount } }`},
		{"nested defers", `{ contacts(first: 3) { ... @defer { totalCount nodes { id ... @defer { segments { name ... @defer { contacts(first: 2) { nodes { phone } } } } } } } } }`},
		{"@defer(if:) from a variable", `query($later: Boolean!) { contacts(first: 3) { nodes { ... @defer(if: $later) { segments { name } } } } }`},
		{"a segment's members", `query($s: ID!) { segment(id: $s) { name ... @defer { contacts(first: 3) { totalCount nodes { id segments { name } } } } } }`},
	} {
		t.Run(c.name, func(t *testing.T) {
			deferred := a.post(c.deferred, vars)
			if deferred.Status != 200 || len(deferred.Errors) > 0 {
				t.Fatalf("status %d, errors %+v", deferred.Status, deferred.Errors)
			}
			// The same query without @defer (an @include(if:) keeps the variable used).
			plain := a.post(strings.NewReplacer(`@defer(label: "segs")`, "", "@defer(if:", "@include(if:", "@defer", "").Replace(c.deferred), vars)
			if plain.Status != 200 || len(plain.Errors) > 0 {
				t.Fatalf("without @defer: status %d, errors %+v", plain.Status, plain.Errors)
			}
			if string(deferred.Data) != string(plain.Data) {
				t.Errorf("with @defer:\n%s\nwithout:\n%s", deferred.Data, plain.Data)
			}
			if strings.Contains(string(deferred.Data), "null") {
				t.Errorf("a null in %s", deferred.Data)
			}
		})
	}
}
