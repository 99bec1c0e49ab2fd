package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segments/segments/internal/store/storetest"
)

// TestMaxConnectionsServe: serve caps its client connections (--max-connections)
// and says so at start: with a cap of 3, four clients each holding a keep-alive
// connection are all served, one of the first three's connection (the longest
// idle as the server saw them) closed to make room for the fourth, the other two
// still served on theirs.
func TestMaxConnectionsServe(t *testing.T) {
	dbURL := storetest.Database(t)
	key := newWorkspace(t, env(map[string]string{"DATABASE_URL": dbURL}), "Conns")
	p := startProcess(t, dbURL, "--max-connections", "3", "--metrics-addr", "off")
	addr := strings.TrimPrefix(p.url, "http://")
	conns := make([]*rawConn, 4)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		if err := conns[i].graphql(key, `{ workspace { name } }`); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	var open []*rawConn
	for _, c := range conns[:3] {
		c.c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.r.ReadByte(); err != nil && strings.Contains(err.Error(), "timeout") {
			open = append(open, c)
		}
	}
	if len(open) != 2 {
		t.Fatalf("%d of the first 3 connections open after a fourth came, with a cap of 3: want 2", len(open))
	}
	for i, c := range append(open, conns[3]) {
		if err := c.graphql(key, `{ workspace { name } }`); err != nil {
			t.Fatalf("connection %d left open: %v", i, err)
		}
	}
	if !strings.Contains(p.stderr.String(), "max_connections=3") {
		t.Errorf("serve did not log its cap:\n%s", p.stderr.String())
	}
}

// rawConn is a keep-alive connection to the server spoken to in raw HTTP/1.1.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, r: bufio.NewReader(c)}
}

// graphql posts query and reads its answer, which must be a 200 without errors.
func (c *rawConn) graphql(key, query string) error {
	body := `{"query":` + strconv.Quote(query) + `}`
	req := "POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.c, req); err != nil {
		return err
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return err
	}
	out, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || strings.Contains(string(out), `"errors"`) {
		return fmt.Errorf("status %d: %.300s", res.StatusCode, out)
	}
	return nil
}

// TestMeasureIdleConnections measures what idle keep-alive connections cost the
// real server: its RSS and descriptors before and after SEGMENTS_MEASURE_CONNS
// connections each made one request (the dashboard's segment list) and stay open.
// SEGMENTS_MEASURE_ARGS adds serve's flags (--max-connections 1000). A
// measurement, not a test: skipped unless SEGMENTS_MEASURE_CONNS is set.
func TestMeasureIdleConnections(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SEGMENTS_MEASURE_CONNS"))
	if n <= 0 {
		t.Skip("a measurement: set SEGMENTS_MEASURE_CONNS (5000)")
	}
	dbURL := storetest.Database(t)
	key := newWorkspace(t, env(map[string]string{"DATABASE_URL": dbURL}), "Measure")
	// One caller sends them all: no bound per caller or workspace, no rate limit.
	args := append([]string{"--rate-limit-capacity", "0", "--max-running-per-caller", "-1", "--max-waiting-per-caller", "-1",
		"--max-running-per-workspace", "-1", "--max-waiting-per-workspace", "-1"}, strings.Fields(os.Getenv("SEGMENTS_MEASURE_ARGS"))...)
	p := startProcess(t, dbURL, args...)
	addr := strings.TrimPrefix(p.url, "http://")
	const query = `{ segments(first: 50) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`
	warm := dialRaw(t, addr)
	for range 20 {
		if err := warm.graphql(key, query); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	rss0, fds0 := procUsage(t, p.cmd.Process.Pid)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for range next {
				if err := dialRaw(t, addr).graphql(key, query); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 3 {
			t.Log(err)
		}
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second)
	rss1, fds1 := procUsage(t, p.cmd.Process.Pid)
	metrics := scrape(t, p.url+"/metrics")
	t.Logf("%d connections (%d failed) in %v: RSS %d -> %d MB (%.1f KB per connection), fds %d -> %d",
		n, failed, took.Round(time.Millisecond), rss0>>20, rss1>>20, float64(rss1-rss0)/1024/float64(n), fds0, fds1)
	for _, m := range []string{"segments_connections_open", "segments_connections_idle", "segments_connections_max",
		"segments_connections_idle_closed_total", "segments_connections_accepts_waited_total",
		"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"} {
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, m+" ") || strings.HasPrefix(l, m+"{") {
				t.Log(l)
			}
		}
	}
}

// procUsage returns a process's resident memory, in bytes, and open descriptors.
func procUsage(t *testing.T, pid int) (rss int64, fds int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return rss, len(entries)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestShutdownAtTheConnectionCap: a server whose connections are all in requests at
// its cap (--max-connections 2, two assignments waiting on a lock) holds a third
// connection unanswered; SIGTERM then closes the listener at once (the accept
// waiting for a place returns), the requests in flight finish and apply, and the
// process exits cleanly.
func TestShutdownAtTheConnectionCap(t *testing.T) {
	f := newShutdownFixture(t, "--max-connections", "2", "--shutdown-timeout", "20s", "--metrics-addr", "off")
	release := f.holdSegment(t)
	const inFlight = 2
	results := f.startAssignments(t, inFlight)
	third := dialRaw(t, strings.TrimPrefix(f.p.url, "http://"))
	answered := make(chan error, 1)
	go func() { answered <- third.graphql(f.key, `{ workspace { name } }`) }()
	select {
	case err := <-answered:
		t.Fatalf("a third connection was answered (%v) with the cap's 2 in requests", err)
	case <-time.After(500 * time.Millisecond):
	}

	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-answered:
		if err == nil {
			t.Fatal("the connection waiting for a place was served after SIGTERM")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection waiting for a place neither served nor closed 5 s after SIGTERM: the listener stayed open")
	}
	select {
	case <-f.p.exited:
		t.Fatal("exited with requests in flight")
	default:
	}
	release()
	for range inFlight {
		if r := <-results; r.err != nil || r.status != http.StatusOK || len(r.body.Errors) > 0 {
			t.Errorf("request in flight: err %v, status %d, errors %+v", r.err, r.status, r.body.Errors)
		}
	}
	f.p.waitExit(t, 10*time.Second)
	if f.p.err != nil {
		t.Fatalf("exit: %v", f.p.err)
	}
	var real int
	if err := f.db.QueryRow(context.Background(), "SELECT count(*) FROM memberships WHERE segment_id = $1", f.heldID).Scan(&real); err != nil {
		t.Fatal(err)
	}
	if real != inFlight*5 {
		t.Errorf("Held has %d memberships, want %d: the requests in flight did not all apply", real, inFlight*5)
	}
}

// TestSlowBodiesAtTheConnectionCap: clients that take every place of the cap (3)
// with requests whose bodies they send a byte at a time, unauthenticated, do not
// keep a probe out: the connection reading its body the longest is closed for the
// probe's once past its grace (1 s).
func TestSlowBodiesAtTheConnectionCap(t *testing.T) {
	dbURL := storetest.Database(t)
	p := startProcess(t, dbURL, "--max-connections", "3", "--metrics-addr", "off")
	addr := strings.TrimPrefix(p.url, "http://")
	for range 3 {
		c := dialRaw(t, addr)
		if _, err := io.WriteString(c.c, "POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // their headers read, their bodies waited for
	probe := dialRaw(t, addr)
	probe.c.SetDeadline(time.Now().Add(8 * time.Second))
	if _, err := io.WriteString(probe.c, "GET /livez HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(probe.r, nil)
	if err != nil {
		t.Fatalf("/livez at a cap held by slow bodies: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/livez: %d", res.StatusCode)
	}
}
