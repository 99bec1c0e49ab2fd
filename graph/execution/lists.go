package execution

import (
	"context"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// Fields names, per GraphQL object or interface type, the fields that gqlgen's
// executor resolves in goroutines of their own: those with a resolver, or bound to a
// method that takes a context. An interface's field is in it when the field is in it
// for any of the interface's implementations.
type Fields map[string]map[string]bool

// Concurrent reports whether the selection set sel reaches, at any depth, a field
// that gqlgen resolves concurrently. A field whose parent type the validator did not
// record counts as concurrent, so that a doubt never costs a batch.
func (f Fields) Concurrent(sel ast.SelectionSet) bool {
	return f.concurrent(sel, rows{})
}

// rows locates, in a selection being walked, the fields of a connection's rows that
// are preloaded: path is the field names that lead from the selection to the rows
// (none: the selection is the rows'), fields the preloaded fields. The zero rows
// preloads nothing.
type rows struct {
	path   []string
	fields []string
}

// concurrent is Concurrent where the fields of r are not concurrent.
func (f Fields) concurrent(sel ast.SelectionSet, r rows) bool {
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			if s.ObjectDefinition == nil {
				return true
			}
			under := rows{} // below a row's field, or off the path to the rows: nothing preloaded
			switch {
			case len(r.path) == 0 && slices.Contains(r.fields, s.Name):
				// preloaded for every row: its resolver answers without waiting
			case f[s.ObjectDefinition.Name][s.Name]:
				return true
			case len(r.path) > 0 && s.Name == r.path[0]:
				under = rows{r.path[1:], r.fields}
			}
			if f.concurrent(s.SelectionSet, under) {
				return true
			}
		case *ast.InlineFragment:
			if f.concurrent(s.SelectionSet, r) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || f.concurrent(s.Definition.SelectionSet, r) {
				return true
			}
		}
	}
	return false
}

// MarshalList marshals the n elements of a list whose elements are selected with sel:
// as gqlgen does, in a goroutine per element, when the selection reaches a field
// that fields resolves concurrently; otherwise one element after the other on the
// calling goroutine. Either way each element gets its own field context (its index
// in the path), and a panic in one element nulls that element and is reported as
// its error, as gqlgen's executor does.
//
// A list that is the edges or nodes of a connection whose resolver called Preloaded
// is walked with those fields of its rows counted as not concurrent.
func MarshalList(ctx context.Context, fields Fields, sel ast.SelectionSet, n int, marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	if n > 1 && !inPlace(ctx, fields, sel) {
		return graphql.MarshalSliceConcurrently(ctx, n, 0, false, marshal)
	}
	ret := make(graphql.Array, n)
	// The elements' contexts in one allocation, where gqlgen makes three for every
	// element (its field context, its index and a context holding them).
	parent := graphql.GetFieldContext(ctx)
	elements := make([]element, n)
	for i := range elements {
		e := &elements[i]
		e.Context, e.index = ctx, i
		e.fc = graphql.FieldContext{Parent: parent, Index: &e.index}
		ret[i] = marshalOne(e, i, marshal)
	}
	return ret
}

// element is the context of one element of a list marshalled in place: the list's
// context, with the element's field context, which it answers gqlgen's key
// (fieldContextKey) with itself, as the context graphql.WithFieldContext would
// make for it does.
type element struct {
	context.Context // the list's
	fc              graphql.FieldContext
	index           int
}

// Value returns the element's field context for gqlgen's key, and what the list's
// context holds for any other.
func (e *element) Value(key any) any {
	if key == fieldContextKey {
		return &e.fc
	}
	return e.Context.Value(key)
}

// fieldContextKey is the key gqlgen keeps a field context under in a context, which
// it does not export: the key graphql.GetFieldContext asks a context for.
// TestListElementContexts checks that an element's context answers it.
var fieldContextKey = func() any {
	var k keyCatcher
	graphql.GetFieldContext(&k)
	return k.key
}()

// keyCatcher is a context that remembers the key it was asked for last.
type keyCatcher struct {
	context.Context // nil: only Value is called
	key             any
}

func (k *keyCatcher) Value(key any) any {
	k.key = key
	return nil
}

// inPlace reports whether the elements of the list being marshalled in ctx, selected
// with sel, can be marshalled one after the other: no field under them is resolved
// concurrently, or none but the fields their connection preloaded for its rows.
func inPlace(ctx context.Context, fields Fields, sel ast.SelectionSet) bool {
	return !fields.concurrent(sel, preloadedRows(ctx))
}

// marshalOne marshals element i on the calling goroutine, as
// graphql.MarshalSliceConcurrently does for a list of one; ctx holds the element's
// field context.
func marshalOne(ctx context.Context, i int, marshal func(ctx context.Context, i int) graphql.Marshaler) (m graphql.Marshaler) {
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, graphql.Recover(ctx, r))
			m = graphql.Null
		}
	}()
	return marshal(ctx, i)
}

// operation is what the executor keeps for one operation (WithOperation): which
// fields of which connections' rows their resolvers have loaded already, and the
// fields collected for its objects (fields.go).
type operation struct {
	mu sync.Mutex
	// preloaded holds, per field context of a connection field, the names of the
	// fields preloaded for its rows.
	preloaded map[*graphql.FieldContext][]string
	// collected holds the fields collected per selection and type.
	collected map[collectKey][]graphql.CollectedField
}

type operationKey struct{}

// WithOperation returns a context for one operation in which resolvers can call
// Preloaded and the fields of its objects are collected once per selection and type
// (CollectFields). Without it Preloaded does nothing, every list whose selection
// reaches a concurrent field keeps its goroutines, and every object's fields are
// looked up in gqlgen's cache.
func WithOperation(ctx context.Context) context.Context {
	return context.WithValue(ctx, operationKey{}, &operation{})
}

// operationOf returns the operation of ctx, nil outside one.
func operationOf(ctx context.Context) *operation {
	op, _ := ctx.Value(operationKey{}).(*operation)
	return op
}

// Preloaded notes, from the resolver of a connection field (the field in ctx), that
// the field named field of every row of the page it returns is loaded already, so
// that resolving it waits for no batch: the connection's edges and nodes need no
// goroutine per element for it. The rows of a connection are its nodes and the node
// of each of its edges (GraphQL Cursor Connections). Only a resolver that has loaded
// the field for all its rows may call it: a row left out would wait for its batch
// once per element instead of once for all.
func Preloaded(ctx context.Context, field string) {
	op := operationOf(ctx)
	fc := graphql.GetFieldContext(ctx)
	if op == nil || fc == nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.preloaded == nil {
		op.preloaded = map[*graphql.FieldContext][]string{}
	}
	op.preloaded[fc] = append(op.preloaded[fc], field)
}

// edgeToRow is the path from a connection's edge to its row.
var edgeToRow = []string{"node"}

// preloadedRows returns where the preloaded fields of the rows are in the selection of
// the list being marshalled in ctx: the zero rows when the list is not the edges or
// nodes of a connection that preloaded any.
func preloadedRows(ctx context.Context) rows {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Parent == nil {
		return rows{}
	}
	var r rows
	switch fc.Field.Name {
	case "nodes":
	case "edges":
		r.path = edgeToRow
	default: // not a connection's rows: no lock, no lookup
		return rows{}
	}
	op := operationOf(ctx)
	if op == nil {
		return rows{}
	}
	op.mu.Lock()
	r.fields = op.preloaded[fc.Parent]
	op.mu.Unlock()
	return r
}
