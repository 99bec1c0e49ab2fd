package execution_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/graph/execution"
	"github.com/segments/segments/internal/crm"
)

// fixedID appends the ID it is.
type fixedID string

func (id *fixedID) AppendGlobalID(b []byte) []byte { return append(b, *id...) }

// GlobalID writes what gqlgen's ID marshalling writes of the ID's string, into a
// buffer or any writer, escapes included; into a buffer with room it allocates
// nothing.
func TestGlobalIDWritesWhatGqlgenWrites(t *testing.T) {
	seg := &crm.Segment{ID: 1 << 40}
	var want, got bytes.Buffer
	graphql.MarshalID(seg.GlobalID()).MarshalGQL(&want)
	execution.GlobalID(seg).MarshalGQL(&got)
	if got.String() != want.String() {
		t.Errorf("segment: GlobalID wrote %s, gqlgen writes %s", &got, &want)
	}
	for _, s := range []string{"", "S_AQ", `a"b`, `a\b`, "tab\tnl\n", "\x00\x1f\x7f", "Élodie ✓", "\xff"} {
		id := fixedID(s)
		var want, got bytes.Buffer
		var gotWriter strings.Builder // no buffer to lend
		graphql.MarshalID(s).MarshalGQL(&want)
		execution.GlobalID(&id).MarshalGQL(&got)
		execution.GlobalID(&id).MarshalGQL(&gotWriter)
		if got.String() != want.String() || gotWriter.String() != want.String() {
			t.Errorf("%q: GlobalID wrote %s into a buffer and %s into a builder, gqlgen writes %s", s, &got, gotWriter.String(), &want)
		}
	}
	var buf bytes.Buffer
	buf.Grow(1 << 10)
	if n := testing.AllocsPerRun(100, func() {
		buf.Reset()
		execution.GlobalID(seg).MarshalGQL(&buf)
	}); n != 0 {
		t.Errorf("%v allocations an ID, want 0", n)
	}
}
