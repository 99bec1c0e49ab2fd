package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// idemBody is the JSON body of a GraphQL request: the bytes an Idempotency-Key is
// bound to.
func idemBody(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(err)
	}
	return b
}

// idemSend posts body with the Idempotency-Key header set to keys (none: no header)
// under ctx, without failing the test: it may run off the test's goroutine.
func (a *api) idemSend(ctx context.Context, body []byte, keys ...string) (rawResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return rawResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer res.Body.Close()
	out := rawResponse{status: res.StatusCode, header: res.Header}
	if out.body, err = io.ReadAll(res.Body); err != nil {
		return out, err
	}
	if err := json.Unmarshal(out.body, &out.decoded); err != nil {
		return out, errors.New("decode " + string(out.body) + ": " + err.Error())
	}
	return out, nil
}

// idemPost is idemSend on the test's goroutine, failing the test on a transport error.
func (a *api) idemPost(body []byte, keys ...string) rawResponse {
	a.t.Helper()
	res, err := a.idemSend(context.Background(), body, keys...)
	if err != nil {
		a.t.Fatal(err)
	}
	return res
}

// replayed reports whether the response is a replay.
func (r rawResponse) replayed() bool { return r.header.Get("Idempotent-Replayed") == "true" }

// payload decodes the one field of the response's data into dst.
func (r rawResponse) payload(t testing.TB, dst any) {
	t.Helper()
	if r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(r.decoded.Data, &out); err != nil || len(out) != 1 {
		t.Fatalf("data %s: %v", r.decoded.Data, err)
	}
	for _, raw := range out {
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
}

// sameAs fails the test unless r answers exactly like first, as a replay.
func (r rawResponse) sameAs(t testing.TB, first rawResponse) {
	t.Helper()
	if !r.replayed() {
		t.Errorf("no Idempotent-Replayed: true on a replay (status %d, body %s)", r.status, r.body)
	}
	if r.status != first.status || !bytes.Equal(r.body, first.body) {
		t.Errorf("replay differs:\nfirst  %d %s\nreplay %d %s", first.status, first.body, r.status, r.body)
	}
	if got, want := r.header.Get("Content-Type"), first.header.Get("Content-Type"); got != want {
		t.Errorf("replay has Content-Type %q, the first answer %q", got, want)
	}
}

// refusedWith fails the test unless r is a refusal with status and code.
func (r rawResponse) refusedWith(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status || len(r.decoded.Errors) != 1 || r.decoded.Errors[0].Extensions["code"] != code {
		t.Fatalf("status %d, body %s; want %d with %s", r.status, r.body, status, code)
	}
	if r.decoded.Errors[0].Message == "" {
		t.Errorf("refusal %s without a message", code)
	}
}

// idemRow describes the stored row of an idempotency key: "" when there is none,
// "in progress", or "done <status>".
func (a *api) idemRow(key string) string {
	a.t.Helper()
	var s string
	err := a.store.DB().QueryRowContext(context.Background(), `
		SELECT coalesce((SELECT CASE WHEN status IS NULL THEN 'in progress' ELSE 'done ' || status END
		                 FROM idempotency_keys WHERE workspace_id = $1 AND key = $2), '')`, a.ws.ID, key).Scan(&s)
	if err != nil {
		a.t.Fatal(err)
	}
	return s
}

func newKey() string { return rand.Text() }

// TestIdempotentReplay: a mutation sent again with its key applies once; every replay
// answers with the same status and byte-identical body, marked Idempotent-Replayed,
// and runs nothing but the key's lookup.
func TestIdempotentReplay(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	contacts := a.addContacts(phones(900_000, 5)...)
	seg := a.addSegment("Replayed")

	assign := idemBody(assignDoc, map[string]any{"in": map[string]any{"contactIds": contacts, "segmentIds": []string{seg}}})
	key := newKey()
	first := a.idemPost(assign, key)
	if first.replayed() {
		t.Error("the first answer is marked as a replay")
	}
	var p membershipPayload
	first.payload(t, &p)
	if p.AssignedCount != 5 {
		t.Fatalf("assignedCount %d, want 5", p.AssignedCount)
	}
	if got := a.idemRow(key); got != "done 200" {
		t.Fatalf("key stored as %q, want done 200", got)
	}
	// Someone else removes the memberships: a re-execution would assign 5 again.
	c.remove(contacts, []string{seg})
	for range 3 {
		a.idemPost(assign, key).sameAs(t, first)
		// The API key's lookup, the idempotency key's, and its answer's body, read once
		// the replay was charged: the mutation did not run.
		if n := a.statements(); n != 3 {
			t.Errorf("a replay sent %d SQL statements, want 3", n)
		}
	}
	c.checkCount(seg, 0)

	// createSegment replayed returns the segment it created, not TAKEN.
	create := idemBody(createSegmentDoc, map[string]any{"in": map[string]any{"name": "Festival Buyers", "contactIds": contacts[:2]}})
	key = newKey()
	first = a.idemPost(create, key)
	var sp segmentPayload
	first.payload(t, &sp)
	if sp.Segment == nil || len(sp.UserErrors) > 0 || sp.Segment.ContactCount != 2 {
		t.Fatalf("createSegment: %s", first.body)
	}
	for range 3 {
		again := a.idemPost(create, key)
		again.sameAs(t, first)
		var rp segmentPayload
		again.payload(t, &rp)
		if len(rp.UserErrors) > 0 {
			t.Errorf("replayed createSegment answers %v", rp.UserErrors)
		}
	}
	if n := a.segmentNamed("Festival Buyers"); n != 1 {
		t.Errorf("%d segments named Festival Buyers, want 1", n)
	}
	c.checkCount(sp.Segment.ID, 2)
}

// TestIdempotentConcurrentReplays: 100 identical requests with one key at once apply
// once: one of them runs, the others wait for its answer (polling, without holding a
// connection) and replay it byte for byte.
func TestIdempotentConcurrentReplays(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	entries := make([]map[string]any, 5)
	for i, p := range phones(910_000, 5) {
		entries[i] = map[string]any{"phone": p, "name": "Concurrent " + itoa(i)}
	}
	body := idemBody(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": entries}})
	key := newKey()

	const n = 100
	results := make([]rawResponse, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = a.idemSend(context.Background(), body, key)
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)

	executed, inProgress := 0, 0
	var ran rawResponse
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		switch {
		case r.status == http.StatusConflict:
			// Past the copies that may wait for the first's answer (8), told to retry.
			r.refusedWith(t, http.StatusConflict, "IDEMPOTENCY_KEY_IN_PROGRESS")
			inProgress++
		case !r.replayed():
			executed++
			ran = r
		}
	}
	if executed != 1 {
		t.Fatalf("%d of %d requests ran, want 1", executed, n)
	}
	for i, r := range results {
		if r.status == http.StatusConflict {
			results[i] = a.idemPost(body, key) // the retry
			results[i].sameAs(t, ran)
		}
		if r := results[i]; r.status != ran.status || !bytes.Equal(r.body, ran.body) {
			t.Fatalf("answers differ:\n%d %s\n%d %s", ran.status, ran.body, r.status, r.body)
		}
	}
	var p upsertPayload
	ran.payload(t, &p)
	if p.CreatedCount != 5 || p.UpdatedCount != 0 {
		t.Errorf("createdCount %d, updatedCount %d; want 5, 0", p.CreatedCount, p.UpdatedCount)
	}
	if got := c.contactCount(); got != 5 {
		t.Errorf("%d contacts, want 5", got)
	}
	t.Logf("%d concurrent requests with one key answered in %v (%d told to retry)", n, took, inProgress)
}

// TestDuplicateWaitsForTheFirst: requests arriving while the first with their key
// still runs wait for it and replay its answer, rather than running too; waiting, they
// hold no database connection and no place among the server's running requests:
// another workspace's query is answered at once with the server's 2 places taken by
// the first and a waiting copy. Held while they polled, 45 copies of one slow mutation
// took the server's 40 places, and other workspaces waited 9 s behind them. Copies
// past idempotency's bound (8 waiting) get 409 IDEMPOTENCY_KEY_IN_PROGRESS at once.
func TestDuplicateWaitsForTheFirst(t *testing.T) {
	a := newAPIWith(t, server.Config{MaxRunning: 2})
	other := a.as(t)
	contacts := a.addContacts(phones(920_000, 10)...)
	seg := lockSegment(t, a, "Locked")
	body := idemBody(assignCountDoc, assignVars(contacts, seg.id))
	key := newKey()

	type result struct {
		r   rawResponse
		err error
	}
	const waiting, beyond = 8, 5
	firstc, dupc := make(chan result, 1), make(chan result, waiting+beyond)
	go func() {
		r, err := a.idemSend(context.Background(), body, key)
		firstc <- result{r, err}
	}()
	seg.waitBlocked(t, a, 1, 5*time.Second)
	for range waiting + beyond {
		go func() {
			r, err := a.idemSend(context.Background(), body, key)
			dupc <- result{r, err}
		}()
	}
	for range beyond {
		var d result
		select {
		case d = <-dupc:
		case <-time.After(5 * time.Second):
			t.Fatalf("no copy past the bound of %d was refused: they all wait", waiting)
		}
		if d.err != nil {
			t.Fatal(d.err)
		}
		d.r.refusedWith(t, http.StatusConflict, "IDEMPOTENCY_KEY_IN_PROGRESS")
		if d.r.header.Get("Retry-After") == "" {
			t.Error("a copy past the bound got no Retry-After")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if blocked := seg.blocked(t, a); blocked != 1 {
		t.Errorf("%d statements wait for the lock, want 1: a duplicate ran", blocked)
	}
	select {
	case r := <-dupc:
		t.Fatalf("a duplicate answered before the first: %d %s", r.r.status, r.r.body)
	default:
	}
	// Were the duplicates holding places or connections, this query would wait for
	// the lock's release, which comes only after it.
	qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if res, err := other.postWith(qctx, `{ segments { totalCount } }`, nil); err != nil || len(res.Errors) > 0 {
		t.Fatalf("another workspace's query while duplicates wait: %v %+v (after %v): they hold places", err, res.Errors, time.Since(start))
	}
	t.Logf("another workspace's query while %d duplicates wait took %v", waiting, time.Since(start))
	seg.release()
	first := <-firstc
	if first.err != nil {
		t.Fatal(first.err)
	}
	if first.r.replayed() {
		t.Error("the first answer is marked as a replay")
	}
	for range waiting {
		d := <-dupc
		if d.err != nil {
			t.Fatal(d.err)
		}
		d.r.sameAs(t, first.r)
	}
	a.idemPost(body, key).sameAs(t, first.r) // a refused copy's retry
	var p membershipPayload
	first.r.payload(t, &p)
	if p.AssignedCount != 10 {
		t.Errorf("assignedCount %d, want 10", p.AssignedCount)
	}
	mutClient{a}.checkCount(seg.id, 10)
}

// newShuttingDownAPI is an API whose requests run under a base context that shutDown
// cancels as serve does once a shutdown's grace is over (cause graph.ErrShuttingDown).
func newShuttingDownAPI(t *testing.T) (a *api, shutDown func()) {
	t.Helper()
	s := storetest.Store(t)
	ws, key := storetest.Workspace(t, s)
	a = &api{t: t, key: key, ws: ws, store: s}
	h := server.Handler(storetest.AppStore(t), slog.New(slog.NewTextHandler(io.Discard, nil)), server.Config{})
	base, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	srv := httptest.NewUnstartedServer(h)
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a, func() { cancel(graph.ErrShuttingDown) }
}

// TestShutdownAnswersWaitingCopies: when a shutdown's grace is over, serve cancels the
// requests still running (cause graph.ErrShuttingDown); a copy waiting for its key's
// holder then returned without writing, and net/http answered its client, still
// connected, 200 with an empty body: for a mutation, as good as a success.
func TestShutdownAnswersWaitingCopies(t *testing.T) {
	a, shutDown := newShuttingDownAPI(t)
	release := lockTable(t, a, "segments")
	defer release()
	body := idemBody(`mutation { createSegment(input: {name: "Shut down"}) { segment { id } } }`, nil)
	k := newKey()
	holder := make(chan rawResponse, 1)
	go func() { r, _ := a.idemSend(context.Background(), body, k); holder <- r }()
	for a.idemRow(k) != "in progress" {
		time.Sleep(10 * time.Millisecond)
	}
	copyc := make(chan rawResponse, 1)
	go func() {
		r, err := a.idemSend(context.Background(), body, k)
		if err != nil {
			t.Error(err)
		}
		copyc <- r
	}()
	time.Sleep(300 * time.Millisecond) // the copy waits for the holder
	shutDown()                         // serve's shutdown once its grace is over
	r := <-copyc
	if r.status == http.StatusOK && len(bytes.TrimSpace(r.body)) == 0 {
		t.Fatalf("the waiting copy was answered 200 with an empty body")
	}
	r.refusedWith(t, http.StatusConflict, "IDEMPOTENCY_KEY_IN_PROGRESS")
	<-holder
}

// TestShutdownDuringTheClaim: a request cancelled by a shutdown while it claims its
// key is told SERVICE_UNAVAILABLE (retry), not TIMEOUT: it did not run out of time.
func TestShutdownDuringTheClaim(t *testing.T) {
	a, shutDown := newShuttingDownAPI(t)
	release := lockTable(t, a, "idempotency_keys") // the claim waits
	defer release()
	answer := make(chan rawResponse, 1)
	go func() {
		r, err := a.idemSend(context.Background(), idemBody(`mutation { createSegment(input: {name: "Shut down"}) { segment { id } } }`, nil), newKey())
		if err != nil {
			t.Error(err)
		}
		answer <- r
	}()
	time.Sleep(300 * time.Millisecond)
	shutDown() // serve's shutdown once its grace is over
	r := <-answer
	r.refusedWith(t, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

// TestIdempotencyKeyReused: the same key with another body is refused with 422
// IDEMPOTENCY_KEY_REUSED, and nothing of that request applies; the first answer is
// still replayed to its own body.
func TestIdempotencyKeyReused(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	upsert := func(phone string) []byte {
		return idemBody(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []map[string]any{{"phone": phone}}}})
	}
	key := newKey()
	first := a.idemPost(upsert("+919800000001"), key)
	var p upsertPayload
	first.payload(t, &p)
	if p.CreatedCount != 1 {
		t.Fatalf("createdCount %d, want 1", p.CreatedCount)
	}
	before := c.dbState()
	a.idemPost(upsert("+919800000002"), key).refusedWith(t, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED")
	// The same request in other bytes is another request, too.
	a.idemPost(append(upsert("+919800000001"), ' '), key).refusedWith(t, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED")
	c.unchanged(before)
	a.idemPost(upsert("+919800000001"), key).sameAs(t, first)
}

// TestIdempotencyKeysPerWorkspace: keys belong to a workspace: the same key with the
// same body applies once in each.
func TestIdempotencyKeysPerWorkspace(t *testing.T) {
	a := newAPI(t)
	b := a.as(t)
	body := idemBody(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []map[string]any{{"phone": "+919800000003"}}}})
	key := newKey()
	firsts := map[*api]rawResponse{}
	for _, cl := range []*api{a, b} {
		r := cl.idemPost(body, key)
		firsts[cl] = r
		if r.replayed() {
			t.Errorf("workspace %d got another workspace's answer", cl.ws.ID)
		}
		var p upsertPayload
		r.payload(t, &p)
		if p.CreatedCount != 1 {
			t.Errorf("workspace %d: createdCount %d, want 1", cl.ws.ID, p.CreatedCount)
		}
		if got := (mutClient{cl}).contactCount(); got != 1 {
			t.Errorf("workspace %d has %d contacts, want 1", cl.ws.ID, got)
		}
	}
	for _, cl := range []*api{a, b} {
		cl.idemPost(body, key).sameAs(t, firsts[cl])
	}
}

// TestInvalidIdempotencyKeys: a key that is empty, too long, not visible ASCII or sent
// twice is refused with 400 INVALID_IDEMPOTENCY_KEY before anything runs.
func TestInvalidIdempotencyKeys(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	body := idemBody(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []map[string]any{{"phone": "+919800000004"}}}})
	before := c.dbState()
	for name, keys := range map[string][]string{
		"empty":          {""},
		"256 characters": {strings.Repeat("k", 256)},
		"tab":            {"a\tb"},
		"space":          {"a b"},
		"not ASCII":      {"clé"},
		"two headers":    {"one", "two"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := a.idemSend(context.Background(), body, keys...)
			if err != nil {
				t.Fatal(err)
			}
			r.refusedWith(t, http.StatusBadRequest, "INVALID_IDEMPOTENCY_KEY")
		})
	}
	c.unchanged(before)
	var n int
	if err := a.store.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM idempotency_keys WHERE workspace_id = $1", a.ws.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d keys stored after refusals, want 0", n)
	}
	// The longest key, and every visible ASCII character, are fine.
	for _, key := range []string{strings.Repeat("k", 255), "!\"#$%&'()*+,-./0-9:;<=>?@A-Z[\\]^_`a-z{|}~"} {
		var p upsertPayload
		a.idemPost(body, key).payload(t, &p)
		if a.idemRow(key) != "done 200" {
			t.Errorf("key %q not stored", key)
		}
	}
}

// TestNoIdempotencyKeyUnchanged: without the header (or with it on a GET) requests run
// as always: every copy runs, nothing is stored or marked.
func TestNoIdempotencyKeyUnchanged(t *testing.T) {
	a := newAPI(t)
	create := idemBody(createSegmentDoc, map[string]any{"in": map[string]any{"name": "Twice", "contactIds": []string{}}})
	first, second := a.idemPost(create), a.idemPost(create)
	if first.replayed() || second.replayed() {
		t.Error("an answer without a key is marked as a replay")
	}
	var p1, p2 segmentPayload
	first.payload(t, &p1)
	second.payload(t, &p2)
	if len(p1.UserErrors) != 0 || len(p2.UserErrors) != 1 || p2.UserErrors[0].Code != "TAKEN" {
		t.Errorf("without a key the second createSegment must run and answer TAKEN: %s / %s", first.body, second.body)
	}

	req, _ := http.NewRequest(http.MethodGet, a.url+"/graphql?query="+url.QueryEscape("{ segments { totalCount } }"), nil)
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	req.Header.Set("Idempotency-Key", "get-key")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("GET with a key: status %d, replayed %q", res.StatusCode, res.Header.Get("Idempotent-Replayed"))
	}
	if got := a.idemRow("get-key"); got != "" {
		t.Errorf("a GET stored its key: %s", got)
	}
}

// TestRefusedMutationReplayed: a mutation refused with userErrors is a definitive
// answer: it is stored and replayed, even when running it again would now succeed.
func TestRefusedMutationReplayed(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	taken := a.addSegment("Taken")
	create := idemBody(createSegmentDoc, map[string]any{"in": map[string]any{"name": "Taken", "contactIds": []string{}}})
	key := newKey()
	first := a.idemPost(create, key)
	var p segmentPayload
	first.payload(t, &p)
	if len(p.UserErrors) != 1 || p.UserErrors[0].Code != "TAKEN" {
		t.Fatalf("want TAKEN: %s", first.body)
	}
	if got := a.idemRow(key); got != "done 200" {
		t.Fatalf("refusal stored as %q, want done 200", got)
	}
	c.deleteSegment(taken)
	a.idemPost(create, key).sameAs(t, first)
	var n int
	if err := a.store.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM segments WHERE workspace_id = $1", a.ws.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d segments after the replayed refusal, want 0", n)
	}
}

// TestReadKeyNotReplayed: a read key sending the body and Idempotency-Key of a
// mutation a read_write key ran is refused (FORBIDDEN), as without the key, not told
// the mutation succeeded; and its own requests keep no key.
func TestReadKeyNotReplayed(t *testing.T) {
	rw := newAPI(t)
	ro, _ := rw.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "BI export"})
	create := idemBody(createSegmentDoc, map[string]any{"in": map[string]any{"name": "Replayed?"}})
	key := newKey()
	var p segmentPayload
	rw.idemPost(create, key).payload(t, &p)
	checkUserErrors(t, p.UserErrors)
	for range 2 {
		r := ro.idemPost(create, key)
		if r.replayed() || len(r.decoded.Errors) != 1 || r.decoded.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("a read key's mutation: %d %s (replayed %v), want FORBIDDEN", r.status, r.body, r.replayed())
		}
	}
	own := newKey()
	ro.idemPost(create, own)
	ro.idemPost(idemBody(`{ segments { totalCount } }`, nil), newKey())
	if got := rw.idemRow(own); got != "" {
		t.Errorf("a read key's request kept its key: %s", got)
	}
}

// idemClaim inserts a claim in progress for body under key, as a request that is
// running (lease in the future) or died (lease in the past) leaves it.
func (a *api) idemClaim(key string, body []byte, lease time.Duration) {
	a.t.Helper()
	hash := sha256.Sum256(body)
	_, err := a.store.DB().ExecContext(context.Background(), `
		INSERT INTO idempotency_keys (workspace_id, key, request_hash, owner, locked_until)
		VALUES ($1, $2, $3, uuid_send(gen_random_uuid()), now() + $4 * interval '1 millisecond')`,
		a.ws.ID, key, hash[:], lease.Milliseconds())
	if err != nil {
		a.t.Fatal(err)
	}
}

// TestDeadClaimTakenOver: a claim whose request died (its lease ran out) is taken
// over by the next request with the key, which runs and applies.
func TestDeadClaimTakenOver(t *testing.T) {
	a := newAPI(t)
	contacts := a.addContacts(phones(930_000, 4)...)
	seg := a.addSegment("Orphaned")
	body := idemBody(assignCountDoc, assignVars(contacts, seg))
	key := newKey()
	a.idemClaim(key, body, -time.Second)

	r := a.idemPost(body, key)
	if r.replayed() {
		t.Errorf("the takeover is marked as a replay: %s", r.body)
	}
	var p struct{ AssignedCount int }
	r.payload(t, &p)
	if p.AssignedCount != 4 {
		t.Errorf("assignedCount %d, want 4", p.AssignedCount)
	}
	mutClient{a}.checkCount(seg, 4)
	a.idemPost(body, key).sameAs(t, r)
}

// TestLiveClaimWaitBounded: a request whose key another request holds (lease still
// running) waits no longer than its own deadline, then answers 409
// IDEMPOTENCY_KEY_IN_PROGRESS with Retry-After, having run nothing.
func TestLiveClaimWaitBounded(t *testing.T) {
	a := newAPIWith(t, server.Config{RequestTimeout: 400 * time.Millisecond})
	contacts := a.addContacts(phones(940_000, 3)...)
	seg := a.addSegment("Busy")
	body := idemBody(assignCountDoc, assignVars(contacts, seg))
	key := newKey()
	a.idemClaim(key, body, time.Minute)

	start := time.Now()
	r := a.idemPost(body, key)
	took := time.Since(start)
	r.refusedWith(t, http.StatusConflict, "IDEMPOTENCY_KEY_IN_PROGRESS")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if took < 400*time.Millisecond || took > 5*time.Second {
		t.Errorf("answered after %v, want soon after the 400 ms deadline", took)
	}
	mutClient{a}.checkCount(seg, 0)
	// Another body under the held key is refused at once.
	a.idemPost(idemBody(assignCountDoc, assignVars(contacts[:1], seg)), key).refusedWith(t, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED")
}

// TestTransientFailureNotStored: an attempt that fails for real (its deadline passes
// while it waits for a lock, or its client gives up) stores nothing: its claim is
// released, and the retry with the same key runs and applies.
func TestTransientFailureNotStored(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		a := newAPIWith(t, server.Config{RequestTimeout: 500 * time.Millisecond})
		contacts := a.addContacts(phones(950_000, 10)...)
		seg := lockSegment(t, a, "Locked")
		body := idemBody(assignCountDoc, assignVars(contacts, seg.id))
		key := newKey()

		failed := a.idemPost(body, key)
		if len(failed.decoded.Errors) == 0 || failed.decoded.Errors[0].Extensions["code"] != "TIMEOUT" {
			t.Fatalf("first attempt: %d %s; want TIMEOUT", failed.status, failed.body)
		}
		if got := a.idemRow(key); got != "" {
			t.Fatalf("the failed attempt left the key %s", got)
		}
		seg.waitBlocked(t, a, 0, 5*time.Second)
		seg.release()

		retry := a.idemPost(body, key)
		if retry.replayed() {
			t.Fatalf("the retry replayed the failure: %s", retry.body)
		}
		var p struct{ AssignedCount int }
		retry.payload(t, &p)
		if p.AssignedCount != 10 {
			t.Errorf("assignedCount %d, want 10", p.AssignedCount)
		}
		mutClient{a}.checkCount(seg.id, 10)
		a.idemPost(body, key).sameAs(t, retry)
	})

	t.Run("client gone", func(t *testing.T) {
		a := newAPI(t)
		contacts := a.addContacts(phones(960_000, 10)...)
		seg := lockSegment(t, a, "Locked")
		body := idemBody(assignCountDoc, assignVars(contacts, seg.id))
		key := newKey()

		ctx, giveUp := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := a.idemSend(ctx, body, key)
			errc <- err
		}()
		seg.waitBlocked(t, a, 1, 5*time.Second)
		giveUp()
		if err := <-errc; err == nil {
			t.Fatal("the request answered although its client gave up")
		}
		seg.waitBlocked(t, a, 0, 5*time.Second)
		seg.release()

		// The server releases the key once the failed attempt returns; a retry
		// arriving before that waits for it, then runs.
		retry := a.idemPost(body, key)
		if retry.replayed() {
			t.Fatalf("the retry replayed the failure: %s", retry.body)
		}
		var p struct{ AssignedCount int }
		retry.payload(t, &p)
		if p.AssignedCount != 10 {
			t.Errorf("assignedCount %d, want 10", p.AssignedCount)
		}
		mutClient{a}.checkCount(seg.id, 10)
		if got := a.idemRow(key); got != "done 200" {
			t.Errorf("key stored as %q, want done 200", got)
		}
	})
}

// TestMadeMutationAnswersItsPayload: a mutation made just before the request's
// deadline, or before its client left, still reads its payload for a while after, so
// that its answer is whole and its Idempotency-Key keeps it: the retry replays the
// segment that was created. The payload's read (here held back by a lock on the
// memberships, which creating an empty segment does not touch) failed with TIMEOUT or
// CLIENT_CLOSED_REQUEST, answers the key does not keep, and the retry ran the
// mutation again and was answered TAKEN.
func TestMadeMutationAnswersItsPayload(t *testing.T) {
	const doc = `mutation($in: CreateSegmentInput!) { createSegment(input: $in) {
		segment { id name contacts(first: 1) { nodes { id } } } userErrors { code } } }`
	for _, tc := range []struct {
		name   string
		leaves bool // the client leaves, instead of the deadline passing
	}{{"deadline", false}, {"client gone", true}} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPIWith(t, server.Config{RequestTimeout: 700 * time.Millisecond})
			body := idemBody(doc, map[string]any{"in": map[string]any{"name": "Made " + tc.name}})
			key := newKey()

			release := lockMemberships(t, a)
			ctx, leave := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer leave()
			if !tc.leaves {
				ctx = context.Background()
			}
			answered := make(chan error, 1)
			go func() {
				_, err := a.idemSend(ctx, body, key)
				answered <- err
			}()
			time.Sleep(time.Second) // past the deadline (or the client's leaving)
			release()
			err := <-answered
			if tc.leaves != (err != nil) {
				t.Fatalf("the first request: %v", err)
			}

			retry := a.idemAnswered(body, key)
			var p struct {
				Segment    *struct{ ID string }
				UserErrors []userError
			}
			retry.payload(t, &p)
			if !retry.replayed() || p.Segment == nil || len(p.UserErrors) > 0 {
				t.Fatalf("the retry: replayed %v, %s; want the first answer, with the segment", retry.replayed(), retry.body)
			}
		})
	}
}

// TestMadePayloadDialsInItsGrace: the payload read in a made mutation's grace may need
// a new connection (the pool had none idle: a loaded server, or connections past their
// idle time). Its context passed on the request's deadline, which the dial met at once:
// the payload failed with TIMEOUT although its grace had time left.
func TestMadePayloadDialsInItsGrace(t *testing.T) {
	a := newAPIWith(t, server.Config{RequestTimeout: 700 * time.Millisecond})
	ids := a.addContacts(phones(962_000, 1)...)
	a.addSegment("Dialled", ids...)
	db := a.app.DB()
	release := lockMemberships(t, a)
	// Every statement from now on dials a connection of its own.
	db.SetMaxIdleConns(0)
	t.Cleanup(func() { db.SetMaxIdleConns(db.Stats().MaxOpenConnections) })
	answered := make(chan rawResponse, 1)
	go func() {
		// The contact's segments wait for the lock, past the deadline; each segment's
		// contacts are read after them, in the grace, on a new connection.
		r, _ := a.idemSend(context.Background(), idemBody(`mutation($id: ID!) { updateContact(input: {id: $id, name: "Dialled"}) {
			contact { segments { name contacts(first: 1) { totalCount } } } } }`, map[string]any{"id": ids[0]}), newKey())
		answered <- r
	}()
	time.Sleep(time.Second)
	release()
	r := <-answered
	if want := `{"data":{"updateContact":{"contact":{"segments":[{"name":"Dialled","contacts":{"totalCount":1}}]}}}`; !strings.HasPrefix(string(r.body), strings.TrimSuffix(want, "}")) {
		t.Errorf("the payload read in the grace: %d %s; want %s", r.status, r.body, want)
	}
}

// TestHalfMadeRequestReplayed: a request whose first mutation was made and whose
// second timed out is answered alike when retried with its key, though its answer
// holds a TIMEOUT: run again, it would make the first twice. Its answer was not kept,
// and the retry was answered TAKEN for the segment the first run had created.
func TestHalfMadeRequestReplayed(t *testing.T) {
	a := newAPIWith(t, server.Config{RequestTimeout: 700 * time.Millisecond})
	contacts := a.addContacts(phones(963_000, 1)...)
	seg := a.addSegment("Target")
	body := idemBody(`mutation($c: [ID!]!, $s: [ID!]!) {
		a: createSegment(input: {name: "Half made"}) { segment { id } userErrors { code } }
		b: assignContactsToSegments(input: {contactIds: $c, segmentIds: $s}) { assignedCount } }`,
		map[string]any{"c": contacts, "s": []string{seg}})
	key := newKey()

	release := lockMemberships(t, a)
	first := a.idemPost(body, key)
	release()
	if len(first.decoded.Errors) == 0 || first.decoded.Errors[0].Extensions["code"] != "TIMEOUT" {
		t.Fatalf("the first run: %d %s; want the assignment's TIMEOUT", first.status, first.body)
	}
	a.idemPost(body, key).sameAs(t, first)
	var out struct{ Segments struct{ TotalCount int } }
	a.do(`{ segments(search: "Half made") { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 1 {
		t.Errorf("%d segments named Half made, want 1", out.Segments.TotalCount)
	}
}

// TestMadePayloadPastItsGraceTimesOut: a made mutation whose client left, and whose
// payload outlasts its grace, keeps an answer saying TIMEOUT for its retry: its time
// ran out. It said CLIENT_CLOSED_REQUEST, a code no client is meant to see.
func TestMadePayloadPastItsGraceTimesOut(t *testing.T) {
	a := newAPI(t)
	body := idemBody(`mutation { createSegment(input: {name: "Outlasted"}) { segment { id contacts(first: 1) { nodes { id } } } } }`, nil)
	key := newKey()
	release := lockMemberships(t, a)
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	sent := make(chan error, 1)
	go func() {
		_, err := a.idemSend(ctx, body, key)
		sent <- err
	}()
	// The client leaves once the mutation is made, while its payload waits for the
	// lock. (It left after 300 ms, and on a loaded machine (make test through
	// PgBouncer) before the commit was known: the mutation then counted as not made.)
	for deadline := time.Now().Add(10 * time.Second); a.segmentNamed("Outlasted") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mutation was not made within 10 s")
		}
	}
	left := time.Now()
	leave()
	if err := <-sent; err == nil {
		t.Fatal("the client that left got an answer")
	}
	time.Sleep(3*time.Second - time.Since(left)) // the grace (2 s) runs out while the lock is held
	release()
	retry := a.idemAnswered(body, key)
	if !retry.replayed() || len(retry.decoded.Errors) != 1 || retry.decoded.Errors[0].Extensions["code"] != "TIMEOUT" {
		t.Errorf("the retry: replayed %v, %s; want the kept answer, with TIMEOUT", retry.replayed(), retry.body)
	}
}

// lockMemberships holds the memberships table until release (or the test's end), as a
// migration would: a mutation that does not touch it is made, and a payload that
// reads it waits.
func lockMemberships(t *testing.T, a *api) (release func()) {
	t.Helper()
	return lockTable(t, a, "memberships")
}

// lockTable holds table until release (or the test's end), as a migration would:
// every statement that reads it waits.
func lockTable(t *testing.T, a *api, table string) (release func()) {
	t.Helper()
	lock, err := a.store.DB().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
		lock.Rollback()
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Rollback() })
	return func() { lock.Rollback() }
}

// idemAnswered posts body with key until the key's first request has answered (409
// IDEMPOTENCY_KEY_IN_PROGRESS until then), for up to 5 s.
func (a *api) idemAnswered(body []byte, key string) rawResponse {
	a.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r := a.idemPost(body, key); r.status != http.StatusConflict || time.Now().After(deadline) {
			return r
		}
	}
}

// TestIdempotencyRefusalsKeepNothing: a request refused before it ran (a validation
// error, no "data") keeps no record of its key, which carries the corrected request
// next; one that ran is kept. Each of 100 refusals with a fresh key was stored: 100
// invalid documents of 222 KB grew idempotency_keys by megabytes, for free.
func TestIdempotencyRefusalsKeepNothing(t *testing.T) {
	a := newAPI(t)
	var b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&b, " a%069d: 1", i)
	}
	invalid := idemBody("{ workspace { id("+b.String()+") } }", nil)
	size := func() (rows, bytes int64) {
		t.Helper()
		if err := a.store.DB().QueryRowContext(context.Background(),
			`SELECT count(*), pg_total_relation_size('idempotency_keys') FROM idempotency_keys`).Scan(&rows, &bytes); err != nil {
			t.Fatal(err)
		}
		return rows, bytes
	}
	rows0, bytes0 := size()
	for range 100 {
		if res := a.idemPost(invalid, newKey()); res.status != http.StatusOK || len(res.decoded.Errors) == 0 || res.decoded.Data != nil {
			t.Fatalf("status %d, body %.200s", res.status, res.body)
		}
	}
	rows, bytes := size()
	t.Logf("100 invalid documents of %d B with fresh keys: %d rows, %d B more", len(invalid), rows-rows0, bytes-bytes0)
	if rows != rows0 {
		t.Errorf("%d rows kept for 100 refusals, want none", rows-rows0)
	}

	key := newKey()
	first := a.idemPost(invalid, key)
	if row := a.idemRow(key); row != "" {
		t.Fatalf("a refusal's key is %q, want none", row)
	}
	// Released, the key runs the corrected request, and keeps it (a mutation: a
	// query's key keeps nothing).
	fixed := idemBody(`mutation { createSegment(input: {name: "Corrected"}) { segment { id } } }`, nil)
	ran := a.idemPost(fixed, key)
	if ran.status != http.StatusOK || len(ran.decoded.Errors) > 0 || ran.replayed() {
		t.Fatalf("the corrected request: status %d, body %s", ran.status, ran.body)
	}
	if row := a.idemRow(key); row != "done 200" {
		t.Fatalf("the corrected request's key is %q, want done 200", row)
	}
	a.idemPost(fixed, key).sameAs(t, ran)
	a.idemPost(invalid, key).refusedWith(t, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED")
	if first.replayed() {
		t.Error("a refusal was replayed")
	}
}

// TestIdempotentQueryKeepsNothing: a query sent with an Idempotency-Key runs as
// without one, and its key keeps nothing: a repeat runs again, and sees a deletion.
// Kept, the answer of contactByPhone was replayed after the contact was deleted, its
// name and phone with it, and queries of 9 pages of 100 contacts (13 MB each) with
// fresh keys grew the shared table by 454 MB in 45 s.
func TestIdempotentQueryKeepsNothing(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	name := "Asha Rao"
	up, err := a.store.UpsertContacts(ctx, a.ws.ID, []crm.ContactInput{{Phone: "+919811100001", ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}}})
	if err != nil {
		t.Fatal(err)
	}
	lookup := idemBody(`query($p: String!) { contactByPhone(phone: $p) { id name phone } }`, map[string]any{"p": "+919811100001"})
	key := newKey()
	var found struct{ Name string }
	a.idemPost(lookup, key).payload(t, &found)
	if found.Name != name {
		t.Fatalf("contactByPhone: %+v", found)
	}
	if row := a.idemRow(key); row != "" {
		t.Errorf("a query kept its key: %s", row)
	}
	if _, err := a.store.DeleteContacts(ctx, a.ws.ID, crm.ContactIDs(up.Contacts), store.WithSegments); err != nil {
		t.Fatal(err)
	}
	again := a.idemPost(lookup, key)
	if again.replayed() || again.status != http.StatusOK || string(again.decoded.Data) != `{"contactByPhone":null}` {
		t.Errorf("the query again with its key, after the deletion: %d replayed %v %s", again.status, again.replayed(), again.body)
	}

	var b strings.Builder
	b.WriteString("{")
	for i := range 9 {
		fmt.Fprintf(&b, " a%d: contacts(first: 100) { nodes { id name phone attributes } }", i)
	}
	b.WriteString(" }")
	pages := idemBody(b.String(), nil)
	for range 5 {
		if r := a.idemPost(pages, newKey()); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
			t.Fatalf("%d %.300s", r.status, r.body)
		}
	}
	var rows int
	if err := a.store.DB().QueryRowContext(ctx, "SELECT count(*) FROM idempotency_keys WHERE workspace_id = $1", a.ws.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d keys kept for queries, want none", rows)
	}
}

// TestOversizedAnswerNotKept: a mutation whose answer is larger than
// idempotency.MaxStoredAnswer gets it whole, and its key is kept without it: a retry
// is answered 410 IDEMPOTENCY_ANSWER_NOT_KEPT, replayed, and the mutation does not run
// again. The answer was kept whole, whatever its size.
func TestOversizedAnswerNotKept(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	// 80 contacts of 15 KB of attributes: an upsert that reads them back answers 1.2 MB.
	in := make([]crm.ContactInput, 80)
	vars := make([]map[string]any, len(in))
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9198111%05d", i), ContactDetails: crm.ContactDetails{
			Attributes: crm.Some(map[string]any{"notes": strings.Repeat("x", 15_000)})}}
		vars[i] = map[string]any{"phone": in[i].Phone}
	}
	if _, err := a.store.UpsertContacts(ctx, a.ws.ID, in); err != nil {
		t.Fatal(err)
	}
	upsert := idemBody(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id attributes } userErrors { code } } }`,
		map[string]any{"in": map[string]any{"contacts": vars}})
	key := newKey()
	first := a.idemPost(upsert, key)
	if first.status != http.StatusOK || len(first.decoded.Errors) > 0 || len(first.body) <= idempotency.MaxStoredAnswer {
		t.Fatalf("the first answer: %d, %d bytes, %.300s", first.status, len(first.body), first.body)
	}
	t.Logf("the first answer: %d bytes", len(first.body))
	if row := a.idemRow(key); row != "done 410" {
		t.Errorf("the key is %q, want done 410", row)
	}
	for range 2 {
		r := a.idemPost(upsert, key)
		if r.status != http.StatusGone {
			t.Fatalf("a retry: %d, %d bytes, replayed %v; want 410", r.status, len(r.body), r.replayed())
		}
		r.refusedWith(t, http.StatusGone, idempotency.CodeAnswerNotKept)
		if !r.replayed() {
			t.Error("the refusal is not marked Idempotent-Replayed")
		}
		// The API key's lookup, the idempotency key's, and its answer's body.
		if n := a.statements(); n != 3 {
			t.Errorf("a replay sent %d SQL statements, want 3: the mutation ran again", n)
		}
	}
}

// TestIdempotencyBudget: the answers a workspace's keys keep add up to
// Config.IdempotencyBudget at most. A mutation whose answer would take its workspace
// over it gets its answer whole, and its key is kept without it, as an answer over
// MaxStoredAnswer is: a retry is answered 410 IDEMPOTENCY_ANSWER_NOT_KEPT, replayed,
// and the mutation does not run again; it costs no statement more. Another workspace
// keeps its answers whole, and the budget comes back as keys expire (the sweep).
// Upserts answering 1 MB each, sent with fresh keys, kept 465 MB in 45 s before.
func TestIdempotencyBudget(t *testing.T) {
	// Each answer reads back 10 KB of attributes: two fit in the budget, not three.
	a := newAPIWith(t, server.Config{IdempotencyBudget: 25_000})
	b := a.as(t)
	ctx := context.Background()
	upsert := func(i int) []byte {
		return idemBody(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id attributes } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"contacts": []map[string]any{{
				"phone": fmt.Sprintf("+9198222%05d", i), "attributes": map[string]any{"notes": strings.Repeat("x", 10_000)}}}}})
	}
	keys := []string{newKey(), newKey(), newKey()}
	var firsts []rawResponse
	var sent []int64
	for i, key := range keys {
		r := a.idemPost(upsert(i), key)
		if r.status != http.StatusOK || len(r.decoded.Errors) > 0 || len(r.body) < 10_000 {
			t.Fatalf("upsert %d: %d, %.300s", i, r.status, r.body)
		}
		firsts, sent = append(firsts, r), append(sent, a.statements())
	}
	for i, want := range []string{"done 200", "done 200", "done 410"} {
		if row := a.idemRow(keys[i]); row != want {
			t.Errorf("key %d is %q, want %s", i, row, want)
		}
	}
	// The first request on a server sweeps expired keys after it answered too.
	if sent[2] != sent[1] {
		t.Errorf("the answer kept without its body sent %d statements, the one kept whole %d", sent[2], sent[1])
	}
	a.idemPost(upsert(0), keys[0]).sameAs(t, firsts[0])
	for range 2 {
		r := a.idemPost(upsert(2), keys[2])
		r.refusedWith(t, http.StatusGone, idempotency.CodeAnswerNotKept)
		if !r.replayed() || !strings.Contains(string(r.body), "budget of 25000 bytes") {
			t.Errorf("a retry over the budget: replayed %v, %s", r.replayed(), r.body)
		}
		if n := a.statements(); n != 3 {
			t.Errorf("a replay sent %d SQL statements, want 3: the mutation ran again", n)
		}
	}

	// Another workspace's answers are its own budget's.
	key := newKey()
	if r := b.idemPost(upsert(0), key); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Fatalf("another workspace's upsert: %d, %.300s", r.status, r.body)
	}
	if row := b.idemRow(key); row != "done 200" {
		t.Errorf("another workspace's key is %q, want done 200", row)
	}

	// The sweep gives the expired keys' bytes back: the next answer is kept whole.
	if _, err := a.store.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
		WHERE workspace_id = $1 AND key IN ($2, $3)`, a.ws.ID, keys[0], keys[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.app.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 1000); err != nil {
		t.Fatal(err)
	}
	key = newKey()
	if r := a.idemPost(upsert(3), key); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Fatalf("an upsert after the sweep: %d, %.300s", r.status, r.body)
	}
	if row := a.idemRow(key); row != "done 200" {
		t.Errorf("after the sweep, a key is %q, want done 200", row)
	}
}

// TestIdempotencyKeyBudget: a workspace's kept keys are counted with their rows, and
// once they count twice Config.IdempotencyBudget, a mutation with a new key is refused
// before it runs: 429 IDEMPOTENCY_BUDGET_EXHAUSTED with Retry-After, the mutation not
// applied, no row kept. The keys already kept are still replayed, a query with a new
// key and a request without a key still run, another workspace keeps its keys, and
// the sweep makes room again.
// Counted by their answers alone, keys kept without their answers (about 640 bytes
// each, for a day) were never refused: a client sending fresh keys as fast as its
// rate limit allowed kept 1.3 GB a day of them.
func TestIdempotencyKeyBudget(t *testing.T) {
	a := newAPIWith(t, server.Config{IdempotencyBudget: 2_000})
	b := a.as(t)
	ctx := context.Background()
	upsert := func(i int) []byte {
		return idemBody(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { userErrors { code } } }`,
			map[string]any{"in": map[string]any{"contacts": []map[string]any{{"phone": fmt.Sprintf("+9198333%05d", i)}}}})
	}
	contacts := func(ws int64) (n int) {
		t.Helper()
		if err := a.store.DB().QueryRowContext(ctx, `SELECT count(*) FROM contacts WHERE workspace_id = $1`, ws).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var keys []string
	var firsts []rawResponse
	var refused rawResponse
	for i := range 100 {
		key := newKey()
		r := a.idemPost(upsert(i), key)
		if r.status == http.StatusTooManyRequests {
			refused = r
			if row := a.idemRow(key); row != "" {
				t.Errorf("the refused key is kept: %q", row)
			}
			break
		}
		if r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
			t.Fatalf("upsert %d: %d, %.300s", i, r.status, r.body)
		}
		keys, firsts = append(keys, key), append(firsts, r)
	}
	if refused.status == 0 {
		t.Fatalf("%d keys kept, none refused: the workspace's keys are bounded by no budget", len(keys))
	}
	refused.refusedWith(t, http.StatusTooManyRequests, idempotency.CodeBudgetExhausted)
	if refused.header.Get("Retry-After") == "" || !strings.Contains(string(refused.body), "budget of 2000") {
		t.Errorf("the refusal: Retry-After %q, %s", refused.header.Get("Retry-After"), refused.body)
	}
	if n := contacts(a.ws.ID); n != len(keys) {
		t.Errorf("%d contacts after %d upserts kept and one refused: the refused one ran", n, len(keys))
	}
	var counter int64
	if err := a.store.DB().QueryRowContext(ctx, `SELECT bytes FROM idempotency_budgets WHERE workspace_id = $1`, a.ws.ID).Scan(&counter); err != nil {
		t.Fatal(err)
	}
	if counter < 4_000 {
		t.Errorf("new keys refused at a count of %d, under twice the budget", counter)
	}
	if row := a.idemRow(keys[len(keys)-1]); row != "done 410" {
		t.Errorf("the last key kept is %q, want done 410 (over the answers' budget)", row)
	}

	// Kept keys are replayed, a query with a new key is answered (its key keeps
	// nothing), and a request without a key runs.
	a.idemPost(upsert(0), keys[0]).sameAs(t, firsts[0])
	key := newKey()
	if r := a.idemPost(idemBody(`{ contacts(first: 1) { totalCount } }`, nil), key); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Errorf("a query with a new key: %d, %.300s", r.status, r.body)
	}
	if row := a.idemRow(key); row != "" {
		t.Errorf("the query's key is kept: %q", row)
	}
	if r := a.idemPost(upsert(len(keys))); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Fatalf("an upsert without a key: %d, %.300s", r.status, r.body)
	}
	if n := contacts(a.ws.ID); n != len(keys)+1 {
		t.Errorf("%d contacts after the upsert without a key, want %d", n, len(keys)+1)
	}
	// Another workspace's keys are its own budget's.
	key = newKey()
	if r := b.idemPost(upsert(0), key); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Fatalf("another workspace's upsert: %d, %.300s", r.status, r.body)
	}
	if row := b.idemRow(key); row != "done 200" {
		t.Errorf("another workspace's key is %q, want done 200", row)
	}

	// The sweep gives the expired keys' bytes back: a new key runs again.
	if _, err := a.store.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
		WHERE workspace_id = $1 AND key = ANY($2)`, a.ws.ID, keys); err != nil {
		t.Fatal(err)
	}
	if _, err := a.app.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 1000); err != nil {
		t.Fatal(err)
	}
	key = newKey()
	if r := a.idemPost(upsert(99), key); r.status != http.StatusOK || len(r.decoded.Errors) > 0 {
		t.Fatalf("an upsert after the sweep: %d, %.300s", r.status, r.body)
	}
	if row := a.idemRow(key); row != "done 200" {
		t.Errorf("after the sweep, a key is %q, want done 200", row)
	}
}
