package connlimit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// server is a real http.Server on a loopback socket behind a Listener.
type server struct {
	l      *Listener
	srv    *http.Server
	addr   string
	served chan error
}

func startServer(t *testing.T, o Options, h http.Handler) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: New(ln, o), addr: ln.Addr().String(), served: make(chan error, 1)}
	s.srv = &http.Server{Handler: s.l.Handler(h), ConnContext: s.l.ConnContext, ConnState: s.l.ConnState,
		IdleTimeout: time.Minute, ReadHeaderTimeout: 10 * time.Second} // as serve wires it
	go func() { s.served <- s.srv.Serve(s.l) }()
	t.Cleanup(func() { s.srv.Close() })
	return s
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// client is one keep-alive connection, spoken to in raw HTTP/1.1 so that the test
// sees exactly when the server closes it.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// send writes a request for path.
func (c *client) send(t *testing.T, path string) {
	t.Helper()
	if _, err := io.WriteString(c.c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// read reads an answer within d.
func (c *client) read(d time.Duration) (string, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// get sends a request and reads its answer, which must be "ok".
func (c *client) get(t *testing.T) {
	t.Helper()
	c.send(t, "/")
	if body, err := c.read(5 * time.Second); err != nil || body != "ok" {
		t.Fatalf("answer %q, %v", body, err)
	}
}

// closedByServer reports whether the server closed c, waiting up to d.
func (c *client) closedByServer(d time.Duration) bool {
	c.c.SetReadDeadline(time.Now().Add(d))
	_, err := c.r.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of the listener's series name (with label value lv,
// when given) as a registry gathers it.
func metric(t *testing.T, l *Listener, name, lv string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(l)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lv != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != lv) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s %s", name, lv)
	return 0
}

// TestIdleConnectionMakesRoom: with the cap's N keep-alive connections open and
// idle, one more client is served, and the connection idle the longest is closed
// to make room for it, the others staying open; none is closed before the
// newcomer comes.
func TestIdleConnectionMakesRoom(t *testing.T) {
	const n = 3
	s := startServer(t, Options{Max: n}, ok)
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, s.addr)
		clients[i].get(t)
	}
	// The first is the longest idle once the others were used after it. The server
	// marks a connection idle after the client has its answer, at times later than
	// the next client's answer (seen under -race): wait for it.
	idle := func() bool { return s.l.Stats().Idle == n }
	eventually(t, "the connections idle", idle)
	clients[1].get(t)
	eventually(t, "the connections idle", idle)
	clients[2].get(t)
	eventually(t, "the connections idle", idle)
	if clients[0].closedByServer(100 * time.Millisecond) {
		t.Fatal("a connection was closed before any other client came")
	}

	newcomer := dial(t, s.addr)
	newcomer.get(t)
	if !clients[0].closedByServer(2 * time.Second) {
		t.Fatalf("the connection idle the longest is still open: no room was made (%+v; others closed: %v %v)",
			s.l.Stats(), clients[1].closedByServer(10*time.Millisecond), clients[2].closedByServer(10*time.Millisecond))
	}
	for i, c := range clients[1:] {
		if c.closedByServer(50 * time.Millisecond) {
			t.Fatalf("client %d, not the longest idle, was closed", i+1)
		}
		c.get(t)
	}
	eventually(t, "N open", func() bool { return s.l.Stats().Open == n })
	if st := s.l.Stats(); st.ClosedForRoom != 1 || st.AcceptsWaited != 0 {
		t.Errorf("stats %+v, want 1 idle connection closed for room and no accept waiting", st)
	}
	if v := metric(t, s.l, "segments_connections_idle_closed_total", "room"); v != 1 {
		t.Errorf("segments_connections_idle_closed_total{reason=room} %v, want 1", v)
	}
	if v := metric(t, s.l, "segments_connections_open", ""); v != n {
		t.Errorf("segments_connections_open %v, want %d", v, n)
	}
	if v := metric(t, s.l, "segments_connections_max", ""); v != n {
		t.Errorf("segments_connections_max %v, want %d", v, n)
	}
}

// blocking is a handler whose requests to /block wait until release is closed
// (each signalling started first); other paths answer ok at once.
func blocking() (h http.Handler, started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 100), make(chan struct{})
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	return h, started, release
}

// takePlaces opens n connections to s, each with a request of blocking's handler,
// and returns once every one has started.
func takePlaces(t *testing.T, s *server, n int, started <-chan struct{}) []*client {
	t.Helper()
	busy := make([]*client, n)
	for i := range busy {
		busy[i] = dial(t, s.addr)
		busy[i].send(t, "/block")
		<-started
	}
	return busy
}

// TestBusyConnectionsHoldNewOnes: with the cap's N connections all in requests, the
// next connection is not accepted (it waits in the kernel's backlog, its request
// unanswered) until one of them finishes and goes idle; then it is served, that
// idle one closed for it.
func TestBusyConnectionsHoldNewOnes(t *testing.T) {
	const n = 2
	h, started, release := blocking()
	s := startServer(t, Options{Max: n}, h)
	busy := takePlaces(t, s, n, started)
	waiting := dial(t, s.addr) // the kernel completes the handshake: the backlog
	waiting.send(t, "/")
	if body, err := waiting.read(300 * time.Millisecond); err == nil {
		t.Fatalf("answered %q with every place in a request", body)
	}
	eventually(t, "an accept waiting", func() bool { return s.l.Stats().AcceptsWaited == 1 })
	if st := s.l.Stats(); st.Open != n {
		t.Fatalf("stats %+v, want %d open", st, n)
	}
	if v := metric(t, s.l, "segments_connections_accepts_waited_total", ""); v != 1 {
		t.Errorf("segments_connections_accepts_waited_total %v, want 1", v)
	}

	close(release)
	for _, c := range busy {
		if body, err := c.read(5 * time.Second); err != nil || body != "ok" {
			t.Fatalf("busy request: %q, %v", body, err)
		}
	}
	if body, err := waiting.read(5 * time.Second); err != nil || body != "ok" {
		t.Fatalf("the waiting connection, once a place was free: %q, %v", body, err)
	}
	eventually(t, "N open", func() bool { return s.l.Stats().Open == n })
	if st := s.l.Stats(); st.ClosedForRoom != 1 {
		t.Errorf("stats %+v, want 1 idle connection closed for room", st)
	}
}

// TestPressureClosesLongIdleConnections: from PressureAt of the cap, an accept
// closes the connections idle longer than PressureIdle, not the younger ones.
func TestPressureClosesLongIdleConnections(t *testing.T) {
	s := startServer(t, Options{Max: 10, PressureAt: 0.5, PressureIdle: 200 * time.Millisecond}, ok)
	old := make([]*client, 4)
	for i := range old {
		old[i] = dial(t, s.addr)
		old[i].get(t)
	}
	time.Sleep(300 * time.Millisecond)
	young := dial(t, s.addr) // 5 open: pressure from the next accept
	young.get(t)
	last := dial(t, s.addr)
	last.get(t)
	for i, c := range old {
		if !c.closedByServer(2 * time.Second) {
			t.Fatalf("old connection %d, idle past PressureIdle under pressure, is still open", i)
		}
	}
	if young.closedByServer(50 * time.Millisecond) {
		t.Fatal("a connection idle for less than PressureIdle was closed")
	}
	young.get(t)
	if st := s.l.Stats(); st.ClosedUnderPressure != 4 || st.ClosedForRoom != 0 {
		t.Errorf("stats %+v, want 4 closed under pressure", st)
	}
	if v := metric(t, s.l, "segments_connections_idle_closed_total", "pressure"); v != 4 {
		t.Errorf("segments_connections_idle_closed_total{reason=pressure} %v, want 4", v)
	}
}

// TestShutdownAtTheCap: a graceful shutdown with every place taken by requests, and
// an accept waiting for one, stops accepting at once and lets the requests finish.
func TestShutdownAtTheCap(t *testing.T) {
	const n = 2
	h, started, release := blocking()
	s := startServer(t, Options{Max: n}, h)
	busy := takePlaces(t, s, n, started)
	dial(t, s.addr).send(t, "/")
	eventually(t, "an accept waiting", func() bool { return s.l.Stats().AcceptsWaited == 1 })

	shutdown := make(chan error, 1)
	go func() { shutdown <- s.srv.Shutdown(context.Background()) }()
	select {
	case err := <-s.served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown: the accept waiting for a place was not woken")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) with requests in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	for _, c := range busy {
		if body, err := c.read(5 * time.Second); err != nil || body != "ok" {
			t.Fatalf("request in flight: %q, %v", body, err)
		}
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return once the requests finished")
	}
	if st := s.l.Stats(); st.Open != 0 {
		t.Errorf("stats %+v after shutdown, want none open", st)
	}
}

// TestNoCap: Max 0 caps nothing, and counts all the same.
func TestNoCap(t *testing.T) {
	s := startServer(t, Options{}, ok)
	for range 5 {
		dial(t, s.addr).get(t)
	}
	eventually(t, "5 idle", func() bool { st := s.l.Stats(); return st.Open == 5 && st.Idle == 5 })
	if st := s.l.Stats(); st.ClosedForRoom+st.ClosedUnderPressure+st.AcceptsWaited != 0 {
		t.Errorf("stats %+v without a cap", st)
	}
}

func TestDefaultMax(t *testing.T) {
	for _, c := range []struct {
		nofile   uint64
		memLimit int64
		requests int
		want     int
	}{
		{1 << 20, none, 0, Default}, // Docker's; systemd's 524288
		{Default + ReservedDescriptors, none, 0, Default},
		{4096, none, 0, 4096 - ReservedDescriptors}, // an older distribution's hard limit
		{1024, none, 0, 1024 - ReservedDescriptors},
		{2 * ReservedDescriptors, none, 0, ReservedDescriptors},
		{256, none, 0, 128},
		{1, none, 0, 1},
		{0, none, 0, 1},
		{math.MaxUint64, none, 0, Default}, // unlimited
		{math.MaxUint64, 0, 0, Default},    // no memory limit
		{math.MaxUint64, -1, 0, Default},
		{1 << 20, 460 << 20, 0, 2944},                    // 90% of a 512 MiB container
		{1 << 20, 2 << 30, 0, Default},                   // 2 GiB: 13,107 by memory
		{1 << 20, 8 << 20, 0, 100},                       // never fewer than 100 for memory
		{1024, 460 << 20, 0, 1024 - ReservedDescriptors}, // the descriptors' cap, below the memory's
		// Never below the requests admission control admits (40 running, 1,000
		// waiting), with a margin: a 128 MiB container's 115 MiB gives 736 by memory.
		{1 << 20, 115 << 20, 0, 736},
		{1 << 20, 115 << 20, 1040, 1040 + RequestMargin},
		{1 << 20, 460 << 20, 1040, 2944},
		{1024, 115 << 20, 1040, 1024 - ReservedDescriptors}, // descriptors bound it still
	} {
		if got := DefaultMax(c.nofile, c.memLimit, c.requests); got != c.want {
			t.Errorf("DefaultMax(%d, %d, %d) = %d, want %d", c.nofile, c.memLimit, c.requests, got, c.want)
		}
	}
}

// TestChooseWarnsBelowRequests: serve warns at start when an explicit cap is below
// the requests admission control admits, or leaves too few descriptors, and the
// default cap is never below them.
func TestChooseWarnsBelowRequests(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if n := choose(500, 1040, 1<<20, 115<<20, log); n != 500 {
		t.Errorf("explicit cap 500: %d", n)
	}
	if !strings.Contains(buf.String(), "level=WARN msg=\"--max-connections is below the requests") {
		t.Errorf("no warning for a cap below the requests:\n%s", buf.String())
	}
	buf.Reset()
	if n := choose(0, 1040, 1<<20, 115<<20, log); n != 1040+RequestMargin {
		t.Errorf("default cap of a 128 MiB container: %d", n)
	}
	if n := choose(2000, 1040, 1024, none, log); n != 2000 {
		t.Errorf("explicit cap 2000: %d", n)
	}
	if strings.Contains(buf.String(), "below the requests") || !strings.Contains(buf.String(), "too few descriptors") {
		t.Errorf("want the descriptors' warning alone:\n%s", buf.String())
	}
	buf.Reset()
	if n := choose(-1, 1040, 1<<20, none, log); n != -1 || buf.Len() != 0 {
		t.Errorf("no cap: %d, logged %q", n, buf.String())
	}
}

const none = math.MaxInt64

// TestRequestOnConnectionClosedForRoomDoesNotRun: a keep-alive connection whose
// request's headers net/http has read, but that it has not marked active yet, is
// still among the idle ones, and a newcomer at the cap may close it: that request
// must not run (its client, its connection closed, takes it for lost, and a
// mutation would apply unseen). The test holds the server's StateActive call until
// the newcomer has closed the connection, the ordering that happens at random.
func TestRequestOnConnectionClosedForRoomDoesNotRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{Max: 1})
	ran := make(chan string, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran <- r.URL.Path
		io.WriteString(w, "ok")
	})
	var hold atomic.Bool
	atActive, proceed, heldClosed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var held atomic.Value
	srv := &http.Server{Handler: l.Handler(h), ConnContext: l.ConnContext, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(nc net.Conn, st http.ConnState) {
			if st == http.StateActive && hold.CompareAndSwap(true, false) {
				held.Store(nc)
				close(atActive)
				<-proceed
			}
			if st == http.StateClosed && held.Load() == nc {
				close(heldClosed)
			}
			l.ConnState(nc, st)
		}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	a := dial(t, addr)
	a.get(t)
	eventually(t, "the connection idle", func() bool { return l.Stats().Idle == 1 })
	hold.Store(true)
	a.send(t, "/mutation")
	<-atActive
	b := dial(t, addr)
	b.send(t, "/")
	eventually(t, "the held connection closed for room", func() bool { return l.Stats().ClosedForRoom == 1 })
	close(proceed)
	if body, err := b.read(5 * time.Second); err != nil || body != "ok" {
		t.Fatalf("newcomer: %q, %v", body, err)
	}
	select {
	case <-heldClosed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection closed for room did not end")
	}
	close(ran)
	var paths []string
	for p := range ran {
		paths = append(paths, p)
	}
	if strings.Contains(strings.Join(paths, " "), "/mutation") {
		t.Fatalf("the request of the connection closed for room ran (handled: %v)", paths)
	}
	if st := l.Stats(); st.RequestsRefused != 1 {
		t.Errorf("stats %+v, want 1 request refused", st)
	}
	if v := metric(t, l, "segments_connections_requests_refused_total", ""); v != 1 {
		t.Errorf("segments_connections_requests_refused_total %v, want 1", v)
	}
}

// TestNewcomersDoNotCloseEachOther: at the cap with the other connections busy,
// new connections that have not sent their request yet are not closed for the next
// newcomer (within NewGrace): each waits and is served.
func TestNewcomersDoNotCloseEachOther(t *testing.T) {
	const n = 3
	h, started, release := blocking()
	defer close(release)
	s := startServer(t, Options{Max: n, NewGrace: time.Minute}, h)
	for range n - 1 {
		dial(t, s.addr).send(t, "/block")
		<-started
	}
	const clients = 5
	errs := make(chan error, clients)
	for i := range clients {
		c := dial(t, s.addr)
		go func() {
			time.Sleep(100 * time.Millisecond) // a client slow to send (TLS, a busy machine)
			if _, err := io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
				errs <- err
				return
			}
			body, err := c.read(10 * time.Second)
			if err == nil && body != "ok" {
				err = errors.New("answer " + body)
			}
			if err != nil {
				err = fmt.Errorf("client %d: %w", i, err)
			}
			errs <- err
		}()
		time.Sleep(20 * time.Millisecond)
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Errorf("%v (%+v)", err, s.l.Stats())
		}
	}
	if st := s.l.Stats(); st.AcceptsWaited == 0 {
		t.Errorf("stats %+v: no accept waited", st)
	}
}

// TestSilentNewConnectionClosedAfterGrace: a new connection that sends nothing
// keeps its place at the cap for NewGrace, then is closed for a newcomer.
func TestSilentNewConnectionClosedAfterGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := startServer(t, Options{Max: 1, NewGrace: grace}, ok)
	silent := dial(t, s.addr)
	eventually(t, "the silent connection accepted", func() bool { return s.l.Stats().Open == 1 })
	start := time.Now()
	newcomer := dial(t, s.addr)
	newcomer.get(t)
	if d := time.Since(start); d < grace*9/10 {
		t.Errorf("newcomer served after %v, before the silent connection's grace (%v) was over", d, grace)
	}
	if !silent.closedByServer(2 * time.Second) {
		t.Fatal("the silent connection is still open")
	}
	// The server's next Accept may wait too (the newcomer not yet idle).
	if st := s.l.Stats(); st.ClosedForRoom != 1 || st.AcceptsWaited < 1 {
		t.Errorf("stats %+v, want 1 closed for room, an accept waited", st)
	}
}

// TestClosedBusyConnectionWakesAccept: at the cap with every connection busy, one
// that ends by closing (a Connection: close client) rather than going idle lets a
// waiting newcomer in.
func TestClosedBusyConnectionWakesAccept(t *testing.T) {
	h, started, release := blocking()
	// A long NewGrace: the accept waiting while the busy connection was new would
	// otherwise wake at its end and find the place free all the same.
	s := startServer(t, Options{Max: 1, NewGrace: time.Minute}, h)
	busy := dial(t, s.addr)
	if _, err := io.WriteString(busy.c, "GET /block HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	waiting := dial(t, s.addr)
	waiting.send(t, "/")
	eventually(t, "an accept waiting", func() bool { return s.l.Stats().AcceptsWaited == 1 })
	close(release)
	if body, err := busy.read(5 * time.Second); err != nil || body != "ok" {
		t.Fatalf("busy request: %q, %v", body, err)
	}
	if body, err := waiting.read(5 * time.Second); err != nil || body != "ok" {
		t.Fatalf("the waiting connection, once the busy one closed: %q, %v", body, err)
	}
}

// TestSlowBodiesMakeRoom: at the cap with every connection reading a body sent a
// byte at a time (ReadingBody, before authentication), a new connection's request
// (a probe) is served once the longest of them is past NewGrace, that one closed.
func TestSlowBodiesMakeRoom(t *testing.T) {
	const n, grace = 2, 200 * time.Millisecond
	reading := make(chan struct{}, n)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			done := ReadingBody(r.Context())
			reading <- struct{}{}
			_, err := io.ReadAll(r.Body)
			done()
			if err != nil {
				return
			}
		}
		io.WriteString(w, "ok")
	})
	s := startServer(t, Options{Max: n, NewGrace: grace}, h)
	slow := make([]*client, n)
	for i := range slow {
		slow[i] = dial(t, s.addr)
		if _, err := io.WriteString(slow[i].c, "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nx"); err != nil {
			t.Fatal(err)
		}
		<-reading
	}
	probe := dial(t, s.addr)
	probe.send(t, "/livez")
	if body, err := probe.read(5 * time.Second); err != nil || body != "ok" {
		t.Fatalf("probe at a cap held by slow bodies: %q, %v (%+v)", body, err, s.l.Stats())
	}
	if !slow[0].closedByServer(2 * time.Second) {
		t.Error("the connection reading its body the longest is still open")
	}
	if slow[1].closedByServer(50 * time.Millisecond) {
		t.Error("the younger slow body was closed too")
	}
	if st := s.l.Stats(); st.ClosedReadingBody != 1 || st.ClosedForRoom != 0 {
		t.Errorf("stats %+v, want 1 closed reading a body", st)
	}
	if v := metric(t, s.l, "segments_connections_body_closed_total", ""); v != 1 {
		t.Errorf("segments_connections_body_closed_total %v, want 1", v)
	}
}

// TestTLS: served through tls.NewListener over it, the Listener still sees its
// connections go idle (ConnState unwraps *tls.Conn), and makes room with them.
func TestTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(ok)
	ts.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{Max: 1})
	ts.Listener = l
	ts.Config.ConnState, ts.Config.ConnContext, ts.Config.Handler = l.ConnState, l.ConnContext, l.Handler(ok)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	get := func(c *http.Client) {
		res, err := c.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	first, second := ts.Client(), &http.Client{Transport: ts.Client().Transport.(*http.Transport).Clone()}
	get(first)
	eventually(t, "the TLS connection idle", func() bool { return l.Stats().Idle == 1 })
	get(second)
	eventually(t, "the first connection closed for room", func() bool { return l.Stats().ClosedForRoom == 1 })
}
