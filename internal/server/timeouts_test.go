package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
)

// lockedSegment is a segment whose row a transaction of the test holds locked, so that
// an assignment to it waits in the database for as long as the test wants.
type lockedSegment struct {
	id      string
	holder  *sql.Conn
	pid     int // the holder's backend
	release func()
}

func lockSegment(t *testing.T, a *api, name string) *lockedSegment {
	t.Helper()
	ctx := context.Background()
	l := &lockedSegment{id: a.addSegment(name)}
	rowID, err := globalid.DecodeAs(globalid.Segment, l.id)
	if err != nil {
		t.Fatal(err)
	}
	if l.holder, err = a.store.DB().Conn(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := l.holder.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid() FROM segments WHERE id = $1 FOR UPDATE", rowID).Scan(&l.pid); err != nil {
		t.Fatal(err)
	}
	done := false
	l.release = func() {
		if !done {
			done = true
			_ = tx.Rollback()
			l.holder.Close()
		}
	}
	t.Cleanup(l.release)
	return l
}

// blocked counts the backends waiting for the holder's lock.
func (l *lockedSegment) blocked(t *testing.T, a *api) int {
	t.Helper()
	var n int
	if err := a.store.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", l.pid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// queued counts the backends of the database waiting for a lock: for the holder's,
// or, queued behind its first waiter, for that waiter's turn (pg_blocking_pids names
// only the waiter ahead of them).
func (l *lockedSegment) queued(t *testing.T, a *api) int {
	t.Helper()
	var n int
	if err := a.store.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitBlocked polls until want backends wait for the lock, for up to d, and returns
// how long that took.
func (l *lockedSegment) waitBlocked(t *testing.T, a *api, want int, d time.Duration) time.Duration {
	t.Helper()
	return waitCount(t, "backends wait for the lock", want, d, func() int { return l.blocked(t, a) })
}

// waitQueued polls until want backends wait for the lock or behind its waiters (queued),
// for up to d.
func (l *lockedSegment) waitQueued(t *testing.T, a *api, want int, d time.Duration) {
	t.Helper()
	waitCount(t, "backends wait for the lock or behind its waiters", want, d, func() int { return l.queued(t, a) })
}

// waitCount polls count until it returns want, for up to d, and returns how long that
// took; what names what it counts, for the failure.
func waitCount(t *testing.T, what string, want int, d time.Duration, count func() int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		n := count()
		if n == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%d %s after %v, want %d", n, what, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postWith sends a GraphQL request under ctx and returns the response, or the
// transport error when the client gave up.
func (a *api) postWith(ctx context.Context, query string, vars map[string]any) (response, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	var out response
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	out.Status = res.StatusCode
	return out, json.NewDecoder(res.Body).Decode(&out)
}

const assignCountDoc = `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount userErrors { code } } }`

func assignVars(contacts []string, segments ...string) map[string]any {
	return map[string]any{"in": map[string]any{"contactIds": contacts, "segmentIds": segments}}
}

// TestClientGoneStopsItsSQL: when a client gives up on a request, the request's
// statement stops in the database too (within a second), nothing of it applies, and
// the pool serves the next requests at once.
func TestClientGoneStopsItsSQL(t *testing.T) {
	a := newAPI(t)
	contacts := a.addContacts(phones(800_000, 20)...)
	seg := lockSegment(t, a, "Locked")

	ctx, giveUp := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := a.postWith(ctx, assignCountDoc, assignVars(contacts, seg.id))
		errc <- err
	}()
	seg.waitBlocked(t, a, 1, 5*time.Second)
	giveUp()
	if err := <-errc; err == nil {
		t.Fatal("the request answered although its client gave up")
	}
	took := seg.waitBlocked(t, a, 0, 5*time.Second)
	if took > time.Second {
		t.Errorf("the statement ran on %v after its client gave up, want under 1 s", took)
	}
	t.Logf("statement stopped %v after the client gave up", took)

	// The pool serves at once: more requests than it has connections, while the lock
	// is still held.
	for i := range 25 {
		var out struct{ Segments struct{ TotalCount int } }
		a.do(`{ segments { totalCount } }`, nil, &out)
		if out.Segments.TotalCount != 1 {
			t.Fatalf("request %d: totalCount %d", i, out.Segments.TotalCount)
		}
	}
	seg.release()
	var out struct {
		AssignContactsToSegments struct{ AssignedCount int } `json:"assignContactsToSegments"`
	}
	a.do(assignCountDoc, assignVars(contacts, seg.id), &out)
	if got := out.AssignContactsToSegments.AssignedCount; got != 20 {
		t.Errorf("assignedCount %d after the abandoned attempt, want 20: it applied in part", got)
	}
}

// TestRequestDeadline: a request still running at its deadline answers TIMEOUT, its
// statement stops in the database, and nothing of it applies.
func TestRequestDeadline(t *testing.T) {
	a := newAPIWith(t, server.Config{RequestTimeout: 500 * time.Millisecond})
	contacts := a.addContacts(phones(810_000, 10)...)
	seg := lockSegment(t, a, "Locked")

	start := time.Now()
	res, err := a.postWith(context.Background(), assignCountDoc, assignVars(contacts, seg.id))
	answered := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) == 0 || res.Errors[0].Extensions["code"] != "TIMEOUT" {
		t.Fatalf("status %d, errors %+v, want TIMEOUT", res.Status, res.Errors)
	}
	if answered < 500*time.Millisecond || answered > 3*time.Second {
		t.Errorf("answered after %v, want soon after the 500 ms deadline", answered)
	}
	seg.waitBlocked(t, a, 0, time.Second)
	seg.release()
	var out struct {
		AssignContactsToSegments struct{ AssignedCount int } `json:"assignContactsToSegments"`
	}
	a.do(assignCountDoc, assignVars(contacts, seg.id), &out)
	if got := out.AssignContactsToSegments.AssignedCount; got != 10 {
		t.Errorf("assignedCount %d after the timed-out attempt, want 10", got)
	}
}

// stallingThrottle is a throttle whose next Take, once armed, answers only when the
// request's context has ended, as the database-backed one does when its statement
// cannot get a connection in time; the request is then served unthrottled (the
// throttle fails open), with no time left. Other Takes grant at once.
type stallingThrottle struct{ armed atomic.Bool }

func (s *stallingThrottle) Take(ctx context.Context, _ string, _ int) (limits.Status, error) {
	if !s.armed.Swap(false) {
		return limits.Status{}, nil
	}
	<-ctx.Done()
	return limits.Status{}, fmt.Errorf("throttle: %w", ctx.Err())
}

// TestDeadlineBeforeExecution: a request whose deadline passes after validation and
// before execution (here in the throttle) is answered 200 with TIMEOUT and null data,
// having run nothing. gqlgen's executor returns no response at all for such a request,
// which the transport once marshalled as nil: a panic, answered 500
// INTERNAL_SERVER_ERROR (seen under load, with requests that had waited for
// admission).
func TestDeadlineBeforeExecution(t *testing.T) {
	throttle := &stallingThrottle{}
	a := newAPIWith(t, server.Config{RequestTimeout: 300 * time.Millisecond, Throttle: throttle})
	contacts := a.addContacts(phones(820_000, 3)...)
	seg := a.addSegment("Not yet assigned")

	throttle.armed.Store(true)
	res, err := a.postWith(context.Background(), assignCountDoc, assignVars(contacts, seg))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK || len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "TIMEOUT" || string(res.Data) != "null" {
		t.Fatalf("status %d, data %s, errors %+v: want 200, null data and one TIMEOUT", res.Status, res.Data, res.Errors)
	}
	// Nothing ran: the same assignment, sent again, makes all three memberships.
	var out struct {
		AssignContactsToSegments struct{ AssignedCount int } `json:"assignContactsToSegments"`
	}
	a.do(assignCountDoc, assignVars(contacts, seg), &out)
	if got := out.AssignContactsToSegments.AssignedCount; got != 3 {
		t.Errorf("assignedCount %d after the request that timed out before running, want 3", got)
	}
}
