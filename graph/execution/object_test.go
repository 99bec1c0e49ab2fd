package execution_test

import (
	"bytes"
	"context"
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

// Object's ResolveConcurrently, which stands in for the field set's, marks the
// object invalid as gqlgen does: a null in a non-null field, the required null a
// nullable field's failed child leaves, and a recovered panic (reported, and null)
// in a non-null field; a null in a nullable field leaves it valid.
func TestObjectResolveConcurrently(t *testing.T) {
	oc := &graphql.OperationContext{RecoverFunc: func(_ context.Context, err any) error { return fmt.Errorf("panic: %v", err) }}
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, nil)
	value := func(m graphql.Marshaler) func(context.Context) graphql.Marshaler {
		return func(context.Context) graphql.Marshaler { return m }
	}
	panics := func(context.Context) graphql.Marshaler { panic("boom") }
	for _, tc := range []struct {
		name    string
		nonNull bool
		resolve func(context.Context) graphql.Marshaler
		invalid bool
	}{
		{"a value", true, value(graphql.MarshalString("x")), false},
		{"null, non-null", true, value(graphql.Null), true},
		{"null, nullable", false, value(graphql.Null), false},
		{"required null, nullable", false, value(graphql.RequiredNull), true},
		{"a panic, non-null", true, panics, true},
		{"a panic, nullable", false, panics, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := []graphql.CollectedField{{Field: &ast.Field{Alias: "a", Name: "a"}}, {Field: &ast.Field{Alias: "b", Name: "b"}}}
			obj := execution.NewObject(fields)
			obj.Values[0] = graphql.MarshalString("first")
			obj.ResolveConcurrently(oc, nil, 1, true, tc.nonNull, tc.resolve)
			obj.Dispatch(ctx)
			if got := obj.Invalids > 0; got != tc.invalid {
				t.Errorf("invalid %v, want %v", got, tc.invalid)
			}
			if obj.Values[1] == nil {
				t.Error("the field's value was not stored")
			}
		})
	}
	if errs := graphql.GetErrors(ctx); len(errs) != 2 {
		t.Errorf("%d errors reported, want one per panic: %v", len(errs), errs)
	}
}
