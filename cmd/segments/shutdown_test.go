package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store/storetest"
)

// process is the command running as a real child process.
type process struct {
	cmd    *exec.Cmd
	url    string
	stdout *logtest.Buffer
	stderr *logtest.Buffer
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

var servingAt = regexp.MustCompile(`Serving the GraphQL API at http://([^/]+)/graphql`)

// startProcess runs "segments serve" on dbURL as a child process and waits until it
// serves. The process is killed when the test ends if it still runs.
func startProcess(t *testing.T, dbURL string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), asCommand+"=1", "DATABASE_URL="+dbURL, noExitSleep())
	stdout, stderr := &logtest.Buffer{}, &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stdout: stdout, stderr: stderr, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server log:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := servingAt.FindStringSubmatch(stdout.String()); m != nil {
			p.url = "http://" + m[1]
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("serve exited early: %v\n%s", p.err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up\n%s", stderr.String())
		}
	}
}

// TestServeSaysWhatItServes: the line serve prints names the playground only when
// it serves one; with --playground off it named a page that answered 404.
func TestServeSaysWhatItServes(t *testing.T) {
	dbURL := storetest.Database(t)
	for _, tc := range []struct {
		playground string
		page       int
	}{{"on", http.StatusOK}, {"off", http.StatusNotFound}} {
		p := startProcess(t, dbURL, "--playground", tc.playground)
		said := strings.Contains(p.stdout.String(), "the playground at "+p.url+"/")
		res, err := http.Get(p.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if said != (tc.page == http.StatusOK) || res.StatusCode != tc.page {
			t.Errorf("--playground %s: printed %q; / answers %d", tc.playground, p.stdout.String(), res.StatusCode)
		}
	}
}

// noExitSleep is the GORACE setting for a server process that this test binary
// starts as itself: built with -race (make test), it would otherwise sleep a second
// before it exits (ThreadSanitizer's atexit_sleep_ms, 1000 by default), which the
// tests' bounds on a shutdown's length counted: TestShutdownCancelsRequestsAfterGrace
// failed at 2.35-2.81 s against its 2.5 s, of which the server's own shutdown took
// 1.3-1.6.
func noExitSleep() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// waitExit waits up to d for the process to exit and returns how long it took.
func (p *process) waitExit(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-p.exited:
		return time.Since(start)
	case <-time.After(d):
		t.Fatalf("still running %v after SIGTERM", d)
		return 0
	}
}

// gqlResult is what one GraphQL request got: a transport error, or a status and body.
type gqlResult struct {
	err    error
	status int
	body   struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
}

// gql sends one GraphQL request on a connection of its own, so that a reset of that
// connection shows as this request's error.
func gql(url, key, query string, vars map[string]any) gqlResult {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var r gqlResult
	res, err := client.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer res.Body.Close()
	r.status = res.StatusCode
	r.err = json.NewDecoder(res.Body).Decode(&r.body)
	return r
}

// mustGQL sends a request that must succeed and decodes field of its data into dst.
func mustGQL(t *testing.T, url, key, query string, vars map[string]any, field string, dst any) {
	t.Helper()
	r := gql(url, key, query, vars)
	if r.err != nil || r.status != http.StatusOK || len(r.body.Errors) > 0 {
		t.Fatalf("%s: err %v, status %d, errors %+v", field, r.err, r.status, r.body.Errors)
	}
	if err := json.Unmarshal(r.body.Data[field], dst); err != nil {
		t.Fatal(err)
	}
}

// shutdownFixture is a server process with a workspace of 40 contacts and two
// segments, and a database connection of the test's own.
type shutdownFixture struct {
	p          *process
	key        string
	db         *pgx.Conn
	contacts   []string
	held, free string // global IDs
	heldID     int64
}

func newShutdownFixture(t *testing.T, args ...string) *shutdownFixture {
	t.Helper()
	if storetest.ThroughPgBouncer() {
		t.Skip("counts the server's sessions in pg_stat_activity, which belong to PgBouncer here")
	}
	dbURL := storetest.Database(t)
	f := &shutdownFixture{key: newWorkspace(t, env(map[string]string{"DATABASE_URL": dbURL}), "Shutdown")}
	f.p = startProcess(t, dbURL, args...)
	var err error
	if f.db, err = pgx.Connect(context.Background(), dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close(context.Background()) })

	in := make([]map[string]any, 40)
	for i := range in {
		in[i] = map[string]any{"phone": fmt.Sprintf("+9198%08d", 700_000+i)}
	}
	var up struct{ Contacts []struct{ ID string } }
	mustGQL(t, f.p.url, f.key, `mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, "upsertContacts", &up)
	for _, c := range up.Contacts {
		f.contacts = append(f.contacts, c.ID)
	}
	for _, name := range []string{"Held", "Free"} {
		var cs struct{ Segment struct{ ID string } }
		mustGQL(t, f.p.url, f.key, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } } }`,
			map[string]any{"in": map[string]any{"name": name}}, "createSegment", &cs)
		if name == "Held" {
			f.held = cs.Segment.ID
		} else {
			f.free = cs.Segment.ID
		}
	}
	if err := f.db.QueryRow(context.Background(), "SELECT id FROM segments WHERE name = 'Held'").Scan(&f.heldID); err != nil {
		t.Fatal(err)
	}
	return f
}

// holdSegment locks the Held segment's row in a transaction of the test until release
// is called: assignments to it wait, in flight, as long as the test wants.
func (f *shutdownFixture) holdSegment(t *testing.T) (release func()) {
	t.Helper()
	return f.hold(t, "SELECT 1 FROM segments WHERE id = $1 FOR UPDATE", f.heldID)
}

// hold runs statement, which takes a lock, in a transaction that keeps it until
// release (or the test's end).
func (f *shutdownFixture) hold(t *testing.T, statement string, args ...any) (release func()) {
	t.Helper()
	// A connection of its own: pg_stat_activity, which the test polls on f.db, is a
	// snapshot taken once per transaction.
	conn, err := pgx.Connect(context.Background(), f.db.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), statement, args...); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(context.Background())
			conn.Close(context.Background())
		})
	}
	t.Cleanup(release)
	return release
}

// startAssignments sends n assignments of 5 contacts each to Held and Free, each
// waiting on the held row, and returns their results as they finish.
func (f *shutdownFixture) startAssignments(t *testing.T, n int) <-chan gqlResult {
	t.Helper()
	out := make(chan gqlResult, n)
	for i := range n {
		go func() {
			out <- gql(f.p.url, f.key, `mutation($in: AssignContactsToSegmentsInput!) {
				assignContactsToSegments(input: $in) { assignedCount userErrors { code } } }`,
				map[string]any{"in": map[string]any{"contactIds": f.contacts[i*5 : i*5+5], "segmentIds": []string{f.held, f.free}}})
		}()
	}
	// In flight means waiting in the database for the held row.
	f.waitFor(t, "assignments waiting on the lock", func(n2 int) bool { return n2 == n },
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segments' AND wait_event_type = 'Lock'")
	return out
}

// waitFor polls a count query until ok holds, for up to 10 s.
func (f *shutdownFixture) waitFor(t *testing.T, what string, ok func(int) bool, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var n int
	for {
		if err := f.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: count %d after 10 s", what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSessionsGone waits until no session of the server is left in the database: a
// backend busy or waiting for a lock notices that its client closed the connection
// within client_connection_check_interval (1 s, set by the store), then ends.
func (f *shutdownFixture) waitSessionsGone(t *testing.T) {
	t.Helper()
	f.waitFor(t, "sessions of the server left after it exited", func(n int) bool { return n == 0 },
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segments'")
}

func status(url string) (int, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// TestGracefulShutdown sends SIGTERM to a server with assignments in flight: readiness
// flips at once while requests are still served, the listener closes after the drain
// delay, every request in flight completes and applies, and the process exits cleanly
// leaving no session behind.
func TestGracefulShutdown(t *testing.T) {
	// The one key's eight assignments in flight, and its query while they wait, run
	// at once: no bound per caller or workspace.
	f := newShutdownFixture(t, "--drain-delay", "1s", "--shutdown-timeout", "20s",
		"--max-running-per-caller", "-1", "--max-running-per-workspace", "-1")
	release := f.holdSegment(t)
	const inFlight = 8
	results := f.startAssignments(t, inFlight)

	signalled := time.Now()
	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness flips while the drain delay runs, and requests are still served.
	for {
		code, err := status(f.p.url + "/readyz")
		if err == nil && code == http.StatusServiceUnavailable {
			break
		}
		if time.Since(signalled) > 500*time.Millisecond {
			t.Fatalf("readyz still %d (%v) 500 ms after SIGTERM", code, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, err := status(f.p.url + "/livez"); err != nil || code != http.StatusOK {
		t.Fatalf("livez while draining: %d %v", code, err)
	}
	var ws struct{ Name string }
	mustGQL(t, f.p.url, f.key, `{ workspace { name } }`, nil, "workspace", &ws)

	// After the drain delay, new connections are refused.
	for {
		_, err := status(f.p.url + "/livez")
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if time.Since(signalled) > 3*time.Second {
			t.Fatalf("connections still accepted 3 s after SIGTERM (drain delay 1 s): %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if elapsed := time.Since(signalled); elapsed < time.Second {
		t.Errorf("listener closed %v after SIGTERM, before the drain delay of 1 s", elapsed)
	}
	select {
	case <-f.p.exited:
		t.Fatal("exited with requests in flight")
	default:
	}

	// The requests in flight complete, all of them, and apply.
	release()
	for range inFlight {
		r := <-results
		if r.err != nil || r.status != http.StatusOK || len(r.body.Errors) > 0 {
			t.Errorf("request in flight: err %v, status %d, errors %+v", r.err, r.status, r.body.Errors)
			continue
		}
		var p struct {
			AssignedCount int
			UserErrors    []any
		}
		_ = json.Unmarshal(r.body.Data["assignContactsToSegments"], &p)
		if p.AssignedCount != 10 || len(p.UserErrors) > 0 {
			t.Errorf("assignment in flight: %+v, want 10 pairs assigned", p)
		}
	}
	took := f.p.waitExit(t, 10*time.Second)
	if f.p.err != nil {
		t.Fatalf("exit: %v", f.p.err)
	}
	t.Logf("exited %v after the last request was released", took)
	var count, real int
	if err := f.db.QueryRow(context.Background(),
		"SELECT contact_count, (SELECT count(*) FROM memberships WHERE segment_id = $1) FROM segments WHERE id = $1", f.heldID).
		Scan(&count, &real); err != nil {
		t.Fatal(err)
	}
	if count != inFlight*5 || real != inFlight*5 {
		t.Errorf("Held: contactCount %d, memberships %d, want %d", count, real, inFlight*5)
	}
	f.waitSessionsGone(t)
}

// TestShutdownCancelsRequestsAfterGrace: requests still running when the grace period
// ends are cancelled; their clients get an UNAVAILABLE answer (not a reset), nothing
// of theirs applies, the process exits on time and no session stays behind, not even
// one idle in a transaction.
func TestShutdownCancelsRequestsAfterGrace(t *testing.T) {
	f := newShutdownFixture(t, "--shutdown-timeout", "1s")
	release := f.holdSegment(t)
	defer release()
	const inFlight = 3
	results := f.startAssignments(t, inFlight)

	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took := f.p.waitExit(t, 5*time.Second)
	if f.p.err != nil {
		t.Fatalf("exit: %v", f.p.err)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("exited %v after SIGTERM, want within the 1 s grace period and 1 s to cancel", took)
	}
	for range inFlight {
		r := <-results
		if r.err != nil {
			t.Errorf("request in flight got no answer: %v", r.err)
			continue
		}
		if len(r.body.Errors) == 0 || r.body.Errors[0].Extensions["code"] != "UNAVAILABLE" {
			t.Errorf("request in flight: status %d, errors %+v, want UNAVAILABLE", r.status, r.body.Errors)
		}
	}
	var real int
	if err := f.db.QueryRow(context.Background(), "SELECT count(*) FROM memberships").Scan(&real); err != nil {
		t.Fatal(err)
	}
	if real != 0 {
		t.Errorf("%d memberships applied by cancelled requests", real)
	}
	f.waitSessionsGone(t)
}

// TestShutdownEndsAMadePayloadsGrace: a mutation made before its deadline reads its
// payload for a while after it (graph's payload grace); a shutdown that cancels the
// requests still running ends that grace too, so that the request answers
// (UNAVAILABLE) and its Idempotency-Key keeps the answer before the server closes the
// database. The grace began with the end of the request's context, which the shutdown
// no longer reached: the payload ran on, the server closed the connection without an
// answer, and the key stayed claimed, for a retry to make the segment again.
func TestShutdownEndsAMadePayloadsGrace(t *testing.T) {
	f := newShutdownFixture(t, "--request-timeout", "1s", "--shutdown-timeout", "100ms")
	// A new segment's contacts wait for it; creating the segment does not.
	f.hold(t, "LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE")
	body, _ := json.Marshal(map[string]any{"query": `mutation { createSegment(input: {name: "Graced"}) {
		segment { id contacts(first: 1) { nodes { id } } } } }`})
	req, _ := http.NewRequest(http.MethodPost, f.p.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.key)
	req.Header.Set("Idempotency-Key", "graced")
	answered := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		answered <- err
	}()
	f.waitFor(t, "the payload waiting on the lock", func(n int) bool { return n == 1 },
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segments' AND wait_event_type = 'Lock'")
	time.Sleep(1100 * time.Millisecond) // past the request's deadline: in the payload's grace, ending 2 s after it
	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.p.waitExit(t, 10*time.Second)
	if err := <-answered; err != nil {
		t.Errorf("the request in its payload's grace got no answer: %v", err)
	}
	var finished bool
	if err := f.db.QueryRow(context.Background(), "SELECT status IS NOT NULL FROM idempotency_keys WHERE key = 'graced'").Scan(&finished); err != nil || !finished {
		t.Errorf("the key's answer is not kept (%v): a retry would make the segment again", err)
	}
}
