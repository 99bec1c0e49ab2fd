package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestRoleTimeouts: the timeouts given to Open hold for every connection of the pool,
// as the role's defaults in the database (and so do serial plans): a statement
// running past statement_timeout is stopped, a transaction left idle past
// idle_in_transaction_session_timeout ends with its session, and the pool goes on
// serving.
func TestRoleTimeouts(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s, err := store.Open(ctx, url, store.Options{StatementTimeout: 300 * time.Millisecond, IdleInTransactionTimeout: 500 * time.Millisecond, SerialPlans: true, NoJIT: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()

	// Every connection has the settings, not only the first.
	conns := make([]interface{ Close() error }, 0, 3)
	for range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var st, idle, workers, jit string
		if err := c.QueryRowContext(ctx, "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout'), current_setting('max_parallel_workers_per_gather'), current_setting('jit')").Scan(&st, &idle, &workers, &jit); err != nil {
			t.Fatal(err)
		}
		if st != "300ms" || idle != "500ms" || workers != "0" || jit != "off" {
			t.Errorf("statement_timeout %s, idle_in_transaction_session_timeout %s, max_parallel_workers_per_gather %s, jit %s; want 300ms, 500ms, 0, off", st, idle, workers, jit)
		}
	}
	for _, c := range conns {
		c.Close()
	}

	start := time.Now()
	_, err = db.ExecContext(ctx, "SELECT pg_sleep(5)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Errorf("a 5 s statement: %v, want query_canceled (57014)", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the statement was stopped after %v, want about 300 ms", took)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the client forgets its transaction
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Error("a transaction idle for 1 s still works, want it ended after 500 ms")
	}
	_ = tx.Rollback()

	if err := db.PingContext(ctx); err != nil {
		t.Errorf("the pool after the timeouts: %v", err)
	}
}

// TestServersStartAtOnce: stores that open at once, as the servers of one deployment
// do, each set the role's defaults (configureRole), and all of them open. Two ALTER
// ROLEs of one role's settings at a time fail with "tuple concurrently updated"
// unless they take turns.
func TestServersStartAtOnce(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	const servers = 8
	errs := make(chan error, servers)
	start := make(chan struct{})
	for range servers {
		go func() {
			<-start
			s, err := store.Open(ctx, url, store.Options{MaxConns: 1, StatementTimeout: time.Minute, SerialPlans: true, NoJIT: true})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	close(start)
	for range servers {
		if err := <-errs; err != nil {
			t.Errorf("a server that started with others: %v", err)
		}
	}
}

// TestRoleTimeoutsRoundedUp: a timeout below a millisecond, PostgreSQL's unit, is set
// as 1 ms, not truncated to 0, which PostgreSQL reads as no timeout at all.
func TestRoleTimeoutsRoundedUp(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s, err := store.Open(ctx, url, store.Options{StatementTimeout: 500 * time.Microsecond, IdleInTransactionTimeout: 100 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A transaction of its own, without the role's 1 ms timeout, reads them (a
	// startup parameter would do, but PgBouncer refuses it).
	conn := storetest.Conn(t, url)
	// One message, so that the session is never idle in the transaction before its
	// 1 ms idle_in_transaction_session_timeout is lifted. The message itself runs
	// under the role's 1 ms statement_timeout, which a loaded machine can outlast
	// before SET LOCAL lifts it (57014): then its aborted transaction is rolled back
	// and it is sent again.
	for attempt := 1; ; attempt++ {
		_, err := conn.Exec(ctx, "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0")
		var pgErr *pgconn.PgError
		if err == nil {
			break
		} else if !errors.As(err, &pgErr) || pgErr.Code != "57014" || attempt == 20 {
			t.Fatal(err)
		}
		_, _ = conn.Exec(ctx, "ROLLBACK")
	}
	defer conn.Exec(ctx, "ROLLBACK")
	var settings []string
	if err := conn.QueryRow(ctx, `SELECT coalesce((SELECT setconfig FROM pg_db_role_setting
		WHERE setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
		  AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())), '{}')`).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"statement_timeout=1", "idle_in_transaction_session_timeout=1"} {
		if !slices.Contains(settings, want) {
			t.Errorf("the role's settings are %q, want %s", settings, want)
		}
	}
}

// TestRoleTimeoutsReplaceATinyOne: a store opens with the timeouts it is given
// whatever the role's were. The statement that sets them ran under the ones an
// earlier run had left: after serve --statement-timeout 500us (1 ms), no server nor
// command could open the database again.
func TestRoleTimeoutsReplaceATinyOne(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	tiny, err := store.Open(ctx, url, store.Options{StatementTimeout: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	tiny.Close()
	s, err := store.Open(ctx, url, store.Options{StatementTimeout: 15 * time.Second})
	if err != nil {
		t.Fatalf("open after a 1 ms statement_timeout: %v", err)
	}
	defer s.Close()
	var st string
	if err := s.DB().QueryRowContext(ctx, "SELECT current_setting('statement_timeout')").Scan(&st); err != nil || st != "15s" {
		t.Errorf("statement_timeout %q (%v), want 15s", st, err)
	}
}

// TestCancelledStatementsKeepTheirConnection: a statement whose context ends while it
// runs (its client went away, its deadline passed) is stopped in PostgreSQL by a
// cancel request, and its connection stays in the pool: on a pool of one connection,
// statements cancelled alone, with a workspace (the statement after its settings in
// one message) and in a transaction leave the same backend to serve the next query.
// pgx's default closed the connection under each, and every next query waited for a
// new backend, its authentication and its role's settings. Through PgBouncer, which
// gives its clients cancel keys of its own (pgbouncer#822: 1.18 exits on some cancel
// requests), the connection is closed as before: there the test checks that the
// statements stop and the pool serves on.
func TestCancelledStatementsKeepTheirConnection(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	const app = "cancelled-statements"
	s, err := store.Open(ctx, url, store.Options{MaxConns: 1, AppName: app, ClientCheckInterval: store.ClientCheckInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	backend := func() int {
		t.Helper()
		var pid int
		if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatalf("the pool after a cancelled statement: %v", err)
		}
		return pid
	}
	first := backend()
	watch := storetest.Conn(t, url) // sees the statement run and stop
	running := func() bool {
		t.Helper()
		var n int
		if err := watch.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()", app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}

	kinds := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"alone", func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, "SELECT pg_sleep(5)")
			return err
		}},
		{"with a workspace", func(ctx context.Context) error {
			rows, err := db.QueryContext(store.WithWorkspace(ctx, 1), "SELECT pg_sleep(5)")
			if err == nil {
				for rows.Next() {
				}
				err = errors.Join(rows.Err(), rows.Close())
			}
			return err
		}},
		{"in a transaction", func(ctx context.Context) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			_, err = tx.ExecContext(ctx, "SELECT 1; SELECT pg_sleep(5)")
			return err
		}},
	}
	var stops, answers []time.Duration
	for i := range 3 * len(kinds) {
		kind := kinds[i%len(kinds)]
		stmtCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- kind.run(stmtCtx) }()
		for start := time.Now(); !running(); time.Sleep(2 * time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: the statement did not start", kind.name)
			}
		}
		cancelled := time.Now()
		cancel()
		for running() {
			if time.Since(cancelled) > 2*time.Second {
				t.Fatalf("%s: the statement still runs 2 s after its context ended", kind.name)
			}
		}
		stops = append(stops, time.Since(cancelled))
		err := <-errc
		answers = append(answers, time.Since(cancelled))
		if err == nil {
			t.Fatalf("%s: a cancelled statement succeeded", kind.name)
		}
		next := time.Now()
		pid := backend()
		t.Logf("%s: stopped %v after its context ended, returned after %v; the next query took %v",
			kind.name, stops[len(stops)-1].Round(time.Millisecond), answers[len(answers)-1].Round(time.Millisecond), time.Since(next).Round(time.Millisecond))
		if storetest.ThroughPgBouncer() {
			continue
		}
		if pid != first {
			t.Errorf("%s: the pool's backend is %d after a cancelled statement (%v), want %d, the one before", kind.name, pid, err, first)
			first = pid
		} else if !store.Canceled(err) {
			t.Errorf("%s: the statement's error %v, want query_canceled (57014)", kind.name, err)
		}
	}

	// A cancel that comes as its statement ends on its own stops no later statement
	// on the connection: the connection is held until PostgreSQL has dealt with the
	// cancel request (cancel.go; TestLateCancelStopsNoLaterStatement).
	// The statement ends on its own about when its cancel request is sent, after the
	// grace (store.CancelGrace).
	sleep := fmt.Sprintf("SELECT pg_sleep(%g)", (store.CancelGrace + 20*time.Millisecond).Seconds())
	for i := range 30 {
		stmtCtx, cancel := context.WithTimeout(ctx, time.Duration(15+i%10)*time.Millisecond)
		_, _ = db.ExecContext(stmtCtx, sleep)
		cancel()
		if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatalf("the statement after one cancelled as it ended: %v", err)
		}
	}
}
