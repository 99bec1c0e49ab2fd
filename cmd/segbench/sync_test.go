package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segments/segments/internal/store/storetest"
)

// TestSyncKeepsItsRateAndStops checks W10's sync: it updates contacts of its
// workspace only, never faster than its rate, and nothing after it is stopped.
func TestSyncKeepsItsRateAndStops(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	db := s.DB()
	synced, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	for i, ws := range []int64{synced.ID, other.ID} {
		storetest.Exec(t, db, `INSERT INTO contacts (workspace_id, phone, created_at, updated_at)
			SELECT $1, $2 || lpad(g::text, 6, '0'), '2026-01-01', '2026-01-01' FROM generate_series(1, 1000) g`,
			ws, fmt.Sprintf("+91%d", 7+i))
	}
	d := &dataset{ws: synced.ID, contacts: 1000,
		firstContact: storetest.Column[int64](t, db, `SELECT min(id) FROM contacts WHERE workspace_id = $1`, synced.ID)[0]}
	updated := func(ws int64) int {
		return storetest.Column[int](t, db, `SELECT count(*) FROM contacts WHERE workspace_id = $1 AND updated_at > '2026-01-01'`, ws)[0]
	}

	start := time.Now()
	stop := startSync(ctx, db, d, 1)
	time.Sleep(5 * syncInterval)
	st, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	// One UPDATE at once, then one per interval at most (stop lets one in flight finish).
	ran := time.Since(start)
	if most := 1 + int(ran/syncInterval); st.Updates < 1 || st.Updates > most {
		t.Fatalf("%d updates in %s, want 1 to %d", st.Updates, ran, most)
	}
	n := updated(synced.ID)
	if n == 0 || n > st.Updates*syncBatch {
		t.Fatalf("%d contacts updated by %d updates of %d", n, st.Updates, syncBatch)
	}
	if o := updated(other.ID); o != 0 {
		t.Fatalf("%d contacts of another workspace updated", o)
	}
	time.Sleep(2 * syncInterval)
	if again := updated(synced.ID); again != n {
		t.Fatalf("%d contacts updated after the sync stopped, %d when it did", again, n)
	}
}
