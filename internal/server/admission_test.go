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
	contacts := a.addContacts(phones(970_000, 3)...)
	seg := lockSegment(t, a, "Locked")

	// The one request allowed to run waits for the segment's lock.
	assigned := make(chan reply, 1)
	go func() { assigned <- a.query(assignCountDoc, assignVars(contacts, seg.id)) }()
	seg.waitBlocked(t, a, 1, 5*time.Second)

	// Of two reads, which need no lock, one waits for the slot and the other finds
	// no room: which is which depends on their arrival.
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
	refused.refused(t, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE")
	if refused.header.Get("Retry-After") == "" {
		t.Error("refused without Retry-After")
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
	// With the slot free, requests run again.
	if r := a.query(read, nil); r.status != http.StatusOK || len(r.res.Errors) != 0 {
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
	contacts := a.addContacts(phones(975_000, 3)...)
	seg := lockSegment(t, a, "Locked")

	// The caller's one running request waits for the segment's lock.
	assigned := make(chan reply, 1)
	go func() { assigned <- a.query(assignCountDoc, assignVars(contacts, seg.id)) }()
	seg.waitBlocked(t, a, 1, 5*time.Second)

	// Two reads of the same caller: one waits for its slot, the other finds no room.
	const read = `{ segments { totalCount } }`
	reads := make(chan reply, 2)
	for range 2 {
		go func() { reads <- a.query(read, nil) }()
	}
	var refused reply
	select {
	case refused = <-reads:
	case <-time.After(5 * time.Second):
		t.Fatal("no read refused while the caller had one request running and one waiting")
	}
	refused.refused(t, http.StatusTooManyRequests, "TOO_MANY_CONCURRENT_REQUESTS")
	if refused.header.Get("Retry-After") != "1" {
		t.Errorf("refused with Retry-After %q, want 1", refused.header.Get("Retry-After"))
	}

	// Another caller is not held back by this one's requests.
	if r := other.query(read, nil); r.status != http.StatusOK || len(r.res.Errors) != 0 {
		t.Errorf("another key while the first was at its bound: %d %s", r.status, r.body)
	}
	select {
	case r := <-reads:
		t.Fatalf("a read ran while its caller's only running request was blocked: %d %s", r.status, r.body)
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
