package server_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"
)

// TestKeyLookupStoppedByAnotherCancelRunsAgain: a request's API key is looked up
// before its workspace is known, without one. PostgreSQL stopping that lookup for a
// cancel not its own (an operator's pg_cancel_backend; the request alive, long
// before statement_timeout) no longer fails the request: the lookup is sent once
// more, read-only, counted, and the request is answered. Before, it failed before
// it began (503 SERVICE_UNAVAILABLE).
func TestKeyLookupStoppedByAnotherCancelRunsAgain(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	db := a.store.DB()
	// The key was never used, so its lookup records its use: holding the key's row
	// keeps the lookup waiting, running, until the cancel stops it.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT FROM api_keys WHERE workspace_id = $1 FOR UPDATE", a.ws.ID); err != nil {
		t.Fatal(err)
	}
	tag := hex.EncodeToString(a.key.Hash()) // in the lookup's text, and in no other's
	cancelled := make(chan bool, 1)
	go func() {
		for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(5 * time.Millisecond) {
			var done bool
			err := db.QueryRowContext(ctx, `SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity
				WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0`, tag).Scan(&done)
			if err != nil || done {
				cancelled <- done
				return
			}
		}
		cancelled <- false
	}()
	before := a.app.CancelCounts().ReadsRetried
	res := a.post(`{ viewer { kind } }`, nil)
	if !<-cancelled {
		t.Fatalf("the key's lookup was not seen running to be cancelled (the request: status %d, %+v)", res.Status, res.Errors)
	}
	if res.Status != 200 || len(res.Errors) > 0 {
		t.Errorf("a request whose key's lookup another's cancel stopped: status %d, %+v; want it answered", res.Status, res.Errors)
	}
	// At least: other tests' reads on the shared store may be sent again too.
	if n := a.app.CancelCounts().ReadsRetried - before; n < 1 {
		t.Errorf("%d reads counted as sent again, want the lookup's", n)
	}
}
