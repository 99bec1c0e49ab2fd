package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestDeletedContactsRetention proves the 30 days of Query.deletedContacts: a
// deletion older than store.DeletedContactsRetention is never listed, whatever the
// since; each deleteContacts prunes a bounded batch (1,000) of its workspace's
// expired rows in its own statement, the next one the rest; younger rows and another
// workspace's stay; deleting a workspace removes its rows.
func TestDeletedContactsRetention(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	contacts := func(ws int64, from, n int) []int64 {
		t.Helper()
		in := make([]crm.ContactInput, n)
		for i := range in {
			in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", from+i)}
		}
		up, err := s.UpsertContacts(ctx, ws, in)
		if err != nil {
			t.Fatal(err)
		}
		return crm.ContactIDs(up.Contacts)
	}
	ids := contacts(ws.ID, 0, 2)
	// 1,005 expired deletions, the newest 31 days old, and one of 29 days; the other
	// workspace's expired ones too.
	storetest.Exec(t, s.DB(), `INSERT INTO deleted_contacts (workspace_id, id, deleted_at)
		SELECT $1, 1000000000 + i, now() - interval '31 days' - i * interval '1 second' FROM generate_series(1, 1005) i`, ws.ID)
	storetest.Exec(t, s.DB(), `INSERT INTO deleted_contacts (workspace_id, id, deleted_at) VALUES ($1, 999999999, now() - interval '29 days')`, ws.ID)
	storetest.Exec(t, s.DB(), `INSERT INTO deleted_contacts (workspace_id, id, deleted_at) VALUES ($1, 999999998, now() - interval '31 days')`, other.ID)
	rows := func(ws int64, cond string) int {
		t.Helper()
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM deleted_contacts WHERE workspace_id = $1 AND "+cond, ws).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	listed := func() []crm.DeletedContact {
		t.Helper()
		first := 100
		p, err := s.DeletedContacts(ctx, ws.ID, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		return p.Items
	}
	if got := listed(); len(got) != 1 || got[0].ID != 999999999 {
		t.Fatalf("before any prune, listed %+v; want only the deletion of 29 days", got)
	}

	if _, err := s.DeleteContacts(ctx, ws.ID, ids[:1], store.WithSegments); err != nil {
		t.Fatal(err)
	}
	if n := rows(ws.ID, "deleted_at < now() - interval '30 days'"); n != 5 {
		t.Errorf("after a deletion, %d expired rows left, want 5 (1,005 less a batch of 1,000)", n)
	}
	if _, err := s.DeleteContacts(ctx, ws.ID, ids[1:], store.WithSegments); err != nil {
		t.Fatal(err)
	}
	if n := rows(ws.ID, "deleted_at < now() - interval '30 days'"); n != 0 {
		t.Errorf("after a second deletion, %d expired rows left", n)
	}
	if n := rows(ws.ID, "true"); n != 3 {
		t.Errorf("%d rows left, want the one of 29 days and the two deletions", n)
	}
	if n := rows(other.ID, "true"); n != 1 {
		t.Errorf("the other workspace's expired row was pruned by this one's deletions")
	}
	if got := listed(); len(got) != 3 || got[0].ID != 999999999 || got[1].ID != ids[0] || got[2].ID != ids[1] {
		t.Errorf("listed %+v, want 999999999, %d, %d", got, ids[0], ids[1])
	}

	storetest.Exec(t, s.DB(), "DELETE FROM workspaces WHERE id = $1", other.ID)
	if n := rows(other.ID, "true"); n != 0 {
		t.Errorf("a deleted workspace kept %d deleted contacts", n)
	}
}
