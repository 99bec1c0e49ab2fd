package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/pgserver"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// faultyDB is a PostgreSQL server of the test's own, reached through a TCP proxy that
// the test can cut, and that the test can restart.
type faultyDB struct {
	dir   string
	pg    *pgserver.Server
	proxy *toxiproxy.Proxy
	url   string // through the proxy
}

func newFaultyDB(t *testing.T) *faultyDB {
	t.Helper()
	f := &faultyDB{dir: storetest.ServerDir(t)}
	t.Cleanup(func() {
		if f.proxy != nil {
			f.proxy.Stop()
		}
		if f.pg != nil {
			f.pg.Stop()
		}
	})
	f.start(t, 0)
	logger := zerolog.Nop()
	f.proxy = toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), logger), "postgres",
		"127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", f.pg.Port()))
	f.proxy.Logger = &logger
	if err := f.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(f.pg.URL("segments"))
	u.Host = f.proxy.Listen
	f.url = u.String()
	return f
}

func (f *faultyDB) start(t *testing.T, port int) {
	t.Helper()
	pg, err := pgserver.Start(context.Background(), pgserver.Options{Dir: f.dir, Port: port, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	f.pg = pg
}

// restart stops PostgreSQL (fast shutdown: sessions end, open transactions roll back)
// and starts it again on the same port after down.
func (f *faultyDB) restart(t *testing.T, down time.Duration) {
	t.Helper()
	port := f.pg.Port()
	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(down)
	f.start(t, port)
}

// window is a span of time in which requests may fail.
type window struct{ from, to time.Time }

// probe is one answer of a health endpoint.
type probe struct {
	at     time.Time
	status int
}

// TestUnreachableDatabaseIsUnavailable: a request whose key the server remembers,
// sent while PostgreSQL cannot be reached, is told UNAVAILABLE (retry), not
// INTERNAL_SERVER_ERROR (a bug), and the log says which it was.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	db := newFaultyDB(t)
	s := storetest.MigratedStore(t, db.url, store.Options{MaxConns: 4, AppName: "unreachable"})
	s.DB().SetMaxIdleConns(0) // each request connects: none finds a pooled connection the cut closed
	ws, key := storetest.Workspace(t, s)
	_, uncached := storetest.Workspace(t, s)
	var log logtest.Buffer
	srv := httptest.NewServer(server.Handler(s, log.Logger(), server.Config{KeyCacheTTL: time.Minute}))
	defer srv.Close()
	a := &api{t: t, url: srv.URL, key: key, ws: ws, store: s}
	const q = `{ segments { totalCount } }`
	if res := a.post(q, nil); res.Status != http.StatusOK || len(res.Errors) > 0 {
		t.Fatalf("before the cut: %d %+v", res.Status, res.Errors)
	}
	if code := readyz(t, srv.URL); code != http.StatusOK {
		t.Fatalf("/readyz before the cut: %d", code)
	}
	db.proxy.Stop()
	defer db.proxy.Start()
	// The readiness probe's own connection, open since the probe above, is cut too.
	if code := readyz(t, srv.URL); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database unreachable: %d, want 503", code)
	}
	res := a.post(q, nil)
	if len(res.Errors) == 0 || res.Errors[0].Extensions["code"] != "UNAVAILABLE" || res.Errors[0].Extensions["requestId"] == nil {
		t.Errorf("database unreachable: %d %+v, want UNAVAILABLE with a requestId", res.Status, res.Errors)
	}
	if strings.Contains(log.String(), "resolver failed") || !strings.Contains(log.String(), "database unreachable") {
		t.Errorf("the log does not say the database was unreachable:\n%s", log.String())
	}
	// A key that is not remembered cannot be checked: 503, and when to try again.
	r := a.using(t, uncached).exchange(http.MethodPost, "/graphql", jsonBody(map[string]any{"query": q}), map[string]string{"Content-Type": ctJSON}, true)
	if r.status != http.StatusServiceUnavailable || r.code() != "SERVICE_UNAVAILABLE" || r.header.Get("Retry-After") == "" {
		t.Errorf("a key checked while the database is unreachable: %d %s, Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
}

// TestReadyWhileThePoolIsBusy: /readyz asks the database on a connection of its own,
// so that it answers 200 while every connection of the pool is held by statements
// waiting for a lock (counts behind a migration's or an operator's LOCK TABLE, say).
// On the pool, its ping waited for a connection past its 1 s bound and every instance
// under such a burst answered 503 at once, though PostgreSQL answered at once.
func TestReadyWhileThePoolIsBusy(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 2, AppName: "readyz"})
	srv := httptest.NewServer(server.Handler(s, slog.New(slog.DiscardHandler), server.Config{}))
	defer srv.Close()

	// A transaction, so that the lock holds through PgBouncer in transaction mode too.
	lock, err := storetest.Conn(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, "LOCK TABLE segments IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var blocked sync.WaitGroup
	defer blocked.Wait()
	defer lock.Rollback(ctx) // before the wait: it lets the statements finish
	for range 2 {
		blocked.Go(func() { s.DB().ExecContext(ctx, "SELECT count(*) FROM segments") })
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting int
		// pg_locks, not pg_stat_activity, which a transaction reads as it first found it.
		if err := lock.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE relation = 'segments'::regclass AND NOT granted").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 2 && s.DB().Stats().InUse == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statements wait for the lock, %d connections in use; want 2 and 2", waiting, s.DB().Stats().InUse)
		}
	}

	start := time.Now()
	code := readyz(t, srv.URL)
	if took := time.Since(start); code != http.StatusOK || took > 500*time.Millisecond {
		t.Errorf("/readyz with the pool held: %d after %v, want 200 at once", code, took)
	}
}

// readyz returns the status of GET /readyz at url.
func readyz(t *testing.T, url string) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestReadOnlyDatabaseServesQueries: with the database taking no writes (a hot standby
// after a failover, default_transaction_read_only for maintenance), queries are
// answered and a write is told UNAVAILABLE (retry), logged as a warning. Every
// request got 503 SERVICE_UNAVAILABLE and an ERROR "authenticate" line: the key's
// lookup records its last use, in a statement PostgreSQL refuses in a read-only
// transaction; a write would have been INTERNAL_SERVER_ERROR, a bug.
func TestReadOnlyDatabaseServesQueries(t *testing.T) {
	if storetest.ThroughPgBouncer() {
		// The setting reaches the sessions begun after it, and PgBouncer keeps those
		// it began before: requests would still write.
		t.Skip("PgBouncer's pooled sessions were begun writable")
	}
	a, owner, app, log := readOnlyCandidate(t)
	a.addSegment("Before the failover")
	keyed := idemBody(`mutation { createSegment(input: {name: "Keyed before"}) { segment { id name } } }`, nil)
	kept := newKey()
	first := a.idemPost(keyed, kept)
	readOnly(t, owner, true)
	app.DB().SetMaxIdleConns(0) // sessions begun before stay writable: each request opens one

	res := a.post(`{ segments { totalCount nodes { name } } }`, nil)
	if res.Status != http.StatusOK || len(res.Errors) > 0 || !strings.Contains(string(res.Data), "Before the failover") {
		t.Fatalf("a query of a read-only database: %d %+v %s", res.Status, res.Errors, res.Data)
	}
	res = a.post(`mutation { createSegment(input: {name: "During"}) { segment { id } } }`, nil)
	if len(res.Errors) == 0 || res.Errors[0].Extensions["code"] != "UNAVAILABLE" || res.Errors[0].Extensions["requestId"] == nil {
		t.Errorf("a write to a read-only database: %d %+v, want UNAVAILABLE with a requestId", res.Status, res.Errors)
	}
	// An Idempotency-Key whose answer is kept is replayed, by reads alone; a new one
	// cannot be claimed: 503 with Retry-After, a warning and no ERROR line (it was
	// "idempotency: store" at ERROR, and a replay was refused alike).
	a.idemPost(keyed, kept).sameAs(t, first)
	refused := a.idemPost(idemBody(`mutation { createSegment(input: {name: "Keyed during"}) { segment { id } } }`, nil), newKey())
	refused.refusedWith(t, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE")
	if refused.header.Get("Retry-After") == "" {
		t.Errorf("a key that cannot be claimed on a read-only database: no Retry-After")
	}
	if strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "database is read-only") {
		t.Errorf("the log does not say the database was read-only, or says it as an error:\n%s", log.String())
	}
}

// TestReadOnlyDatabaseKeyedQueries: on a database taking no writes, a request whose
// Idempotency-Key is free runs unrecorded as long as it changes nothing: a query is
// answered, and nothing is kept of it (the same key, once the database takes writes,
// runs again); a mutation is refused as before, 503 SERVICE_UNAVAILABLE with
// Retry-After and the WARN line, and nothing of it runs. Every keyed request was
// refused: a partner SDK that keys each POST had its reads fail through a failover,
// while unkeyed reads were served.
func TestReadOnlyDatabaseKeyedQueries(t *testing.T) {
	if storetest.ThroughPgBouncer() {
		t.Skip("PgBouncer's pooled sessions were begun writable")
	}
	a, owner, app, log := readOnlyCandidate(t)
	a.addSegment("Before the failover")
	app.DB().SetMaxIdleConns(0) // each request opens a session, begun as the database says
	readOnly(t, owner, true)

	query := idemBody(`{ segments { totalCount nodes { name } } }`, nil)
	queryKey := newKey()
	res := a.idemPost(query, queryKey)
	if res.status != http.StatusOK || len(res.decoded.Errors) > 0 || !strings.Contains(string(res.decoded.Data), "Before the failover") || res.replayed() {
		t.Fatalf("a keyed query of a read-only database: %d %s (replayed %v), want 200 with its data", res.status, res.body, res.replayed())
	}
	if row := a.idemRow(queryKey); row != "" {
		t.Errorf("the key of a query run unrecorded is %q, want none", row)
	}

	mutation := idemBody(`mutation { createSegment(input: {name: "Keyed during"}) { segment { id } } }`, nil)
	mutationKey := newKey()
	log.Reset()
	refused := a.idemPost(mutation, mutationKey)
	refused.refusedWith(t, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE")
	if refused.header.Get("Retry-After") == "" || refused.decoded.Data != nil {
		t.Errorf("a keyed mutation of a read-only database: Retry-After %q, data %s; want a Retry-After and no data", refused.header.Get("Retry-After"), refused.decoded.Data)
	}
	if got := log.String(); strings.Contains(got, "level=ERROR") || !strings.Contains(got, "level=WARN msg=\"database is read-only\" during=\"Idempotency-Key claim\"") {
		t.Errorf("the log does not warn that the key cannot be recorded, or logs an error:\n%s", got)
	}
	if n := a.segmentNamed("Keyed during"); n != 0 {
		t.Errorf("the refused mutation made %d segments", n)
	}

	readOnly(t, owner, false)
	a.addSegment("After the failover")
	again := a.idemPost(query, queryKey)
	if again.status != http.StatusOK || again.replayed() || !strings.Contains(string(again.decoded.Data), "After the failover") {
		t.Errorf("the query's key once the database takes writes: %d %s (replayed %v), want it run again", again.status, again.body, again.replayed())
	}
	if made := a.idemPost(mutation, mutationKey); made.status != http.StatusOK || made.replayed() || len(made.decoded.Errors) > 0 || a.segmentNamed("Keyed during") != 1 {
		t.Errorf("the mutation's key once the database takes writes: %d %s, want it run once", made.status, made.body)
	}
}

// readOnlyCandidate returns a server on a database of the test's own, as the
// application's role, whose database the owner's store can make read-only (readOnly),
// and the buffer of the server's log.
func readOnlyCandidate(t *testing.T) (a *api, owner, app *store.Store, log *logtest.Buffer) {
	t.Helper()
	owner, app = storetest.NewStores(t, store.Options{MaxConns: 4, AppName: "read-only", Tenant: storetest.AuthTenant})
	ws, key := storetest.Workspace(t, owner)
	log = &logtest.Buffer{}
	srv := httptest.NewServer(server.Handler(app, log.Logger(), server.Config{}))
	t.Cleanup(srv.Close)
	return &api{t: t, url: srv.URL, key: key, ws: ws, store: owner}, owner, app, log
}

// readOnly makes the database of owner take no writes in the sessions begun from now
// on (a standby after a failover, as default_transaction_read_only makes it), or
// writes again.
func readOnly(t *testing.T, owner *store.Store, on bool) {
	t.Helper()
	conn, err := owner.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	value := "off"
	if on {
		value = "on"
	}
	for _, stmt := range []string{
		// The session itself may have begun read-only, and ALTER DATABASE writes.
		"SET default_transaction_read_only = off",
		`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = ` + value + `', current_database()); END $$`,
	} {
		if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDatabaseStopsTheStatement: a request whose statement PostgreSQL stops, with
// the request's own time not up, is told TIMEOUT when the statement was cancelled
// (the database's statement_timeout, pg_cancel_backend) and UNAVAILABLE with a
// requestId when its connection was lost (pg_terminate_backend): transient failures
// the client retries. They were answered INTERNAL_SERVER_ERROR, a bug, and logged as
// "resolver failed", with PostgreSQL healthy. (A connection cut under a statement
// surfaces as driver.ErrBadConn, which the store retries on another connection:
// store.TestErrorClasses covers its class.)
func TestDatabaseStopsTheStatement(t *testing.T) {
	// A 1 s statement_timeout, the least the server's flag takes: a statement
	// waiting for a lock longer than that is stopped by PostgreSQL, the request's
	// deadline (10 s) far off.
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 4, AppName: "stopped", StatementTimeout: time.Second, Tenant: storetest.AuthTenant})
	ws, key := storetest.Workspace(t, owner)
	var log logtest.Buffer
	srv := httptest.NewServer(server.Handler(app, log.Logger(), server.Config{}))
	defer srv.Close()
	a := &api{t: t, url: srv.URL, key: key, ws: ws, store: owner, app: app}
	contacts := a.addContacts(phones(830_000, 10)...)

	for _, c := range []struct {
		name   string
		stop   func(t *testing.T, pid int) // stops the waiting statement of backend pid; nil: let it time out
		code   string
		logged string // the log's line for it
	}{
		{name: "statement_timeout", code: "TIMEOUT"},
		{name: "pg_cancel_backend", code: "TIMEOUT", stop: func(t *testing.T, pid int) {
			storetest.Exec(t, owner.DB(), "SELECT pg_cancel_backend($1)", pid)
		}},
		{name: "pg_terminate_backend", code: "UNAVAILABLE", logged: "database connection lost", stop: func(t *testing.T, pid int) {
			storetest.Exec(t, owner.DB(), "SELECT pg_terminate_backend($1)", pid)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			log.Reset()
			seg := lockSegment(t, a, c.name)
			defer seg.release()
			done := make(chan response, 1)
			start := time.Now()
			go func() {
				res, err := a.postWith(context.Background(), assignCountDoc, assignVars(contacts, seg.id))
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
			seg.waitBlocked(t, a, 1, 5*time.Second)
			if c.stop != nil {
				var pid int
				if err := owner.DB().QueryRowContext(context.Background(),
					"SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", seg.pid).Scan(&pid); err != nil {
					t.Fatal(err)
				}
				c.stop(t, pid)
			}
			res := <-done
			took := time.Since(start)
			if res.Status != http.StatusOK || len(res.Errors) == 0 || res.Errors[0].Extensions["code"] != c.code {
				t.Fatalf("after %v: status %d, errors %+v; want 200 and %s", took, res.Status, res.Errors, c.code)
			}
			if c.code == "UNAVAILABLE" && res.Errors[0].Extensions["requestId"] == nil {
				t.Errorf("UNAVAILABLE without a requestId: %+v", res.Errors)
			}
			if c.stop == nil && (took < time.Second || took > 5*time.Second) {
				t.Errorf("answered after %v, want soon after the 1 s statement_timeout", took)
			}
			if strings.Contains(log.String(), "resolver failed") || (c.logged != "" && !strings.Contains(log.String(), c.logged)) {
				t.Errorf("the log, want no \"resolver failed\" and %q:\n%s", c.logged, log.String())
			}
		})
	}
}

// TestDatabaseCutAndRestart runs steady traffic (reads and bulk assignments) while the
// database connection is cut for 3 s, and then while PostgreSQL restarts. The process
// goes on; /livez stays 200; /readyz turns 503 within 2 s of each fault and 200
// within 5 s of the database's return; requests fail only inside the fault windows;
// every bulk assignment is applied whole or reported failed (and then applied whole or
// not at all); every counter stays exact.
func TestDatabaseCutAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection takes about 20 s")
	}
	db := newFaultyDB(t)
	ctx := context.Background()
	s := storetest.MigratedStore(t, db.url, store.Options{MaxConns: 10, AppName: "faults"})
	ws, key := storetest.Workspace(t, s)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(server.Handler(s, log, server.Config{RequestTimeout: 5 * time.Second}))
	defer srv.Close()
	a := &api{t: t, url: srv.URL, key: key, ws: ws, store: s}

	const batch = 5
	var contacts []string
	for i := range 3 {
		contacts = append(contacts, a.addContacts(phones(900_000+i*1000, 1000)...)...)
	}
	segs := []string{a.addSegment("A"), a.addSegment("B"), a.addSegment("C")}

	type mutation struct {
		key      string // Idempotency-Key
		contacts []string
		ok       bool
	}
	var (
		mu        sync.Mutex
		mutations []mutation
		failures  []time.Time // when each failed request was sent and answered
		requests  atomic.Int64
		nextBatch atomic.Int64
		probes    = map[string][]probe{}
	)
	failed := func(sent time.Time) {
		mu.Lock()
		failures = append(failures, sent, time.Now())
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &api{t: t, url: srv.URL, key: key}
			for {
				select {
				case <-stop:
					return
				case <-time.After(15 * time.Millisecond):
				}
				sent := time.Now()
				requests.Add(1)
				if w%2 == 0 { // readers
					res, err := c.postWith(ctx, `{ segments(first: 10) { nodes { contactCount } } contacts(first: 20) { nodes { id segments { id } } } }`, nil)
					if err != nil || res.Status != http.StatusOK || len(res.Errors) > 0 {
						failed(sent)
					}
					continue
				}
				i := int(nextBatch.Add(1)) - 1
				if (i+1)*batch > len(contacts) {
					continue
				}
				m := mutation{key: fmt.Sprintf("fault-%d", i), contacts: contacts[i*batch : (i+1)*batch]}
				res, err := c.postKeyed(ctx, m.key, assignCountDoc, assignVars(m.contacts, segs...))
				m.ok = err == nil && res.Status == http.StatusOK && len(res.Errors) == 0 && strings.Contains(string(res.Data), `"assignedCount":15`)
				if !m.ok {
					failed(sent)
				}
				mu.Lock()
				mutations = append(mutations, m)
				mu.Unlock()
			}
		}()
	}
	for _, path := range []string{"/livez", "/readyz"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				p := probe{at: time.Now()}
				if res, err := client.Get(srv.URL + path); err == nil {
					p.status = res.StatusCode
					res.Body.Close()
				}
				mu.Lock()
				probes[path] = append(probes[path], p)
				mu.Unlock()
			}
		}()
	}

	time.Sleep(2 * time.Second)
	cut := time.Now()
	db.proxy.Stop() // closes every connection and refuses new ones
	time.Sleep(3 * time.Second)
	if err := db.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	time.Sleep(3 * time.Second)
	down := time.Now()
	db.restart(t, time.Second)
	up := time.Now()
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	// The fault windows: from the fault until the database has been back for the
	// readiness delay. A request in flight when a fault starts may fail too.
	// A request may fail when it was answered after the fault began, and was sent
	// before the database had been back for a second.
	const settle = time.Second
	faults := []window{{cut, restored.Add(settle)}, {down, up.Add(settle)}}
	var lastFailure [2]time.Duration
	for i := 0; i < len(failures); i += 2 {
		sent, answered := failures[i], failures[i+1]
		inside := false
		for k, w := range faults {
			if answered.After(w.from) && sent.Before(w.to) {
				inside = true
				lastFailure[k] = max(lastFailure[k], sent.Sub(w.to.Add(-settle)))
			}
		}
		if !inside {
			t.Errorf("a request sent at +%v (answered +%v) failed outside the fault windows", sent.Sub(cut), answered.Sub(cut))
		}
	}
	t.Logf("%d requests, %d failed; cut at +0, restored +%v, restart +%v..+%v; the last failed request was sent %v after the connection returned, %v after the restart",
		requests.Load(), len(failures)/2, restored.Sub(cut), down.Sub(cut), up.Sub(cut), lastFailure[0], lastFailure[1])

	for _, p := range probes["/livez"] {
		if p.status != http.StatusOK {
			t.Errorf("/livez answered %d at +%v", p.status, p.at.Sub(cut))
		}
	}
	ready := probes["/readyz"]
	sort.Slice(ready, func(i, j int) bool { return ready[i].at.Before(ready[j].at) })
	// firstAfter returns when /readyz first answered as wanted after from.
	firstAfter := func(from time.Time, ok func(int) bool) time.Duration {
		for _, p := range ready {
			if p.at.After(from) && ok(p.status) {
				return p.at.Sub(from)
			}
		}
		return time.Hour
	}
	unready := func(s int) bool { return s != http.StatusOK }
	isReady := func(s int) bool { return s == http.StatusOK }
	for _, c := range []struct {
		what  string
		took  time.Duration
		limit time.Duration
	}{
		{"/readyz 503 after the cut", firstAfter(cut, unready), 2 * time.Second},
		{"/readyz 200 after the connection returned", firstAfter(restored, isReady), 5 * time.Second},
		{"/readyz 503 after PostgreSQL stopped", firstAfter(down, unready), 2 * time.Second},
		{"/readyz 200 after PostgreSQL restarted", firstAfter(up, isReady), 5 * time.Second},
	} {
		t.Logf("%s: %v", c.what, c.took)
		if c.took > c.limit {
			t.Errorf("%s took %v, want within %v", c.what, c.took, c.limit)
		}
	}

	// Whole or nothing, per mutation.
	var applied, refused, unknown int
	for _, m := range mutations {
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM memberships WHERE workspace_id = $1 AND contact_id = ANY($2)",
			ws.ID, rowIDs(t, m.contacts)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		switch {
		case n == batch*len(segs) && m.ok:
			applied++
		case n == batch*len(segs):
			unknown++ // committed, but the answer was lost in the fault
		case n == 0 && !m.ok:
			refused++
		default:
			t.Errorf("assignment (reported ok: %v) applied %d of %d memberships", m.ok, n, batch*len(segs))
		}
	}
	t.Logf("bulk assignments: %d applied, %d failed and not applied, %d failed after committing", applied, refused, unknown)
	if applied == 0 || refused == 0 {
		t.Errorf("the traffic did not exercise both outcomes: %d applied, %d failed", applied, refused)
	}
	// A retry with the same Idempotency-Key, once the database is back, converges:
	// the assignment applies if it had not, and is not applied twice if it had.
	retried, inProgress := 0, 0
	for _, m := range mutations {
		if m.ok {
			continue
		}
		retried++
		// A claim whose release the fault prevented holds until its lease ends
		// (deadline + 5 s): the answer is 409 with Retry-After meanwhile.
		var res response
		var err error
		for start := time.Now(); ; {
			res, err = a.postKeyed(ctx, m.key, assignCountDoc, assignVars(m.contacts, segs...))
			if err != nil || res.Status != http.StatusConflict || time.Since(start) > 15*time.Second {
				break
			}
			inProgress++
			time.Sleep(time.Second)
		}
		if err != nil || res.Status != http.StatusOK || len(res.Errors) > 0 {
			t.Fatalf("retry of a failed assignment: %v, status %d, %+v", err, res.Status, res.Errors)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM memberships WHERE workspace_id = $1 AND contact_id = ANY($2)",
			ws.ID, rowIDs(t, m.contacts)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != batch*len(segs) {
			t.Errorf("after its retry, an assignment has %d of %d memberships", n, batch*len(segs))
		}
	}
	t.Logf("%d failed assignments retried with their Idempotency-Key: all converged (%d retries answered 409 in progress first)", retried, inProgress)

	var drift int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM segments s WHERE s.workspace_id = $1 AND s.contact_count <>
		(SELECT count(*) FROM memberships m WHERE m.workspace_id = s.workspace_id AND m.segment_id = s.id)`, ws.ID).Scan(&drift); err != nil {
		t.Fatal(err)
	}
	if drift != 0 {
		t.Errorf("%d segments' contactCount differs from their memberships", drift)
	}
}

// rowIDs decodes contacts' global IDs.
func rowIDs(t *testing.T, ids []string) []int64 {
	t.Helper()
	out := make([]int64, len(ids))
	for i, id := range ids {
		n, err := globalid.DecodeAs(globalid.Contact, id)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	return out
}

// postKeyed is postWith with an Idempotency-Key header.
func (a *api) postKeyed(ctx context.Context, key, query string, vars map[string]any) (response, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	req.Header.Set("Idempotency-Key", key)
	var out response
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	out.Status = res.StatusCode
	return out, json.NewDecoder(res.Body).Decode(&out)
}
