package server_test

import "testing"

// TestVariableMessagesThroughTheServer proves that the full handler (limits, keys,
// strict inputs) answers a variable's value that its scalar cannot take with the
// value sent and the type expected, where gqlparser named a Go type or another value
// (graph.TestVariableMessages has every scalar), and leaves other refusals' words.
func TestVariableMessagesThroughTheServer(t *testing.T) {
	a := newAPI(t)
	for _, tc := range []struct {
		query string
		f     any
		want  string
	}{
		{`query($f:Int){ segments(first:$f){ totalCount } }`, 5.5,
			`Variable "$f" got an invalid value: Int cannot represent 5.5, a number: it is not a whole number`},
		{`query($f:Int){ segments(first:$f){ totalCount } }`, []any{1},
			`Variable "$f" got an invalid value: Int cannot represent [1], a list`},
		{`query($f:ContactFilter){ contacts(filter:$f){ totalCount } }`, map[string]any{"hasEmail": 1},
			`Variable "$f" got an invalid value at "f.hasEmail": Boolean cannot represent 1, a number`},
		// Left as they are: gqlparser's null refusal, strictInputs' own (on a value
		// gqlparser coerced in place) and nullWhereNonNull's.
		{`query($f:ContactFilter){ contacts(filter:$f){ totalCount } }`, map[string]any{"segments": map[string]any{"all": 5.5}},
			`Variable "$f" got an invalid value at "f.segments.all[0]": ID cannot represent 5.5, a number: an ID is a string or an integer`},
		{`query($f:ID!){ segment(id:$f){ name } }`, nil, `cannot be null`},
		{`query($f:ContactFilter){ contacts(filter:$f){ totalCount } }`, map[string]any{"attributes": []any{map[string]any{"key": nil}}},
			`cannot be null`},
		{`query($f:ID = "S_1"){ segment(id:$f){ name } }`, nil,
			`Variable "$f" is null where a non-null ID! is expected: send a value, or leave the variable out to use its default`},
	} {
		if got := a.fails("GRAPHQL_VALIDATION_FAILED", tc.query, map[string]any{"f": tc.f}); got != tc.want {
			t.Errorf("$f = %v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
