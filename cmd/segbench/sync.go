package main

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"time"
)

// W10 is W4 during a sync: the same contact searches while the benchmark itself
// updates contacts at a steady rate, as a partner's sync of the contact directory
// does. The updates are the same for every contender and go to the database
// directly, so that only the searches differ.
//
// A contact's update is never HOT (updated_at is indexed), so each one adds the
// contact's entries to every index of contacts, and to the trigram index's pending
// list, which every search reads whole until a writer merges it (migration
// 20261201000003). The read workloads that run on a freshly vacuumed table (W4, W5)
// never see that list; W10 does.
const (
	syncBatch    = 100                    // contacts per UPDATE
	syncInterval = 200 * time.Millisecond // so 500 contacts a second
)

// syncStats is what a sync did.
type syncStats struct {
	Updates int           // UPDATE statements that completed
	Busy    time.Duration // their time in all
}

// startSync starts updating syncBatch random contacts of the dataset every
// syncInterval, over db, until the returned stop is called; stop returns what the
// sync did, and its first error. An UPDATE that takes longer than syncInterval delays
// the next one: the sync never queues behind itself.
//
// stop waits for an UPDATE in flight to finish rather than cancel it: a cancelled
// statement returns at once on the client but may still commit on the server (the
// cancel request is asynchronous), and so change contacts after stop returned.
func startSync(ctx context.Context, db *sql.DB, d *dataset, seed uint64) (stop func() (syncStats, error)) {
	stopped, cancel := context.WithCancel(ctx)
	type result struct {
		st  syncStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		var st syncStats
		rng := rand.New(rand.NewPCG(seed, 10))
		ids := make([]int64, syncBatch)
		tick := time.NewTicker(syncInterval)
		defer tick.Stop()
		for {
			for i := range ids {
				ids[i] = d.firstContact + int64(rng.IntN(d.contacts))
			}
			t0 := time.Now()
			_, err := db.ExecContext(ctx, `UPDATE contacts SET updated_at = now() WHERE workspace_id = $1 AND id = ANY($2)`, d.ws, ids)
			if err != nil {
				done <- result{st, err}
				return
			}
			st.Updates++
			st.Busy += time.Since(t0)
			select {
			case <-stopped.Done():
				done <- result{st, nil}
				return
			case <-tick.C:
			}
		}
	}()
	return func() (syncStats, error) {
		cancel()
		r := <-done
		return r.st, r.err
	}
}
