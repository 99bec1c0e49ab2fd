package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// RootFieldsAtOnce is the most root fields of one query that are resolved at once.
//
// gqlgen resolves a query's root fields concurrently, each with its whole subtree in
// a goroutine of its own, and each holds a database connection while its statement
// runs: one request of 20 aliased counts (all --max-root-fields lets through, 1 point
// each) held 20 connections, the whole pool, though the bounds on running requests
// count it as one. Four such requests of one key (its --max-running-per-caller) kept
// another workspace's pages waiting 4.9 s at the median. Bounded, a request's root fields
// hold about this many connections at once (a field's subtree rarely runs two
// statements together; the batch of its lookups by ID, Resolver.lookup, takes one
// more), so those bounds bound a caller's share of the pool again.
//
// Two, not one: a dashboard's page may ask for several slow lists in one request,
// and with two at once it waits for the slower of two rather than for their sum;
// yet a caller's 4 requests still hold at most 8 of the pool's 20 connections, and a
// workspace's 8 at most 16. On the benchmark's small workspace, where each statement
// takes a fraction of a millisecond, one, two and unbounded measured alike
// (BenchmarkDashboardRoots, three root fields: 0.9-1.9 ms a request on a loaded
// 2-core machine). Mutations' root fields run one after the other anyway.
const RootFieldsAtOnce = 2

// rootTurns are the places of an operation's root fields, RootFieldsAtOnce of them:
// a root field takes one before it is resolved and gives it back once its subtree is.
type rootTurns chan struct{}

type rootTurnsKey struct{}

// withRootTurns returns ctx with the places of its operation's root fields, when the
// operation has more than RootFieldsAtOnce of them (fields, from rootFields); a
// query of fewer needs none, and costs nothing more.
func withRootTurns(ctx context.Context, fields int) context.Context {
	if fields <= RootFieldsAtOnce {
		return ctx
	}
	return context.WithValue(ctx, rootTurnsKey{}, make(rootTurns, RootFieldsAtOnce))
}

// rootTurn is one root field's place among its operation's rootTurns.
type rootTurn struct {
	turns rootTurns
	held  bool
}

type rootTurnKey struct{}

// inTurn resolves a root field with next once it has a place among its operation's
// root fields (at once for an operation without rootTurns).
//
// gqlgen (v0.17.98, graphql.FieldSet.ResolveRootConcurrently) calls next with the
// field's whole resolution: its resolver, and the marshalling of its value, which
// resolves its children and waits for them (Dispatch and the lists' marshalling
// wait, and this API inlines @defer), so the place is held as long as any statement
// of the field's subtree may run.
func inTurn(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	turns, _ := ctx.Value(rootTurnsKey{}).(rootTurns)
	if turns == nil {
		return next(ctx)
	}
	t := &rootTurn{turns: turns}
	t.take(ctx)
	defer t.leave()
	return next(context.WithValue(ctx, rootTurnKey{}, t))
}

// take waits for a place. When ctx ends first the field goes on without one: its
// statements then fail at once with ctx's error, as its siblings' do, and it is
// answered as they are.
func (t *rootTurn) take(ctx context.Context) {
	if t == nil || t.held {
		return
	}
	select {
	case t.turns <- struct{}{}:
		t.held = true
	case <-ctx.Done():
	}
}

// leave gives the place back.
func (t *rootTurn) leave() {
	if t == nil || !t.held {
		return
	}
	<-t.turns
	t.held = false
}

// rootTurnOf returns the place of the root field being resolved by the root resolver
// of ctx; nil without one. Only a root resolver may leave it and take it again, on
// its own goroutine: below the root, the field's children share it.
func rootTurnOf(ctx context.Context) *rootTurn {
	t, _ := ctx.Value(rootTurnKey{}).(*rootTurn)
	return t
}

// rootFields counts the fields at the root of the operation of ctx (fields), and
// those among them that fetch one object by ID (lookups: node, segment, contact).
func rootFields(ctx context.Context) (fields, lookups int) {
	opCtx := graphql.GetOperationContext(ctx)
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query {
		return 0, 0
	}
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		fields++
		switch f.Name {
		case "node", "segment", "contact":
			lookups++
		}
	}
	return fields, lookups
}
