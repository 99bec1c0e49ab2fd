package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestStatementTurnsBoundStatements: under WithStatementTurns(ctx, 2), statements
// run 2 at a time, through Bun (a count) and through pgx (a page, queryDirect) alike:
// of 6 stuck behind a lock on the contacts table, 2 hold a connection, and the others
// wait for their turn holding none. Once the lock goes, all 6 are answered.
func TestStatementTurnsBoundStatements(t *testing.T) {
	s := storetest.NewStore(t, store.Options{MaxConns: 10, AppName: "turnstest"})
	ws, _ := storetest.Workspace(t, s)
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(func() { _ = tx.Rollback() })
	defer release()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stuck := func() int {
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'turnstest' AND wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	turns := store.WithStatementTurns(ctx, 2)
	first := 20
	errs := make(chan error, 6)
	for i := range 3 {
		q := crm.ContactQuery{Search: fmt.Sprintf("zz%d", i), Order: crm.DefaultContactOrder}
		go func() {
			_, err := s.CountContacts(turns, ws.ID, q)
			errs <- err
		}()
		go func() {
			_, err := s.Contacts(turns, ws.ID, q, crm.PageArgs{First: &first})
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for stuck() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for more to get stuck, were they let through
	if n := stuck(); n != 2 {
		t.Fatalf("%d statements hold a connection, stuck, want 2", n)
	}
	release()
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatementTurnsHoldTransactions: a transaction holds one turn from its BEGIN to
// its COMMIT, for the connection it holds all along, and its statements take none
// of their own: every write of the store completes under a single turn. Were its
// statements to take one each, the first would wait for the transaction's turn for
// good (until ctx's deadline).
func TestStatementTurnsHoldTransactions(t *testing.T) {
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ctx, cancel := context.WithTimeout(store.WithStatementTurns(context.Background(), 1), 10*time.Second)
	defer cancel()

	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+14155550100"}, {Phone: "+14155550101"}})
	if err != nil {
		t.Fatalf("upsert (inTxOn): %v", err)
	}
	ids := []int64{up.Contacts[0].ID, up.Contacts[1].ID}
	seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Turns", ContactIDs: ids[:1]})
	if err != nil {
		t.Fatalf("create a segment (inTx): %v", err)
	}
	name := "Turned"
	if _, err := s.UpdateSegment(ctx, ws.ID, seg.ID, crm.SegmentPatch{Name: crm.Optional[*string]{Set: true, Value: &name}}); err != nil {
		t.Fatalf("update a segment (inTx): %v", err)
	}
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids, []int64{seg.ID}, store.WithSegments); err != nil {
		t.Fatalf("assign (inTx): %v", err)
	}
	// With attributes, its UPDATE ran in the transaction on the caller's context, and
	// waited for a second turn until the deadline (a reviewer's probe).
	if _, err := s.UpdateContact(ctx, ws.ID, ids[0], crm.ContactPatch{ContactDetails: crm.ContactDetails{
		Attributes: crm.Some(map[string]any{"tier": "gold"})}}); err != nil {
		t.Fatalf("update a contact's attributes (inTx): %v", err)
	}
	if _, err := s.DeleteContacts(ctx, ws.ID, ids[1:], store.WithSegments); err != nil {
		t.Fatalf("delete (inTx): %v", err)
	}
	got, err := s.SegmentsByID(ctx, ws.ID, []int64{seg.ID})
	if err != nil || got[seg.ID].ContactCount != 1 {
		t.Fatalf("the segment after: %+v, %v; want 1 contact", got[seg.ID], err)
	}
}
