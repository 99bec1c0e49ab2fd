package lists_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/lists"
)

const schema = `
type Query { items: [Item!]! named: [Named!]! }
interface Named { name: String! slow: String! }
type Item implements Named { name: String! slow: String! child: Item }
type Other implements Named { name: String! slow: String! }
`

// fields is the table cmd/graphgen would write for schema if Item.slow had a
// resolver: Named.slow is in it through Item.
var fields = lists.Fields{"Item": {"slow": true}, "Named": {"slow": true}}

// selectionOf returns the selection under the root field of query, validated
// against schema (which records each field's parent type, as gqlgen's executor has it).
func selectionOf(t *testing.T, query string) ast.SelectionSet {
	t.Helper()
	s := gqlparser.MustLoadSchema(&ast.Source{Input: schema})
	doc, errs := gqlparser.LoadQuery(s, query)
	if errs != nil {
		t.Fatalf("%s: %v", query, errs)
	}
	return doc.Operations[0].SelectionSet[0].(*ast.Field).SelectionSet
}

func TestConcurrent(t *testing.T) {
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`{ items { name } }`, false},
		{`{ items { name child { name child { name } } } }`, false},
		{`{ items { __typename name } }`, false},
		{`{ items { slow } }`, true},
		{`{ items { name child { child { slow } } } }`, true},
		{`{ items { ...F } } fragment F on Item { name }`, false},
		{`{ items { ...F } } fragment F on Item { child { slow } }`, true},
		{`{ items { ... on Item { slow } } }`, true},
		{`{ named { name } }`, false},
		{`{ named { slow } }`, true},
		{`{ named { ... on Other { slow } } }`, false}, // Other.slow has no resolver
		{`{ named { ... on Item { slow } } }`, true},
	} {
		if got := fields.Concurrent(selectionOf(t, c.query)); got != c.want {
			t.Errorf("%s: Concurrent = %v, want %v", c.query, got, c.want)
		}
	}
	// A field whose parent type is unknown counts as concurrent.
	if !fields.Concurrent(ast.SelectionSet{&ast.Field{Name: "name"}}) {
		t.Error("a field without its parent type: Concurrent = false, want true")
	}
}

func responseContext() context.Context {
	return graphql.WithResponseContext(context.Background(), func(ctx context.Context, err error) *gqlerror.Error {
		return &gqlerror.Error{Message: err.Error(), Path: graphql.GetPath(ctx)}
	}, func(ctx context.Context, r any) error { return fmt.Errorf("panic: %v", r) })
}

func marshalled(m graphql.Marshaler) string {
	var b bytes.Buffer
	m.MarshalGQL(&b)
	return b.String()
}

// A list whose selection reaches no concurrent field is marshalled on the calling
// goroutine, in order, each element with its index in the path; a panic nulls its
// element only and is reported at that element's path.
func TestMarshalInPlace(t *testing.T) {
	ctx := responseContext()
	sel := selectionOf(t, `{ items { name } }`)
	var order []int
	got := lists.Marshal(ctx, fields, sel, 4, func(ctx context.Context, i int) graphql.Marshaler {
		order = append(order, i) // no lock: a second goroutine would be a race (go test -race)
		if fc := graphql.GetFieldContext(ctx); fc.Index == nil || *fc.Index != i {
			t.Errorf("element %d: field context index %v", i, fc.Index)
		}
		if i == 2 {
			panic("element 2 fails")
		}
		return graphql.MarshalInt(i * 10)
	})
	if want := []int{0, 1, 2, 3}; !slices.Equal(order, want) {
		t.Errorf("marshalled in order %v, want %v", order, want)
	}
	if s := marshalled(got); s != "[0,10,null,30]" {
		t.Errorf("list = %s, want [0,10,null,30]", s)
	}
	errs := graphql.GetErrors(ctx)
	if len(errs) != 1 || errs[0].Path.String() != "[2]" || !strings.HasSuffix(errs[0].Message, "panic: element 2 fails") {
		t.Fatalf("errors = %v, want the panic at path [2]", errs)
	}
}

// A list whose selection reaches a concurrent field keeps a goroutine per element,
// so that sibling elements can wait on a dataloader together: here every element
// waits until all have started, which in place would never happen.
func TestMarshalConcurrentlyWhereNeeded(t *testing.T) {
	ctx := responseContext()
	sel := selectionOf(t, `{ items { name slow } }`)
	const n = 5
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	got := lists.Marshal(ctx, fields, sel, n, func(ctx context.Context, i int) graphql.Marshaler {
		started.Done()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			t.Errorf("element %d: its siblings never started", i)
		}
		return graphql.MarshalInt(i)
	})
	if s := marshalled(got); s != "[0,1,2,3,4]" {
		t.Errorf("list = %s", s)
	}
}
