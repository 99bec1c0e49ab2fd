package execution_test

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/execution"
)

func TestInlineDefers(t *testing.T) {
	field := func(name string, deferred bool) graphql.CollectedField {
		f := graphql.CollectedField{Field: &ast.Field{Name: name}}
		if deferred {
			f.Deferrables = []*graphql.Deferrable{{Label: "later"}}
		}
		return f
	}

	// Nothing deferred: the same fields, not a copy.
	plain := []graphql.CollectedField{field("id", false), field("name", false)}
	if got := execution.InlineDefers(plain); len(got) != 2 || &got[0] != &plain[0] {
		t.Errorf("fields without @defer: got a copy or other fields")
	}

	// A deferred field: a copy with none deferred; gqlgen's (shared) fields unchanged.
	collected := []graphql.CollectedField{field("id", false), field("segments", true)}
	got := execution.InlineDefers(collected)
	if len(got) != 2 || got[0].Name != "id" || got[1].Name != "segments" {
		t.Fatalf("fields = %v, want id and segments", got)
	}
	for _, f := range got {
		if f.IsDeferred() {
			t.Errorf("%s still deferred", f.Name)
		}
	}
	if !collected[1].IsDeferred() {
		t.Error("InlineDefers changed the fields it was given: gqlgen shares them between objects")
	}
}
