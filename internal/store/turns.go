package store

import (
	"context"

	"github.com/uptrace/bun"
)

// Each statement holds a connection of the pool while it runs, and one request may
// run many at once: gqlgen resolves a query's root fields concurrently, and the
// fields of one object too (20 aliased searches of one segment, each a statement of
// its own, held 20 connections, the whole pool, though the bounds on running requests
// count the request as one). A request's statement turns bound that: under
// WithStatementTurns, a context's statements run at most n at a time, each holding a
// turn from before it takes its connection until its rows are read and the connection
// is back in the pool.

// statementTurns are the turns of one request's statements.
type statementTurns chan struct{}

type turnsKey struct{}

// heldKey marks a context whose statements run on a turn already held: that of the
// statement it was made for (holding the QueryEvent), or of a transaction (holding
// the turns' channel). Its statements take no other.
type heldKey struct{}

// WithStatementTurns returns ctx under which the store's statements run at most n at
// a time (n >= 1): the statements of a request, wherever in its operation they come
// from, hold about n connections. A transaction holds one turn from before its BEGIN
// to its COMMIT or ROLLBACK, for the connection it holds all along, and its
// statements none of their own. A statement waiting for its turn holds nothing, and
// a statement never waits for a turn while it holds one, so turns cannot deadlock.
// Statements without a context made under WithStatementTurns (the authentication,
// the rate limit, the idempotency keys, work of the store's own) take no turn.
func WithStatementTurns(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, turnsKey{}, make(statementTurns, n))
}

// takeTurn waits for a turn of ctx's statements and returns the context to run under
// it, held by what (a statement's event, or the turns for a transaction), and
// whether it took one. It takes none when ctx has no turns, or holds one already
// (a transaction's statement); when ctx ends first, it takes none either: the
// statement then fails with ctx's error, as it would have.
func takeTurn(ctx context.Context, what any) (context.Context, statementTurns) {
	turns, _ := ctx.Value(turnsKey{}).(statementTurns)
	if turns == nil || ctx.Value(heldKey{}) != nil {
		return ctx, nil
	}
	select {
	case turns <- struct{}{}:
	default:
		select {
		case turns <- struct{}{}:
		case <-ctx.Done():
			return ctx, nil
		}
	}
	return context.WithValue(ctx, heldKey{}, what), turns
}

// giveBack gives back a turn that takeTurn took (a nil turns: none).
func (turns statementTurns) giveBack() {
	if turns != nil {
		<-turns
	}
}

// inTurn runs fn, a transaction, under a turn of ctx's statements (takeTurn), which
// its statements share.
func inTurn(ctx context.Context, fn func(ctx context.Context) error) error {
	held, turns := takeTurn(ctx, turnsKey{})
	defer turns.giveBack()
	return fn(held)
}

// statementTurn is the Bun query hook that runs each statement in a turn of its
// context's (WithStatementTurns); queryDirect runs it too. Bun (v1.3.0) calls
// BeforeQuery before it takes a connection, and AfterQuery once a query builder's
// rows have been read and closed (Scan) or its statement executed. bun.DB's
// QueryContext and QueryRowContext hand their rows over unread, after AfterQuery:
// the store reads a request's rows that way only as a single row scanned at once
// (the search's sample of trigrams), whose connection outlives its turn by that scan.
type statementTurn struct{}

func (statementTurn) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	held, _ := takeTurn(ctx, e)
	return held
}

func (statementTurn) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	// Only the statement that took the turn gives it back: ctx may hold a
	// transaction's, or an outer statement's.
	if ctx.Value(heldKey{}) == any(e) {
		ctx.Value(turnsKey{}).(statementTurns).giveBack()
	}
}
