package execution_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/graph/execution"
)

// String and OptionalString write what gqlgen's string marshalling writes, escapes
// included, and allocate nothing.
func TestStringWritesWhatGqlgenWrites(t *testing.T) {
	all := make([]byte, 0, 128)
	for c := range 128 {
		all = append(all, byte(c))
	}
	for _, s := range []string{"", "Pune", `say "hi"\n`, "tab\tcr\rnl\n", "Élodie ✓ 🙂", string(all), "\x00\x1f\x7f"} {
		var want, got, gotOptional bytes.Buffer
		graphql.MarshalString(s).MarshalGQL(&want)
		execution.String(&s).MarshalGQL(&got)
		execution.OptionalString(&s).MarshalGQL(&gotOptional)
		if got.String() != want.String() || gotOptional.String() != want.String() {
			t.Errorf("%q: String wrote %s, OptionalString %s, gqlgen writes %s", s, &got, &gotOptional, &want)
		}
	}
	if execution.OptionalString(nil) != graphql.Null {
		t.Error("OptionalString(nil) is not null")
	}
	s := "Festival Buyers"
	var m graphql.Marshaler
	if n := testing.AllocsPerRun(100, func() {
		m = execution.String(&s)
		m.MarshalGQL(io.Discard)
		m = execution.OptionalString(&s)
		m.MarshalGQL(io.Discard)
	}); n != 0 {
		t.Errorf("%v allocations a string, want 0", n)
	}
}
