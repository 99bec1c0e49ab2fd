package store_test

import (
	"context"
	"errors"
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
	// 1 ms idle_in_transaction_session_timeout is lifted.
	if _, err := conn.Exec(ctx, "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		t.Fatal(err)
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
