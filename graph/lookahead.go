package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/internal/store"
)

// fieldOnRows returns the fields named field that the selection of the connection
// being resolved asks for on its rows, through nodes or edges.node (fragments and
// @skip/@include taken into account): none, one, or one per way of reaching the rows
// that selects it. A resolver that has just read a page uses it to fetch that field
// for the whole page at once.
func fieldOnRows(ctx context.Context, connType, edgeType, rowType, field string) []graphql.CollectedField {
	opCtx := graphql.GetOperationContext(ctx)
	fc := graphql.GetFieldContext(ctx)
	var found []graphql.CollectedField
	collect := func(sel ast.SelectionSet) {
		for _, f := range graphql.CollectFields(opCtx, sel, []string{rowType}) {
			if f.Name == field {
				found = append(found, f)
			}
		}
	}
	for _, f := range graphql.CollectFields(opCtx, fc.Field.Selections, []string{connType}) {
		switch f.Name {
		case "nodes":
			collect(f.Selections)
		case "edges":
			for _, e := range graphql.CollectFields(opCtx, f.Selections, []string{edgeType}) {
				if e.Name == "node" {
					collect(e.Selections)
				}
			}
		}
	}
	return found
}

// inList reports whether the field being resolved belongs to an element of a list,
// and so may have siblings that a loader can batch it with.
func inList(ctx context.Context) bool {
	for _, p := range graphql.GetPath(ctx) {
		if _, ok := p.(ast.PathIndex); ok {
			return true
		}
	}
	return false
}

// countOnly reports whether the selection of the connection being resolved (of
// GraphQL type connType) asks for nothing but its counts (totalCount, count, and
// __typename): an audience count then needs no page of rows.
func countOnly(ctx context.Context, connType string) bool {
	opCtx := graphql.GetOperationContext(ctx)
	fields := graphql.CollectFields(opCtx, graphql.GetFieldContext(ctx).Field.Selections, []string{connType})
	for _, f := range fields {
		if f.Name != "totalCount" && f.Name != "count" && f.Name != "__typename" {
			return false
		}
	}
	return len(fields) > 0
}

// segmentsBack says whether the payload being resolved (of GraphQL type payloadType)
// asks for its segments, fragments and @skip/@include taken into account: a bulk
// change (assigning, removing, deleting contacts) reads them back only then
// (store.SegmentsBack).
func segmentsBack(ctx context.Context, payloadType string) store.SegmentsBack {
	if len(payloadFields(ctx, payloadType, "segments")) > 0 {
		return store.WithSegments
	}
	return store.WithoutSegments
}

// payloadFields returns the fields named field that the selection of the payload
// being resolved (of GraphQL type payloadType) asks for, fragments and @skip/@include
// taken into account: none, or one per place that selects it.
func payloadFields(ctx context.Context, payloadType, field string) []graphql.CollectedField {
	opCtx := graphql.GetOperationContext(ctx)
	var found []graphql.CollectedField
	for _, f := range graphql.CollectFields(opCtx, graphql.GetFieldContext(ctx).Field.Selections, []string{payloadType}) {
		if f.Name == field {
			found = append(found, f)
		}
	}
	return found
}

// rootLookups counts the fields at the root of the operation of ctx that fetch one
// object by ID (node, segment, contact): their batch goes out once it holds them all.
func rootLookups(ctx context.Context) int {
	opCtx := graphql.GetOperationContext(ctx)
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query {
		return 0
	}
	lookups := 0
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		switch f.Name {
		case "node", "segment", "contact":
			lookups++
		}
	}
	return lookups
}
