package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// pausableServer is storetest.PausableServer.
func pausableServer(t *testing.T) (url string, postmaster int) {
	t.Helper()
	return storetest.PausableServer(t)
}

// slowPostmaster is storetest.StopPostmaster.
func slowPostmaster(t *testing.T, pid int) (resume func()) {
	t.Helper()
	return storetest.StopPostmaster(t, pid)
}

// TestLateCancelStopsNoLaterStatement: a cancel request that PostgreSQL delivers late
// (its postmaster slow to fork the process that signals the backend) stops no
// statement but the one it was sent for. The cancelled statement ended on its own
// before the cancel arrived; pgx's handler gave up on the cancel request as soon as
// the statement returned, waited 100 ms and handed the connection back, and the
// signal, delivered after that, stopped the next request's statement on the same
// backend ("canceling statement due to user request"). Now the connection waits
// until PostgreSQL has dealt with the cancel request (its connection closed), and
// is not reused when that takes longer than the fallback (cancelFallback): the next
// statement runs on the same backend when the cancel came in time, on another after.
func TestLateCancelStopsNoLaterStatement(t *testing.T) {
	url, postmaster := pausableServer(t)
	ctx := context.Background()
	// The statement runs past the grace, so that its cancel request is sent, and
	// ends on its own 50 ms later, before the postmaster delivers the cancel.
	sleep := fmt.Sprintf("SELECT pg_sleep(%g)", (store.CancelGrace + 50*time.Millisecond).Seconds())
	alone := func(ctx context.Context, db *sql.DB) {
		_, _ = db.ExecContext(ctx, sleep)
	}
	inTransaction := func(ctx context.Context, db *sql.DB) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return
		}
		_, _ = tx.ExecContext(ctx, sleep)
		_ = tx.Rollback()
	}
	for _, c := range []struct {
		name    string
		stopped time.Duration // how long the postmaster is stopped after the cancel
		same    bool          // whether the next statement runs on the same backend
		abandon func(context.Context, *sql.DB)
	}{
		{"delivered before the fallback", 250 * time.Millisecond, true, alone},
		{"not delivered by the fallback", 900 * time.Millisecond, false, alone},
		{"in a transaction, not delivered by the fallback", 900 * time.Millisecond, false, inTransaction},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := store.Open(ctx, url, store.Options{MaxConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			db := s.DB()
			var before int
			if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&before); err != nil {
				t.Fatal(err)
			}

			stmtCtx, cancel := context.WithCancel(ctx)
			abandoned := make(chan time.Time, 1)
			go func() {
				c.abandon(stmtCtx, db)
				abandoned <- time.Now()
			}()
			time.Sleep(15 * time.Millisecond) // the statement runs
			resume := slowPostmaster(t, postmaster)
			cancel()
			cancelled := time.Now()
			// The next request's statement waits for the pool's only connection.
			type answer struct {
				pid int
				err error
			}
			next := make(chan answer, 1)
			go func() {
				var a answer
				// It runs past the postmaster's resumption, when the cancel arrives.
				a.err = db.QueryRowContext(ctx, "SELECT pg_backend_pid() FROM pg_sleep($1)", (c.stopped + 300*time.Millisecond).Seconds()).Scan(&a.pid)
				next <- a
			}()
			time.Sleep(c.stopped)
			resume()
			t.Logf("the abandoned statement returned %v after its context ended", (<-abandoned).Sub(cancelled).Round(time.Millisecond))
			a := <-next
			if a.err != nil {
				t.Fatalf("the next request's statement, with its context alive: %v", a.err)
			}
			wantDropped := uint64(0)
			if !c.same {
				wantDropped = 1
			}
			if got := s.CancelCounts().ConnectionsDropped; got != wantDropped {
				t.Errorf("%d connections dropped for a cancel unsettled, want %d", got, wantDropped)
			}
			if same := a.pid == before; same != c.same {
				t.Errorf("the next statement ran on backend %d, the cancelled statement's was %d: want the same one %v", a.pid, before, c.same)
			}
			if c.same {
				var pid int
				if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil || pid != before {
					t.Errorf("the statement after: backend %d, %v; want %d", pid, err, before)
				}
			}
		})
	}
}

// TestCancelStormFailsNoLiveStatement, in the spirit of the black-box prober that
// found late cancels: statements abandoned mid-way (their contexts end at random
// while they run) beside live ones with their contexts alive, on a small pool whose
// connections serve both in turn, while the postmaster that forks each cancel
// request's process is slowed down in pulses (a loaded machine). No live statement
// may fail. With pgx's handler, a cancel delivered after its statement ended on its
// own stopped the next statement on the connection: 1-3 live statements of ~200
// failed with query_canceled in each of 4 runs.
func TestCancelStormFailsNoLiveStatement(t *testing.T) {
	url, postmaster := pausableServer(t)
	ctx := context.Background()
	s, err := store.Open(ctx, url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the slow postmaster: stopped 150 ms of every 250
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resume := slowPostmaster(t, postmaster)
			time.Sleep(150 * time.Millisecond)
			resume()
		}
	})
	// An abandoned statement ends on its own about when its cancel request is sent,
	// after the grace: just before, just after.
	abandon := fmt.Sprintf("SELECT pg_sleep(%g)", (store.CancelGrace + 15*time.Millisecond).Seconds())
	var mu sync.Mutex
	var abandoned, live int
	var failures []error
	for w := range 4 {
		wg.Go(func() { // abandons a statement, then runs one
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				stmtCtx, cancel := context.WithTimeout(ctx, time.Duration(3+(w*7+i*3)%10)*time.Millisecond)
				_, _ = db.ExecContext(stmtCtx, abandon)
				cancel()
				_, err := db.ExecContext(ctx, "SELECT pg_sleep(0.02)")
				mu.Lock()
				abandoned++
				live++
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d statements abandoned, %d live; %+v", abandoned, live, s.CancelCounts())
	if len(failures) > 0 {
		t.Errorf("%d of %d live statements failed, the first: %v", len(failures), live, failures[0])
	}
}

// cancelOnce cancels, with pg_cancel_backend from a connection of its own, the first
// statement holding tag that it sees running on the database at url, as an operator
// (or a cancel not meant for it) would; the channel tells whether it did.
func cancelOnce(t *testing.T, url, tag string) <-chan bool {
	t.Helper()
	watch := storetest.Conn(t, url)
	done := make(chan bool, 1)
	go func() {
		ctx := context.Background()
		for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(5 * time.Millisecond) {
			var cancelled bool
			err := watch.QueryRow(ctx, `SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity
				WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0`, tag).Scan(&cancelled)
			if err != nil {
				t.Errorf("look for the statement to cancel: %v", err)
			}
			if err != nil || cancelled {
				done <- cancelled
				return
			}
		}
		done <- false
	}()
	return done
}

// TestReadStoppedByAnotherCancelRunsAgain: a read outside a transaction that
// PostgreSQL stops for a cancel that is not its own (its context alive, long before
// statement_timeout) is sent once more and succeeds, counted; sent once, prepared,
// and on the hot read path (queryDirect). Before, it failed with query_canceled,
// which the API answers TIMEOUT.
func TestReadStoppedByAnotherCancelRunsAgain(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s, err := store.Open(ctx, url, store.Options{MaxConns: 1, StatementTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	wsCtx := store.WithWorkspace(ctx, 1)
	run := "r" + strconv.FormatInt(time.Now().UnixNano(), 36) // texts unique to the run: -count=2
	reads := []struct {
		name string
		warm bool // sent once before, uncancelled: then prepared (prepared.go)
		read func(query string) (int, error)
	}{
		{"sent once", false, func(query string) (n int, err error) {
			return n, db.QueryRowContext(wsCtx, query).Scan(&n)
		}},
		{"prepared", true, func(query string) (n int, err error) {
			return n, db.QueryRowContext(wsCtx, query).Scan(&n)
		}},
		{"hot path", false, func(query string) (n int, err error) {
			return n, s.QueryDirect(wsCtx, query, func(r pgx.Rows) error { return r.Scan(&n) })
		}},
		{"hot path without a workspace", false, func(query string) (n int, err error) {
			return n, s.QueryDirect(ctx, query, func(r pgx.Rows) error { return r.Scan(&n) })
		}},
	}
	for i, r := range reads {
		tag := fmt.Sprintf("read %s %d", run, i)
		query := fmt.Sprintf("SELECT 7 /* %s */ FROM pg_sleep(0.5)", tag)
		if r.warm {
			if _, err := r.read(query); err != nil {
				t.Fatal(err)
			}
		}
		before := s.CancelCounts().ReadsRetried
		cancelled := cancelOnce(t, url, tag)
		n, err := r.read(query)
		if !<-cancelled {
			t.Fatalf("%s: the read was not seen running to be cancelled", r.name)
		}
		if err != nil || n != 7 {
			t.Errorf("%s: a read stopped by another's cancel: %d, %v; want 7 (sent again)", r.name, n, err)
		}
		if r.warm && s.Prepares() {
			var prepared bool
			if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT FROM pg_prepared_statements WHERE strpos(statement, $1) > 0)", tag).Scan(&prepared); err != nil || !prepared {
				t.Errorf("%s: the read was not prepared (%v)", r.name, err)
			}
		}
		if got := s.CancelCounts().ReadsRetried - before; got != 1 {
			t.Errorf("%s: %d reads counted as sent again, want 1", r.name, got)
		}
	}
}

// TestCancelledWritesAndTimeoutsAreNotRetried: what a cancel stops is sent again only
// when it is a read outside a transaction stopped by a cancel not its own, with a
// workspace or without one (as an API key's lookup is sent). A statement stopped by
// statement_timeout fails at once as canceled (not a second timeout's wait); a write
// outside a transaction (an INSERT ... RETURNING read as rows), whose retry
// PostgreSQL refuses as read-only, fails with its cancel and wrote nothing, as does
// one sent as a write (Exec), never sent again; a read in a transaction fails with
// its cancel, its transaction aborted.
func TestCancelledWritesAndTimeoutsAreNotRetried(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s, err := store.Open(ctx, url, store.Options{MaxConns: 1, StatementTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	storetest.Exec(t, db, "CREATE TABLE cancelled_writes (x int)")
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{
		{"with a workspace", store.WithWorkspace(ctx, 1)},
		{"without a workspace", ctx},
	} {
		ctx := c.ctx
		run := "w" + strconv.FormatInt(time.Now().UnixNano(), 36)

		start := time.Now()
		var n int
		err = db.QueryRowContext(ctx, "SELECT 1 FROM pg_sleep(3) /* "+run+" timeout */").Scan(&n)
		if took := time.Since(start); !store.Canceled(err) || took > 1900*time.Millisecond {
			t.Errorf("%s: a read past statement_timeout (1 s): %v after %v; want canceled after about 1 s", c.name, err, took)
		}
		err = s.QueryDirect(ctx, "SELECT 1 FROM pg_sleep(3) /* "+run+" timeout direct */", func(r pgx.Rows) error { return r.Scan(&n) })
		if !store.Canceled(err) {
			t.Errorf("%s: a hot-path read past statement_timeout: %v, want canceled", c.name, err)
		}

		tag := run + " write"
		cancelled := cancelOnce(t, url, tag)
		err = db.QueryRowContext(ctx, "INSERT INTO cancelled_writes SELECT 1 FROM pg_sleep(0.6) RETURNING x /* "+tag+" */").Scan(&n)
		if !<-cancelled {
			t.Fatalf("%s: the write was not seen running to be cancelled (it ended with %v)", c.name, err)
		}
		if !store.Canceled(err) {
			t.Errorf("%s: a write stopped by another's cancel: %v, want canceled", c.name, err)
		}
		tag = run + " exec"
		cancelled = cancelOnce(t, url, tag)
		_, err = db.ExecContext(ctx, "INSERT INTO cancelled_writes SELECT 1 FROM pg_sleep(0.6) /* "+tag+" */")
		if !<-cancelled {
			t.Fatalf("%s: the write (Exec) was not seen running to be cancelled (it ended with %v)", c.name, err)
		}
		if !store.Canceled(err) {
			t.Errorf("%s: a write (Exec) stopped by another's cancel: %v, want canceled", c.name, err)
		}
		if rows := storetest.Column[int](t, db, "SELECT x FROM cancelled_writes"); len(rows) != 0 {
			t.Errorf("%s: cancelled writes wrote %d rows, want none", c.name, len(rows))
		}

		tag = run + " transaction"
		cancelled = cancelOnce(t, url, tag)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = tx.QueryRowContext(ctx, "SELECT 1 FROM pg_sleep(0.6) /* "+tag+" */").Scan(&n)
		_ = tx.Rollback()
		if !<-cancelled {
			t.Fatalf("%s: the read in a transaction was not seen running to be cancelled (it ended with %v)", c.name, err)
		}
		if !store.Canceled(err) {
			t.Errorf("%s: a read in a transaction stopped by another's cancel: %v, want canceled", c.name, err)
		}
		if got := s.CancelCounts().ReadsRetried; got != 0 {
			t.Errorf("%s: %d statements sent again, want none", c.name, got)
		}
	}
}

// TestAuthenticationStoppedByAnotherCancelRunsAgain: every partner request starts
// with its API key's lookup (AuthenticateKey), sent without a workspace, as the
// application's role. Stopped by a cancel not its own (its context alive, long
// before statement_timeout), it is sent once more and the key is let in, counted.
// Before, it failed with query_canceled: the request failed (503 SERVICE_UNAVAILABLE,
// logged as an ERROR) before it began.
// The lookup also records the key's last use, which the cancelled attempt rolled
// back and the read-only retry does not write (the next request does).
func TestAuthenticationStoppedByAnotherCancelRunsAgain(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	owner, app := storetest.MigratedStores(t, url, store.Options{MaxConns: 2, StatementTimeout: 10 * time.Second})
	ws, key := storetest.Workspace(t, owner)
	// The key was never used, so the lookup records its use: holding the key's row
	// keeps that waiting, running, until the cancel stops it.
	hold := storetest.Conn(t, url)
	tx, err := hold.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT FROM api_keys WHERE key_hash = $1 FOR UPDATE", key.Hash()); err != nil {
		t.Fatal(err)
	}
	before := app.CancelCounts().ReadsRetried
	cancelled := cancelOnce(t, url, "segments_authenticate_key")
	got, k, err := app.AuthenticateKey(ctx, key.Hash())
	if !<-cancelled {
		t.Fatalf("the key's lookup was not seen running to be cancelled (it ended with %v)", err)
	}
	if err != nil || got.ID != ws.ID {
		t.Fatalf("a key's lookup stopped by another's cancel: workspace %d, %v; want %d (sent again)", got.ID, err, ws.ID)
	}
	if n := app.CancelCounts().ReadsRetried - before; n != 1 {
		t.Errorf("%d reads counted as sent again, want 1", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if used := storetest.Column[*time.Time](t, owner.DB(), "SELECT last_used_at FROM api_keys WHERE id = $1", k.ID); len(used) != 1 || used[0] != nil {
		t.Errorf("the key's last use after a lookup sent again read-only: %v, want none recorded", used)
	}
	// The next lookup, not cancelled, records it.
	if _, _, err := app.AuthenticateKey(ctx, key.Hash()); err != nil {
		t.Fatal(err)
	}
	if used := storetest.Column[*time.Time](t, owner.DB(), "SELECT last_used_at FROM api_keys WHERE id = $1", k.ID); len(used) != 1 || used[0] == nil {
		t.Errorf("the key's last use after the next lookup: %v, want it recorded", used)
	}
}
