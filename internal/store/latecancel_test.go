package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// postmasterOf returns the process ID of the postmaster of the server at url, which
// runs on this machine: the parent of a backend.
func postmasterOf(t *testing.T, url string) int {
	t.Helper()
	conn := storetest.Conn(t, url)
	var backend int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
	if err != nil {
		t.Skipf("the server's processes cannot be seen: %v", err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, not ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

// slowPostmaster stops the postmaster, which forks a process for each cancel request,
// as a loaded machine delays it: the returned function lets it go on.
func slowPostmaster(t *testing.T, pid int) (resume func()) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Skipf("the postmaster cannot be stopped: %v", err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
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
	if storetest.ThroughPgBouncer() {
		t.Skip("through PgBouncer a cancelled statement's connection is closed")
	}
	pg := storetest.Server(t)
	url := pg.URL("segments")
	ctx := context.Background()
	postmaster := postmasterOf(t, url)
	for _, c := range []struct {
		name    string
		stopped time.Duration // how long the postmaster is stopped after the cancel
		same    bool          // whether the next statement runs on the same backend
	}{
		{"delivered before the fallback", 250 * time.Millisecond, true},
		{"not delivered by the fallback", 900 * time.Millisecond, false},
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
				_, _ = db.ExecContext(stmtCtx, "SELECT pg_sleep(0.05)")
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
	if storetest.ThroughPgBouncer() {
		t.Skip("through PgBouncer a cancelled statement's connection is closed")
	}
	pg := storetest.Server(t)
	url := pg.URL("segments")
	ctx := context.Background()
	postmaster := postmasterOf(t, url)
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
				_, _ = db.ExecContext(stmtCtx, "SELECT pg_sleep(0.01)")
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
