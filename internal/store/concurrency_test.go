package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCountsStayExactUnderConcurrentWriters runs writers that assign, remove and delete
// on overlapping contacts and segments at once, then checks every counter and every
// segment's bitmaps against the memberships they are derived from.
func TestCountsStayExactUnderConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)

	in := make([]crm.ContactInput, 400)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", 50_000+i)}
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	contacts := make([]int64, len(up.Contacts))
	for i, c := range up.Contacts {
		contacts[i] = c.ID
	}
	segments := newSegments(t, s, ws.ID, 8)

	var mu sync.Mutex // guards the lists of what still exists
	sample := func(rng *rand.Rand, from []int64, n int) []int64 {
		mu.Lock()
		defer mu.Unlock()
		out := make([]int64, 0, n)
		for range n {
			if len(from) > 0 {
				out = append(out, from[rng.IntN(len(from))])
			}
		}
		return out
	}
	runWriters(t, 8, 60, 7, func(w, op int, rng *rand.Rand) error {
		cs, ss := sample(rng, contacts, 1+rng.IntN(60)), sample(rng, segments, 1+rng.IntN(4))
		switch {
		case op%10 == 9: // delete a few contacts
			_, err := s.DeleteContacts(ctx, ws.ID, sample(rng, contacts, 2), store.WithSegments)
			return err
		case rng.IntN(3) == 0:
			_, err := s.RemoveContactsFromSegments(ctx, ws.ID, cs, ss, store.WithSegments)
			return err
		default:
			_, err := s.AssignContactsToSegments(ctx, ws.ID, cs, ss, store.WithSegments)
			return err
		}
	})
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
}

// runWriters runs ops operations in each of workers goroutines at once, each with a
// random source of its own (seeded by seed and the worker). A refusal (a user error,
// such as NOT_FOUND for a contact another worker deleted, with nothing changed) is an
// expected outcome; any other error stops its worker and fails the test.
func runWriters(t *testing.T, workers, ops int, seed uint64, op func(w, op int, rng *rand.Rand) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), seed))
			for i := range ops {
				if err := op(w, i, rng); err != nil && crm.UserErrors(err) == nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// newSegments creates n empty segments named S0, S1, … in workspace ws and returns
// their IDs.
func newSegments(t *testing.T, s *store.Store, ws int64, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		seg, err := s.CreateSegment(context.Background(), ws, crm.NewSegment{Name: fmt.Sprintf("S%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = seg.ID
	}
	return ids
}

// checkBitmaps fails the test when a segment of workspace ws has bitmaps other than
// those of its memberships. (Other workspaces of the shared database may drift on
// purpose: TestAssignRacingAnUnlockedWriter adds a membership with the triggers off.)
func checkBitmaps(t *testing.T, s *store.Store, ws int64) {
	t.Helper()
	drift, err := s.CheckBitmaps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drift {
		if d.WorkspaceID == ws {
			t.Errorf("bitmaps drifted from the memberships: %+v", d)
		}
	}
}

func checkCounts(t *testing.T, s *store.Store, ws int64) {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), `
		SELECT s.id, s.contact_count, (SELECT count(*) FROM memberships m WHERE m.workspace_id = s.workspace_id AND m.segment_id = s.id)
		FROM segments s WHERE s.workspace_id = $1`, ws)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, counter, real int64
		if err := rows.Scan(&id, &counter, &real); err != nil {
			t.Fatal(err)
		}
		if counter != real {
			t.Errorf("segment %d: contact_count %d, memberships %d", id, counter, real)
		}
	}
}

// TestAssignRacingContactDeletion deletes a contact in a transaction of its own that
// commits only after an assignment that names it waits for it, at the lock of its
// contacts: the assignment must then refuse with NOT_FOUND for that contact, with
// nothing changed, rather than fail or add the others.
func TestAssignRacingContactDeletion(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 40_000, map[string]int{"Race": 0})
	seg, victim := f.segments["Race"], f.contacts[3]
	before := segmentRows(t, s, f.ws.ID)

	del, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer del.Rollback()
	if _, err := del.ExecContext(ctx, "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2", f.ws.ID, victim); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.AssignContactsToSegments(ctx, f.ws.ID, f.contacts, []int64{seg}, store.WithSegments)
		done <- err
	}()
	// The assignment waits for the deleting transaction's row lock: only then does the
	// deletion commit.
	waitForLock(t, s.DB(), `FROM "contacts"%FOR KEY SHARE`, done)
	if err := del.Commit(); err != nil {
		t.Fatal(err)
	}
	err = <-done
	errs := crm.UserErrors(err)
	if len(errs) != 1 || errs[0].Code != crm.CodeNotFound || strings.Join(errs[0].Field, ".") != "contactIds.3" {
		t.Fatalf("assignment racing a deletion returned %v, want NOT_FOUND for contactIds[3]", err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM memberships WHERE workspace_id = $1 AND segment_id = $2", f.ws.ID, seg).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d memberships after the refusal (%v), want 0", n, err)
	}
	if after := segmentRows(t, s, f.ws.ID); after != before {
		t.Fatalf("segments changed by a refused assignment:\n%s\n%s", before, after)
	}
}

// TestAssignRacingAnUnlockedWriter adds a membership in a transaction that, unlike
// the store's writers, takes no lock of its segment (triggers off, as SQL by hand
// could), and commits it only once an assignment of the same pair waits for it. The
// assignment found no such membership when it started and inserts without ON
// CONFLICT (insertMemberships), so its insert fails on the primary key: it must run
// again and add the others, not fail.
func TestAssignRacingAnUnlockedWriter(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 40_600, map[string]int{"Race": 0})
	seg, taken := f.segments["Race"], f.contacts[2]

	raw, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Rollback()
	if _, err := raw.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, "INSERT INTO memberships VALUES ($1, $2, $3)", f.ws.ID, seg, taken); err != nil {
		t.Fatal(err)
	}

	var got store.MembershipChange // written before done is sent on
	done := make(chan error, 1)
	go func() {
		var err error
		got, err = s.AssignContactsToSegments(ctx, f.ws.ID, f.contacts[:5], []int64{seg}, store.WithSegments)
		done <- err
	}()
	waitForLock(t, s.DB(), "INSERT INTO memberships", done)
	if err := raw.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got.Changed != 4 {
		t.Fatalf("assignment racing an unlocked writer: changed %d, %v; want 4 added, no error", got.Changed, err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM memberships WHERE workspace_id = $1 AND segment_id = $2", f.ws.ID, seg).Scan(&n); err != nil || n != 5 {
		t.Fatalf("%d memberships (%v), want 5", n, err)
	}
}

// TestUpsertsAndDeletionsLockInOneOrder runs bulk upserts that change the same
// existing contacts, each listing them in an order of its own, beside deletions of
// some of them. Every writer locks contacts in id order (see lockContacts), so
// PostgreSQL meets no deadlock; the store would retry one, but only after
// deadlock_timeout, a second.
func TestUpsertsAndDeletionsLockInOneOrder(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)

	phones := make([]string, 200)
	for i := range phones {
		phones[i] = fmt.Sprintf("+9197%08d", 70_000+i)
	}
	var ids phoneIDs
	upsert := func(phones []string, name string) error {
		in := make([]crm.ContactInput, len(phones))
		for i, p := range phones {
			in[i] = crm.ContactInput{Phone: p, ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}}
		}
		up, err := s.UpsertContacts(ctx, ws.ID, in)
		ids.note(up.Contacts)
		return err
	}
	if err := upsert(phones, "first"); err != nil {
		t.Fatal(err)
	}
	before := storetest.Deadlocks(t, s)

	runWriters(t, 6, 30, 11, func(w, op int, rng *rand.Rand) error {
		var picked []string
		for _, i := range rng.Perm(len(phones))[:60] {
			picked = append(picked, phones[i])
		}
		if w%3 != 2 {
			// An update of 60 (creating again those deleted).
			return upsert(picked, fmt.Sprintf("w%d op%d", w, op))
		}
		// A deletion of 20 of them.
		_, err := s.DeleteContacts(ctx, ws.ID, ids.of(picked[:20]), store.WithSegments)
		return err
	})
	if n := storetest.Deadlocks(t, s) - before; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}
}

// TestUpsertsOfNewPhonesLockInOneOrder runs upserts of the same phones, new to the
// workspace, at once, each listing them in an order of its own: all but the first
// find them created by another after their lock, and lock them in id order before
// they update them. They updated them in the orders of their joins, and deadlocked
// (a helper saw 7 of 80 such requests fail, with 8 clients at once).
func TestUpsertsOfNewPhonesLockInOneOrder(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	before := storetest.Deadlocks(t, s)
	const phones, rounds = 50, 25
	var mu sync.Mutex
	createdBy := map[int64]int{} // contact -> the upserts that said they created it
	runWriters(t, 8, rounds, 13, func(w, op int, rng *rand.Rand) error {
		name := fmt.Sprintf("w%d", w)
		in := make([]crm.ContactInput, phones)
		for i, p := range rng.Perm(phones) { // the op's own phones, new at its start
			in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", 80_000+op*phones+p), ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}}
		}
		up, err := s.UpsertContacts(ctx, ws.ID, in)
		if err != nil {
			return err
		}
		// CreatedIDs (createdContactIds) are this upsert's own, in its input's order,
		// through the retries of an upsert that met another's new rows.
		var inOrder []int64
		for _, c := range up.Contacts {
			if slices.Contains(up.CreatedIDs, c.ID) && !slices.Contains(inOrder, c.ID) {
				inOrder = append(inOrder, c.ID)
			}
		}
		if len(up.CreatedIDs) != up.Created || !slices.Equal(inOrder, up.CreatedIDs) {
			return fmt.Errorf("created %d, CreatedIDs %v, in input order %v", up.Created, up.CreatedIDs, inOrder)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range up.CreatedIDs {
			createdBy[id]++
		}
		return nil
	})
	if n := storetest.Deadlocks(t, s) - before; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM contacts WHERE workspace_id = $1", ws.ID).Scan(&n); err != nil || n != rounds*phones {
		t.Errorf("%d contacts (%v), want %d", n, err, rounds*phones)
	}
	for id, by := range createdBy {
		if by != 1 {
			t.Errorf("contact %d created by %d upserts", id, by)
		}
	}
	if len(createdBy) != rounds*phones {
		t.Errorf("%d contacts reported created, want %d", len(createdBy), rounds*phones)
	}
}

// TestUpsertsBesideDeletionsOfTheirPhones runs upserts of a few phones, each listing
// some of them in an order of its own, beside deletions of those contacts, which make
// their phones new again between one upsert's statements. An upsert that found phones
// created by another after its first lock locked them then, holding rows it had
// inserted meanwhile, and met the upserts that waited for those: PostgreSQL saw 29
// deadlocks in 45 s of a helper's 5 upserters and 5 deleters, and an upsert whose
// attempts ran out answered INTERNAL_SERVER_ERROR. Such an upsert now tries those locks
// without waiting, and runs again from the start when one is held.
func TestUpsertsBesideDeletionsOfTheirPhones(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	phones := make([]string, 12)
	for i := range phones {
		phones[i] = fmt.Sprintf("+9193%08d", 100+i)
	}
	var ids phoneIDs
	before := storetest.Deadlocks(t, s)
	runWriters(t, 8, 60, 17, func(w, op int, rng *rand.Rand) error {
		if w%2 == 0 {
			n := 3 + rng.IntN(10)
			in := make([]crm.ContactInput, n)
			for i, p := range rng.Perm(len(phones))[:n] {
				name := fmt.Sprintf("w%d op%d", w, op)
				in[i] = crm.ContactInput{Phone: phones[p], ContactDetails: crm.ContactDetails{
					Name: crm.Some(&name), Attributes: crm.Some(map[string]any{"x": op})}}
			}
			up, err := s.UpsertContacts(ctx, ws.ID, in)
			ids.note(up.Contacts)
			return err
		}
		var picked []string
		for _, p := range rng.Perm(len(phones))[:1+rng.IntN(6)] {
			picked = append(picked, phones[p])
		}
		del := ids.of(picked)
		if len(del) == 0 {
			return nil
		}
		_, err := s.DeleteContacts(ctx, ws.ID, del, store.WithSegments)
		return err
	})
	if n := storetest.Deadlocks(t, s) - before; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}
}

// phoneIDs are the IDs of contacts by phone, as the last upsert that returned each
// said, for a test's writers to delete them by.
type phoneIDs struct {
	mu  sync.Mutex
	ids map[string]int64
}

// note records the IDs of contacts an upsert returned.
func (p *phoneIDs) note(contacts []crm.Contact) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids == nil {
		p.ids = map[string]int64{}
	}
	for _, c := range contacts {
		p.ids[c.Phone] = c.ID
	}
}

// of returns the IDs noted for phones, in their order, leaving out the phones none
// was noted for.
func (p *phoneIDs) of(phones []string) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int64
	for _, phone := range phones {
		if id, ok := p.ids[phone]; ok {
			out = append(out, id)
		}
	}
	return out
}

// waitForLock returns once some session waits for a lock in a statement that matches
// the LIKE pattern %marker%. It fails the test if the statement, whose outcome done
// carries, finishes first, or if none waits within ten seconds: either way it took no
// lock that conflicts.
func waitForLock(t *testing.T, db *sql.DB, marker string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		select {
		case err := <-done:
			t.Fatalf("%s... finished without waiting for the other transaction: %v", marker, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s... did not wait for the other transaction", marker)
		}
		err := db.QueryRowContext(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%')`, marker).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// pendingAssignment opens a transaction that holds what an assignment to seg holds
// until it commits: the segment locked FOR KEY SHARE and, when contact is not 0, the
// contact's new membership (the counter's row lock on the segment, the bitmaps' chunk).
func pendingAssignment(t *testing.T, s *store.Store, ws, seg, contact int64) *sql.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.ExecContext(ctx, "SELECT 1 FROM segments WHERE workspace_id = $1 AND id = $2 FOR KEY SHARE", ws, seg); err != nil {
		t.Fatal(err)
	}
	if contact != 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO memberships VALUES ($1, $2, $3)", ws, seg, contact); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

// TestAssignmentsToASegmentRunAtOnce holds an assignment to a segment open, and
// starts another assignment to it: the second must get as far as its insert, where it
// waits for the bitmaps' chunk the first holds, rather than wait at the segment's
// lock before it inserts anything (as it did when assignments locked their segments
// FOR UPDATE). Once the first commits, the second adds its contacts, and the counter
// and the bitmaps hold both.
func TestAssignmentsToASegmentRunAtOnce(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 41_200, map[string]int{"Shared": 0})
	seg := f.segments["Shared"]
	first := pendingAssignment(t, s, f.ws.ID, seg, f.contacts[0])

	var got store.MembershipChange // written before done is sent on
	done := make(chan error, 1)
	go func() {
		var err error
		got, err = s.AssignContactsToSegments(ctx, f.ws.ID, f.contacts[1:6], []int64{seg}, store.WithSegments)
		done <- err
	}()
	waitForLock(t, s.DB(), "INSERT INTO memberships", done)
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got.Changed != 5 || got.Segments[0].ContactCount != 6 {
		t.Fatalf("second assignment: changed %d, count %d, %v; want 5 added, a count of 6", got.Changed, got.Segments[0].ContactCount, err)
	}
	checkCounts(t, s, f.ws.ID)
	checkBitmaps(t, s, f.ws.ID)
}

// TestRemovalsWaitForAssignments holds an assignment to a segment open, before its
// insert, and starts a removal from the segment: the removal must wait at the
// segment's lock, before it deletes anything. The bitmaps' removal trigger relies on
// it: it decides between clearing a chunk's bits and deleting the chunk on the chunk
// as its statement found it, and must not meet one that an assignment changes.
func TestRemovalsWaitForAssignments(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 41_300, map[string]int{"Shared": 4})
	seg := f.segments["Shared"]
	assigning := pendingAssignment(t, s, f.ws.ID, seg, 0)

	done := make(chan error, 1)
	go func() {
		_, err := s.RemoveContactsFromSegments(ctx, f.ws.ID, f.contacts[:2], []int64{seg}, store.WithSegments)
		done <- err
	}()
	waitForLock(t, s.DB(), `FROM "segments"%FOR UPDATE`, done)
	if _, err := assigning.ExecContext(ctx, "INSERT INTO memberships VALUES ($1, $2, $3)", f.ws.ID, seg, f.contacts[5]); err != nil {
		t.Fatal(err)
	}
	if err := assigning.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, f.ws.ID)
	checkBitmaps(t, s, f.ws.ID)
}

// TestAssignmentsInsertPairsInOneOrder: two assignments that insert the same pairs do
// so in one order (segment by segment, the contacts ascending), so that the later
// waits at the first pair the other holds and holds none the other needs. With a
// plain cross join of the two lists, PostgreSQL inserted contact by contact whenever a
// request had fewer contacts than segments: here T2 (2 contacts, 3 segments) held
// (s2, c1) and waited for (s1, c2), which T1 (5 contacts, 2 segments) held while it
// waited for (s2, c1), PostgreSQL's deadlock, which
// TestConcurrentAssignmentsLockInOneOrder met once in a full run of the tests. T1
// is held inside its insert by a pair that a third transaction inserted without
// triggers, so that T2 starts its own there.
func TestAssignmentsInsertPairsInOneOrder(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 10})
	ws, _ := storetest.Workspace(t, s)
	in := make([]crm.ContactInput, 5)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9196%08d", i)}
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	var c []int64
	for _, x := range up.Contacts {
		c = append(c, x.ID)
	}
	seg := newSegments(t, s, ws.ID, 3)
	// A pair both skip, so that neither waits at the first pair they share.
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, c[:1], seg[:1], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	before := storetest.Deadlocks(t, s)

	hold, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	for _, q := range []string{"SET LOCAL session_replication_role = replica", "INSERT INTO memberships VALUES ($1, $2, $3)"} {
		var args []any
		if strings.HasPrefix(q, "INSERT") {
			args = []any{ws.ID, seg[0], c[2]}
		}
		if _, err := hold.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.AssignContactsToSegments(ctx, ws.ID, c, seg[:2], store.WithSegments)
		done1 <- err
	}()
	waitForLock(t, s.DB(), "INSERT INTO memberships", done1)
	go func() {
		_, err := s.AssignContactsToSegments(ctx, ws.ID, c[:2], seg, store.WithSegments)
		done2 <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO memberships%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second assignment never waited in its insert")
		}
	}
	hold.Rollback()
	if err1, err2 := <-done1, <-done2; err1 != nil || err2 != nil {
		t.Fatalf("the assignments: %v, %v", err1, err2)
	}
	if n := storetest.Deadlocks(t, s) - before; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
}

// TestConcurrentAssignmentsLockInOneOrder runs assignments of contacts spread over
// four of the bitmaps' chunks to overlapping segments, from eight connections at once.
// They share segments, and some of them chunks, and lock what they share in one order
// (chunks, then segments; migration 20261205000003), so PostgreSQL meets no deadlock;
// the store would retry one, but only after deadlock_timeout, a second. Two that add
// the same pair run again (insertMemberships). The counters and the bitmaps end exact.
func TestConcurrentAssignmentsLockInOneOrder(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 10})
	ws, _ := storetest.Workspace(t, s)
	var contacts []int64
	for chunk := range 4 {
		// A chunk holds 32,768 contact IDs (segment_bitmap_chunks: contact >> 15).
		if chunk > 0 {
			storetest.Exec(t, s.DB(), fmt.Sprintf("SELECT setval(pg_get_serial_sequence('contacts', 'id'), %d)", chunk<<15))
		}
		in := make([]crm.ContactInput, 40)
		for i := range in {
			in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9196%08d", chunk*100+i)}
		}
		up, err := s.UpsertContacts(ctx, ws.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range up.Contacts {
			contacts = append(contacts, c.ID)
		}
	}
	segments := newSegments(t, s, ws.ID, 6)
	before := storetest.Deadlocks(t, s)
	runWriters(t, 8, 120, 13, func(w, op int, rng *rand.Rand) error {
		// Most of them from one chunk: assignments that share segments but no chunk
		// reach the counters without having waited for each other.
		from := contacts
		if op%4 != 0 {
			chunk := rng.IntN(4)
			from = contacts[chunk*40 : (chunk+1)*40]
		}
		cs := make([]int64, 1+rng.IntN(20))
		for i := range cs {
			cs[i] = from[rng.IntN(len(from))]
		}
		ss := make([]int64, 2+rng.IntN(3))
		for i := range ss {
			ss[i] = segments[rng.IntN(len(segments))]
		}
		_, err := s.AssignContactsToSegments(ctx, ws.ID, cs, ss, store.WithSegments)
		return err
	})
	if n := storetest.Deadlocks(t, s) - before; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
}

// TestSwapsRetriedWhenTheyDeadlock: a rename racing another that takes its name, and
// a phone change racing one that takes its phone, wait for each other in the unique
// index; PostgreSQL breaks the deadlock by failing one, which is run again and so
// answered as the other's order says. They were answered INTERNAL_SERVER_ERROR (a
// helper saw 6 in 400 concurrent swaps of two names, 7 of two phones).
func TestSwapsRetriedWhenTheyDeadlock(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 40_700, map[string]int{"x": 0, "y": 0})
	phone := func(i int) string { return fmt.Sprintf("+9197%08d", 40_700+i) }
	for _, tc := range []struct {
		name string
		// holdFirst takes the first's name or phone for the second, uncommitted; then
		// change moves the second to the first's, which waits for it; then holdSecond
		// makes the first transaction wait for the second.
		holdFirst, holdSecond string
		first, second         int64
		change                func() error
		marker                string
	}{
		{"segments", "UPDATE segments SET name = 'y2' WHERE workspace_id = $1 AND id = $2",
			"UPDATE segments SET name = 'z' WHERE workspace_id = $1 AND id = $2", f.segments["y"], f.segments["x"],
			func() error {
				_, err := s.UpdateSegment(ctx, f.ws.ID, f.segments["x"], crm.SegmentPatch{Name: crm.Some(new("y"))})
				return err
			}, `UPDATE "segments"`},
		{"contacts", "UPDATE contacts SET phone = '" + phone(20) + "' WHERE workspace_id = $1 AND id = $2",
			"UPDATE contacts SET phone = '" + phone(21) + "' WHERE workspace_id = $1 AND id = $2", f.contacts[1], f.contacts[0],
			func() error {
				_, err := s.UpdateContact(ctx, f.ws.ID, f.contacts[0], crm.ContactPatch{Phone: crm.Some(new(phone(1)))})
				return err
			}, "UPDATE contacts AS c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Rollback()
			if _, err := raw.ExecContext(ctx, tc.holdFirst, f.ws.ID, tc.first); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.change() }()
			waitForLock(t, s.DB(), tc.marker, done)
			// The other transaction now waits for the change: a deadlock, which
			// PostgreSQL breaks by failing the change, which waited first. (Unless
			// this statement reached PostgreSQL more than deadlock_timeout after the
			// change began to wait, as on a loaded machine: the change found no
			// deadlock then, and this transaction is failed in its place.)
			if _, err := raw.ExecContext(ctx, tc.holdSecond, f.ws.ID, tc.second); err != nil {
				if !strings.Contains(err.Error(), "40P01") {
					t.Fatal(err)
				}
				// Rolled back, it keeps the name or phone: the change is TAKEN.
				t.Log("the other transaction, not the change, was failed: the change's retry was not needed")
				raw.Rollback()
				if errs := crm.UserErrors(<-done); len(errs) != 1 || errs[0].Code != crm.CodeTaken {
					t.Fatalf("the change after the other transaction failed: %v, want TAKEN", errs)
				}
				return
			}
			if err := raw.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("the change that deadlocked: %v; want it run again, and done", err)
			}
		})
	}
}

// TestAssignmentRetriedWhenItsContactsDeadlock: an assignment whose lock of its
// contacts PostgreSQL fails to break a deadlock is run again, and done. The segments'
// lock then ran in the aborted transaction, and its error (25P02, "current
// transaction is aborted") was the one returned: not a deadlock, so not run again,
// and the cause hidden from the log.
func TestAssignmentRetriedWhenItsContactsDeadlock(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newFixture(t, s, 40_720, map[string]int{"s": 0})
	lock := "SELECT FROM contacts WHERE workspace_id = $1 AND id = $2 FOR UPDATE"
	raw, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Rollback()
	if _, err := raw.ExecContext(ctx, lock, f.ws.ID, f.contacts[1]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.AssignContactsToSegments(ctx, f.ws.ID, f.contacts[:2], []int64{f.segments["s"]}, store.WithoutSegments)
		done <- err
	}()
	waitForLock(t, s.DB(), "FOR KEY SHARE", done) // it holds the first contact, waits for the second
	if _, err := raw.ExecContext(ctx, lock, f.ws.ID, f.contacts[0]); err != nil {
		if !strings.Contains(err.Error(), "40P01") {
			t.Fatal(err)
		}
		t.Log("the other transaction, not the assignment, was failed: the assignment's retry was not needed")
		raw.Rollback()
	} else if err := raw.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the assignment that deadlocked: %v; want it run again, and done", err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM memberships WHERE workspace_id = $1 AND segment_id = $2",
		f.ws.ID, f.segments["s"]).Scan(&n); err != nil || n != 2 {
		t.Errorf("the segment has %d members (%v), want 2", n, err)
	}
}
