package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// The example runs against the real server (its HTTP handler on a real PostgreSQL),
// behind a proxy that injects the failures a partner meets in production.

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// env is a server, a workspace on it and its read_write key.
type env struct {
	url   string
	s     *store.Store
	ws    crm.Workspace
	key   auth.Key
	proxy *faults
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := storetest.Store(t)
	ws, key := storetest.Workspace(t, s)
	h := server.Handler(s, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Config{})
	f := &faults{next: h, seen: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &env{url: srv.URL + "/graphql", s: s, ws: ws, key: key, proxy: f}
}

// faults passes requests to the server, except that it answers the request numbered
// in unavailable with a proxy's 503 (Retry-After: 1, a body that is not JSON),
// answers the ones in throttled with the API's 429 THROTTLED, and loses the answer of
// the first mutation whose body contains lose, twice: the server runs it, the
// client's connection is closed before any answer. (Twice, because Go's transport
// itself retries a request with an Idempotency-Key once when a reused connection
// closes before answering.)
type faults struct {
	next        http.Handler
	before      func(body []byte) // when set, called with each request's body before it is served
	mu          sync.Mutex
	n           int
	unavailable map[int]bool
	throttled   map[int]bool
	lose        string
	lost        string         // the Idempotency-Key of the lost answer
	seen        map[string]int // requests per Idempotency-Key
	replayed    int            // answers replayed by the server
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	f.mu.Lock()
	f.n++
	n := f.n
	key := r.Header.Get("Idempotency-Key")
	if key != "" {
		f.seen[key]++
	}
	lose := f.lose != "" && key != "" && (f.lost == "" && bytes.Contains(body, []byte(f.lose)) || key == f.lost && f.seen[key] <= 2)
	if lose {
		f.lost = key
	}
	f.mu.Unlock()
	if f.before != nil {
		f.before(body)
	}
	switch {
	case f.unavailable[n]:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
		return
	case f.throttled[n]:
		w.Header().Set("Retry-After", "0")
		auth.WriteError(w, http.StatusTooManyRequests, "THROTTLED", "throttled: the operation costs 21 and 3 points are available, restoring 50 per second")
		return
	case lose:
		rec := httptest.NewRecorder()
		f.next.ServeHTTP(rec, r)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	rec := &replayRecorder{ResponseWriter: w}
	f.next.ServeHTTP(rec, r)
	if rec.replayed {
		f.mu.Lock()
		f.replayed++
		f.mu.Unlock()
	}
}

type replayRecorder struct {
	http.ResponseWriter
	replayed bool
}

func (r *replayRecorder) WriteHeader(status int) {
	r.replayed = r.Header().Get("Idempotent-Replayed") == "true"
	r.ResponseWriter.WriteHeader(status)
}

// run runs the example with the given arguments and environment.
func (e *env) run(t *testing.T, key auth.Key, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return e.runCtx(ctx, key, args...)
}

// runCtx runs the example until it ends or ctx is done.
func (e *env) runCtx(ctx context.Context, key auth.Key, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	getenv := func(name string) string {
		switch name {
		case "SEGMENTS_ENDPOINT":
			return e.url
		case "SEGMENTS_API_KEY":
			return string(key)
		}
		return ""
	}
	code = run(ctx, append([]string{"-backoff", "20ms"}, args...), getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// counts returns the workspace's contacts and each segment's size, from the
// memberships themselves (not the counters), by segment name; it fails the test when
// a counter differs.
func (e *env) counts(t *testing.T) (int, map[string]int) {
	t.Helper()
	ctx := context.Background()
	var contacts int
	if err := e.s.DB().QueryRowContext(ctx, "SELECT count(*) FROM contacts WHERE workspace_id = $1", e.ws.ID).Scan(&contacts); err != nil {
		t.Fatal(err)
	}
	rows, err := e.s.DB().QueryContext(ctx, `SELECT s.name, s.contact_count, count(m.contact_id)
		FROM segments s LEFT JOIN memberships m ON m.workspace_id = s.workspace_id AND m.segment_id = s.id
		WHERE s.workspace_id = $1 GROUP BY s.workspace_id, s.id`, e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	sizes := map[string]int{}
	for rows.Next() {
		var name string
		var counter, real int
		if err := rows.Scan(&name, &counter, &real); err != nil {
			t.Fatal(err)
		}
		if counter != real {
			t.Errorf("segment %q: contactCount %d, %d memberships", name, counter, real)
		}
		sizes[name] = real
	}
	return contacts, sizes
}

func (e *env) readOnlyKey(t *testing.T) auth.Key {
	t.Helper()
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CreateAPIKey(context.Background(), e.ws.ID, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix(), Scope: crm.ScopeRead}); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	if code, _, stderr := e.run(t, ""); code != 2 || !strings.Contains(stderr, "usage") {
		t.Errorf("without a key: exit %d, %q; want 2 and the usage", code, stderr)
	}
	if code, _, _ := e.run(t, e.key, "-chunk", "1001", "sync", "contacts.csv"); code != 2 {
		t.Errorf("chunk over the limit: exit %d, want 2", code)
	}
	// A wrong key is refused at once: retrying would not help.
	wrong, _ := auth.NewKey()
	code, stdout, stderr := e.run(t, wrong, "sync", "contacts.csv")
	if code != 1 || !strings.Contains(stderr, "invalid API key (HTTP 401, UNAUTHENTICATED)") || strings.Contains(stderr, "retry") || stdout != "" {
		t.Errorf("wrong key: exit %d, stdout %q, stderr %q; want 1 and UNAUTHENTICATED without retries", code, stdout, stderr)
	}
	// A read key may export but not sync.
	ro := e.readOnlyKey(t)
	code, _, stderr = e.run(t, ro, "sync", "contacts.csv")
	if code != 1 || !strings.Contains(stderr, "FORBIDDEN") || strings.Contains(stderr, "retry") {
		t.Errorf("read key: exit %d, stderr %q; want 1 and FORBIDDEN without retries", code, stderr)
	}
	if n, sizes := e.counts(t); n != 0 || len(sizes) != 0 {
		t.Errorf("refused syncs changed the workspace: %d contacts, segments %v", n, sizes)
	}
	if code, stdout, _ := e.run(t, ro, "-settle", "0", "export"); code != 0 || stdout != "phone,name,email,city,segments\n" {
		t.Errorf("export with a read key: exit %d, %q", code, stdout)
	}
}

// TestSync syncs the sample file through a 503, a 429 and a lost answer, then again.
func TestSync(t *testing.T) {
	e := newEnv(t)
	e.proxy.unavailable = map[int]bool{1: true}
	e.proxy.throttled = map[int]bool{3: true}
	e.proxy.lose = "upsertContacts"
	start := time.Now()
	code, stdout, stderr := e.run(t, e.key, "sync", "contacts.csv")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	want := `contacts: 4 created, 0 updated, 1 skipped
segments: 2 created
memberships: 4 added
Festival Buyers: 2 contacts
VIP Users: 2 contacts
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "line 6: skipped: ") || !strings.Contains(stderr, "(INVALID)") {
		t.Errorf("stderr does not report line 6, the invalid phone:\n%s", stderr)
	}
	for _, cause := range []string{"HTTP 503", "THROTTLED", "network: "} {
		if !strings.Contains(stderr, cause) {
			t.Errorf("no retry after %s:\n%s", cause, stderr)
		}
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("took %v: the Retry-After of 1 s was not honoured", took)
	}
	// The upsert whose answer was lost ran once: its retries, with the same key, got
	// the stored answer.
	if e.proxy.lost == "" || e.proxy.seen[e.proxy.lost] != 3 || e.proxy.replayed != 1 {
		t.Errorf("lost answer's key sent %d times, %d replays; want 3 and 1", e.proxy.seen[e.proxy.lost], e.proxy.replayed)
	}
	n, sizes := e.counts(t)
	if n != 4 || sizes["VIP Users"] != 2 || sizes["Festival Buyers"] != 2 || len(sizes) != 2 {
		t.Errorf("%d contacts, segments %v; want 4, VIP Users 2, Festival Buyers 2", n, sizes)
	}

	// Again: nothing changes.
	e.proxy.lose = ""
	code, stdout, _ = e.run(t, e.key, "sync", "contacts.csv")
	want = `contacts: 0 created, 0 updated, 1 skipped
segments: 0 created
memberships: 0 added
Festival Buyers: 2 contacts
VIP Users: 2 contacts
`
	if code != 0 || stdout != want {
		t.Errorf("second sync: exit %d, stdout:\n%s\nwant:\n%s", code, stdout, want)
	}
	if n2, sizes2 := e.counts(t); n2 != n || fmt.Sprint(sizes2) != fmt.Sprint(sizes) {
		t.Errorf("second sync changed the workspace: %d contacts, %v", n2, sizes2)
	}
}

// TestSyncLargeAndExport syncs 2,345 contacts in chunks of 1,000 and exports them over
// 24 pages.
func TestSyncLargeAndExport(t *testing.T) {
	e := newEnv(t)
	const n = 2345
	var b strings.Builder
	b.WriteString("phone,name,email,city,segments\n")
	segs := []string{"", "Gold", "Gold;Silver", "Silver;Bronze;Gold"}
	want := map[string]int{}
	for i := range n {
		s := segs[i%len(segs)]
		for name := range strings.SplitSeq(s, ";") {
			if name != "" {
				want[name]++
			}
		}
		fmt.Fprintf(&b, "+9198%08d,Contact %d,c%d@example.com,Pune,%s\n", i, i, i, s)
	}
	path := filepath.Join(t.TempDir(), "many.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := e.run(t, e.key, "sync", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	wantOut := fmt.Sprintf("contacts: %d created, 0 updated, 0 skipped\nsegments: 3 created\nmemberships: %d added\nBronze: %d contacts\nGold: %d contacts\nSilver: %d contacts\n",
		n, want["Gold"]+want["Silver"]+want["Bronze"], want["Bronze"], want["Gold"], want["Silver"])
	if stdout != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, wantOut)
	}
	got, sizes := e.counts(t)
	if got != n || fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("%d contacts, segments %v; want %d, %v", got, sizes, n, want)
	}
	// 3 upserts of at most 1,000 contacts, which put them in their segments too: 2,345
	// contacts would not fit in one request. (It took 3 assignments more, one per set
	// of segments, before addToSegmentIds.)
	mutations := 0
	for range e.proxy.seen {
		mutations++
	}
	if mutations != 3+3 {
		t.Errorf("%d mutations, want 6 (3 segments, 3 upsert chunks)", mutations)
	}

	code, stdout, stderr = e.run(t, e.readOnlyKey(t), "-settle", "0", "export")
	if code != 0 || !strings.Contains(stderr, fmt.Sprintf("exported %d contacts", n)) {
		t.Fatalf("export: exit %d, %s", code, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n+1 {
		t.Fatalf("%d lines, want %d", len(recs), n+1)
	}
	for i, rec := range recs[1:] {
		s := segs[i%len(segs)]
		sorted := strings.Split(s, ";")
		if s == "" {
			sorted = nil
		}
		wantRec := fmt.Sprintf("+9198%08d|Contact %d|c%d@example.com|Pune|%s", i, i, i, sortedNames(sorted))
		if got := strings.Join(rec, "|"); got != wantRec {
			t.Fatalf("line %d: %s, want %s", i+2, got, wantRec)
		}
	}
}

// sortedNames joins names in the order the API lists a contact's segments: by name.
func sortedNames(names []string) string {
	out := append([]string(nil), names...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return strings.Join(out, ";")
}

// client returns a client of the example for the test's own requests, with the
// workspace's read_write key and no retries.
func (e *env) client() *Client {
	return &Client{Endpoint: e.url, Key: string(e.key), Attempts: 1}
}

// upsert creates or updates contacts by phone, each named after its phone unless
// names gives its name, and returns their IDs.
func (e *env) upsert(phones []string, names ...string) ([]string, error) {
	contacts := make([]map[string]any, len(phones))
	for i, p := range phones {
		name := "Contact " + p
		if i < len(names) {
			name = names[i]
		}
		contacts[i] = map[string]any{"phone": p, "name": name}
	}
	var out struct {
		UpsertContacts struct {
			Contacts   []struct{ ID string } `json:"contacts"`
			UserErrors payloadError          `json:"userErrors"`
		} `json:"upsertContacts"`
	}
	const upsertIDs = `mutation UpsertContacts($input: UpsertContactsInput!) {
  upsertContacts(input: $input) { contacts { id } userErrors { field message code } }
}`
	if err := e.client().Mutate(context.Background(), upsertIDs, map[string]any{"input": map[string]any{"contacts": contacts}}, &out); err != nil {
		return nil, err
	}
	if errs := out.UpsertContacts.UserErrors; len(errs) > 0 {
		return nil, errs
	}
	ids := make([]string, len(phones))
	for i, c := range out.UpsertContacts.Contacts {
		ids[i] = c.ID
	}
	return ids, nil
}

// deleteContacts deletes contacts by ID.
func (e *env) deleteContacts(t *testing.T, ids ...string) {
	t.Helper()
	var out struct {
		DeleteContacts struct {
			UserErrors payloadError `json:"userErrors"`
		} `json:"deleteContacts"`
	}
	err := e.client().Mutate(context.Background(), `mutation Delete($input: DeleteContactsInput!) {
  deleteContacts(input: $input) { deletedContactIds userErrors { field message code } }
}`, map[string]any{"input": map[string]any{"ids": ids}}, &out)
	if err == nil && len(out.DeleteContacts.UserErrors) > 0 {
		err = out.DeleteContacts.UserErrors
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestExportFindsLateCommits exports while an upsert creating a contact waits for
// another contact's row lock, as the probe of docs/partners.md's Paging did: the new
// contact's createdAt is its transaction's start, before a contact created and
// committed meanwhile, so a walk through contacts oldest first reads that one and
// passes the new one's place before it commits, and misses it. The lock is released
// as the export asks for its second page, and the export still holds the contact:
// the feed lists a change only once every transaction that began before it has
// ended. The workspace's contacts fit in one page of contacts, but with the
// deletions before them the feed takes two.
func TestExportFindsLateCommits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const locked, late, after = "+919800000001", "+919800000002", "+919800000003"
	var others []string
	for i := range 150 {
		others = append(others, fmt.Sprintf("+91981%07d", i))
	}
	ids, err := e.upsert(others)
	if err != nil {
		t.Fatal(err)
	}
	e.deleteContacts(t, ids[:100]...)
	if _, err := e.upsert([]string{locked}); err != nil {
		t.Fatal(err)
	}

	// Hold the row lock of the first contact, as another transaction would.
	tx, err := e.s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT 1 FROM contacts WHERE workspace_id = $1 AND phone = $2 FOR UPDATE", e.ws.ID, locked); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.upsert([]string{late, locked})
		done <- err
	}()
	waitForLockWait(t, e)
	if _, err := e.upsert([]string{after}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var upsertErr error
	release := func() {
		once.Do(func() {
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
			if upsertErr = <-done; upsertErr == nil {
				waitForHorizon(t, e)
			}
		})
	}
	// A request for a page after the first: the walk has passed the late contact's
	// place.
	e.proxy.before = func(body []byte) {
		if bytes.Contains(body, []byte(`"after":"`)) {
			release()
		}
	}

	code, stdout, stderr := e.run(t, e.readOnlyKey(t), "-settle", "0", "export")
	release()
	if upsertErr != nil {
		t.Fatalf("the blocked upsert: %v", upsertErr)
	}
	if code != 0 {
		t.Fatalf("export: exit %d, %s", code, stderr)
	}
	var phones []string
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		phones = append(phones, rec[0])
	}
	// By phone: the three, then the 50 others left.
	if want := append([]string{locked, late, after}, others[100:]...); fmt.Sprint(phones) != fmt.Sprint(want) {
		t.Errorf("exported %d contacts, first %v; want %d, first %v\n%s", len(phones), phones[:min(3, len(phones))], len(want), want[:3], stderr)
	}
	if !strings.Contains(stderr, "exported 53 contacts") || strings.Contains(stderr, "in 1 pages") {
		t.Errorf("stderr: %s; want 53 contacts over more than a page", stderr)
	}
	// The late contact's createdAt precedes the one the walk read: the walk passed it.
	var lateFirst bool
	if err := e.s.DB().QueryRowContext(ctx, `SELECT (SELECT created_at FROM contacts WHERE workspace_id = $1 AND phone = $2)
		< (SELECT created_at FROM contacts WHERE workspace_id = $1 AND phone = $3)`, e.ws.ID, late, after).Scan(&lateFirst); err != nil {
		t.Fatal(err)
	}
	if !lateFirst {
		t.Error("the late contact was created after the other: the test did not make the walk pass it")
	}
}

// TestExportSettles: a contact that commits before the export begins, while an older
// transaction still runs, is not in the feed's end until that transaction ends; the
// export, which waits out -settle from its start and reads on, holds it, and one
// that does not wait (-settle 0) misses it.
func TestExportSettles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	older := func() *sql.Tx {
		// A transaction with an ID, older than the contact's, as a slow request's.
		tx, err := e.s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "SELECT pg_current_xact_id()"); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	exported := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := e.run(t, e.readOnlyKey(t), append(args, "export")...)
		if code != 0 {
			t.Fatalf("export %v: exit %d, %s", args, code, stderr)
		}
		return stdout
	}

	tx := older()
	if _, err := e.upsert([]string{"+919800000011"}); err != nil {
		t.Fatal(err)
	}
	if out := exported("-settle", "0"); strings.Contains(out, "+919800000011") {
		t.Fatalf("-settle 0 exported the contact behind an open transaction: the test shows nothing\n%s", out)
	}
	time.AfterFunc(300*time.Millisecond, func() { _ = tx.Rollback() })
	if out := exported("-settle", "3s"); !strings.Contains(out, "+919800000011") {
		t.Errorf("the export missed a contact committed before it began:\n%s", out)
	}
}

// waitForHorizon waits until the feeds list every change of the workspace
// committed so far: until the database's xmin horizon, which another transaction
// (a background ANALYZE) may hold back for a moment, passes them.
func waitForHorizon(t *testing.T, e *env) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var passed bool
		if err := e.s.DB().QueryRowContext(context.Background(), `SELECT pg_snapshot_xmin(pg_current_snapshot()) > ALL (
			SELECT change_xid FROM contacts WHERE workspace_id = $1
			UNION ALL SELECT change_xid FROM deleted_contacts WHERE workspace_id = $1
			UNION ALL SELECT change_xid FROM membership_changes WHERE workspace_id = $1)`, e.ws.ID).Scan(&passed); err != nil {
			t.Error(err)
			return
		}
		if passed {
			return
		}
	}
	t.Error("the xmin horizon did not pass the workspace's changes in 10 s")
}

// waitForLockWait waits until a session of the test's database waits for a lock.
func waitForLockWait(t *testing.T, e *env) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var n int
		if err := e.s.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatal("the upsert never waited for the row lock")
}

// writeFile writes a file of the test's own and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSyncNamesTheServerStoresOtherwise syncs a file naming two segments the
// workspace has, written as the server does not store them: with a no-break space
// (stored as a space) and with a combining accent (stored composed). Both are the
// workspace's segments, found though the file's names match none of the stored ones
// (the API answers TAKEN to creating them); an empty segment ID was sent instead,
// refused after the contacts were upserted, on every run.
func TestSyncNamesTheServerStoresOtherwise(t *testing.T) {
	e := newEnv(t)
	a := writeFile(t, "a.csv", "phone,name,email,city,segments\n"+
		"+919800000101,Asha,,Pune,Holi Buyers 2026;Café\n")
	if code, stdout, stderr := e.run(t, e.key, "sync", a); code != 0 {
		t.Fatalf("sync a.csv: exit %d\n%s\n%s", code, stdout, stderr)
	}
	b := writeFile(t, "b.csv", "phone,name,email,city,segments\n"+
		"+919800000102,Vikram,,Chennai,Holi\u00a0Buyers 2026\n"+
		"+919800000103,Meera,,Kochi,Cafe\u0301;Holi\u00a0Buyers 2026\n"+
		"+919800000104,Sam,,,Café\n")
	want := `contacts: 3 created, 0 updated, 0 skipped
segments: 0 created
memberships: 4 added
Café: 3 contacts
Holi Buyers 2026: 3 contacts
`
	for i := range 2 {
		code, stdout, stderr := e.run(t, e.key, "sync", b)
		if code != 0 || stdout != want {
			t.Fatalf("sync b.csv (run %d): exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", i+1, code, stdout, want, stderr)
		}
		want = strings.Replace(want, "3 created", "0 created", 1)
		want = strings.Replace(want, "4 added", "0 added", 1)
	}
	if n, sizes := e.counts(t); n != 4 || fmt.Sprint(sizes) != "map[Café:3 Holi Buyers 2026:3]" {
		t.Errorf("%d contacts, segments %v; want 4, Café 3 and Holi Buyers 2026 3", n, sizes)
	}
}

// TestSyncRefusedSegmentWritesNothing: a file naming a segment the API refuses is
// refused before any contact is written.
func TestSyncRefusedSegmentWritesNothing(t *testing.T) {
	e := newEnv(t)
	path := writeFile(t, "bad.csv", "phone,name,email,city,segments\n"+
		"+919800000201,Asha,,Pune,VIP\n"+
		"+919800000202,Vikram,,Chennai,Evil\u202eName\n")
	code, _, stderr := e.run(t, e.key, "sync", path)
	// Refused by segmentByName's lookup (BAD_USER_INPUT) before createSegment.
	if code != 1 || !strings.Contains(stderr, "line 3: segment") || !strings.Contains(stderr, "bidi control") {
		t.Errorf("exit %d, stderr %q; want 1 and line 3's segment refused for its bidi control", code, stderr)
	}
	if n, _ := e.counts(t); n != 0 {
		t.Errorf("%d contacts written by a refused sync, want 0", n)
	}
}

// TestSyncByteOrderMark syncs a file saved as Excel's "CSV UTF-8", which begins
// with a byte order mark: it was refused for its header.
func TestSyncByteOrderMark(t *testing.T) {
	e := newEnv(t)
	path := writeFile(t, "excel.csv", "\ufeffphone,name,email,city,segments\r\n+919800000301,Asha,,Pune,VIP\r\n")
	code, stdout, stderr := e.run(t, e.key, "sync", path)
	if code != 0 || !strings.Contains(stdout, "contacts: 1 created") || !strings.Contains(stdout, "VIP: 1 contacts") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestExportSyncRoundTrip exports contacts in segments whose names hold the
// separator ";" and the escape "\", syncs the file into another workspace and back
// into the same one: the memberships are the same. "Re;Buyers" was written
// "Holi Buyers 2026;Re;Buyers" and synced back as the segments "Re" and "Buyers".
func TestExportSyncRoundTrip(t *testing.T) {
	e := newEnv(t)
	ids, err := e.upsert([]string{"+919800000401", "+919800000402", "+919800000403"})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"Holi Buyers 2026", "Re;Buyers", `C:\Leads`, `Ends\`, `Ends\;`, `a\;b`, ";;"}
	var segIDs []string
	for _, name := range names {
		segIDs = append(segIDs, e.createSegment(t, name))
	}
	e.assign(t, ids[:1], segIDs...)
	e.assign(t, ids[1:2], segIDs[1], segIDs[3])
	e.assign(t, ids[2:], segIDs[0])

	ro := e.readOnlyKey(t)
	code, exported, stderr := e.run(t, ro, "-settle", "0", "export")
	if code != 0 {
		t.Fatalf("export: exit %d, %s", code, stderr)
	}
	if want := `+919800000402,Contact +919800000402,,,Ends\\;Re\;Buyers`; !strings.Contains(exported, want+"\n") {
		t.Errorf("export:\n%s\nhas no line %s", exported, want)
	}
	path := writeFile(t, "export.csv", exported)
	_, wantSizes := e.counts(t)

	other := newEnv(t)
	code, stdout, stderr := other.run(t, other.key, "sync", path)
	if code != 0 {
		t.Fatalf("sync into another workspace: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n, sizes := other.counts(t); n != 3 || fmt.Sprint(sizes) != fmt.Sprint(wantSizes) {
		t.Errorf("the other workspace: %d contacts, segments %v; want 3, %v", n, sizes, wantSizes)
	}
	code, again, stderr := other.run(t, other.readOnlyKey(t), "-settle", "0", "export")
	if code != 0 || again != exported {
		t.Errorf("the other workspace's export: exit %d, %s\n%s\nwant:\n%s", code, stderr, again, exported)
	}

	code, stdout, stderr = e.run(t, e.key, "sync", path)
	if code != 0 || !strings.Contains(stdout, "segments: 0 created\nmemberships: 0 added\n") {
		t.Errorf("sync back: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, sizes := e.counts(t); fmt.Sprint(sizes) != fmt.Sprint(wantSizes) {
		t.Errorf("sync back: segments %v, want %v", sizes, wantSizes)
	}
}

// createSegment creates a segment and returns its ID.
func (e *env) createSegment(t *testing.T, name string) string {
	t.Helper()
	var out struct {
		CreateSegment struct {
			Segment    *struct{ ID string } `json:"segment"`
			UserErrors payloadError         `json:"userErrors"`
		} `json:"createSegment"`
	}
	err := e.client().Mutate(context.Background(), createSegmentMutation, map[string]any{"input": map[string]any{"name": name}}, &out)
	if err == nil && len(out.CreateSegment.UserErrors) > 0 {
		err = out.CreateSegment.UserErrors
	}
	if err != nil {
		t.Fatalf("segment %q: %v", name, err)
	}
	return out.CreateSegment.Segment.ID
}

const assignMutation = `mutation Assign($input: AssignContactsToSegmentsInput!) {
  assignContactsToSegments(input: $input) {
    assignedCount
    userErrors { field message code }
  }
}`

// assign adds the contacts to the segments.
func (e *env) assign(t *testing.T, contactIDs []string, segmentIDs ...string) {
	t.Helper()
	var out struct {
		AssignContactsToSegments struct {
			UserErrors payloadError `json:"userErrors"`
		} `json:"assignContactsToSegments"`
	}
	in := map[string]any{"contactIds": contactIDs, "segmentIds": segmentIDs}
	err := e.client().Mutate(context.Background(), assignMutation, map[string]any{"input": in}, &out)
	if err == nil && len(out.AssignContactsToSegments.UserErrors) > 0 {
		err = out.AssignContactsToSegments.UserErrors
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestSegmentsCell: joinSegments writes any names so that splitSegments reads them
// back, and a "\" before anything but ";" and "\" is itself, as files written
// before names were escaped have it.
func TestSegmentsCell(t *testing.T) {
	names := []string{"Re;Buyers", `C:\Leads`, `Ends\`, `Ends\;`, ";;", `\\`, "Holi Buyers 2026"}
	if got := splitSegments(joinSegments(names)); fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("%q read back as %q", names, got)
	}
	for cell, want := range map[string][]string{
		`VIP Users;Festival Buyers`: {"VIP Users", "Festival Buyers"},
		` VIP ;; Gold ;`:            {"VIP", "Gold"},
		`C:\Leads;Re\;Buyers`:       {`C:\Leads`, "Re;Buyers"},
		`a\\;b\`:                    {`a\`, `b\`},
		``:                          nil,
	} {
		if got := splitSegments(cell); fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
			t.Errorf("%q: %q, want %q", cell, got, want)
		}
	}
}
