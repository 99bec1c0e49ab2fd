package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// wsKey carries the workspace in the tests' contexts, as auth does in the server's.
type wsKey struct{}

func inWorkspace(ws int64) context.Context {
	return context.WithValue(context.Background(), wsKey{}, ws)
}

func workspaceOf(ctx context.Context) (int64, bool) {
	ws, ok := ctx.Value(wsKey{}).(int64)
	return ws, ok
}

func newLimiter(t *testing.T, s *store.Store, capacity int, rate float64) *store.RateLimiter {
	t.Helper()
	// A long timeout: these tests are about the buckets, not about how long a
	// busy machine takes to answer a charge (TestRateLimiterBucketsDoNotContend tests
	// the timeout).
	l, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: capacity, RestoreRate: rate, Workspace: workspaceOf, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// charges checks a limiter's answers against the points a test expects its buckets
// to hold, allowing for what a bucket regains while the test runs: at most its
// restore rate over the time since the last charge whose answer showed no refill
// (the bucket's state was then the test's), and never past its capacity. Under go
// test -race beside other packages two charges can be tens of milliseconds apart, a
// point or more at these tests' rates.
type charges struct {
	t *testing.T
	// exact holds, by workspace and bucket, when the last charge that answered what
	// the test expected, no more, began.
	exact map[string]time.Time
}

func newCharges(t *testing.T) *charges {
	return &charges{t: t, exact: map[string]time.Time{}}
}

// take calls Take and checks whether it was granted and the points left: left
// (less one, for rounding) up to left plus what the bucket may have regained.
func (c *charges) take(l *store.RateLimiter, ctx context.Context, bucket string, cost int, granted bool, left int) limits.Status {
	c.t.Helper()
	ws, _ := workspaceOf(ctx)
	key := fmt.Sprint(ws, "/", bucket)
	start := time.Now()
	st, err := l.Take(ctx, bucket, cost)
	if granted && err != nil || !granted && !errors.Is(err, limits.ErrThrottled) {
		c.t.Fatalf("take %d from %s: %v, want granted=%v", cost, bucket, err, granted)
	}
	most := left + 1
	if prev, ok := c.exact[key]; ok {
		most += int(math.Ceil(time.Since(prev).Seconds() * st.RestoreRate))
	}
	most = min(most, st.MaximumAvailable)
	if st.CurrentlyAvailable < left-1 || st.CurrentlyAvailable > most {
		c.t.Fatalf("take %d from %s: %d left, want %d (at most %d with the refill)", cost, bucket, st.CurrentlyAvailable, left, most)
	}
	if _, ok := c.exact[key]; !ok || st.CurrentlyAvailable <= left {
		c.exact[key] = start
	}
	return st
}

// TestRateLimiterRefused proves what a bucket refuses: settings that cannot work, a
// request without a workspace, a cost over what the bucket holds (taking nothing,
// with the wait until it would hold it), and that buckets of different keys and
// workspaces are separate.
func TestRateLimiterRefused(t *testing.T) {
	s := storetest.Store(t)
	for _, opts := range []store.RateLimiterOptions{
		{Capacity: 0, RestoreRate: 1, Workspace: workspaceOf},
		{Capacity: 10, RestoreRate: 0, Workspace: workspaceOf},
		{Capacity: 10, RestoreRate: -1, Workspace: workspaceOf},
		{Capacity: 10, RestoreRate: 1},
	} {
		if _, err := store.NewRateLimiter(s, opts); err == nil {
			t.Errorf("%+v: no error", opts)
		}
	}
	l, ch := newLimiter(t, s, 100, 10), newCharges(t)
	if _, err := l.Take(context.Background(), "key:1", 1); err == nil || errors.Is(err, limits.ErrThrottled) {
		t.Errorf("no workspace: %v, want a failure", err)
	}

	ws, _ := storetest.Workspace(t, s)
	ctx := inWorkspace(ws.ID)
	// More than a full bucket holds: refused, nothing taken.
	st := ch.take(l, ctx, "key:1", 101, false, 100)
	if st.MaximumAvailable != 100 || st.RestoreRate != 10 {
		t.Errorf("status %+v", st)
	}
	took := time.Now()
	ch.take(l, ctx, "key:1", 60, true, 40)
	st = ch.take(l, ctx, "key:1", 50, false, 40)
	// 10 points short at 10 a second: a second, less the refill since the 60 were
	// taken.
	if least := time.Second - time.Since(took); st.Wait < least || st.Wait > time.Second {
		t.Errorf("wait %v, want %v to 1s", st.Wait, least)
	}
	ch.take(l, ctx, "key:1", 30, true, 10)
	// Another key, the same key name in another workspace: full buckets.
	ch.take(l, ctx, "key:2", 100, true, 0)
	other, _ := storetest.Workspace(t, s)
	ch.take(l, inWorkspace(other.ID), "key:1", 100, true, 0)
	// A cost of 0 reports the status and takes nothing.
	ch.take(l, ctx, "key:1", 0, true, 10)
	ch.take(l, ctx, "key:1", 0, true, 10)
}

// TestRateLimiterRefills proves that a bucket regains RestoreRate points a second, up
// to its capacity and no further, and that a refusal remembered by the instance
// lasts no longer than the database's would.
func TestRateLimiterRefills(t *testing.T) {
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ctx := inWorkspace(ws.ID)
	const rate = 50
	l, ch := newLimiter(t, s, 100, rate), newCharges(t)
	ch.take(l, ctx, "user:asha", 100, true, 0)
	refused := time.Now()
	st := ch.take(l, ctx, "user:asha", 20, false, 0)
	// Refused again without asking the database (the refusal is remembered)...
	c := &store.StatementCounter{}
	ch.take(l, store.WithStatementCounter(ctx, c), "user:asha", 20, false, 0)
	if c.N() != 0 {
		t.Errorf("a remembered refusal sent %d statements", c.N())
	}
	// ...until the wait is over: 20 points at 50 a second take 0.4 s. The bucket
	// held 20 when the wait ended, so what is left after taking them is what it
	// regained since, at most 50 a second over the time measured.
	wait := st.Wait
	time.Sleep(wait + 20*time.Millisecond)
	st, err := l.Take(store.WithStatementCounter(ctx, c), "user:asha", 20)
	most := int(math.Ceil((time.Since(refused)-wait).Seconds()*rate)) + 1
	if err != nil || c.N() != 1 || st.CurrentlyAvailable > most {
		t.Errorf("after the wait: %+v %v, %d statements; want at most %d left", st, err, c.N(), most)
	}
	// A full bucket stays full: 100, not 100 + the time idle × 50.
	time.Sleep(2500 * time.Millisecond)
	ch.take(l, ctx, "user:asha", 0, true, 100)
	ch.take(l, ctx, "user:asha", 100, true, 0)
}

// TestRateLimiterSharedByInstances proves that two instances (two stores, each with
// its own pool, on one database) charge the same buckets: one sees what the other
// took, less at most the reserve the other holds (a chunk: here 5 points of 100), and
// can spend that reserve too once the other gave it back, idle or closed; and that
// concurrent charges never spend more than the bucket holds: of 40 concurrent
// requests of 10 points on a bucket of 100, at most 10 pass, and at least 9 (each
// instance may be left a reserve of at most 5 it cannot spend); once the instances
// close, the row holds exactly what the granted requests left.
func TestRateLimiterSharedByInstances(t *testing.T) {
	url := storetest.Database(t)
	opts := store.Options{MaxConns: 8, AppName: "ratelimit_test"}
	s1, s2 := storetest.MigratedStore(t, url, opts), storetest.MigratedStore(t, url, opts)
	ws, _ := storetest.Workspace(t, s1)
	ctx := inWorkspace(ws.ID)
	// A restore rate so low that nothing refills while the test runs.
	l1, l2 := newLimiter(t, s1, 100, 0.001), newLimiter(t, s2, 100, 0.001)
	ch := newCharges(t)
	ch.take(l1, ctx, "key:1", 60, true, 40)
	// l1 took 65: the cost and a chunk, its reserve, which l2 does not see.
	refusedAt := time.Now()
	ch.take(l2, ctx, "key:1", 60, false, 35)
	// Once idle, the reserve goes back to the row, and l2 can spend it.
	tokens := func(s *store.Store, bucket string) float64 {
		t.Helper()
		var n float64
		if err := s.DB().QueryRow(`SELECT tokens FROM rate_limit_buckets WHERE workspace_id = $1 AND bucket = $2`, ws.ID, bucket).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); tokens(s1, "key:1") < 39.9; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("l1's reserve not given back: the row holds %g", tokens(s1, "key:1"))
		}
	}
	// l2 remembers its refusal no longer than a reserve of l1's, which it did not
	// count, may stay away from the row.
	time.Sleep(time.Until(refusedAt.Add(time.Second + 10*time.Millisecond)))
	ch.take(l2, ctx, "key:1", 40, true, 0)
	ch.take(l1, ctx, "key:1", 1, false, 0)

	var granted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			l := l1
			if i%2 == 1 {
				l = l2
			}
			_, err := l.Take(ctx, "key:2", 10)
			switch {
			case err == nil:
				granted.Add(1)
			case errors.Is(err, limits.ErrThrottled):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g := granted.Load(); g < 9 || g > 10 || g+refused.Load() != 40 {
		t.Errorf("%d granted, %d refused; want 9 or 10 granted, the rest refused", g, refused.Load())
	}
	// Closing gives the reserves back: the row holds what the granted left.
	s1.Close()
	s2.Close()
	s3 := storetest.MigratedStore(t, url, opts)
	if left, want := tokens(s3, "key:2"), 100-10*float64(granted.Load()); left < want || left > want+0.1 {
		t.Errorf("the row holds %g after the instances closed, want %g", left, want)
	}
}

// TestRateLimiterReserve proves what a reserve saves and keeps: a caller spending
// steadily sends one statement for every 11 requests (each takes its cost and ten
// more requests' worth, the chunk, at most a twentieth of the bucket), with the
// status it would have had from a statement each; a charge that fails (the request
// is then served unthrottled) takes nothing, from the row nor from the reserve; and past the buckets it may keep, the limiter gives their
// reserves back to their rows.
func TestRateLimiterReserve(t *testing.T) {
	// A database of its own: the test renames the table.
	s := storetest.NewStore(t, store.Options{MaxConns: 2, AppName: "ratelimit_test"})
	ws, _ := storetest.Workspace(t, s)
	ctx := inWorkspace(ws.ID)
	// newLimiter's long timeout: the charge that fails here fails at once (its table
	// is gone), and one that timed out on a busy machine would fail the test.
	l, ch := newLimiter(t, s, 10_000, 0.001), newCharges(t)
	c := &store.StatementCounter{}
	for i := range 110 {
		ch.take(l, store.WithStatementCounter(ctx, c), "key:steady", 11, true, 10_000-11*(i+1))
	}
	if c.N() != 10 {
		t.Errorf("110 requests of 11 points sent %d statements, want 10", c.N())
	}

	tokens := func(bucket string) float64 {
		t.Helper()
		var n float64
		if err := s.DB().QueryRow(`SELECT tokens FROM rate_limit_buckets WHERE workspace_id = $1 AND bucket = $2`, ws.ID, bucket).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// 100 taken, and a chunk of 500 (a twentieth of the bucket) as the reserve: 9,400
	// left in the row.
	ch.take(l, ctx, "key:fails", 100, true, 9_900)
	rename := func(from, to string) {
		t.Helper()
		if _, err := s.DB().Exec(`ALTER TABLE ` + from + ` RENAME TO ` + to); err != nil {
			t.Fatal(err)
		}
	}
	rename("rate_limit_buckets", "rate_limit_buckets_gone")
	if _, err := l.Take(ctx, "key:fails", 1_000); err == nil || errors.Is(err, limits.ErrThrottled) {
		t.Fatalf("the table gone: %v, want a failure", err)
	}
	rename("rate_limit_buckets_gone", "rate_limit_buckets")
	c = &store.StatementCounter{}
	ch.take(l, store.WithStatementCounter(ctx, c), "key:fails", 500, true, 9_400)
	if left := tokens("key:fails"); c.N() != 0 || left < 9_400 || left > 9_400.1 {
		t.Errorf("after a failed charge, the reserve paid with %d statements and the row holds %g; want 0 and 9400", c.N(), left)
	}

	// Two buckets at most: a third gives the first two's reserves back.
	store.SetMaxReserves(l, 2)
	ch.take(l, ctx, "key:a", 100, true, 9_900)
	ch.take(l, ctx, "key:b", 100, true, 9_900)
	ch.take(l, ctx, "key:c", 100, true, 9_900)
	for deadline := time.Now().Add(5 * time.Second); tokens("key:a") < 9_899.9 || tokens("key:b") < 9_899.9; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the evicted reserves not given back: the rows hold %g and %g", tokens("key:a"), tokens("key:b"))
		}
	}
	ch.take(l, ctx, "key:a", 9_900, true, 0)
	if tokens("key:c") != 9_400 {
		t.Errorf("the reserve in use was given back: the row holds %g, want 9400", tokens("key:c"))
	}
}

// TestRateLimiterBucketsDoNotContend proves that a charge waiting for its bucket's
// row (here locked by a transaction, as a slow charge holds it) delays no other
// bucket: another bucket's charge is answered while it waits; and that a charge which
// cannot reach its row within the timeout fails (the server then serves the request
// unthrottled) rather than waiting. Both wait for events, not for wall-clock bounds,
// which a loaded machine broke: the other bucket's charge is answered while the
// locked one still waits (had it waited behind it, it would have timed out, 10 s);
// the timed-out charge returns while the row is still locked.
func TestRateLimiterBucketsDoNotContend(t *testing.T) {
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ctx := inWorkspace(ws.ID)
	l := newLimiter(t, s, 100, 10)
	// Each charge costs more than the reserve the one before left (a chunk: 5 points
	// of 100), so that it reaches the row.
	ch := newCharges(t)
	ch.take(l, ctx, "key:noisy", 10, true, 90)
	ch.take(l, ctx, "key:quiet", 10, true, 90)

	lock := func() *sql.Tx {
		t.Helper()
		tx, err := s.DB().BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(fmt.Sprintf(`SELECT 1 FROM rate_limit_buckets WHERE workspace_id = %d AND bucket = 'key:noisy' FOR UPDATE`, ws.ID)); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	tx := lock()
	defer tx.Rollback()
	noisy := make(chan error, 1)
	go func() {
		_, err := l.Take(ctx, "key:noisy", 10)
		noisy <- err
	}()
	waitForLock(t, s.DB(), "INSERT INTO rate_limit_buckets", noisy)
	ch.take(l, ctx, "key:quiet", 10, true, 80)
	select {
	case err := <-noisy:
		t.Fatalf("the locked bucket's charge returned (%v) before its row was released", err)
	default:
	}
	tx.Rollback()
	if err := <-noisy; err != nil {
		t.Errorf("the locked bucket's charge once released: %v", err)
	}

	// With a timeout of 300 ms, the charge of a locked row fails. Guarded by 5 s: it
	// takes the timeout and at most cancelFallback (0.5 s) for the statement to stop,
	// and a charge the timeout did not bound would wait as long as the row is locked,
	// here until the test ends.
	short, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: 100, RestoreRate: 10, Workspace: workspaceOf, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tx = lock()
	defer tx.Rollback()
	start := time.Now()
	go func() {
		_, err := short.Take(ctx, "key:noisy", 10)
		noisy <- err
	}()
	select {
	case err := <-noisy:
		if err == nil || errors.Is(err, limits.ErrThrottled) {
			t.Errorf("the locked bucket: %v, want a timeout", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("the locked bucket failed after %v, before its timeout of 300ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the locked bucket's charge still waits after 5 s, its timeout 300ms")
	}
}

// TestRateLimiterOpensItsConnectionsAhead proves that a charge does not pay for
// opening a connection: the limiter opens its connections as it is made, so that its
// first charges answer within the timeout even when opening one takes longer (here
// 400 ms, through a proxy, against a timeout of 200 ms; on the 2-core machine
// loaded by other work, 0.1-0.9 s without the race detector). Before, the first
// charge opened one, failed, and its request was served unthrottled. Connections
// that break (the proxy closes them all) are opened again by the limiter's own check
// (keepWarmLoop), not by the charges after: without it, those failed the same way.
func TestRateLimiterOpensItsConnectionsAhead(t *testing.T) {
	u, err := url.Parse(storetest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	upstream := u.Host
	var conns sync.Map // the clients' side of every connection through the proxy
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			accepted.Add(1)
			go func() {
				defer c.Close()
				time.Sleep(400 * time.Millisecond) // a slow connection's set-up
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	u.Host = ln.Addr().String()
	s := storetest.MigratedStore(t, u.String(), store.Options{MaxConns: 2, AppName: "ratelimit_test"})
	ws, _ := storetest.Workspace(t, s)
	ctx := inWorkspace(ws.ID)
	l, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: 100, RestoreRate: 0.001, Workspace: workspaceOf, Timeout: 200 * time.Millisecond,
		KeepWarm: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Two buckets at once, each a statement: two connections.
	charge := func(when string) {
		t.Helper()
		var wg sync.WaitGroup
		for _, bucket := range []string{"key:1", "key:2"} {
			wg.Go(func() {
				if _, err := l.Take(ctx, bucket, 10); err != nil {
					t.Errorf("%s, a charge of %s: %v", when, bucket, err)
				}
			})
		}
		wg.Wait()
	}
	charge("first")

	// Every connection through the proxy broken at once, as a NAT's idle timeout or
	// PostgreSQL's restart breaks them: the limiter finds its own broken and opens
	// them again (keepWarmLoop) before charges need them.
	before := accepted.Load()
	conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	// The limiter's four opened again within a check or two, then their set-up (400
	// ms, and up to 0.9 s of authentication under load).
	for deadline := time.Now().Add(10 * time.Second); accepted.Load() < before+store.DefaultRateLimiterConns; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections opened in 10 s after the break, want %d: the limiter did not open its own again", accepted.Load()-before, store.DefaultRateLimiterConns)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	charge("after its connections broke")
}

// TestRateLimiterChargesWhileThePoolIsBusy proves that the limiter charges on
// connections of its own: with every connection of the store's pool held (by
// requests counting a large workspace, say), a charge still answers at once, grants
// what the bucket holds and refuses the rest, where on the pool it would wait for a
// connection past its timeout and the request be served unthrottled.
func TestRateLimiterChargesWhileThePoolIsBusy(t *testing.T) {
	s := storetest.NewStore(t, store.Options{MaxConns: 2, AppName: "ratelimit_test"})
	ws, _ := storetest.Workspace(t, s)
	ctx := inWorkspace(ws.ID)
	l, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: 100, RestoreRate: 1, Workspace: workspaceOf, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		conn, err := s.DB().Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	ch := newCharges(t)
	start := time.Now()
	ch.take(l, ctx, "key:busy", 60, true, 40)
	ch.take(l, ctx, "key:busy", 60, false, 40)
	ch.take(l, ctx, "key:other", 60, true, 40)
	if d := time.Since(start); d > time.Second {
		t.Errorf("three charges took %v with the store's pool busy", d)
	}
	// The pool is still the requests': it is no larger for the limiter's.
	busy, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.DB().PingContext(busy); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a third connection of a pool of two: %v, want to wait", err)
	}
}

// BenchmarkRateLimiterTake measures a charge as a steady caller pays it: from the
// instance's reserve, and one request in 11 a statement on the bucket's row.
func BenchmarkRateLimiterTake(b *testing.B) {
	s := storetest.Store(b)
	ws, _ := storetest.Workspace(b, s)
	ctx := inWorkspace(ws.ID)
	l, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: 1 << 30, RestoreRate: 1 << 30, Workspace: workspaceOf})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := l.Take(ctx, "key:1", 11); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRateLimiterUnderRowLevelSecurity proves that the limiter works as the
// application's role, which row-level security holds to one workspace: its statement
// sets the bucket's workspace itself, so it needs no workspace from its context, and
// the role still sees no other workspace's buckets.
func TestRateLimiterUnderRowLevelSecurity(t *testing.T) {
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	other, _ := storetest.Workspace(t, owner)
	l, ch := newLimiter(t, app, 100, 0.001), newCharges(t)
	ch.take(l, inWorkspace(ws.ID), "key:1", 60, true, 40)
	ch.take(l, inWorkspace(ws.ID), "key:1", 60, false, 40)
	ch.take(l, inWorkspace(other.ID), "key:1", 70, true, 30)

	count := func(s *store.Store, ctx context.Context) int {
		t.Helper()
		var n int
		if err := s.DB().QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM rate_limit_buckets WHERE workspace_id IN (%d, %d)`, ws.ID, other.ID)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(owner, context.Background()); n != 2 {
		t.Errorf("the owner sees %d buckets, want 2", n)
	}
	if n := count(app, context.Background()); n != 0 {
		t.Errorf("the application's role sees %d buckets without a workspace, want 0", n)
	}
	if n := count(app, store.WithWorkspace(context.Background(), ws.ID)); n != 1 {
		t.Errorf("the application's role sees %d buckets in one workspace, want 1", n)
	}
}

// TestRateLimiterAnyBucketName proves that a bucket whose name PostgreSQL's text
// cannot hold as it is (a NUL, invalid UTF-8, longer than the table's 300 bytes)
// throttles as any other, separately from its look-alikes, and that its unused
// reserve goes back to its own row. bun writes a string with a NUL into the SQL as an
// error marker (and drops the NULs of an array's strings), so the charge failed with
// a syntax error and, the limiter failing open, a dashboard user whose sub held a NUL
// was never throttled.
func TestRateLimiterAnyBucketName(t *testing.T) {
	url := storetest.Database(t)
	opts := store.Options{MaxConns: 4, AppName: "ratelimit_test"}
	s1, s2 := storetest.MigratedStore(t, url, opts), storetest.MigratedStore(t, url, opts)
	ws, _ := storetest.Workspace(t, s1)
	ctx := inWorkspace(ws.ID)
	// A restore rate so low that nothing refills while the test runs.
	l1, ch := newLimiter(t, s1, 100, 0.001), newCharges(t)
	names := []string{"user:a\x00", "user:a\x00\x00", "user:\xff\xfe", strings.Repeat("u", 301), strings.Repeat("u", 302), "\x00"}
	for _, name := range names {
		ch.take(l1, ctx, name, 60, true, 40)
	}
	for _, name := range names {
		ch.take(l1, ctx, name, 50, false, 40)
	}
	// The look-alike without the NULs is another bucket.
	ch.take(l1, ctx, "user:a", 100, true, 0)
	// s1's Close gives each reserve back to its own row: another instance finds the
	// 40 points left, and none in the look-alike's.
	s1.Close()
	l2 := newLimiter(t, s2, 100, 0.001)
	for _, name := range names {
		ch.take(l2, ctx, name, 40, true, 0)
	}
	ch.take(l2, ctx, "user:a", 1, false, 0)
}

// TestLearnStatisticsBesideARateLimiter: a test that learns the statistics of a store
// whose rate limiter runs waits for the learning, not for the limiter's loop, which
// runs until Close (it waited forever on the stores the tests share once a limiter
// had run on them).
func TestLearnStatisticsBesideARateLimiter(t *testing.T) {
	app := storetest.MigratedStore(t, storetest.Database(t), store.Options{})
	newLimiter(t, app, 100, 0.001)
	learned := make(chan struct{})
	go func() {
		store.LearnStatistics(app)
		close(learned)
	}()
	select {
	case <-learned:
	case <-time.After(30 * time.Second):
		t.Fatal("LearnStatistics still waits after 30 s beside a rate limiter")
	}
}
