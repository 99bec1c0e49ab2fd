package codegen

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// exec is the shape of the code gqlgen v0.17.98 generates for a list and an object.
var exec = `func (ec *executionContext) marshalNItem(ctx context.Context, sel ast.SelectionSet, v []*Item) graphql.Marshaler {
	ret := ` + listsRewrite.old + `
		return ec.marshalItem(ctx, sel, v[i])
	})
	return ret
}

func (ec *executionContext) _Item(ctx context.Context, sel ast.SelectionSet, obj *Item) graphql.Marshaler {
	` + fieldsRewrite.old + `itemImplementors)

	out := graphql.NewFieldSet(fields)
	` + groupRewrite.old + `
	out.Dispatch(ctx)
	return out
}
`

func TestRewriteExec(t *testing.T) {
	got, err := RewriteExec([]byte(exec))
	if err != nil {
		t.Fatal(err)
	}
	want := exec
	for _, r := range rewrites {
		want = strings.Replace(want, r.old, r.new, 1)
	}
	if string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{
		"marshalList(ctx, sel, len(v), func",
		"fields := collectFields(ec.OperationContext, sel, itemImplementors)",
		"var deferred graphql.DeferredGroup",
	} {
		if !strings.Contains(string(got), s) {
			t.Errorf("rewritten without %q", s)
		}
	}

	// An executor that does any of it some other way is refused, not passed on.
	for name, src := range map[string]string{
		"no executor":                        "package generated\n",
		"a worker limit":                     exec + strings.Replace(exec, "len(v), 0, false", "len(v), 8, false", 1),
		"no list marshalling":                strings.Replace(exec, listsRewrite.old, "nil", 1),
		"fields collected elsewhere":         exec + "func f() { graphql.CollectFields(ec.OperationContext, other, nil) }\n",
		"an object without its @defer group": exec + strings.Replace(strings.Replace(exec, listsRewrite.old, "", 1), groupRewrite.old, "", 1),
	} {
		if _, err := RewriteExec([]byte(src)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestExecutionSource(t *testing.T) {
	src, err := ExecutionSource("generated", map[string][]string{"Segment": {"contacts"}, "Contact": {"segments", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), ExecutionFile, src, 0); err != nil {
		t.Fatalf("not Go: %v\n%s", err, src)
	}
	// Sorted by type, so that regenerating reproduces the file.
	s := string(src)
	if !strings.Contains(s, `"Contact": {"segments": true, "a": true},`) || strings.Index(s, `"Contact"`) > strings.Index(s, `"Segment"`) {
		t.Errorf("table not as given, sorted by type:\n%s", s)
	}
	for _, f := range []string{"func marshalList(", "func collectFields("} {
		if !strings.Contains(s, f) {
			t.Errorf("no %s in:\n%s", f, s)
		}
	}
}
