package server_test

import (
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
