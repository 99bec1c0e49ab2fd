package codegen

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

func TestRewriteExec(t *testing.T) {
	exec := `func (ec *executionContext) marshalNItem(ctx context.Context, sel ast.SelectionSet, v []*Item) graphql.Marshaler {
	ret := ` + sliceCall + `
		return ec.marshalItem(ctx, sel, v[i])
	})
	return ret
}
`
	got, err := RewriteExec([]byte(exec))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(exec, sliceCall, marshalCall, 1); string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}

	// An executor whose lists are marshalled some other way is refused, not passed on.
	if _, err := RewriteExec([]byte("package generated\n")); err == nil {
		t.Error("an executor without the call: no error")
	}
	limited := strings.Replace(exec, "len(v), 0, false", "len(v), 8, false", 1)
	if _, err := RewriteExec([]byte(limited + exec)); err == nil {
		t.Error("an executor with a worker limit: no error")
	}
}

func TestListsSource(t *testing.T) {
	src, err := ListsSource("generated", map[string][]string{"Segment": {"contacts"}, "Contact": {"segments", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), ListsFile, src, 0); err != nil {
		t.Fatalf("not Go: %v\n%s", err, src)
	}
	// Sorted by type, so that regenerating reproduces the file.
	s := string(src)
	if !strings.Contains(s, `"Contact": {"segments": true, "a": true},`) || strings.Index(s, `"Contact"`) > strings.Index(s, `"Segment"`) {
		t.Errorf("table not as given, sorted by type:\n%s", s)
	}
}
