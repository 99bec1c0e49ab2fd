package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestDeletedContactsRetention proves the 30 days of Query.deletedContacts: a
// deletion older than store.DeletedContactsRetention is never listed, whatever the
// since; each deleteContacts prunes a bounded batch (1,000) of its workspace's
// expired rows in its own statement (the recording trigger's), the next one the
// rest; younger rows and another workspace's stay; deleting a workspace removes its
// rows. The trigger's retention, written in SQL, is the Go constant's.
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
	def := storetest.Column[string](t, s.DB(), "SELECT pg_get_functiondef('contacts_deletions_recorded'::regproc)")
	if want := fmt.Sprintf("interval '%d seconds'", int64(store.DeletedContactsRetention/time.Second)); len(def) != 1 || !strings.Contains(def[0], want) {
		t.Errorf("the recording trigger's function does not prune after %s (%s):\n%s", store.DeletedContactsRetention, want, def)
	}
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

// TestDeletedContactsOfAnyWriter: every deletion of contacts is listed, whoever sends
// it, not only the store's DeleteContacts. A server older than deleted_contacts
// deletes with plain SQL during a rolling upgrade (as the server's role, under
// row-level security); one that recorded its deletions itself (20261209000001's CTE)
// is listed once, not refused as a duplicate; the owner's statement over two
// workspaces records each in its own. Deleting a whole workspace records nothing and
// fails nothing: its contacts go with it, and so do its deletions.
func TestDeletedContactsOfAnyWriter(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	other, _ := storetest.Workspace(t, owner)
	contacts := func(ws int64, from, n int) []int64 {
		t.Helper()
		in := make([]crm.ContactInput, n)
		for i := range in {
			in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9196%08d", from+i)}
		}
		up, err := owner.UpsertContacts(ctx, ws, in)
		if err != nil {
			t.Fatal(err)
		}
		return crm.ContactIDs(up.Contacts)
	}
	listed := func(ws int64) []int64 {
		t.Helper()
		first := 100
		p, err := app.DeletedContacts(store.WithWorkspace(ctx, ws), ws, time.Time{}, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, d := range p.Items {
			ids = append(ids, d.ID)
		}
		return ids
	}
	ids, others := contacts(ws.ID, 0, 6), contacts(other.ID, 100, 2)

	// An old server's deleteContacts: its own DELETE, as the server's role.
	asWS := store.WithWorkspace(ctx, ws.ID)
	if _, err := app.DB().ExecContext(asWS, fmt.Sprintf("DELETE FROM contacts WHERE workspace_id = %d AND id IN (%d, %d)", ws.ID, ids[0], ids[1])); err != nil {
		t.Fatal(err)
	}
	if got := listed(ws.ID); !slices.Equal(got, ids[:2]) {
		t.Fatalf("after an old server's deletion, listed %v, want %v", got, ids[:2])
	}

	// A server of 20261209000001, which inserted the rows in its DELETE's statement.
	if _, err := app.DB().ExecContext(asWS, fmt.Sprintf(`
		WITH gone AS (
			DELETE FROM contacts WHERE workspace_id = %[1]d AND id = ANY('{%[2]d}') RETURNING workspace_id, id
		), pruned AS (
			DELETE FROM deleted_contacts WHERE (workspace_id, deleted_at, id) IN (
				SELECT workspace_id, deleted_at, id FROM deleted_contacts
				WHERE workspace_id = %[1]d AND deleted_at < now() - 2592000 * interval '1 second'
				ORDER BY deleted_at, id LIMIT 1000)
		)
		INSERT INTO deleted_contacts (workspace_id, id, deleted_at)
		SELECT workspace_id, id, now() FROM gone`, ws.ID, ids[2])); err != nil {
		t.Fatalf("a deletion recorded by its own statement: %v", err)
	}
	if got := listed(ws.ID); !slices.Equal(got, ids[:3]) {
		t.Fatalf("after a deletion recorded by its own statement, listed %v, want %v", got, ids[:3])
	}

	// The owner, beneath row-level security, in two workspaces at once.
	storetest.Exec(t, owner.DB(), "DELETE FROM contacts WHERE id = ANY($1)", []int64{ids[3], others[0]})
	if got := listed(ws.ID); !slices.Equal(got, ids[:4]) {
		t.Errorf("after the owner's deletion, listed %v, want %v", got, ids[:4])
	}
	if got := listed(other.ID); !slices.Equal(got, others[:1]) {
		t.Errorf("the other workspace lists %v, want %v", got, others[:1])
	}

	// The whole workspace: its contacts cascade, recorded for nothing.
	if err := owner.DeleteWorkspace(ctx, ws.ID, nil); err != nil {
		t.Fatalf("deleting a workspace with contacts: %v", err)
	}
	if n := count(t, owner.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM deleted_contacts WHERE workspace_id = %d", ws.ID)); n != 0 {
		t.Errorf("a deleted workspace left %d deleted contacts", n)
	}
	if got := listed(other.ID); !slices.Equal(got, others[:1]) {
		t.Errorf("after another workspace's deletion, the other lists %v, want %v", got, others[:1])
	}
}

// TestDeletedContactsRetainedSince proves a page's RetainedSince against the
// pruning's rule (the recording trigger's, which prunes what is older than the
// retention before the deleting transaction's start): a deletion younger than that
// outlives a prune and is listed, and is at or after RetainedSince; one just older
// is pruned; RetainedSince is no earlier than the prune's cut, and is the
// retention before the page was read, on an empty page too; and a since older than it,
// whose list may lack deletions, is told by comparing the two.
func TestDeletedContactsRetainedSince(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	first := 100
	page := func(since time.Time) (store.DeletedContactsPage, time.Time, time.Time) {
		t.Helper()
		before := time.Now()
		p, err := s.DeletedContacts(ctx, ws.ID, since, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		return p, before, time.Now()
	}
	within := func(p store.DeletedContactsPage, before, after time.Time) {
		t.Helper()
		lo := before.Add(-store.DeletedContactsRetention).Truncate(time.Microsecond)
		hi := after.Add(-store.DeletedContactsRetention + time.Microsecond)
		if p.RetainedSince.Before(lo) || p.RetainedSince.After(hi) {
			t.Errorf("RetainedSince %s, want the retention (%s) before the page was read: %s to %s", p.RetainedSince, store.DeletedContactsRetention, lo, hi)
		}
	}
	p, before, after := page(time.Time{})
	if len(p.Items) != 0 {
		t.Fatalf("a new workspace lists %+v", p.Items)
	}
	within(p, before, after)

	// Just older than the retention (by the database's clock, as the trigger's), and
	// just younger: 2 s, well beyond the time a prune and a page take here.
	storetest.Exec(t, s.DB(), `INSERT INTO deleted_contacts (workspace_id, id, deleted_at) VALUES
		($1, 900000001, now() - $2 * interval '1 second' - interval '1 millisecond'),
		($1, 900000002, now() - $2 * interval '1 second' + interval '2 seconds')`,
		ws.ID, int64(store.DeletedContactsRetention/time.Second))
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919700000001"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteContacts(ctx, ws.ID, crm.ContactIDs(up.Contacts), store.WithSegments); err != nil {
		t.Fatal(err)
	}
	kept := storetest.Column[int64](t, s.DB(), "SELECT id FROM deleted_contacts WHERE workspace_id = $1 AND id >= 900000000 ORDER BY id", ws.ID)
	if len(kept) != 1 || kept[0] != 900000002 {
		t.Fatalf("after a prune, the table keeps %v of the deletions around the retention, want the younger, 900000002", kept)
	}
	since := time.Now().Add(-store.DeletedContactsRetention - time.Hour)
	p, before, after = page(since)
	within(p, before, after)
	var listed []int64
	for _, d := range p.Items {
		listed = append(listed, d.ID)
		if d.DeletedAt.Before(p.RetainedSince) {
			t.Errorf("deletion %d of %s listed, before RetainedSince %s", d.ID, d.DeletedAt, p.RetainedSince)
		}
	}
	if len(listed) != 2 || listed[0] != 900000002 {
		t.Fatalf("listed %v, want 900000002 and the contact deleted", listed)
	}
	// The prune's cut: the retention before its transaction's start, which is the
	// deleted contact's deletedAt. Nothing at or after RetainedSince was pruned.
	if cut := p.Items[1].DeletedAt.Add(-store.DeletedContactsRetention); p.RetainedSince.Before(cut) {
		t.Errorf("RetainedSince %s is before the cut of a prune (%s): deletions after it may be gone", p.RetainedSince, cut)
	}
	if !since.Before(p.RetainedSince) {
		t.Errorf("a since of %s, older than the retention, is not before RetainedSince %s", since, p.RetainedSince)
	}
}
