package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/segments/segments/graph"
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
	if g.tryEnter() {
		return nil
	}
	return g.wait(ctx)
}

// tryEnter lets the request through if there is room, without waiting.
func (g *gate) tryEnter() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// wait is enter's wait, for a request that found no room.
func (g *gate) wait(ctx context.Context) error {
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
			// Answered also when the request's context was cancelled: the client may
			// still read (it half-closed its connection, or the server is shutting
			// down), and an unanswered request is an empty 200 to it. The access log
			// tells a client that left (CLIENT_CLOSED_REQUEST).
			refuseWaiting(w, r.Context(), refuseBusy)
			return
		}
		slot := &serverSlot{g: g, held: true}
		aw := &answerWriter{ResponseWriter: w, leave: slot.yield}
		defer aw.done()
		next.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), serverSlotKey{}, slot)))
	})
}

// An answerWriter gives a request's place up (leave, once) when the request starts
// writing its answer, or else when it ends. The answer is complete by then (the API
// has no incremental delivery), and writing it waits on the client: a client that did
// not read its answers held its places until it did, and 40 such connections left no
// room for any other request of the server, whatever its workspace.
type answerWriter struct {
	http.ResponseWriter
	leave func()
	left  bool
}

func (w *answerWriter) Write(b []byte) (int, error) {
	w.done()
	return w.ResponseWriter.Write(b)
}

// done gives the place up, if not yet given up.
func (w *answerWriter) done() {
	if !w.left {
		w.left = true
		w.leave()
	}
}

func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// A serverSlot is a request's place among admit's running requests. A request that
// must wait in a narrower bound (admitPerCaller, admitPerWorkspace) gives it up while
// it waits, and takes it back after, at the end of admit's line: the requests queued
// behind one caller or workspace hold no room of the server's. Held while they waited,
// twelve keys of one workspace with 8 slow requests each took all 40 places, and
// another workspace's requests waited behind them for seconds.
type serverSlot struct {
	g    *gate
	held bool
}

type serverSlotKey struct{}

// serverSlotFrom returns the slot admit gave the request, or nil without admit.
func serverSlotFrom(ctx context.Context) *serverSlot {
	s, _ := ctx.Value(serverSlotKey{}).(*serverSlot)
	return s
}

// yield gives the slot up, if held.
func (s *serverSlot) yield() {
	if s != nil && s.held {
		s.g.leave()
		s.held = false
	}
}

// reclaim takes the slot back, waiting as admit's requests wait; its errors are
// enter's.
func (s *serverSlot) reclaim(ctx context.Context) error {
	if s == nil || s.held {
		return nil
	}
	if err := s.g.enter(ctx); err != nil {
		return err
	}
	s.held = true
	return nil
}

// reclaimOrRefuse takes the slot back (reclaim), or answers that the server has no
// room (also to a cancelled request: see admit), and reports whether the request may
// go on.
func (s *serverSlot) reclaimOrRefuse(w http.ResponseWriter, ctx context.Context) bool {
	if err := s.reclaim(ctx); err != nil {
		refuseWaiting(w, ctx, refuseBusy)
		return false
	}
	return true
}

// refuseBusy answers a request the server has no room for.
func refuseBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	auth.WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the server is at capacity; retry in a moment")
}

// refuseWaiting answers a request whose wait for its turn ended before it ran: with
// refuse, unless a shutdown cancelled it (graph.ErrShuttingDown), which it answers as
// the requests still running then are answered: 503 UNAVAILABLE, to retry against
// another instance or after the restart. Answered as at capacity or as its caller's
// excess (429), the requests still queued at a shutdown were logged and counted as
// refusals, and their clients told to send fewer at once.
func refuseWaiting(w http.ResponseWriter, ctx context.Context, refuse func(http.ResponseWriter)) {
	if errors.Is(context.Cause(ctx), graph.ErrShuttingDown) {
		w.Header().Set("Retry-After", "1")
		auth.WriteError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the server is shutting down; retry the request")
		return
	}
	refuse(w)
}

// codeTooManyConcurrent is the extensions.code of a request refused by admitPerCaller
// or admitPerWorkspace.
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
// Admit's bound comes first (authentication, which names the caller, comes after
// it); a caller's requests give up their place in it while they wait here
// (serverSlot). A negative running lets every request through; a negative waiting
// lets any number wait.
func admitPerCaller(running, waiting int, caller func(context.Context) string, next http.Handler) http.Handler {
	return admitPer(running, waiting, caller, "too many requests of this caller at once; retry when one of them has finished", next)
}

// admitPerWorkspace bounds, as admitPerCaller does for a caller, the GraphQL requests
// of each workspace (a tenant: all of its API keys and dashboard users) that run at
// once and that wait for them; beyond, 429 TOO_MANY_CONCURRENT_REQUESTS.
//
// Why: admitPerCaller bounds one caller, not the sum of a workspace's. Twelve API
// keys of one workspace keeping 8 slow counts in flight each (96) took the pool
// from every other workspace: another workspace's dashboard, a page every 200 ms,
// waited 6.9-8.3 s at the median and 128-135 of its 150 pages failed (503 at
// admission, TIMEOUT). With this bound (8) it waited 43 ms at the median and 1.4 s
// at the 99th percentile, and none failed (4.7 and 15 ms with no other load; 17 ms
// and 0.37 s with a bound of 4). Measured with the benchmark's dataset on 2 cores.
// Within the workspace, its callers share its bound, first come, first served.
//
// It comes after admitPerCaller, so that a caller's requests waiting for their own
// slot do not hold the workspace's.
func admitPerWorkspace(running, waiting int, next http.Handler) http.Handler {
	return admitPer(running, waiting, workspaceOf, "too many requests of this workspace at once; retry when one of them has finished", next)
}

// admitKeysPerWorkspace bounds, as admitPerWorkspace does for all of a workspace's
// requests, those of its API keys together; the requests of its dashboard users
// (sessions) pass straight through. Below admitPerWorkspace's bound, it keeps that
// bound's remaining places for the workspace's people.
//
// Why: a workspace's own integrations could take all of its places. With three of its
// keys keeping 4 slow counts in flight each, its dashboard user's pages (a segment
// list and a contacts page, 5 a second) took 2.7-2.8 s at the median and 26-35 of
// 150 failed: they waited behind the counts for the workspace's 8 places and, past
// the user's own 12 in flight, were refused. With this bound (6, keeping 2), 5.4-6.0
// ms at the median, and none failed. Measured with the benchmark's dataset on 2
// cores (docs/operations.md, "A workspace's integrations cannot take its dashboard").
//
// The keys' requests wait here without a place of the workspace's, and give up the
// server's while they wait, as those waiting for their caller's turn do (serverSlot).
func admitKeysPerWorkspace(running, waiting int, next http.Handler) http.Handler {
	if running < 0 {
		return next
	}
	keys := admitPer(running, waiting, workspaceOf, "too many requests of this workspace's API keys at once (the rest of its places are kept for its dashboard users); retry when one of them has finished", next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := auth.PrincipalFrom(r.Context()); ok && p.Kind == auth.KindAPIKey {
			keys.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// workspaceOf names the workspace a request acts for, which authentication put in its
// context.
func workspaceOf(ctx context.Context) string {
	ws, _ := auth.WorkspaceFrom(ctx)
	return strconv.FormatInt(ws.ID, 10)
}

// admitPer returns a keyedAdmission, or next alone when running is negative.
func admitPer(running, waiting int, key func(context.Context) string, refusal string, next http.Handler) http.Handler {
	if running < 0 {
		return next
	}
	return &keyedAdmission{running: running, waiting: waiting, key: key, refusal: refusal, next: next, gates: map[string]*keyedGate{}}
}

// keyedAdmission bounds the requests in flight of each key (a caller, a workspace)
// with a gate per key, refusing those it has no room for with 429 and refusal. It
// holds a key's gate only while the key has requests in flight: an idle key costs
// nothing.
type keyedAdmission struct {
	running, waiting int
	key              func(context.Context) string
	refusal          string
	next             http.Handler

	mu    sync.Mutex
	gates map[string]*keyedGate
}

type keyedGate struct {
	*gate
	name  string
	users int // requests holding it, let through or waiting
}

func (c *keyedAdmission) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	g := c.acquire(c.key(ctx))
	defer c.release(g)
	if !g.tryEnter() {
		// Wait without a place among the server's running requests (serverSlot).
		slot := serverSlotFrom(ctx)
		slot.yield()
		if err := g.wait(ctx); err != nil {
			// Answered also when cancelled (see admit).
			refuseWaiting(w, ctx, c.refuse)
			return
		}
		if !slot.reclaimOrRefuse(w, ctx) {
			g.leave()
			return
		}
	}
	aw := &answerWriter{ResponseWriter: w, leave: g.leave}
	defer aw.done()
	c.next.ServeHTTP(aw, r)
}

// refuse answers a request its key has no room for.
func (c *keyedAdmission) refuse(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	auth.WriteError(w, http.StatusTooManyRequests, codeTooManyConcurrent, c.refusal)
}

func (c *keyedAdmission) acquire(name string) *keyedGate {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.gates[name]
	if !ok {
		g = &keyedGate{gate: newGate(c.running, c.waiting), name: name}
		c.gates[name] = g
	}
	g.users++
	return g
}

func (c *keyedAdmission) release(g *keyedGate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g.users--; g.users == 0 {
		delete(c.gates, g.name)
	}
}
