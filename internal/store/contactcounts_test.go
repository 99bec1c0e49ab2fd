package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestContactCountsFollowEveryChange proves the workspace's contact counters
// (contact_counts, migration 20261130000002): the count of a workspace's whole
// contact list is read from them, they follow concurrent upserts and deletes exactly,
// a corrupted counter is found and repaired while writers keep writing without losing
// their changes, and deleting a workspace takes its counters with it. On a database
// of its own, since the check looks at every workspace.
func TestContactCountsFollowEveryChange(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 8})
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	upsert := func(ws int64, from, n int) []int64 {
		t.Helper()
		in := make([]crm.ContactInput, n)
		for i := range in {
			in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", from+i)}
		}
		up, err := s.UpsertContacts(ctx, ws, in)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, n)
		for i, c := range up.Contacts {
			ids[i] = c.ID
		}
		return ids
	}
	// counted returns the workspace's count as the API reads it, and its contacts.
	counted := func(ws int64) (int, int) {
		t.Helper()
		n, err := s.CountContacts(ctx, ws, crm.ContactQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var actual int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM contacts WHERE workspace_id = $1", ws).Scan(&actual); err != nil {
			t.Fatal(err)
		}
		return n, actual
	}

	if n, actual := counted(ws.ID); n != 0 || actual != 0 {
		t.Fatalf("a new workspace counts %d contacts (has %d), want 0", n, actual)
	}
	ids := upsert(ws.ID, 0, 30)
	upsert(other.ID, 0, 5)
	upsert(ws.ID, 20, 20) // 10 existing phones, 10 new
	if _, err := s.DeleteContacts(ctx, ws.ID, ids[:4], store.WithSegments); err != nil {
		t.Fatal(err)
	}
	if n, actual := counted(ws.ID); n != 36 || actual != 36 {
		t.Fatalf("counted %d contacts (has %d), want 36", n, actual)
	}
	if n, _ := counted(other.ID); n != 5 {
		t.Fatalf("the other workspace counts %d contacts, want 5", n)
	}

	// The count is read from the counters: corrupt them and the API says so, until
	// the repair.
	const offset = 1000
	storetest.Exec(t, s.DB(), `INSERT INTO contact_counts AS c (workspace_id, slot, n) VALUES ($1, 7, $2)
		ON CONFLICT (workspace_id, slot) DO UPDATE SET n = c.n + excluded.n`, ws.ID, offset)
	if n, actual := counted(ws.ID); n != actual+offset {
		t.Fatalf("with the counters off by %d: counted %d, has %d", offset, n, actual)
	}
	drift, err := s.CheckContactCounts(ctx)
	if err != nil || len(drift) != 1 || drift[0].WorkspaceID != ws.ID || drift[0].Stored-drift[0].Actual != offset {
		t.Fatalf("drift %+v, %v; want the workspace off by %d", drift, err, offset)
	}

	// Writers upsert new contacts, update existing ones and delete some, while
	// repairs and checks run.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 12))
			own := fmt.Sprintf("+9198%08d", 100_000*(w+1)) // the first of this writer's phones
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				in := make([]crm.ContactInput, 1+rng.IntN(20))
				for j := range in {
					// New phones of this writer, and some of the first 40 (existing or not).
					in[j] = crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", 100_000*(w+1)+rng.IntN(5000))}
					if rng.IntN(4) == 0 {
						in[j].Phone = fmt.Sprintf("+9198%08d", rng.IntN(40))
					}
				}
				up, err := s.UpsertContacts(ctx, ws.ID, in)
				if err == nil && rng.IntN(2) == 0 {
					// Only this writer's own phones: another writer may delete one
					// of the shared 40 first, and a delete of an unknown ID fails.
					var del []int64
					for _, c := range up.Contacts {
						if c.Phone >= own && !slices.Contains(del, c.ID) && len(del) < 2 {
							del = append(del, c.ID)
						}
					}
					if len(del) > 0 {
						_, err = s.DeleteContacts(ctx, ws.ID, del, store.WithSegments)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var fixed []store.ContactCountDrift
	for round := 0; round < 5 || len(fixed) == 0; round++ {
		time.Sleep(30 * time.Millisecond)
		repaired, err := s.RepairContactCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fixed = append(fixed, repaired...)
		if drift, err := s.CheckContactCounts(ctx); err != nil || len(drift) > 0 {
			t.Errorf("round %d: check during writes reports %+v, %v", round, drift, err)
		}
		if round > 200 {
			t.Fatal("nothing repaired")
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(fixed) != 1 || fixed[0].WorkspaceID != ws.ID || fixed[0].Stored-fixed[0].Actual != offset {
		t.Fatalf("repaired %+v, want the workspace off by %d, once", fixed, offset)
	}
	if n, actual := counted(ws.ID); n != actual || actual <= 36 {
		t.Fatalf("after the writers: counted %d contacts, has %d", n, actual)
	}
	if drift, err := s.CheckContactCounts(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("after the writers: drift %+v, %v", drift, err)
	}

	// Deleting a workspace deletes its contacts and its counters, and nothing else's.
	storetest.Exec(t, s.DB(), "DELETE FROM workspaces WHERE id = $1", other.ID)
	var left int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM contact_counts WHERE workspace_id = $1", other.ID).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d counters left of a deleted workspace, %v", left, err)
	}
	if drift, err := s.CheckContactCounts(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("after deleting a workspace: drift %+v, %v", drift, err)
	}
}
