package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// openingStore opens a store of two connections on a server whose postmaster the
// test may stop, and holds one of them, so that the next statement opens the other.
func openingStore(t *testing.T) (s *store.Store, postmaster int, closeStore func()) {
	t.Helper()
	url, postmaster := pausableServer(t)
	ctx := context.Background()
	s, err := store.Open(ctx, url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	closeStore = sync.OnceFunc(func() { s.Close() })
	t.Cleanup(closeStore)
	held, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	return s, postmaster, closeStore
}

// pidIn runs SELECT pg_backend_pid() on s's pool in ctx, in a goroutine: the
// channel receives its error.
func pidIn(ctx context.Context, s *store.Store) <-chan error {
	done := make(chan error, 1)
	go func() {
		var pid int
		done <- s.DB().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	}()
	return done
}

// TestAbandonedOpenJoinsThePool: a connection being opened when its request's client
// left (its context cancelled the plain way, as net/http does) is opened to the end
// and joins the pool, as the postmaster forked its backend anyway
// (TestAbandoningWorkspaceStarvesNoOther).
func TestAbandonedOpenJoinsThePool(t *testing.T) {
	s, postmaster, _ := openingStore(t)
	resume := slowPostmaster(t, postmaster)
	ctx, cancel := context.WithCancel(context.Background())
	done := pidIn(ctx, s)
	time.Sleep(100 * time.Millisecond) // the open waits for the postmaster
	cancel()
	time.Sleep(50 * time.Millisecond)
	resume()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the abandoned statement: %v, want its context's end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the abandoned statement did not return")
	}
	if n := s.DB().Stats().OpenConnections; n != 2 {
		t.Errorf("%d connections open, want 2: the abandoned open's did not join the pool", n)
	}
}

// TestOpenStopsUnlessAbandoned: an open whose context ends otherwise than by its
// client's leaving (a shutdown's cancel with its cause), or whose store closes,
// stops at once, while the postmaster does not answer: kept opening to the deadline
// (10 s without one), a shutdown's requests answered after its grace, and Close
// waited for its background work's opens.
func TestOpenStopsUnlessAbandoned(t *testing.T) {
	for _, c := range []struct {
		name string
		end  func(cancel context.CancelCauseFunc, closeStore func())
	}{
		{"cancelled with a cause", func(cancel context.CancelCauseFunc, _ func()) { cancel(errors.New("shutting down")) }},
		{"its store closed", func(_ context.CancelCauseFunc, closeStore func()) { closeStore() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, postmaster, closeStore := openingStore(t)
			slowPostmaster(t, postmaster) // resumed as the test ends
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := pidIn(ctx, s)
			time.Sleep(100 * time.Millisecond) // the open waits for the postmaster
			start := time.Now()
			ended := make(chan struct{})
			go func() {
				c.end(cancel, closeStore)
				close(ended)
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Error("the statement answered with the postmaster stopped")
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the open went on after its context ended (or its store closed)")
			}
			select {
			case <-ended:
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not return")
			}
			t.Logf("returned %v after the end", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestConnectionKeptForAStatementNotSent: a statement whose context ended after it
// took its connection, before it was sent, fails with its context's end, and leaves
// the connection (the same backend) to the next, as it was.
func TestConnectionKeptForAStatementNotSent(t *testing.T) {
	s := preparingStore(t)
	conn := pinned(t, s)
	var pid int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var v int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&v); !errors.Is(err, context.Canceled) {
		t.Fatalf("the statement of an ended context: %v, want its end", err)
	}
	var after int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&after); err != nil || after != pid {
		t.Errorf("backend %d after the statement not sent (%v), was %d: the connection was closed", after, err, pid)
	}
}

// TestCancelGraceOnlyForAbandonedStatements: a statement whose client left that
// returns within the grace costs no cancel request; one whose deadline passed, or
// cancelled with a cause (a shutdown), has its cancel request sent at once, not
// after the grace: its context's owner waits for it.
func TestCancelGraceOnlyForAbandonedStatements(t *testing.T) {
	url, _ := pausableServer(t)
	open := func(t *testing.T) *store.Store {
		s, err := store.Open(context.Background(), url, store.Options{MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("abandoned, returns within the grace", func(t *testing.T) {
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(5*time.Millisecond, cancel)
		_, _ = s.DB().ExecContext(ctx, fmt.Sprintf("SELECT pg_sleep(%g)", (store.CancelGrace/5).Seconds()))
		if n := s.CancelCounts().CancelsSent; n != 0 {
			t.Errorf("%d cancel requests sent for a statement that returned within the grace", n)
		}
	})
	for _, c := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}},
		{"cancelled with a cause", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(20*time.Millisecond, func() { cancel(errors.New("shutting down")) })
			return ctx, func() { cancel(nil) }
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			ctx, cancel := c.ctx()
			defer cancel()
			// When the cancel request is sent, from the end of the context.
			sent := make(chan time.Duration, 1)
			go func() {
				<-ctx.Done()
				end := time.Now()
				for s.CancelCounts().CancelsSent == 0 {
					if time.Since(end) > 2*time.Second {
						sent <- -1
						return
					}
					time.Sleep(time.Millisecond)
				}
				sent <- time.Since(end)
			}()
			_, err := s.DB().ExecContext(ctx, "SELECT pg_sleep(2)")
			if err == nil {
				t.Fatal("the statement ran to its end")
			}
			d := <-sent
			t.Logf("cancel request sent %v after the context ended", d)
			if d < 0 || d >= store.CancelGrace/2 {
				t.Errorf("cancel request sent %v after the context ended, want at once (the grace is %v)", d, store.CancelGrace)
			}
		})
	}
}

// TestPreparedClosingsOutliveAPipelineNotSent: a statement prepared as its context
// ended (its pipeline never sent, its connection kept) leaves the statements it
// evicted to be closed by the next pipeline: PostgreSQL holds no more than the
// connection keeps. Cleared with the pipeline, they stayed on the backend: 21 where
// the connection kept 2.
func TestPreparedClosingsOutliveAPipelineNotSent(t *testing.T) {
	s := preparingStore(t)
	ws, _ := storetest.Workspace(t, storetest.Store(t))
	live := store.WithWorkspace(context.Background(), ws.ID)
	restore := store.SetMaxPrepared(2)
	defer restore()
	conn := pinned(t, s) // a connection that has prepared nothing
	var pid int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(live)
	cancel()
	for i := range 10 {
		q := fmt.Sprintf("SELECT 'closing %d'", i)
		for range 2 { // prepared at the second
			if _, err := strings1(live, conn, q); err != nil {
				t.Fatal(err)
			}
		}
		// Seen once: prepared at the next, which evicts the oldest.
		once := fmt.Sprintf("SELECT 'ended %d'", i)
		if _, err := strings1(live, conn, once); err != nil {
			t.Fatal(err)
		}
		if _, err := strings1(ended, conn, once); !errors.Is(err, context.Canceled) {
			t.Fatalf("the statement of an ended context: %v", err)
		}
	}
	if _, err := strings1(live, conn, "SELECT 'closing 9'"); err != nil { // a pipeline, with the closings
		t.Fatal(err)
	}
	var after int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&after); err != nil || after != pid {
		t.Fatalf("backend %d (%v), was %d: the connection was not kept", after, err, pid)
	}
	if n := preparedCount(preparedOn(t, conn)); n > 2 {
		t.Errorf("%d statements prepared on the backend, the connection keeps at most 2: %q", n, preparedOn(t, conn))
	}
}
