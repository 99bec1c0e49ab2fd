package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// pgThrottle returns a rate limiter on the tests' database, as serve builds it (as
// the application's role, under row-level security) but with a long timeout: a
// charge on a busy test machine could take longer than the default and fail open
// (TestRateLimitFailsOpen tests that).
func pgThrottle(t testing.TB, capacity int, rate float64) *store.RateLimiter {
	t.Helper()
	l, err := store.NewRateLimiter(storetest.AppStore(t), store.RateLimiterOptions{
		Capacity: capacity, RestoreRate: rate, Timeout: 10 * time.Second,
		Workspace: func(ctx context.Context) (int64, bool) {
			ws, ok := auth.WorkspaceFrom(ctx)
			return ws.ID, ok
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The costs of the requests these tests send (limits.Cost).
const (
	query101 = `{ segments(first: 100) { nodes { id } } }` // 1 + 100 × 1
	query11  = `{ segments(first: 10) { nodes { id } } }`  // 1 + 10 × 1
	// Mutations of those costs, for Idempotency-Keys, which keep no query's answer:
	// 10, the segment, and its members' connection of 89 (1 + 89).
	mutation101 = `mutation { createSegment(input: {name: "Replayed"}) { segment { id contacts(first: 89) { nodes { id } } } } }`
	mutation11  = `mutation { createSegment(input: {name: "Replayed"}) { segment { id } } }`
)

// query909 costs 9 × 101.
var query909 = func() string {
	var b strings.Builder
	b.WriteString("{")
	for i := range 9 {
		fmt.Fprintf(&b, " s%d: segments(first: 100) { nodes { id } }", i)
	}
	return b.String() + " }"
}()

// charged checks a request that ran: 200, no errors, cost charged, and a bucket of
// capacity points holding from left to left+slack.
func (r reply) charged(t testing.TB, cost, capacity, left, slack int) {
	t.Helper()
	if r.status != http.StatusOK || len(r.res.Errors) > 0 {
		t.Fatalf("status %d: %.300s", r.status, r.body)
	}
	if r.cost == nil || r.cost.RequestedQueryCost != cost || r.cost.ActualQueryCost != cost || r.cost.ThrottleStatus == nil {
		t.Fatalf("cost %s, want %d charged", r.body, cost)
	}
	if st := r.cost.ThrottleStatus; st.MaximumAvailable != capacity || st.CurrentlyAvailable < left || st.CurrentlyAvailable > left+slack {
		t.Fatalf("throttleStatus %+v, want %d of %d available (+%d)", *st, left, capacity, slack)
	}
}

// throttled checks a request refused by its bucket: 429 THROTTLED, nothing charged,
// the bucket's status, and a Retry-After in whole seconds between minWait and
// maxWait.
func (r reply) throttled(t testing.TB, cost, minWait, maxWait int) *limits.Status {
	t.Helper()
	r.refused(t, http.StatusTooManyRequests, limits.CodeThrottled)
	if r.cost == nil || r.cost.RequestedQueryCost != cost || r.cost.ActualQueryCost != 0 || r.cost.ThrottleStatus == nil {
		t.Fatalf("cost %s, want %d requested, nothing charged", r.body, cost)
	}
	wait, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || wait < minWait || wait > maxWait {
		t.Fatalf("Retry-After %q, want %d to %d seconds", r.header.Get("Retry-After"), minWait, maxWait)
	}
	return r.cost.ThrottleStatus
}

// TestRateLimited proves, through the real handler and the PostgreSQL token
// buckets, that a request its bucket cannot pay for is refused with 429, THROTTLED,
// a Retry-After in seconds (rounded up) and the bucket's status, and that nothing of
// it runs: no SQL beyond authentication's and the bucket's, no mutation applied. The
// requests that ran report the bucket's points exactly.
func TestRateLimited(t *testing.T) {
	const capacity, rate = 1000, 1.0
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults})
	start := time.Now()
	// Authentication's statements, and the bucket's: the baseline's requests were
	// paid from the instance's reserve, a throttled one asks the bucket's row.
	base := a.baseline() + 1
	slack := func() int { return int(time.Since(start).Seconds()*rate) + 1 }
	left := capacity - 4 // the baseline's 4 requests, 1 point each
	for range 9 {
		left -= 101
		a.query(query101, nil).charged(t, 101, capacity, left, slack())
	}
	// 90 left: a mutation costing 10 + 1 + 101 is refused and creates nothing.
	mutation := `mutation { createSegment(input: {name: "Throttled"}) { segment { id contacts(first: 100) { nodes { id } } } } }`
	r := a.query(mutation, nil)
	st := r.throttled(t, 112, 112-left-slack(), 112-left)
	if st.MaximumAvailable != capacity || st.RestoreRate != rate || st.CurrentlyAvailable < left || st.CurrentlyAvailable > left+slack() {
		t.Errorf("throttleStatus %+v, want %d of %d, %g/s", *st, left, capacity, rate)
	}
	if n := a.statements(); n != base {
		t.Errorf("a throttled request sent %d SQL statements, want %d (authentication and the bucket)", n, base)
	}
	a.query(query101, nil).throttled(t, 101, 101-left-slack(), 101-left)
	if n := a.statements(); n > base {
		t.Errorf("a throttled request sent %d SQL statements, want at most %d", n, base)
	}
	// What the bucket holds still runs: 11 of the 90 points.
	left -= 11
	a.query(query11, nil).charged(t, 11, capacity, left, slack())
	var out struct {
		Segments struct {
			TotalCount int `json:"totalCount"`
		} `json:"segments"`
	}
	a.do(`{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 0 {
		t.Errorf("%d segments created by a throttled mutation", out.Segments.TotalCount)
	}
}

// TestRateLimitRefills proves that a throttled client that waits for Retry-After
// gets through, and that an idle bucket refills to its capacity and no further.
func TestRateLimitRefills(t *testing.T) {
	const capacity, rate = 1000, 500.0
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults})
	a.query(query909, nil).charged(t, 909, capacity, 91, 50)
	r := a.query(query909, nil)
	r.throttled(t, 909, 1, 2) // (909 - 91) / 500 a second: 1.6 s, rounded up
	wait, _ := strconv.Atoi(r.header.Get("Retry-After"))
	time.Sleep(time.Duration(wait) * time.Second)
	a.query(query909, nil).charged(t, 909, capacity, 0, 91)
	// Idle for 3 s, it holds 1,000, not 1,500 and more.
	time.Sleep(3 * time.Second)
	a.query(query11, nil).charged(t, 11, capacity, capacity-11, 0)
}

// TestRateLimitSharedByServers proves that two servers (two handlers, each with its
// own rate limiter, as two instances would have) on one database charge one budget:
// one sees what the other spent, less at most the reserve the other holds (a chunk,
// at most capacity / 20: 50 points), and once the reserves sat idle and went back to
// the row, either sees the whole budget.
func TestRateLimitSharedByServers(t *testing.T) {
	const capacity, rate = 1000, 1.0
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults})
	srv := httptest.NewServer(server.Handler(a.app, slog.New(slog.NewTextHandler(io.Discard, nil)),
		server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults}))
	t.Cleanup(srv.Close)
	b := *a
	b.url = srv.URL

	start := time.Now()
	slack := func() int { return int(time.Since(start).Seconds()*rate) + 1 }
	// The first server took 959: the cost, and 50 as its reserve.
	a.query(query909, nil).charged(t, 909, capacity, 91, 3)
	st := b.query(query101, nil).throttled(t, 101, 57, 60) // (101 - 41) / 1 a second
	if st.CurrentlyAvailable < 41 || st.CurrentlyAvailable > 41+slack() {
		t.Errorf("the second server sees %d points, want the first one's 91 less its reserve of 50", st.CurrentlyAvailable)
	}
	// The second takes the cost and what is left of the row, 30, as its reserve.
	b.query(query11, nil).charged(t, 11, capacity, 30, slack())
	// Both reserves go back once idle for a second: 80 points, which either server
	// sees whole.
	time.Sleep(2500 * time.Millisecond)
	st = a.query(query101, nil).throttled(t, 101, 1, 21)
	if st.CurrentlyAvailable < 80 || st.CurrentlyAvailable > 80+slack() {
		t.Errorf("once the reserves went back the first server sees %d points, want 80 (+%d)", st.CurrentlyAvailable, slack())
	}
}

// TestRateLimitPerKeyAndUser proves that buckets are per API key and per dashboard
// user, not per workspace: a key that spent its budget holds back neither another key
// of its workspace nor the workspace's users, and one user neither another user.
func TestRateLimitPerKeyAndUser(t *testing.T) {
	const capacity, rate = 1000, 1.0
	secret := []byte("a shared secret of at least 32 bytes, for HS256")
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: "https://login.example.com/", Audience: []string{"segments-api"}, HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults, JWT: v})
	key2, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store.AddAPIKey(context.Background(), a.ws.ID, store.NewAPIKey{Hash: key2.Hash(), Prefix: key2.Prefix()}); err != nil {
		t.Fatal(err)
	}
	as := func(credential string) *api {
		c := *a
		c.key = auth.Key(credential)
		return &c
	}
	user := func(sub string) *api {
		now := time.Now()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "https://login.example.com/", "aud": "segments-api", "sub": sub,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			"workspace": globalid.Encode(globalid.Workspace, a.ws.ID),
		}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return as(tok)
	}

	a.query(query909, nil).charged(t, 909, capacity, 91, 3)
	a.query(query909, nil).throttled(t, 909, 800, 820)
	as(string(key2)).query(query909, nil).charged(t, 909, capacity, 91, 3)
	asha, vikram := user("asha"), user("vikram")
	asha.query(query909, nil).charged(t, 909, capacity, 91, 3)
	asha.query(query101, nil).throttled(t, 101, 5, 10)
	// Another token of the same user: the same bucket.
	user("asha").query(query101, nil).throttled(t, 101, 5, 10)
	vikram.query(query909, nil).charged(t, 909, capacity, 91, 3)
	// A subject of any length has its bucket (long ones are hashed into its name).
	long := user(strings.Repeat("a very long subject ", 50))
	long.query(query909, nil).charged(t, 909, capacity, 91, 3)
	long.query(query101, nil).throttled(t, 101, 5, 10)
}

// TestNoisyKeyDoesNotSlowOthers proves that a key hammering the API from several
// connections at once is throttled while another key of the same workspace is never
// throttled and keeps its latency, and reports that latency with and without the
// noise.
func TestNoisyKeyDoesNotSlowOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("measures latency under load")
	}
	const capacity, rate = 1000, 100.0
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults})
	quietKey, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store.AddAPIKey(context.Background(), a.ws.ID, store.NewAPIKey{Hash: quietKey.Hash(), Prefix: quietKey.Prefix()}); err != nil {
		t.Fatal(err)
	}
	quiet := *a
	quiet.key = quietKey
	a.addContacts("+919800000001", "+919800000002")

	// The quiet key's requests, one after another: 40 of 3 points each, 160 times in
	// all, well within its bucket (1,000 points, 100 more a second).
	measure := func() (p50, p95 time.Duration) {
		var ds []time.Duration
		for range 40 {
			start := time.Now()
			r := quiet.query(`{ segments(first: 2) { nodes { id } } }`, nil)
			ds = append(ds, time.Since(start))
			if r.status != http.StatusOK || len(r.res.Errors) > 0 {
				t.Fatalf("the quiet key: %d %.300s", r.status, r.body)
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)*95/100]
	}
	measure() // warm up
	calm50, calm95 := measure()

	// The noisy key: 4 connections sending 101-point requests, each every pace (0:
	// as fast as they are answered).
	type counts struct{ ok, throttled, other atomic.Int64 }
	noise := func(pace time.Duration) (p50, p95 time.Duration, c *counts) {
		c = &counts{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(pace):
					}
					switch a.status(query101) {
					case http.StatusOK:
						c.ok.Add(1)
					case http.StatusTooManyRequests:
						c.throttled.Add(1)
					default:
						c.other.Add(1)
					}
				}
			})
		}
		time.Sleep(300 * time.Millisecond) // the noisy bucket runs dry
		p50, p95 = measure()
		close(stop)
		wg.Wait()
		return p50, p95, c
	}
	// 400 requests a second, 400 times the key's budget (100 points a second).
	paced50, paced95, paced := noise(10 * time.Millisecond)
	flat50, flat95, flat := noise(0)

	t.Logf("quiet key: p50 %v p95 %v alone; beside the noisy key at 400 requests a second: p50 %v p95 %v (%d served, %d throttled); "+
		"beside it flat out: p50 %v p95 %v (%d served, %d throttled)",
		calm50, calm95, paced50, paced95, paced.ok.Load(), paced.throttled.Load(), flat50, flat95, flat.ok.Load(), flat.throttled.Load())
	for _, c := range []*counts{paced, flat} {
		if c.other.Load() > 0 {
			t.Errorf("%d noisy requests neither served nor throttled", c.other.Load())
		}
		if c.throttled.Load() == 0 {
			t.Errorf("the noisy key was never throttled (%d served)", c.ok.Load())
		}
	}
	// Served at most its budget: a full bucket and the refill while it ran.
	if served, max := paced.ok.Load()+flat.ok.Load(), int64(capacity+5*rate)/101; served > max {
		t.Errorf("the noisy key got %d requests of 101 points served, more than its budget of %d", served, max)
	}
	// Waiting behind the noisy key's bucket would show as tens of milliseconds (the
	// bounds leave room for a shared machine's load changing between the runs). Flat
	// out, the noise also takes the test machine's two cores from the in-process
	// server (measured: p50 15 to 20 ms under the race detector), so that bound only
	// catches the quiet key queueing behind the noisy one.
	if paced50 > 3*calm50+15*time.Millisecond {
		t.Errorf("the quiet key slowed from p50 %v to %v beside the noisy key", calm50, paced50)
	}
	if flat50 > 10*calm50+50*time.Millisecond {
		t.Errorf("the quiet key slowed from p50 %v to %v beside the noisy key flat out", calm50, flat50)
	}
}

// status POSTs a GraphQL request and returns its HTTP status (0 when it got no
// answer): for goroutines, which must not call t.Fatal.
func (a *api) status(q string) int {
	body, _ := json.Marshal(map[string]any{"query": q})
	req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// TestRateLimitFailsOpen proves what happens when the buckets' database is slow or
// broken: the request is served, unthrottled (throttleStatus null) but within the
// per-request limits, once the limiter's timeout passed, and the failure is
// logged, not shown. Its first charge is answered although the limiter's timeout
// (200 ms) is shorter than opening a connection on a loaded machine: the limiter
// opens them as it is made (it failed open there before).
func TestRateLimitFailsOpen(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 4, AppName: "ratelimit_test"})
	ws, key := storetest.Workspace(t, s)
	l, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: 1000, RestoreRate: 1, Timeout: 200 * time.Millisecond,
		Workspace: func(ctx context.Context) (int64, bool) {
			ws, ok := auth.WorkspaceFrom(ctx)
			return ws.ID, ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	var log logtest.Buffer
	srv := httptest.NewServer(server.Handler(s, log.Logger(), server.Config{Throttle: l, Limits: limits.Defaults, RequestTimeout: 10 * time.Second}))
	t.Cleanup(srv.Close)
	a := &api{t: t, url: srv.URL, key: key}
	// 899 points left: the 909-point requests below would be throttled if the
	// database answered.
	a.query(query101, nil).charged(t, 101, 1000, 899, 2)

	// Within 5 s: the limiter's 200 ms, at most 0.5 s more for the statement to stop
	// (the store's cancelFallback), and the request itself, which took up to 1.1 s
	// under the race detector on the loaded 2-core machine; a request whose charge
	// the timeout did not bound would wait as long as the row is locked, here until
	// its deadline (10 s), and fail.
	servedUnthrottled := func(what string) {
		t.Helper()
		start := time.Now()
		r := a.query(query909, nil)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: answered after %v", what, d)
		}
		if r.status != http.StatusOK || len(r.res.Errors) > 0 || r.cost == nil || r.cost.ActualQueryCost != 909 || r.cost.ThrottleStatus != nil {
			t.Errorf("%s: %d %.300s", what, r.status, r.body)
		}
		if l := leaked(r.body); l != "" {
			t.Errorf("%s: the response shows %q", what, l)
		}
	}
	// Slow: another transaction holds the bucket's row.
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(fmt.Sprintf(`SELECT 1 FROM rate_limit_buckets WHERE workspace_id = %d FOR UPDATE`, ws.ID)); err != nil {
		t.Fatal(err)
	}
	servedUnthrottled("a locked bucket")
	tx.Rollback()
	// Broken: the table is gone.
	if _, err := s.DB().ExecContext(ctx, `ALTER TABLE rate_limit_buckets RENAME TO rate_limit_buckets_gone`); err != nil {
		t.Fatal(err)
	}
	servedUnthrottled("a missing table")
	if !strings.Contains(log.String(), "throttle unavailable") {
		t.Errorf("the failures are not logged:\n%s", log.String())
	}
}

// BenchmarkRateLimitOverhead measures what the PostgreSQL rate limiter adds to a
// request (the dashboard's segment list on a small workspace), against the
// unlimited throttle of the tests and of make bench.
func BenchmarkRateLimitOverhead(b *testing.B) {
	for _, tc := range []struct {
		name     string
		throttle limits.Throttle
	}{{"unlimited", nil}, {"postgres", pgThrottle(b, 1<<30, 1<<30)}} {
		b.Run(tc.name, func(b *testing.B) {
			a := newAPIWith(b, server.Config{BatchWait: time.Millisecond, KeyCacheTTL: 2 * time.Second, Throttle: tc.throttle, Limits: limits.Defaults})
			a.addContacts("+919800000001", "+919800000002")
			for b.Loop() {
				if a.status(`{ segments(first: 20) { nodes { id name contactCount } } }`) != http.StatusOK {
					b.Fatal("not served")
				}
			}
		})
	}
}

// replayOf sends body with key, and checks that it is answered with first's replay.
func (a *api) replayOf(first reply, body []byte, key string) {
	a.t.Helper()
	r := a.send(http.MethodPost, "/graphql", body, map[string]string{"Idempotency-Key": key})
	if r.header.Get("Idempotent-Replayed") != "true" || r.status != first.status || r.body != first.body ||
		r.header.Get("Content-Type") != first.header.Get("Content-Type") {
		a.t.Fatalf("not a replay: %d %s %.300s\nfirst: %d %.300s", r.status, r.header, r.body, first.status, first.body)
	}
}

// digits are the numbers of a refusal's message and of its bucket's status.
var digits = regexp.MustCompile(`[0-9.]+`)

// TestReplaysCharged proves that an answer replayed for an Idempotency-Key is charged
// to the bucket the request it repeats was charged to, that request's cost: replays
// draw the bucket down, and a replay the bucket cannot pay for is refused exactly as
// a throttled request is (429 THROTTLED, Retry-After, extensions.cost, the same body
// and Content-Type), replays nothing, and leaves the key stored: once the bucket
// refilled, the key is replayed. Replays were free: a key throttled at 3 answers a
// second was replayed a stored 22 KB answer 1,644 times a second.
func TestReplaysCharged(t *testing.T) {
	const capacity, rate = 1000, 5.0
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults})
	start := time.Now()
	slack := func() int { return int(time.Since(start).Seconds()*rate) + 1 }
	body, key := idemBody(mutation101, nil), newKey()
	first := a.send(http.MethodPost, "/graphql", body, map[string]string{"Idempotency-Key": key})
	left := capacity - 101
	first.charged(t, 101, capacity, left, slack())
	for range 8 {
		a.replayOf(first, body, key)
		left -= 101
	}
	// 91 points left, and what the bucket regained meanwhile.
	r := a.send(http.MethodPost, "/graphql", body, map[string]string{"Idempotency-Key": key})
	st := r.throttled(t, 101, 1, 2) // (101 - 91) / 5 a second, rounded up
	if st.MaximumAvailable != capacity || st.RestoreRate != rate || st.CurrentlyAvailable < left || st.CurrentlyAvailable > left+slack() {
		t.Errorf("throttleStatus %+v, want %d of %d, %g/s: 8 replays charged 101 each", *st, left, capacity, rate)
	}
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a refused replay says Idempotent-Replayed: %q", r.header.Get("Idempotent-Replayed"))
	}
	// The request without its key is refused alike, numbers aside.
	plain := a.query(mutation101, nil)
	plain.throttled(t, 101, 1, 2)
	if got, want := digits.ReplaceAllString(r.body, "0"), digits.ReplaceAllString(plain.body, "0"); got != want {
		t.Errorf("a refused replay answers\n%s\nand a throttled request\n%s", r.body, plain.body)
	}
	if got, want := r.header.Get("Content-Type"), plain.header.Get("Content-Type"); got != want {
		t.Errorf("a refused replay has Content-Type %q, a throttled request %q", got, want)
	}
	if got := a.idemRow(key); got != "done 200" {
		t.Fatalf("after a refused replay the key is %q, want done 200", got)
	}
	wait, _ := strconv.Atoi(r.header.Get("Retry-After"))
	time.Sleep(time.Duration(wait) * time.Second)
	a.replayOf(first, body, key)
}

// TestReplaysOfUncostedAnswersCharged proves that a replay costs at least 1 point: one
// stored before the costs were kept (cost NULL) is replayed for 1 point; and that a
// refusal before costing, not kept, is charged 1 point each time it is sent again.
func TestReplaysOfUncostedAnswersCharged(t *testing.T) {
	const capacity, rate = 1000, 0.001
	a := newAPIWith(t, server.Config{Throttle: pgThrottle(t, capacity, rate), Limits: limits.Defaults})
	// Invalid: refused with 200 (application/json), charged the minimum, not kept.
	invalid, key := idemBody(`{ segments(first: 10) { nodes { nope } } }`, nil), newKey()
	first := a.send(http.MethodPost, "/graphql", invalid, map[string]string{"Idempotency-Key": key})
	if first.status != http.StatusOK || len(first.res.Errors) != 1 || first.cost != nil {
		t.Fatalf("%d %s, want a refusal before costing", first.status, first.body)
	}
	if got := a.idemRow(key); got != "" {
		t.Fatalf("the refusal is stored as %q", got)
	}
	for range 3 {
		r := a.send(http.MethodPost, "/graphql", invalid, map[string]string{"Idempotency-Key": key})
		if r.header.Get("Idempotent-Replayed") != "" || r.status != first.status || r.body != first.body {
			t.Fatalf("sent again: %d %v %s, want the refusal again, not replayed", r.status, r.header, r.body)
		}
	}
	left := capacity - 4 - 11
	a.query(query11, nil).charged(t, 11, capacity, left, 1)

	// An answer stored before its cost was.
	body, key := idemBody(mutation11, nil), newKey()
	first = a.send(http.MethodPost, "/graphql", body, map[string]string{"Idempotency-Key": key})
	left -= 11
	first.charged(t, 11, capacity, left, 1)
	if _, err := a.store.DB().ExecContext(context.Background(),
		`UPDATE idempotency_keys SET cost = NULL WHERE workspace_id = $1 AND key = $2`, a.ws.ID, key); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		a.replayOf(first, body, key)
	}
	left -= 2 + 11
	a.query(query11, nil).charged(t, 11, capacity, left, 1)
}

// TestReplayChargeFailsOpen proves that a replay is charged to the bucket the
// ThrottleBucket hook names, and that a throttle that cannot answer lets the replay
// through (rate limiting fails open) and logs it, as it does requests.
func TestReplayChargeFailsOpen(t *testing.T) {
	th := &fakeThrottle{status: limits.Status{MaximumAvailable: 1000, CurrentlyAvailable: 900, RestoreRate: 1}}
	var log logtest.Buffer
	ws, key := storetest.Workspace(t, storetest.Store(t))
	srv := httptest.NewServer(server.Handler(storetest.AppStore(t), log.Logger(), server.Config{Throttle: th, Limits: limits.Defaults,
		ThrottleBucket: func(ctx context.Context) string {
			p, _ := auth.PrincipalFrom(ctx)
			return fmt.Sprintf("caller:%d", p.KeyID)
		}}))
	t.Cleanup(srv.Close)
	a := &api{t: t, url: srv.URL, key: key, ws: ws}
	body, idem := idemBody(mutation101, nil), newKey()
	first := a.send(http.MethodPost, "/graphql", body, map[string]string{"Idempotency-Key": idem})
	first.charged(t, 101, 1000, 900, 0)
	th.mu.Lock()
	th.err = errors.New("connection refused")
	th.mu.Unlock()
	a.replayOf(first, body, idem)
	got := th.taken()
	if len(got) != 2 || got[1] != got[0] || !strings.HasPrefix(got[0], "caller:") || !strings.HasSuffix(got[0], " 101") {
		t.Errorf("takes %v, want the request's and its replay's, 101 each from its bucket", got)
	}
	if !strings.Contains(log.String(), "throttle unavailable") {
		t.Errorf("the throttle's failure is not logged:\n%s", log.String())
	}
}
