package execution_test

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

	"github.com/segments/segments/graph/execution"
)

const schema = `
type Query { items: [Item!]! named: [Named!]! conn: Conn! }
type Conn { edges: [Edge!]! nodes: [Item!]! items: [Item!]! }
type Edge { cursor: String! node: Item! previous: Item slow: String! }
interface Named { name: String! slow: String! }
type Item implements Named { name: String! slow: String! child: Item }
type Other implements Named { name: String! slow: String! }
`

// fields is the table cmd/graphgen would write for schema if Item.slow and Edge.slow
// had resolvers: Named.slow is in it through Item.
var fields = execution.Fields{"Item": {"slow": true}, "Named": {"slow": true}, "Edge": {"slow": true}}

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

// listOf returns the selection under the list field of conn in query, validated
// against schema.
func listOf(t *testing.T, query string) ast.SelectionSet {
	t.Helper()
	conn := selectionOf(t, query)
	return conn[0].(*ast.Field).SelectionSet
}

// withField returns ctx inside the field named name, as gqlgen's executor has it.
func withField(ctx context.Context, name string) context.Context {
	return graphql.WithFieldContext(ctx, &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: name}}})
}

// A connection whose resolver preloaded a field of its rows has its edges and nodes
// marshalled in place when that field of the rows is all that needs a goroutine;
// the same field of any other object still does.
func TestInPlaceWherePreloaded(t *testing.T) {
	ctx := execution.WithOperation(context.Background())
	conn := withField(ctx, "conn")
	execution.Preloaded(conn, "slow")
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`{ conn { nodes { slow } } }`, true},
		{`{ conn { nodes { name slow child { name } } } }`, true},
		{`{ conn { edges { cursor node { slow } } } }`, true},
		{`{ conn { edges { node { ...F } } } } fragment F on Item { slow }`, true},
		{`{ conn { edges { ...E } } } fragment E on Edge { node { slow } }`, true},
		{`{ conn { edges { ... on Edge { node { ... on Item { slow } } } } } }`, true},
		{`{ conn { nodes { child { slow } } } }`, false}, // another item's: not preloaded
		{`{ conn { edges { node { child { slow } } } } }`, false},
		{`{ conn { edges { node { slow child { slow } } } } }`, false},
		{`{ conn { edges { previous { slow } } } }`, false},  // an item, not the row
		{`{ conn { edges { slow node { slow } } } }`, false}, // the edge's own slow
	} {
		sel := listOf(t, c.query)
		list := strings.Fields(c.query)[3] // edges or nodes
		if got := execution.InPlace(withField(conn, list), fields, sel); got != c.want {
			t.Errorf("%s: in place = %v, want %v", c.query, got, c.want)
		}
	}

	preloaded := listOf(t, `{ conn { nodes { slow } } }`)
	other := withField(ctx, "conn")
	execution.Preloaded(other, "name")
	bare := withField(context.Background(), "conn")
	execution.Preloaded(bare, "slow") // no WithOperation: nothing to record it in
	for name, ctx := range map[string]context.Context{
		"a list of the connection, not its rows":                 withField(conn, "items"),
		"the nodes of a connection that preloaded another field": withField(other, "nodes"),
		"the nodes of a connection that preloaded nothing":       withField(withField(ctx, "conn"), "nodes"),
		"an operation without preloads":                          withField(bare, "nodes"),
		"a list at the root":                                     withField(ctx, "nodes"),
	} {
		if execution.InPlace(ctx, fields, preloaded) {
			t.Errorf("%s: in place, want concurrent", name)
		}
	}
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
	got := execution.MarshalList(ctx, fields, sel, 4, func(ctx context.Context, i int) graphql.Marshaler {
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
	got := execution.MarshalList(ctx, fields, sel, n, func(ctx context.Context, i int) graphql.Marshaler {
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

// The context of an element marshalled in place is the list's with the element's
// field context, as graphql.WithFieldContext would make it: under the list's field
// context, at the element's path, found in the contexts made from it; every other
// value, and the cancellation, are the list's. It costs no allocation per element.
func TestListElementContexts(t *testing.T) {
	type requestKey struct{}
	request, cancel := context.WithCancel(context.WithValue(responseContext(), requestKey{}, "request"))
	defer cancel()
	list := graphql.WithFieldContext(request, &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: "items", Alias: "all"}}})
	sel := selectionOf(t, `{ items { name } }`)
	var seen int
	execution.MarshalList(list, fields, sel, 3, func(ctx context.Context, i int) graphql.Marshaler {
		seen++
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || fc.Parent != graphql.GetFieldContext(list) || *fc.Index != i {
			t.Errorf("element %d: field context %+v, want index %d under the list's", i, fc, i)
		}
		if got, want := graphql.GetPath(ctx).String(), fmt.Sprintf("all[%d]", i); got != want {
			t.Errorf("element %d: path %s, want %s", i, got, want)
		}
		if ctx.Value(requestKey{}) != "request" || ctx.Done() != request.Done() {
			t.Errorf("element %d: the request's value or cancellation lost", i)
		}
		child, stop := context.WithTimeout(ctx, time.Minute)
		defer stop()
		if graphql.GetFieldContext(child) != fc {
			t.Errorf("element %d: a context made from the element's lost its field context", i)
		}
		return graphql.Null
	})
	if seen != 3 {
		t.Fatalf("%d elements marshalled, want 3", seen)
	}
	allocs := func(n int) float64 {
		return testing.AllocsPerRun(20, func() {
			execution.MarshalList(list, fields, sel, n, func(context.Context, int) graphql.Marshaler { return graphql.Null })
		})
	}
	if two, fifty := allocs(2), allocs(50); fifty != two {
		t.Errorf("%v allocations for 50 elements, %v for 2: want as many", fifty, two)
	}
}
