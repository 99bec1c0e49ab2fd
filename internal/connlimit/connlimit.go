// Package connlimit caps the connections an HTTP server holds open, as nginx's
// worker_connections, HAProxy's maxconn and Envoy's downstream connection limit do:
// each open connection costs a file descriptor, a goroutine and its buffers, and a
// server out of descriptors can neither accept nor open database connections.
//
// A Listener wraps the server's listener; its ConnState is the http.Server's
// ConnState hook, through which it knows which connections hold no request (idle
// between two requests of a keep-alive connection, or new and not yet through
// their first request's headers). At the cap, a new connection makes room by
// closing the keep-alive connection idle the longest (as nginx's
// ngx_drain_connections does with its reusable connections): HTTP lets a server
// close an idle connection at any time, and clients retry their idempotent requests
// on another. A new connection that has not sent its first request yet is closed
// so only once older than NewGrace: newcomers do not close each other before their
// requests arrive. When no connection can be closed, Accept waits until one closes,
// goes idle or ages past NewGrace, the newcomers waiting in the kernel's backlog (as
// netutil.LimitListener does), rather than accepting connections it could not
// serve. A connection reading a request's body before authentication
// (ReadingBody) for over NewGrace is closed so too, after the idle ones. From
// PressureAt of the cap, connections idle for longer than PressureIdle are closed
// at each accept (Envoy's overload manager shortens its idle timeouts so), so that
// a burst of clients finds places left by idle ones.
//
// net/http marks a connection active only once it has read its request's headers:
// a connection closed for room in between would still run its request, unanswered.
// The Listener's Handler (with its ConnContext in the server) refuses such a
// request before it runs.
//
// The http.Server must serve the Listener itself, or tls.NewListener over it (its
// *tls.Conn are unwrapped): ConnState ignores any other connection.
package connlimit

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Default is the cap of a server whose descriptors and memory allow it
// (DefaultMax): far more connections than a deployment's load balancers and
// clients hold (its requests run 40 at a time, with 1,000 more waiting).
const Default = 10_000

// ReservedDescriptors are the descriptors the cap leaves to the rest of the
// process: the database pool (20), the rate limiter's (4), /readyz's and the
// start's connections, the metrics' and profiles' listeners and their clients, the
// trace exporter's connections, the embedded PostgreSQL's pipes and log, the
// runtime's epoll and pipes, with room to spare for files.
const ReservedDescriptors = 200

// IdleConnectionBytes is what an idle keep-alive connection costs the server's
// memory, measured: 5,000 of them, each after one request for the dashboard's
// segment list, took the real server from 35 to 215 MB (37 KB each: its
// goroutine's stack, grown by the request, 20 KB; its buffers and connection
// state; garbage at GOGC 400).
const IdleConnectionBytes = 40 << 10

// MemoryShare is the share of the process's memory limit that idle connections
// may take at the default cap: the rest is for requests, the heap's growth and
// the kernel's socket buffers.
const MemoryShare = 4 // a quarter

// RequestMargin is how many connections the default cap leaves, above those of the
// requests admission control lets run and wait, for probes, scrapes and clients'
// idle keep-alive connections.
const RequestMargin = 100

// DefaultMax returns the cap for a process that may open nofile descriptors (its
// RLIMIT_NOFILE, which Go raises to the hard limit as it starts) and use memLimit
// bytes (the runtime's soft memory limit, GOMEMLIMIT or 90% of the container's;
// math.MaxInt64 or less than 1 for none), whose admission control lets requests
// requests run or wait at once (0 or less: no limit known): Default, or fewer so
// that ReservedDescriptors stay free (with fewer than twice ReservedDescriptors in
// all, half of them) and idle connections take at most a MemoryShare of memLimit
// (a 512 MiB container's 460 MiB: 2,944), but never, for memory, fewer than 100 or
// requests plus RequestMargin: a cap below what admission control admits would
// hold requests it is meant to queue or refuse with an answer in the listen
// backlog, unanswered.
func DefaultMax(nofile uint64, memLimit int64, requests int) int {
	n := Default
	switch {
	case nofile < 2*ReservedDescriptors:
		return max(int(nofile/2), 1)
	case nofile-ReservedDescriptors < uint64(n):
		n = int(nofile - ReservedDescriptors)
	}
	if memLimit > 0 && memLimit < math.MaxInt64 {
		floor := 100
		if requests > 0 {
			floor = max(floor, requests+RequestMargin)
		}
		n = min(n, max(int(memLimit/MemoryShare/IdleConnectionBytes), floor))
	}
	return n
}

// Choose returns the cap for --max-connections set to explicit (0: DefaultMax of
// the process's descriptors and memory limit; below 0: none, returned as is) for
// a server whose admission control lets requests requests run or wait at once (0
// or less: no limit), and logs it, warning at start when the cap leaves the process
// too few descriptors or is below requests.
func Choose(explicit, requests int, log *slog.Logger) int {
	return choose(explicit, requests, NofileLimit(), debug.SetMemoryLimit(-1), log)
}

func choose(explicit, requests int, nofile uint64, memLimit int64, log *slog.Logger) int {
	n := explicit
	switch {
	case n == 0:
		n = DefaultMax(nofile, memLimit, requests)
	case n > 0 && uint64(n)+ReservedDescriptors > nofile:
		log.Warn("--max-connections leaves the process too few descriptors: it may run out of them before its connections reach the cap (accept errors, database connections refused)",
			"max_connections", n, "rlimit_nofile", nofile, "reserved", ReservedDescriptors)
	}
	if n > 0 && requests > 0 && n < requests {
		log.Warn("--max-connections is below the requests admission control lets run and wait (--max-running-requests plus --max-waiting-requests): requests beyond the cap wait unanswered in the listen backlog instead of being queued or refused with a 503",
			"max_connections", n, "requests", requests, "rlimit_nofile", nofile)
	}
	if n > 0 {
		log.Info("client connections capped", "max_connections", n, "rlimit_nofile", nofile)
	}
	return n
}

// NofileLimit returns the process's soft limit on open descriptors (RLIMIT_NOFILE),
// math.MaxUint64 when it cannot be read (or is unlimited).
func NofileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return math.MaxUint64
	}
	return r.Cur
}

// The defaults of Options.
const (
	// DefaultPressureAt is the share of the cap from which idle connections are
	// closed after PressureIdle.
	DefaultPressureAt = 0.9
	// DefaultPressureIdle: a client's pooled connection that it reuses within a few
	// seconds stays open under pressure; one idle longer is closed.
	DefaultPressureIdle = 5 * time.Second
	// DefaultWarnEvery: the warning that the cap is reached comes at most so often.
	DefaultWarnEvery = time.Minute
	// DefaultNewGrace: a new connection's client sends its request within a round
	// trip; one silent longer than a second may be closed for room.
	DefaultNewGrace = time.Second
)

// Options configure New.
type Options struct {
	// Max is the most connections open at once; 0 or less: no cap (the metrics
	// stay).
	Max int
	// PressureAt, a share of Max (0 < PressureAt <= 1), is the number of open
	// connections from which idle ones are closed after PressureIdle; 0 means
	// DefaultPressureAt.
	PressureAt float64
	// PressureIdle is how long a connection may stay idle under pressure; 0 means
	// DefaultPressureIdle.
	PressureIdle time.Duration
	// NewGrace is how long a new connection that has not sent its first request's
	// headers is kept from being closed for room; 0 means DefaultNewGrace.
	NewGrace time.Duration
	// Log gets a warning when the cap is reached, at most once per WarnEvery (0:
	// DefaultWarnEvery); nil: none.
	Log       *slog.Logger
	WarnEvery time.Duration
}

// Listener is a net.Listener that caps the connections it has accepted and that
// are still open. Wire its ConnState and ConnContext into the http.Server
// (ConnState: l.ConnState, ConnContext: l.ConnContext), which must be the only
// caller of Accept, and serve l.Handler(h). Safe for concurrent use.
type Listener struct {
	net.Listener
	max          int
	pressureAt   int
	pressureIdle time.Duration
	newGrace     time.Duration
	log          *slog.Logger
	warnEvery    time.Duration

	wake      chan struct{} // a connection closed or went idle
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	open     int
	idle     idleList // the keep-alive connections idle after a request, the longest idle first
	fresh    idleList // the new connections not yet through their first request's headers, the oldest first
	bodies   idleList // the connections reading a request's body before authentication (ReadingBody), the longest first
	lastWarn time.Time
	stats    Stats
}

// Stats are a Listener's counts.
type Stats struct {
	// Open and Idle are the connections open now, and those of them that hold no
	// request (idle keep-alive connections, and new ones not yet through their
	// first request's headers).
	Open, Idle int
	// ClosedForRoom are the idle connections closed to make room for a new one at
	// the cap; ClosedUnderPressure those closed for being idle longer than
	// PressureIdle from PressureAt of it.
	ClosedForRoom, ClosedUnderPressure int64
	// ClosedReadingBody are the connections closed to make room at the cap, none
	// being idle, for reading a request's body before authentication for longer
	// than NewGrace (ReadingBody), the longest first.
	ClosedReadingBody int64
	// AcceptsWaited counts the accepts that waited, no connection at the cap being
	// one to close (all in requests, or new within NewGrace), for one to close, go
	// idle or age.
	AcceptsWaited int64
	// RequestsRefused counts the requests whose headers were read on a connection
	// the listener closed before they ran (Handler).
	RequestsRefused int64
}

// New returns ln capped as o says.
func New(ln net.Listener, o Options) *Listener {
	if o.PressureAt <= 0 || o.PressureAt > 1 {
		o.PressureAt = DefaultPressureAt
	}
	if o.PressureIdle <= 0 {
		o.PressureIdle = DefaultPressureIdle
	}
	if o.WarnEvery <= 0 {
		o.WarnEvery = DefaultWarnEvery
	}
	if o.NewGrace <= 0 {
		o.NewGrace = DefaultNewGrace
	}
	l := &Listener{
		Listener:     ln,
		max:          o.Max,
		pressureIdle: o.PressureIdle,
		newGrace:     o.NewGrace,
		log:          o.Log,
		warnEvery:    o.WarnEvery,
		wake:         make(chan struct{}, 1),
		closed:       make(chan struct{}),
	}
	if l.max <= 0 {
		l.max = math.MaxInt
	}
	l.pressureAt = max(int(math.Ceil(float64(l.max)*o.PressureAt)), 1)
	return l
}

// Max returns the cap; math.MaxInt for none.
func (l *Listener) Max() int { return l.max }

// Stats returns the listener's counts now.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Open, s.Idle = l.open, l.idle.n+l.fresh.n
	return s
}

// Accept waits for a place under the cap, then for the next connection. At the cap
// the new connection takes the place of the keep-alive one idle the longest, or
// else of the oldest new one silent for over NewGrace, which is closed once the new
// one is accepted (none is closed for a newcomer that never comes). With none to
// close, Accept waits for one to close, go idle or age, accepting nothing
// meanwhile; a newcomer accepted while the last one to close went back to work is
// held so, unanswered, until a place is free (the cap is on the connections
// served).
func (l *Listener) Accept() (net.Conn, error) {
	waited := false
	l.mu.Lock()
	for l.open >= l.max {
		victim, wait := l.victimLocked(time.Now())
		if victim != nil {
			break
		}
		if err := l.waitLocked(&waited, wait); err != nil {
			l.mu.Unlock()
			return nil, err
		}
	}
	l.mu.Unlock()

	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, l: l}
	var victims []*conn
	reached := false
	l.mu.Lock()
	for l.open >= l.max {
		reached = true
		victim, wait := l.victimLocked(time.Now())
		if victim != nil {
			if victim.list == &l.bodies {
				l.stats.ClosedReadingBody++
			} else {
				l.stats.ClosedForRoom++
			}
			l.evictLocked(victim)
			victims = append(victims, victim)
			continue
		}
		if err := l.waitLocked(&waited, wait); err != nil {
			l.mu.Unlock()
			closeAll(victims)
			nc.Close()
			return nil, err
		}
	}
	l.open++
	if l.open >= l.pressureAt {
		now := time.Now()
		for _, q := range []*idleList{&l.idle, &l.fresh} {
			for old := q.front(); old != nil && now.Sub(old.since) > l.pressureIdle; old = q.front() {
				l.evictLocked(old)
				victims = append(victims, old)
				l.stats.ClosedUnderPressure++
			}
		}
	}
	var warn func()
	if reached || waited {
		warn = l.warnLocked()
	}
	l.mu.Unlock()
	closeAll(victims)
	if warn != nil {
		warn()
	}
	return c, nil
}

// victimLocked returns the connection to close for room now: the keep-alive one
// idle the longest, or else the oldest new one past NewGrace, or else the one
// reading a body before authentication the longest, past NewGrace. With none, it
// returns how long until one of those is past NewGrace (0: none to wait for).
func (l *Listener) victimLocked(now time.Time) (victim *conn, wait time.Duration) {
	if c := l.idle.front(); c != nil {
		return c, 0
	}
	for _, q := range []*idleList{&l.fresh, &l.bodies} {
		c := q.front()
		if c == nil {
			continue
		}
		left := l.newGrace - now.Sub(c.since)
		if left <= 0 {
			return c, 0
		}
		if wait == 0 || left < wait {
			wait = left
		}
	}
	return nil, wait
}

// waitLocked waits, l.mu held and released meanwhile, until a connection closes or
// goes idle, or for d when d > 0, counting the accept as waiting once (waited);
// net.ErrClosed when the listener is closed.
func (l *Listener) waitLocked(waited *bool, d time.Duration) error {
	if !*waited {
		*waited = true
		l.stats.AcceptsWaited++
	}
	warn := l.warnLocked()
	l.mu.Unlock()
	if warn != nil {
		warn()
	}
	defer l.mu.Lock()
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-l.wake:
		return nil
	case <-timeout:
		return nil
	case <-l.closed:
		return net.ErrClosed
	}
}

// Close closes the listener: an Accept waiting for a place returns net.ErrClosed,
// as one waiting for a connection does. The connections stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// ConnState is the http.Server's ConnState hook: it tells the listener which of its
// connections hold no request.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c := l.own(nc)
	if c == nil {
		return
	}
	l.mu.Lock()
	switch state {
	case http.StateNew, http.StateIdle:
		if c.released {
			break
		}
		c.since = time.Now() // under the lock: the lists stay in the order of since
		l.unlistLocked(c)
		if state == http.StateNew {
			l.fresh.pushBack(c)
		} else {
			l.idle.pushBack(c)
		}
		l.mu.Unlock()
		l.signal()
		return
	default: // active, hijacked (the handler's now), closed
		l.unlistLocked(c)
	}
	l.mu.Unlock()
}

// unlistLocked takes c off the list it is on (idle, fresh or reading a body), if any.
func (l *Listener) unlistLocked(c *conn) {
	if c.list != nil {
		c.list.remove(c)
	}
}

type connKey struct{}

// ReadingBody marks the connection of ctx (a request's context, with the
// Listener's ConnContext) as reading the request's body before authentication,
// until done is called: at the cap with none idle, the connection doing so the
// longest, for more than NewGrace, is closed for a newcomer, so that clients
// trickling bodies cannot hold every place. The request's read then fails; it has
// not run. Without a Listener's connection in ctx, it does nothing.
func ReadingBody(ctx context.Context) (done func()) {
	c, ok := ctx.Value(connKey{}).(*conn)
	if !ok {
		return func() {}
	}
	l := c.l
	l.mu.Lock()
	if !c.released && c.list == nil {
		c.since = time.Now()
		l.bodies.pushBack(c)
	}
	l.mu.Unlock()
	l.signal() // an accept waiting with none to close now has one to wait for
	return func() {
		l.mu.Lock()
		l.bodies.remove(c)
		l.mu.Unlock()
	}
}

// ConnContext is the http.Server's ConnContext hook: it lets Handler find the
// request's connection.
func (l *Listener) ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c := l.own(nc); c != nil {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// own returns nc as one of l's connections, unwrapping TLS; nil if it is not.
func (l *Listener) own(nc net.Conn) *conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if c, ok := nc.(*conn); ok && c.l == l {
		return c
	}
	return nil
}

// Handler returns h behind a check that the request's connection was not closed for
// room or under pressure while net/http read its headers (it marks a connection
// active, taking it off the idle ones, only after): such a request is aborted (http.ErrAbortHandler)
// before h runs, so that no mutation is applied that its client, its connection
// closed, takes for lost. Needs ConnContext in the server. The check is sound:
// ConnState(StateActive) runs before the handler, and a connection is picked for
// room only while on the idle lists, both under l.mu, after which the flag read
// here without the lock is the one set then: a request's check takes no lock.
func (l *Listener) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*conn); ok && c.evicted.Load() {
			l.mu.Lock()
			l.stats.RequestsRefused++
			l.mu.Unlock()
			panic(http.ErrAbortHandler)
		}
		h.ServeHTTP(w, r)
	})
}

// evictLocked gives the place of c, an idle connection, back, and marks it as
// closed by the listener (the caller closes it) for Handler.
func (l *Listener) evictLocked(c *conn) {
	l.releaseLocked(c)
	c.evicted.Store(true)
}

// releaseLocked gives c's place back, once.
func (l *Listener) releaseLocked(c *conn) {
	if c.released {
		return
	}
	c.released = true
	l.open--
	l.unlistLocked(c)
}

// signal wakes an Accept waiting for a place.
func (l *Listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// warnLocked returns the warning to log that the cap is reached, nil if one was
// logged less than warnEvery ago.
func (l *Listener) warnLocked() func() {
	now := time.Now()
	if l.log == nil || (!l.lastWarn.IsZero() && now.Sub(l.lastWarn) < l.warnEvery) {
		return nil
	}
	l.lastWarn = now
	s := l.stats
	open, idle, capacity := l.open, l.idle.n+l.fresh.n, l.max
	log := l.log
	return func() {
		log.Warn("open connections reached their cap (--max-connections)", "max_connections", capacity, "open", open, "idle", idle,
			"idle_closed_for_room_total", s.ClosedForRoom, "idle_closed_under_pressure_total", s.ClosedUnderPressure,
			"accepts_waited_total", s.AcceptsWaited)
	}
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		c.Conn.Close()
	}
}

// conn is an accepted connection, whose Close gives its place back.
type conn struct {
	net.Conn
	l *Listener
	// Under l.mu: prev and next link it in list (l.idle, l.fresh or l.bodies)
	// while it holds no request or reads a body before authentication (an
	// allocation-free list: a request makes two ConnState calls), since is when it
	// went on that list, released whether its place was given back.
	prev, next *conn
	list       *idleList
	since      time.Time
	released   bool
	// evicted is whether the listener closed it (for room or under pressure): set
	// under l.mu, read by Handler without it.
	evicted atomic.Bool
}

// idleList is a doubly linked list of conns, in the order they went idle.
type idleList struct {
	head, tail *conn
	n          int
}

func (q *idleList) front() *conn { return q.head }

func (q *idleList) pushBack(c *conn) {
	c.prev, c.next, c.list = q.tail, nil, q
	if q.tail != nil {
		q.tail.next = c
	} else {
		q.head = c
	}
	q.tail = c
	q.n++
}

// remove takes c off the list, if it is on it.
func (q *idleList) remove(c *conn) {
	if c.list != q {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		q.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		q.tail = c.prev
	}
	c.prev, c.next, c.list = nil, nil, nil
	q.n--
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	c.l.signal()
	return err
}

// CloseWrite lets net/http half-close the connection after an error answer, as it
// does a *net.TCPConn's.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Describe and Collect make the listener a prometheus.Collector.
func (l *Listener) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

func (l *Listener) Collect(ch chan<- prometheus.Metric) {
	s := l.Stats()
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, float64(s.Idle))
	if l.max != math.MaxInt {
		ch <- prometheus.MustNewConstMetric(descMax, prometheus.GaugeValue, float64(l.max))
	}
	ch <- prometheus.MustNewConstMetric(descIdleClosed, prometheus.CounterValue, float64(s.ClosedForRoom), "room")
	ch <- prometheus.MustNewConstMetric(descIdleClosed, prometheus.CounterValue, float64(s.ClosedUnderPressure), "pressure")
	ch <- prometheus.MustNewConstMetric(descBodyClosed, prometheus.CounterValue, float64(s.ClosedReadingBody))
	ch <- prometheus.MustNewConstMetric(descWaited, prometheus.CounterValue, float64(s.AcceptsWaited))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(s.RequestsRefused))
}

var (
	descOpen       = prometheus.NewDesc("segments_connections_open", "Client connections open now (the API's listener).", nil, nil)
	descIdle       = prometheus.NewDesc("segments_connections_idle", "Open client connections holding no request: idle between requests, or new and not yet through their first request's headers.", nil, nil)
	descMax        = prometheus.NewDesc("segments_connections_max", "The cap on open client connections (--max-connections); absent without one.", nil, nil)
	descIdleClosed = prometheus.NewDesc("segments_connections_idle_closed_total", "Idle client connections the server closed: to make room for a new one at the cap (reason room), or idle too long with most of the cap open (reason pressure).", []string{"reason"}, nil)
	descWaited     = prometheus.NewDesc("segments_connections_accepts_waited_total", "Accepts that waited, no connection at the cap being one to close (all in requests, or new and within their grace), for one to close, go idle or age.", nil, nil)
	descRefused    = prometheus.NewDesc("segments_connections_requests_refused_total", "Requests not run because their connection was closed by the listener (for room or under pressure) as their headers were read.", nil, nil)
	descBodyClosed = prometheus.NewDesc("segments_connections_body_closed_total", "Client connections the server closed to make room for a new one at the cap, none being idle, for reading a request's body before authentication too long.", nil, nil)
	descs          = []*prometheus.Desc{descOpen, descIdle, descMax, descIdleClosed, descWaited, descRefused, descBodyClosed}
)
