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

// A graceContext is the context of a mutation's root field. Until the mutation is
// made (a transaction of the store committed under it: store.OnCommit) it ends
// with the request's context, so that the deadline or the client's leaving stops the
// mutation's SQL as before. Once the mutation is made, it ends payloadGrace after the
// request's context: the payload's fields (a new segment's contacts) are then still
// read. Without it, a mutation made just before the deadline answered TIMEOUT for its
// payload, an answer the Idempotency-Key does not keep, and its retry ran the mutation
// again: a createSegment was answered TAKEN by its own retry.
//
// It has the request's values, deadline and error (DeadlineExceeded or Canceled, so
// that errors are told apart as before); only when it ends differs.
type graceContext struct {
	context.Context // the request's
	made            atomic.Bool
	done            chan struct{}
	once            sync.Once
	err             error // the request's error, once done is closed
}

// withPayloadGrace returns ctx as a graceContext, and the function that ends it, to
// call when the root field has been resolved (and nothing waits on it any more).
func withPayloadGrace(ctx context.Context) (context.Context, func()) {
	g := &graceContext{Context: ctx, done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() {
		// A server shutting down waits for no payload.
		if g.made.Load() && !errors.Is(context.Cause(ctx), ErrShuttingDown) {
			time.AfterFunc(payloadGrace, g.end)
			return
		}
		g.end()
	})
	return store.OnCommit(g, func() { g.made.Store(true) }), func() {
		stop()
		g.end()
	}
}

// end ends g, with the request's error, or Canceled when the root field was
// resolved first.
func (g *graceContext) end() {
	g.once.Do(func() {
		if g.err = g.Context.Err(); g.err == nil {
			g.err = context.Canceled
		}
		close(g.done)
	})
}

func (g *graceContext) Done() <-chan struct{} { return g.done }

func (g *graceContext) Err() error {
	select {
	case <-g.done:
		return g.err
	default:
		return nil
	}
}
