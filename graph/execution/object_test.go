package execution_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/execution"
)

// Object writes what gqlgen's field set writes for the same fields and values:
// every response name once, in order, with its value; also where a name repeats,
// among a few fields and among more than the scan covers, and for objects of more
// fields than it holds inline.
func TestObjectWritesWhatAFieldSetWrites(t *testing.T) {
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i%35) // f0-f4 come twice, past the 32nd field
	}
	for name, aliases := range map[string][]string{
		"one":           {"id"},
		"several":       {"id", "name", "contactCount", "createdAt"},
		"eight":         {"a", "b", "c", "d", "e", "f", "g", "h"},
		"nine":          {"a", "b", "c", "d", "e", "f", "g", "h", "i"},
		"typename":      {"__typename", "id"},
		"a repeat":      {"id", "name", "id"},
		"repeats first": {"a", "a", "b", "a"},
		"many":          many,
	} {
		t.Run(name, func(t *testing.T) {
			fields := make([]graphql.CollectedField, len(aliases))
			for i, a := range aliases {
				fields[i] = graphql.CollectedField{Field: &ast.Field{Alias: a, Name: a}}
			}
			out := graphql.NewFieldSet(fields)
			obj := execution.NewObject(fields)
			for i := range out.Values {
				switch i % 3 {
				case 0:
					out.Values[i] = graphql.MarshalString(fmt.Sprintf("v\"%d", i))
				case 1:
					out.Values[i] = graphql.MarshalInt(i)
				default:
					out.Values[i] = graphql.Null
				}
			}
			copy(obj.Values, out.Values)
			var want, got bytes.Buffer
			out.MarshalGQL(&want)
			obj.MarshalGQL(&got)
			if got.String() != want.String() {
				t.Errorf("Object wrote\n%s\nthe field set writes\n%s", &got, &want)
			}
		})
	}
}
