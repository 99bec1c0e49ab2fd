package execution_test

import (
	"context"
	"slices"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/execution"
)

// names lists the response names of fields, and whether any is deferred.
func names(fields []graphql.CollectedField) (out []string, deferred bool) {
	for _, f := range fields {
		out = append(out, f.Alias)
		deferred = deferred || f.IsDeferred()
	}
	return out, deferred
}

// CollectFields collects what gqlgen collects (skips, fragments on each type, @defer
// inlined), once per operation, selection set and type, and looks it up again
// without allocating.
func TestCollectFieldsOncePerSelectionAndType(t *testing.T) {
	s := gqlparser.MustLoadSchema(&ast.Source{Input: schema})
	doc, errs := gqlparser.LoadQuery(s, `query($skip: Boolean!) {
		items { name slow @skip(if: $skip) ... @defer { child { name } } }
		named { ... on Item { slow } ... on Other { name } } }`)
	if errs != nil {
		t.Fatal(errs)
	}
	oc := &graphql.OperationContext{Doc: doc, Variables: map[string]any{"skip": true}}
	items := doc.Operations[0].SelectionSet[0].(*ast.Field).SelectionSet
	named := doc.Operations[0].SelectionSet[1].(*ast.Field).SelectionSet
	item, other := []string{"Item", "Named"}, []string{"Other", "Named"}

	ctx := execution.WithOperation(context.Background())
	for _, c := range []struct {
		name      string
		sel       ast.SelectionSet
		satisfies []string
		want      []string
	}{
		{"items, slow skipped, child deferred", items, item, []string{"name", "child"}},
		{"named Items", named, item, []string{"slow"}},
		{"named Others", named, other, []string{"name"}},
	} {
		got := execution.CollectFields(ctx, oc, c.sel, c.satisfies)
		gotNames, deferred := names(got)
		if !slices.Equal(gotNames, c.want) || deferred {
			t.Errorf("%s: collected %v (deferred: %v), want %v, none deferred", c.name, gotNames, deferred, c.want)
		}
		gqlgens, _ := names(graphql.CollectFields(&graphql.OperationContext{Doc: doc, Variables: oc.Variables}, c.sel, c.satisfies))
		if !slices.Equal(gqlgens, c.want) {
			t.Errorf("%s: gqlgen collects %v, this test expects %v", c.name, gqlgens, c.want)
		}
		if again := execution.CollectFields(ctx, oc, c.sel, c.satisfies); &again[0] != &got[0] {
			t.Errorf("%s: collected again, not found in the operation", c.name)
		}
		outside, _ := names(execution.CollectFields(context.Background(), oc, c.sel, c.satisfies))
		if !slices.Equal(outside, c.want) {
			t.Errorf("%s: outside an operation, collected %v", c.name, outside)
		}
	}
	if n := testing.AllocsPerRun(100, func() { execution.CollectFields(ctx, oc, items, item) }); n != 0 {
		t.Errorf("%v allocations to look up collected fields, want 0", n)
	}
	// Another operation collects its own (its variables may differ).
	next := &graphql.OperationContext{Doc: doc, Variables: map[string]any{"skip": false}}
	if got, _ := names(execution.CollectFields(execution.WithOperation(context.Background()), next, items, item)); !slices.Equal(got, []string{"name", "slow", "child"}) {
		t.Errorf("another operation, slow not skipped: collected %v, want name, slow, child", got)
	}
}
