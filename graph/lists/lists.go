// Package lists marshals the lists of a GraphQL response for gqlgen's generated
// executor, with a goroutine per element only where one can help.
//
// gqlgen marshals the elements of every list of objects in goroutines of their own
// (graphql.MarshalSliceConcurrently). That is what lets the resolvers of sibling
// elements wait on a dataloader together, so that a page of 50 contacts loads their
// segments in one statement, not 50. But where the selection under a list reaches no
// resolver at all (a contact's segments with their ids and names; the segment list's
// names and counts), each element is plain data already in memory: its goroutine
// only costs the spawn, the stack growth and a wake-up of another core. Marshalling
// those in place took our server's CPU per request down by 10-15% on the segment list
// (W1) and 20-30% on the contacts page (W3) in make bench, and its throughput within
// the SLO up by a fifth to a third.
//
// cmd/graphgen rewrites the generated executor to call Marshal instead, with the
// table of the fields gqlgen resolves concurrently (Fields).
package lists

import (
	"context"

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
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			if s.ObjectDefinition == nil || f[s.ObjectDefinition.Name][s.Name] || f.Concurrent(s.SelectionSet) {
				return true
			}
		case *ast.InlineFragment:
			if f.Concurrent(s.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || f.Concurrent(s.Definition.SelectionSet) {
				return true
			}
		}
	}
	return false
}

// Marshal marshals the n elements of a list whose elements are selected with sel:
// as gqlgen does, in a goroutine per element, when the selection reaches a field
// that fields resolves concurrently; otherwise one element after the other on the
// calling goroutine. Either way each element gets its own field context (its index
// in the path), and a panic in one element nulls that element and is reported as
// its error, as gqlgen's executor does.
func Marshal(ctx context.Context, fields Fields, sel ast.SelectionSet, n int, marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	if n > 1 && fields.Concurrent(sel) {
		return graphql.MarshalSliceConcurrently(ctx, n, 0, false, marshal)
	}
	ret := make(graphql.Array, n)
	for i := range n {
		ret[i] = marshalOne(ctx, i, marshal)
	}
	return ret
}

// marshalOne marshals element i on the calling goroutine, as
// graphql.MarshalSliceConcurrently does for a list of one.
func marshalOne(ctx context.Context, i int, marshal func(ctx context.Context, i int) graphql.Marshaler) (m graphql.Marshaler) {
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &i})
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, graphql.Recover(ctx, r))
			m = graphql.Null
		}
	}()
	return marshal(ctx, i)
}
