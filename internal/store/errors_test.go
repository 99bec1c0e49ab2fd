package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestErrorClasses: the errors of a statement that PostgreSQL stopped (its
// statement_timeout, a cancel request) are Canceled, those of a connection lost under
// a statement (the backend terminated, the socket closed, the connection then
// broken) are Disconnected,
// each as pgx really returns them, wrapped as the store wraps them. Neither is
// Unreachable, and other failures are neither.
func TestErrorClasses(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	db := s.DB()
	check := func(t *testing.T, what string, err error, canceled, disconnected bool) {
		t.Helper()
		err = fmt.Errorf("store: wrapped: %w", err)
		if got := store.Canceled(err); got != canceled {
			t.Errorf("%s (%v): Canceled %v, want %v", what, err, got, canceled)
		}
		if got := store.Disconnected(err); got != disconnected {
			t.Errorf("%s (%v): Disconnected %v, want %v", what, err, got, disconnected)
		}
		if store.Unreachable(err) {
			t.Errorf("%s (%v): Unreachable", what, err)
		}
	}

	t.Run("statement_timeout", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "SET LOCAL statement_timeout = '10ms'"); err != nil {
			t.Fatal(err)
		}
		_, err = tx.ExecContext(ctx, "SELECT pg_sleep(1)")
		check(t, "a statement past its statement_timeout", err, true, false)
	})

	// sleeper runs pg_sleep(5) on a connection of its own, runs signal (a function of
	// a backend's pid) on the statement's backend, and returns the statement's error
	// and that of the connection's next statement. The backend is found by the
	// statement's text: through PgBouncer each statement may run on another.
	sleeper := func(t *testing.T, signal string) (stmtErr, nextErr error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sleep := "SELECT pg_sleep(5) -- " + t.Name()
		errc := make(chan error, 1)
		go func() {
			_, err := conn.ExecContext(ctx, sleep)
			errc <- err
		}()
		var pid int
		for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
			err := db.QueryRowContext(ctx, "SELECT pid FROM pg_stat_activity WHERE query = $1 AND wait_event = 'PgSleep'", sleep).Scan(&pid)
			if err == nil {
				break
			}
			if !errors.Is(err, sql.ErrNoRows) {
				t.Fatal(err)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatal("the statement did not start")
			}
		}
		var ok bool
		if err := db.QueryRowContext(ctx, "SELECT "+signal+"($1)", pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("%s: %v %v", signal, ok, err)
		}
		stmtErr = <-errc
		_, nextErr = conn.ExecContext(ctx, "SELECT 1")
		return stmtErr, nextErr
	}

	t.Run("pg_cancel_backend", func(t *testing.T) {
		err, next := sleeper(t, "pg_cancel_backend")
		check(t, "a cancelled statement", err, true, false)
		if next != nil {
			t.Errorf("the connection after a cancel: %v, want it to serve on", next)
		}
	})

	t.Run("pg_terminate_backend", func(t *testing.T) {
		err, next := sleeper(t, "pg_terminate_backend")
		check(t, "a statement whose backend was terminated", err, false, true)
		check(t, "the next statement on that connection", next, false, true)
	})

	t.Run("broken connection", func(t *testing.T) {
		conn := storetest.Conn(t, storetest.Database(t))
		if err := conn.PgConn().Conn().Close(); err != nil { // the socket, under pgx
			t.Fatal(err)
		}
		_, err := conn.Exec(ctx, "SELECT 1")
		check(t, "a statement on a closed socket", err, false, true)
		_, err = conn.Exec(ctx, "SELECT 1")
		check(t, "the next statement on that connection", err, false, true)
		check(t, "io.ErrUnexpectedEOF", io.ErrUnexpectedEOF, false, true)
		// PgBouncer's own errors, "server conn crashed?" among them, are 08P01.
		check(t, "PgBouncer's error", fmt.Errorf("store: %w", &pgconn.PgError{Code: "08P01", Message: "server conn crashed?"}), false, true)
	})

	t.Run("others", func(t *testing.T) {
		_, err := db.ExecContext(ctx, "SELECT 1/0")
		check(t, "a division by zero", err, false, false)
		check(t, "an error of the store's own", errors.New("store: no such thing"), false, false)
		deadline, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err = db.ExecContext(deadline, "SELECT pg_sleep(1)")
		if store.Disconnected(err) {
			t.Errorf("a statement whose context's deadline passed (%v) is Disconnected", err)
		}
		check(t, "context.DeadlineExceeded", context.DeadlineExceeded, false, false)
	})
}
