package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
)

// TestAdmission: past MaxRunning, requests wait for a running one to finish; past
// MaxWaiting too, they are refused at once with 503 SERVICE_UNAVAILABLE and
// Retry-After, having run nothing; the waiting one runs when a slot frees.
func TestAdmission(t *testing.T) {
	a := newAPIWith(t, server.Config{MaxRunning: 1, MaxWaiting: 1})
	overflow(t, a, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", nil)
	// With the slot free, requests run again.
	if r := a.query(`{ segments { totalCount } }`, nil); r.status != http.StatusOK || len(r.res.Errors) != 0 {
		t.Errorf("after the queue drained: %d %s", r.status, r.body)
	}
}

// TestAdmissionPerCaller: past MaxRunningPerCaller, a caller's requests wait for its
// running ones; past MaxWaitingPerCaller too, they are refused at once with 429
// TOO_MANY_CONCURRENT_REQUESTS and Retry-After, having run nothing, while another
// key of the same workspace is served as usual; the waiting one runs when its
// caller's slot frees.
func TestAdmissionPerCaller(t *testing.T) {
	a := newAPIWith(t, server.Config{MaxRunningPerCaller: 1, MaxWaitingPerCaller: 1})
	other, _ := a.withKey(t, store.NewAPIKey{Name: "Another integration"})
	overflow(t, a, http.StatusTooManyRequests, "TOO_MANY_CONCURRENT_REQUESTS", func() {
		// Another caller is not held back by this one's requests.
		if r := other.query(`{ segments { totalCount } }`, nil); r.status != http.StatusOK || len(r.res.Errors) != 0 {
			t.Errorf("another key while the first was at its bound: %d %s", r.status, r.body)
		}
	})
}

// TestOneCallerCannotTakeThePool: with the default bounds, one key's requests stuck
// in the database (waiting for a row lock, as slow statements hold their
// connections) hold at most DefaultMaxRunningPerCaller of the pool's connections:
// another key of the workspace is answered at once. Without the bound, 16 stuck
// requests would hold all 10 connections of the test's pool, and the other key would
// wait for them. Of the 16, 4 run, 8 wait and 4 are refused at once.
func TestOneCallerCannotTakeThePool(t *testing.T) {
	a := newAPIWith(t, server.Config{})
	other, _ := a.withKey(t, store.NewAPIKey{Name: "Dashboard backend"})
	contacts := a.addContacts(phones(980_000, 3)...)
	seg := lockSegment(t, a, "Locked")

	const sent = 16
	replies := make(chan reply, sent)
	for range sent {
		go func() { replies <- a.query(assignCountDoc, assignVars(contacts, seg.id)) }()
	}
	// Stuck: waiting for a lock, the holder's or (queued behind it) another's.
	stuck := func() int {
		var n int
		if err := a.store.DB().QueryRowContext(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); stuck() < server.DefaultMaxRunningPerCaller; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of one key's requests stuck after 5 s, want %d", stuck(), server.DefaultMaxRunningPerCaller)
		}
	}
	time.Sleep(300 * time.Millisecond) // room for more to get stuck, were they let through
	if n := stuck(); n != server.DefaultMaxRunningPerCaller {
		t.Fatalf("%d of one key's requests hold a connection, stuck, want %d", n, server.DefaultMaxRunningPerCaller)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	res, err := other.postWith(ctx, `{ segments { totalCount } }`, nil)
	if err != nil || res.Status != http.StatusOK || len(res.Errors) != 0 {
		t.Fatalf("another key while the first had %d requests in flight: %v, %d %+v", sent, err, res.Status, res.Errors)
	}
	t.Logf("the other key answered in %v", time.Since(start))

	seg.release()
	statuses := map[int]int{}
	for range sent {
		statuses[(<-replies).status]++
	}
	refused := sent - server.DefaultMaxRunningPerCaller - server.DefaultMaxWaitingPerCaller
	if statuses[http.StatusOK] != sent-refused || statuses[http.StatusTooManyRequests] != refused {
		t.Errorf("statuses %v, want %d × 200 (running, then waiting) and %d × 429", statuses, sent-refused, refused)
	}
}

// overflow drives a bound of one running request and one waiting through a's
// client: the one allowed to run waits for a segment's lock; of two reads that
// follow, which need no lock, one waits and the other finds no room, refused with
// status, code and Retry-After 1 (which is which depends on their arrival). meanwhile,
// if set, runs while they wait. Once the lock is released, the assignment and the
// waiting read complete.
func overflow(t *testing.T, a *api, status int, code string, meanwhile func()) {
	t.Helper()
	contacts := a.addContacts(phones(970_000, 3)...)
	seg := lockSegment(t, a, "Locked")
	assigned := make(chan reply, 1)
	go func() { assigned <- a.query(assignCountDoc, assignVars(contacts, seg.id)) }()
	seg.waitBlocked(t, a, 1, 5*time.Second)

	const read = `{ segments { totalCount } }`
	reads := make(chan reply, 2)
	for range 2 {
		go func() { reads <- a.query(read, nil) }()
	}
	var refused reply
	select {
	case refused = <-reads:
	case <-time.After(5 * time.Second):
		t.Fatal("no read refused while one request ran and one waited")
	}
	refused.refused(t, status, code)
	if refused.header.Get("Retry-After") != "1" {
		t.Errorf("refused with Retry-After %q, want 1", refused.header.Get("Retry-After"))
	}
	if meanwhile != nil {
		meanwhile()
	}
	select {
	case r := <-reads:
		t.Fatalf("a read ran while the only running request was blocked: %d %s", r.status, r.body)
	case <-time.After(300 * time.Millisecond):
	}

	seg.release()
	var out struct {
		AssignContactsToSegments struct{ AssignedCount int } `json:"assignContactsToSegments"`
	}
	if r := <-assigned; r.status != http.StatusOK || json.Unmarshal(r.res.Data, &out) != nil || out.AssignContactsToSegments.AssignedCount != 3 {
		t.Errorf("the running assignment: %d %s", r.status, r.body)
	}
	var count struct{ Segments struct{ TotalCount int } }
	if r := <-reads; r.status != http.StatusOK || json.Unmarshal(r.res.Data, &count) != nil || count.Segments.TotalCount != 1 {
		t.Errorf("the waiting read: %d %s", r.status, r.body)
	}
}
