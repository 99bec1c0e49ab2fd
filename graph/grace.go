package graph

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segments/segments/internal/store"
)

// payloadGrace is how long the payload of a mutation that was made may still be read
// after the request's deadline passed or its client left. It stays well within the
// Idempotency-Key's lease (the deadline plus 5 s), so that no retry takes the key over
// while the answer is still being made.
const payloadGrace = 2 * time.Second

// withPayloadGrace returns the context of a mutation's root field, and the function
// that ends it, to call once the field has been resolved. Until the mutation is made
// (a transaction of the store committed under it: store.OnCommit) the context ends
// with the request's, so that the deadline or the client's leaving stops the
// mutation's SQL as before. Once the mutation is made, it ends payloadGrace after the
// request's: the payload's fields (a new segment's contacts) are then still read.
// Without it, a mutation made just before the deadline answered TIMEOUT for its
// payload, an answer the Idempotency-Key does not keep, and its retry ran the mutation
// again: a createSegment was answered TAKEN by its own retry.
//
// The context has the request's values but no deadline (a connection dialled during
// the grace must not fail at once). When it ends with the request, its cause is the
// request's: context.DeadlineExceeded, context.Canceled (the client left) or
// ErrShuttingDown, which presentError tells apart; when its grace runs out,
// context.DeadlineExceeded. It is a context of the standard library, so the
// contexts made under it (a transaction's, a statement's) start no goroutine to watch
// it.
func withPayloadGrace(ctx context.Context) (context.Context, func()) {
	g, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var (
		made  atomic.Bool
		mu    sync.Mutex
		timer *time.Timer
	)
	end := func() {
		cause := context.Cause(ctx)
		// A server shutting down waits for no payload.
		if !made.Load() || errors.Is(cause, ErrShuttingDown) {
			cancel(cause)
			return
		}
		// The payload's time is up when the grace ends, whoever ended the request: a
		// client that left before it is not told so by an answer kept for its retry
		// (CLIENT_CLOSED_REQUEST, which no client is meant to see).
		mu.Lock()
		timer = time.AfterFunc(payloadGrace, func() { cancel(context.DeadlineExceeded) })
		mu.Unlock()
	}
	stop := func() bool { return false }
	if ctx.Err() != nil {
		end() // a root field after the request ended (the one before it was made in its grace)
	} else {
		stop = context.AfterFunc(ctx, end)
	}
	// The server's end ends the grace too: the request ended before, so its cause
	// does not tell of it, and the server would close the database under the payload.
	stopAtShutdown := func() bool { return false }
	if server, ok := ctx.Value(serverKey{}).(context.Context); ok {
		stopAtShutdown = context.AfterFunc(server, func() { cancel(context.Cause(server)) })
	}
	return store.OnCommit(g, func() { made.Store(true) }), func() {
		stop()
		stopAtShutdown()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel(context.Canceled)
	}
}

type serverKey struct{}

// WithServer returns ctx, the context the server's requests are made under (its
// http.Server's BaseContext), knowing itself as the server's: canceled (with
// ErrShuttingDown) when the server stops waiting for requests, it ends the payload
// grace of the mutations made before, which the end of their requests' contexts
// started.
func WithServer(ctx context.Context) context.Context {
	return context.WithValue(ctx, serverKey{}, ctx)
}
