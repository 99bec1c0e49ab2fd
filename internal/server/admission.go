package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/segments/segments/internal/auth"
)

// A gate lets at most running requests through at once, and at most waiting more
// wait for one of them to finish, in the order they came, until their context ends.
type gate struct {
	slots   chan struct{} // a token per request let through
	waiting int64
	queued  atomic.Int64
}

func newGate(running, waiting int) *gate {
	if waiting < 0 {
		waiting = math.MaxInt32
	}
	return &gate{slots: make(chan struct{}, running), waiting: int64(waiting)}
}

// enter returns nil once the request may go on (it must then leave), errGateFull
// when no more may wait, or the context's error when it ended while waiting.
func (g *gate) enter(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.queued.Add(1) > g.waiting {
		g.queued.Add(-1)
		return errGateFull
	}
	defer g.queued.Add(-1)
	// Blocked senders of a channel proceed first come, first served.
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) leave() { <-g.slots }

var errGateFull = errors.New("server: no room to wait")

// admit bounds how many GraphQL requests run at once (running) and how many more may
// wait for one of them to finish (waiting), in the order they came, until their
// deadline. Beyond that a request is refused at once: 503 SERVICE_UNAVAILABLE with
// Retry-After, which every client already treats as "retry with backoff".
//
// Why: the database pool serves a few dozen requests at a time and two cores run
// only two; more requests admitted than that gain no throughput, only wait for a
// connection while holding their parsed documents, resolvers and buffers. Under an
// open-model overload (the benchmark's SLO search at several times the server's
// capacity) that grew the process to 0.9-1.9 GB. A waiting request here holds
// little more than its goroutine and unread body. Requests wait before
// authentication, whose key lookup is SQL too. A negative running admits every
// request; a negative waiting lets any number wait.
func admit(running, waiting int, next http.Handler) http.Handler {
	if running < 0 {
		return next
	}
	g := newGate(running, waiting)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.enter(r.Context()); err != nil {
			// Nobody reads the answer of a client that is gone.
			if !errors.Is(err, context.Canceled) {
				refuseBusy(w)
			}
			return
		}
		defer g.leave()
		next.ServeHTTP(w, r)
	})
}

// refuseBusy answers a request the server has no room for.
func refuseBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	auth.WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the server is at capacity; retry in a moment")
}

// codeTooManyConcurrent is the extensions.code of a request refused by admitPerCaller.
const codeTooManyConcurrent = "TOO_MANY_CONCURRENT_REQUESTS"

// admitPerCaller bounds, for each caller (caller names it: an API key, a dashboard
// user), how many of its GraphQL requests run at once (running) and how many more
// wait for them (waiting), first come, first served, until their deadline. Beyond
// that, or when a waiting request's deadline passes, it is refused at once with 429
// TOO_MANY_CONCURRENT_REQUESTS and Retry-After, having run nothing.
//
// Why: the rate limit prices a request before it runs, by what it may read, and
// some requests cost the database far more than their price. At a million contacts,
// { contacts(search: "zz") { totalCount } } costs 1 point and 0.35-1.5 s of
// PostgreSQL, since no index narrows a two-letter term. One API key keeping 40 of
// them in flight took every connection of the pool: another key's dashboard pages
// then took 6.0 s at the median, and a third of them failed. Held to 4 running, the
// counting key got more done (228 counts in 30 s instead of 26: the cores were its
// limit, not its concurrency), and the other's pages took 8.8 ms at the median (4.7
// with no other load). Measured with the benchmark's dataset on 2 cores.
//
// A caller's waiting requests hold their place in admit's bound, which comes first
// (authentication, which names the caller, comes after it). A negative running lets
// every request through; a negative waiting lets any number wait.
func admitPerCaller(running, waiting int, caller func(context.Context) string, next http.Handler) http.Handler {
	if running < 0 {
		return next
	}
	return &callerAdmission{running: running, waiting: waiting, caller: caller, next: next, gates: map[string]*callerGate{}}
}

// callerAdmission is admitPerCaller's handler. It holds a gate per caller with
// requests in flight, and only as long as it has some: an idle caller costs nothing.
type callerAdmission struct {
	running, waiting int
	caller           func(context.Context) string
	next             http.Handler

	mu    sync.Mutex
	gates map[string]*callerGate
}

type callerGate struct {
	*gate
	name  string
	users int // requests holding it, let through or waiting
}

func (c *callerAdmission) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := c.acquire(c.caller(r.Context()))
	defer c.release(g)
	if err := g.enter(r.Context()); err != nil {
		if !errors.Is(err, context.Canceled) {
			w.Header().Set("Retry-After", "1")
			auth.WriteError(w, http.StatusTooManyRequests, codeTooManyConcurrent,
				"too many requests of this caller at once; retry when one of them has finished")
		}
		return
	}
	defer g.leave()
	c.next.ServeHTTP(w, r)
}

func (c *callerAdmission) acquire(name string) *callerGate {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.gates[name]
	if !ok {
		g = &callerGate{gate: newGate(c.running, c.waiting), name: name}
		c.gates[name] = g
	}
	g.users++
	return g
}

func (c *callerAdmission) release(g *callerGate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g.users--; g.users == 0 {
		delete(c.gates, g.name)
	}
}
