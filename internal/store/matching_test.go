package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// matchingFixture is a workspace of 12 contacts, "Asha 0" to "Asha 5" and "Ravi 0" to
// "Ravi 5", with segments Even (contacts 0, 2 and 4 of each name), Low (0 to 2 of
// each) and Target, empty: what the changes below add to and remove from. Another
// workspace has contacts of the same names and an Even segment of its own.
type matchingFixture struct {
	ws                   int64
	contacts             []int64 // Asha 0-5, then Ravi 0-5
	even, low, target    int64
	otherWS, otherEven   int64
	otherContactsByNames []int64
}

func newMatchingFixture(t *testing.T, s *store.Store, phoneBase int) matchingFixture {
	t.Helper()
	ctx := context.Background()
	var f matchingFixture
	for w := range 2 {
		ws, _ := storetest.Workspace(t, s)
		var in []crm.ContactInput
		for _, name := range []string{"Asha", "Ravi"} {
			for i := range 6 {
				n := fmt.Sprintf("%s %d", name, i)
				in = append(in, crm.ContactInput{Phone: fmt.Sprintf("+9193%08d", phoneBase+len(in)), ContactDetails: crm.ContactDetails{Name: crm.Optional[*string]{Value: &n, Set: true}}})
			}
		}
		up, err := s.UpsertContacts(ctx, ws.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		ids := crm.ContactIDs(up.Contacts)
		segment := func(name string, keep func(i int) bool) int64 {
			var members []int64
			for i, id := range ids {
				if keep != nil && keep(i%6) {
					members = append(members, id)
				}
			}
			seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: name, ContactIDs: members})
			if err != nil {
				t.Fatal(err)
			}
			return seg.ID
		}
		even := segment("Even", func(i int) bool { return i%2 == 0 })
		if w == 1 {
			f.otherWS, f.otherEven, f.otherContactsByNames = ws.ID, even, ids
			break
		}
		f.ws, f.contacts, f.even = ws.ID, ids, even
		f.low = segment("Low", func(i int) bool { return i <= 2 })
		f.target = segment("Target", nil)
	}
	return f
}

// members returns the members of segment seg, in id order.
func members(t *testing.T, db *sql.DB, ws, seg int64) []int64 {
	t.Helper()
	return storetest.Column[int64](t, db, "SELECT contact_id FROM memberships WHERE workspace_id = $1 AND segment_id = $2 ORDER BY contact_id", ws, seg)
}

// TestChangeMembershipsMatching adds the contacts that a search, a filter (any, all,
// none) or both select to a segment, then removes them: the change applies to exactly
// the contacts Contacts lists for the same query, counts them (Matched) and the
// memberships changed, and keeps the counters and bitmaps right.
func TestChangeMembershipsMatching(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newMatchingFixture(t, s, 10_000)
	c := f.contacts
	for _, tc := range []struct {
		name string
		q    crm.ContactQuery
		want []int64
	}{
		{"search", crm.ContactQuery{Search: "asha"}, c[:6]},
		{"any", crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{f.even}}}, []int64{c[0], c[2], c[4], c[6], c[8], c[10]}},
		{"all", crm.ContactQuery{Segments: crm.MembershipFilter{All: []int64{f.even, f.low}}}, []int64{c[0], c[2], c[6], c[8]}},
		{"none", crm.ContactQuery{Segments: crm.MembershipFilter{None: []int64{f.low}}}, []int64{c[3], c[4], c[5], c[9], c[10], c[11]}},
		{"search and filter", crm.ContactQuery{Search: "ravi", Segments: crm.MembershipFilter{Any: []int64{f.low}, None: []int64{f.even}}}, []int64{c[7]}},
		{"nobody", crm.ContactQuery{Search: "nobody"}, nil},
		{"empty any", crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{}}}, nil},
		{"everybody", crm.ContactQuery{}, c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listQ := tc.q
			listQ.Order = crm.DefaultContactOrder
			page, err := s.Contacts(ctx, f.ws, listQ, crm.PageArgs{First: ptr(100)})
			if err != nil {
				t.Fatal(err)
			}
			listed := crm.ContactIDs(page.Items)
			slices.Sort(listed)
			if !slices.Equal(listed, tc.want) {
				t.Fatalf("Contacts lists %v, want %v", listed, tc.want)
			}
			// One of them a member already: it matches, and is not added again.
			var already []int64
			if len(tc.want) > 0 {
				already = tc.want[:1]
				if _, err := s.AssignContactsToSegments(ctx, f.ws, already, []int64{f.target}, store.WithoutSegments); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.AssignContactsMatching(ctx, f.ws, tc.q, []int64{f.target, f.target}, store.WithSegments)
			if err != nil {
				t.Fatal(err)
			}
			if got.Matched != len(tc.want) || got.Changed != len(tc.want)-len(already) || len(got.Segments) != 1 || got.Segments[0].ContactCount != int64(len(tc.want)) {
				t.Errorf("assigned: matched %d, changed %d, segments %+v; want %d, %d, Target with %d", got.Matched, got.Changed, got.Segments, len(tc.want), len(tc.want)-len(already), len(tc.want))
			}
			if m := members(t, s.DB(), f.ws, f.target); !slices.Equal(m, tc.want) {
				t.Errorf("members %v, want %v", m, tc.want)
			}
			checkDerived(t, s, f.ws)

			got, err = s.RemoveContactsMatching(ctx, f.ws, tc.q, []int64{f.target}, store.WithoutSegments)
			if err != nil || got.Matched != len(tc.want) || got.Changed != len(tc.want) || got.Segments != nil {
				t.Errorf("removed: matched %d, changed %d, segments %v (%v); want %d, %d, none", got.Matched, got.Changed, got.Segments, err, len(tc.want), len(tc.want))
			}
			if m := members(t, s.DB(), f.ws, f.target); len(m) != 0 {
				t.Errorf("members %v after the removal, want none", m)
			}
			checkDerived(t, s, f.ws)
		})
	}
}

// TestMatchingStaysInTheWorkspace selects by the names the contacts of another
// workspace share and by that workspace's segment: the search selects the
// workspace's own contacts only, and the other workspace's segment is an empty one
// (any: nobody; none: everybody), as an ID that names nothing is.
func TestMatchingStaysInTheWorkspace(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newMatchingFixture(t, s, 10_100)
	otherBefore := segmentRows(t, s, f.otherWS)
	for _, tc := range []struct {
		name string
		q    crm.ContactQuery
		want int
	}{
		{"search", crm.ContactQuery{Search: "Asha"}, 6},
		{"another workspace's segment, any", crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{f.otherEven}}}, 0},
		{"another workspace's segment, all", crm.ContactQuery{Segments: crm.MembershipFilter{All: []int64{f.otherEven}}}, 0},
		{"another workspace's segment, none", crm.ContactQuery{Segments: crm.MembershipFilter{None: []int64{f.otherEven}}}, 12},
	} {
		got, err := s.AssignContactsMatching(ctx, f.ws, tc.q, []int64{f.target}, store.WithSegments)
		if err != nil || got.Matched != tc.want || got.Changed != tc.want {
			t.Errorf("%s: matched %d, changed %d (%v); want %d", tc.name, got.Matched, got.Changed, err, tc.want)
		}
		for _, id := range members(t, s.DB(), f.ws, f.target) {
			if slices.Contains(f.otherContactsByNames, id) {
				t.Errorf("%s: another workspace's contact %d added", tc.name, id)
			}
		}
		if _, err := s.RemoveContactsMatching(ctx, f.ws, crm.ContactQuery{}, []int64{f.target}, store.WithoutSegments); err != nil {
			t.Fatal(err)
		}
	}
	// Another workspace's segment as the target is NOT_FOUND, as with contactIds.
	_, err := s.AssignContactsMatching(ctx, f.ws, crm.ContactQuery{}, []int64{f.otherEven}, store.WithSegments)
	if errs := crm.UserErrors(err); len(errs) != 1 || errs[0].Code != crm.CodeNotFound || strings.Join(errs[0].Field, ".") != "segmentIds.0" {
		t.Errorf("assignment to another workspace's segment: %v, want NOT_FOUND at segmentIds.0", err)
	}
	if after := segmentRows(t, s, f.otherWS); after != otherBefore {
		t.Errorf("the other workspace's segments changed:\n%s\n%s", otherBefore, after)
	}
}

// TestMatchingOverTheCap selects one contact more than a change of 100 segments may
// take (crm.MaxMatchedMemberships / 100 = 5,000): TOO_MANY at contactsMatching with
// the number selected and the cap, with the request's other problems, and nothing
// changes. One contact fewer is within the cap.
func TestMatchingOverTheCap(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	over := crm.MaxMatchedMemberships/100 + 1
	storetest.Exec(t, s.DB(), fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone, name) SELECT %[1]d, '+9192' || lpad(g::text, 8, '0'), 'Cap ' || g FROM generate_series(1, %[2]d) g;
		INSERT INTO segments (workspace_id, name) SELECT %[1]d, 'Cap ' || g FROM generate_series(1, 100) g`, ws.ID, over))
	segs := storetest.Column[int64](t, s.DB(), "SELECT id FROM segments WHERE workspace_id = $1 ORDER BY id", ws.ID)
	before := segmentRows(t, s, ws.ID)
	for _, change := range []struct {
		name string
		run  func(context.Context, int64, crm.ContactQuery, []int64, store.SegmentsBack) (store.MembershipChange, error)
	}{{"assign", s.AssignContactsMatching}, {"remove", s.RemoveContactsMatching}} {
		// With a segment that does not exist: both problems at once.
		_, err := change.run(ctx, ws.ID, crm.ContactQuery{Search: "cap"}, append(slices.Clone(segs[:99]), 0), store.WithSegments)
		errs := crm.UserErrors(err)
		want := fmt.Sprintf("contactsMatching selects %d contacts, the maximum for 100 segments is %d", over, over-1)
		if len(errs) != 2 || errs[0].Code != crm.CodeTooMany || strings.Join(errs[0].Field, ".") != "contactsMatching" || !strings.Contains(errs[0].Message, want) ||
			errs[1].Code != crm.CodeNotFound || strings.Join(errs[1].Field, ".") != "segmentIds.99" {
			t.Errorf("%s over the cap: %v; want TOO_MANY at contactsMatching (%q), NOT_FOUND at segmentIds.99", change.name, err, want)
		}
		_, err = change.run(ctx, ws.ID, crm.ContactQuery{Search: "cap"}, segs, store.WithSegments)
		if errs := crm.UserErrors(err); len(errs) != 1 || errs[0].Code != crm.CodeTooMany || !strings.Contains(errs[0].Message, want) {
			t.Errorf("%s over the cap: %v; want TOO_MANY (%q)", change.name, err, want)
		}
		if after := segmentRows(t, s, ws.ID); after != before {
			t.Fatalf("a refused change changed the segments:\n%s\n%s", before, after)
		}
	}
	storetest.Exec(t, s.DB(), "DELETE FROM contacts WHERE workspace_id = $1 AND name = 'Cap 1'", ws.ID)
	got, err := s.AssignContactsMatching(ctx, ws.ID, crm.ContactQuery{Search: "cap"}, segs, store.WithoutSegments)
	if err != nil || got.Matched != over-1 || got.Changed != (over-1)*100 {
		t.Errorf("at the cap: matched %d, changed %d (%v); want %d, %d", got.Matched, got.Changed, err, over-1, (over-1)*100)
	}
	checkDerived(t, s, ws.ID)
}

// TestAssignMatchingRacingContactDeletion is TestAssignRacingContactDeletion for a
// selection: the assignment waits at the lock of the contact another transaction is
// deleting, the first of its locks as with given IDs. Once the deletion commits, the
// contact no longer matches: the others are added, and the counters stay right.
func TestAssignMatchingRacingContactDeletion(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newMatchingFixture(t, s, 10_200)
	victim := f.contacts[3]

	del, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer del.Rollback()
	if _, err := del.ExecContext(ctx, "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2", f.ws, victim); err != nil {
		t.Fatal(err)
	}
	var got store.MembershipChange // written before done is sent on
	done := make(chan error, 1)
	go func() {
		var err error
		got, err = s.AssignContactsMatching(ctx, f.ws, crm.ContactQuery{Search: "asha"}, []int64{f.target}, store.WithSegments)
		done <- err
	}()
	waitForLock(t, s.DB(), `FOR KEY SHARE OF c`, done)
	if err := del.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got.Matched != 5 || got.Changed != 5 || len(got.Segments) != 1 || got.Segments[0].ContactCount != 5 {
		t.Fatalf("assignment racing a deletion: matched %d, changed %d, segments %+v (%v); want 5, 5, 5 members", got.Matched, got.Changed, got.Segments, err)
	}
	want := slices.DeleteFunc(slices.Clone(f.contacts[:6]), func(id int64) bool { return id == victim })
	if m := members(t, s.DB(), f.ws, f.target); !slices.Equal(m, want) {
		t.Errorf("members %v, want %v", m, want)
	}
	checkDerived(t, s, f.ws)
}

// heldSelection starts a select-all that adds the contacts "asha" selects (Asha 0 to
// 5) to Target and holds it open once it has locked them: a transaction of the test
// holds Target, so the selection waits at its segments' lock, the lock after its
// contacts'. Committing the returned transaction lets it finish; its outcome comes on
// the channel.
func heldSelection(t *testing.T, s *store.Store, ctx context.Context, f matchingFixture) (*sql.Tx, <-chan error) {
	t.Helper()
	// The owner's transaction, without the workspace in its context: the statements
	// of one with it take no driver arguments.
	hold, err := storetest.Store(t).DB().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Rollback() })
	if _, err := hold.ExecContext(context.Background(), "SELECT FROM segments WHERE workspace_id = $1 AND id = $2 FOR UPDATE", f.ws, f.target); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		got, err := s.AssignContactsMatching(ctx, f.ws, crm.ContactQuery{Search: "asha"}, []int64{f.target}, store.WithoutSegments)
		if err == nil && (got.Matched != 6 || got.Changed != 6) {
			err = fmt.Errorf("the held selection matched %d and added %d, want 6 and 6", got.Matched, got.Changed)
		}
		done <- err
	}()
	waitForLock(t, s.DB(), `FROM "segments"%FOR KEY SHARE`, done)
	return hold, done
}

// TestDeletionNotOvertakenBySelections: a deletion of a contact that a select-all
// holds waits for it, and a select-all of the same contacts that starts while the
// deletion waits must wait for the deletion, not lock the contact beside the first
// and go ahead of it. PostgreSQL lets a later FOR KEY SHARE locker of a row share it
// at once, ahead of a transaction that waits to lock it exclusively: select-alls that
// followed one another, each starting before the one before it ended, held a
// deletion past the request's deadline (2 of 8 deleteContacts beside four clients
// looping select-alls of 100,000 contacts). Once the first selection commits, the
// deletion runs, and then the second selection, which no longer selects the deleted
// contact. A change of the contact's phone, a key, locks it as exclusively, and takes
// its turn the same way (alone, one statement; with attributes, a transaction).
func TestDeletionNotOvertakenBySelections(t *testing.T) {
	owner, s := storetest.Store(t), storetest.AppStore(t)
	for i, tc := range []struct {
		name   string
		change func(ctx context.Context, ws, contact int64) error
		marker string // of the statement where it waits for the first selection
		// What the second selection of Asha 0-5 matches and adds to Low (Asha 0-2).
		matched, added int
	}{
		{"deletion", func(ctx context.Context, ws, contact int64) error {
			_, err := s.DeleteContacts(ctx, ws, []int64{contact}, store.WithoutSegments)
			return err
		}, `FROM "contacts"%FOR UPDATE`, 5, 2},
		{"change of phone", func(ctx context.Context, ws, contact int64) error {
			_, err := s.UpdateContact(ctx, ws, contact, crm.ContactPatch{Phone: crm.Some(new("+919399999999"))})
			return err
		}, `UPDATE contacts AS c`, 6, 3},
		{"change of phone and attributes", func(ctx context.Context, ws, contact int64) error {
			// In a transaction, which reads the attributes first (checkMergedAttributes).
			_, err := s.UpdateContact(ctx, ws, contact, crm.ContactPatch{Phone: crm.Some(new("+919399999998")),
				ContactDetails: crm.ContactDetails{Attributes: crm.Some(map[string]any{"tier": "gold"})}})
			return err
		}, `UPDATE contacts AS c`, 6, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMatchingFixture(t, owner, 10_300+100*i)
			ctx := store.WithWorkspace(context.Background(), f.ws)
			hold, first := heldSelection(t, s, ctx, f)

			changed := make(chan error, 1)
			go func() { changed <- tc.change(ctx, f.ws, f.contacts[3]) }() // Asha 3
			waitForLock(t, s.DB(), tc.marker, changed)

			var second store.MembershipChange // written before done is sent on
			done := make(chan error, 1)
			go func() {
				var err error
				second, err = s.AssignContactsMatching(ctx, f.ws, crm.ContactQuery{Search: "asha"}, []int64{f.low}, store.WithoutSegments)
				done <- err
			}()
			// Before it locks any contact: Low is free, and with the contacts locked
			// beside the first selection's it would finish now, ahead of the change.
			waitForLock(t, s.DB(), `FOR KEY SHARE OF c`, done)

			if err := hold.Rollback(); err != nil {
				t.Fatal(err)
			}
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			if err := <-changed; err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if err := <-done; err != nil || second.Matched != tc.matched || second.Changed != tc.added {
				t.Fatalf("second selection: matched %d, added %d (%v); want %d, %d", second.Matched, second.Changed, err, tc.matched, tc.added)
			}
			if m := members(t, owner.DB(), f.ws, f.low); len(m) != 6+tc.added || slices.Contains(m, f.contacts[3]) != (tc.matched == 6) {
				t.Errorf("Low's members %v: want 6 and the %d added, Asha 3 (%d) among them unless deleted", m, tc.added, f.contacts[3])
			}
			checkDerived(t, owner, f.ws)
		})
	}
}

// TestSelectionsWaitOnlyForDeletions: while a select-all holds its contacts, another
// select-all of the same contacts runs beside it, and so does a deletion of a contact
// it does not select: the turns that keep deletions from being overtaken
// (TestDeletionNotOvertakenBySelections) queue neither.
func TestSelectionsWaitOnlyForDeletions(t *testing.T) {
	ctx := context.Background()
	s := storetest.AppStore(t)
	f := newMatchingFixture(t, storetest.Store(t), 10_400)
	ctx = store.WithWorkspace(ctx, f.ws)
	hold, first := heldSelection(t, s, ctx, f)

	got, err := s.AssignContactsMatching(ctx, f.ws, crm.ContactQuery{Search: "asha"}, []int64{f.low}, store.WithoutSegments)
	if err != nil || got.Matched != 6 || got.Changed != 3 {
		t.Fatalf("a selection beside the held one: matched %d, changed %d (%v); want 6, 3", got.Matched, got.Changed, err)
	}
	ravi := f.contacts[11] // Ravi 5
	if _, err := s.DeleteContacts(ctx, f.ws, []int64{ravi}, store.WithoutSegments); err != nil {
		t.Fatalf("deletion of a contact the held selection does not select: %v", err)
	}
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkDerived(t, storetest.Store(t), f.ws)
}

// TestWorkspaceDeletionNotOvertakenBySelections: a workspace's deletion, whose
// batches lock its segments and contacts as their removals and deletions do, takes
// the contact turn in each: a select-all that starts while a batch waits for one
// before it waits for it at the turn, rather than locking what the batch waits for
// beside the first and keeping the deletion waiting while select-alls follow one
// another. Between two batches a select-all may pass (a request let through by a
// server's key cache, the workspace being cut off): what it adds goes with the rest.
func TestWorkspaceDeletionNotOvertakenBySelections(t *testing.T) {
	owner, s := storetest.Store(t), storetest.AppStore(t)
	f := newMatchingFixture(t, owner, 10_600)
	ctx := store.WithWorkspace(context.Background(), f.ws)
	hold, first := heldSelection(t, s, ctx, f)

	deleted := make(chan error, 1)
	go func() { deleted <- owner.DeleteWorkspace(context.Background(), f.ws, nil) }()
	waitForLock(t, owner.DB(), `/* workspace deletion */ SELECT id FROM segments`, deleted)

	done := make(chan error, 1)
	go func() {
		_, err := s.AssignContactsMatching(ctx, f.ws, crm.ContactQuery{Search: "asha"}, []int64{f.low}, store.WithoutSegments)
		done <- err
	}()
	// At the turn, before it locks anything: without it, the selection waited at a
	// row the deletion had locked, if at all, not at the turn.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var atTurn bool
		if err := owner.DB().QueryRowContext(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event = 'advisory' AND query LIKE '%segments_pass_advisory_lock%')`).Scan(&atTurn); err != nil {
			t.Fatal(err)
		}
		if atTurn {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the second selection finished without waiting at the contact turn: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second selection did not wait at the contact turn")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("deleting the workspace: %v", err)
	}
	<-done // done or refused, as it passed between two batches or not
	for _, table := range []string{"contacts", "memberships", "segments", "segment_bitmaps"} {
		var left int
		if err := owner.DB().QueryRowContext(context.Background(), "SELECT count(*) FROM "+table+" WHERE workspace_id = $1", f.ws).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d %s left in the deleted workspace (%v)", left, table, err)
		}
	}
}
