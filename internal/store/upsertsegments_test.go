package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestUpsertAddsContactsToSegments: an upsert's AddToSegments puts each contact, new
// or not, in its segments in the upsert's transaction, as an assignment would:
// memberships that exist are kept and not counted, entries of one phone add the
// segments of each, the segments come back once each in the order of first
// appearance with their new counts, the counters and bitmaps stay exact, and the
// feed of memberships lists the additions. Before, the upsert had no way to set
// memberships: a partner sent an assignment per set of segments afterwards.
func TestUpsertAddsContactsToSegments(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	segs := newSegments(t, s, ws.ID, 3)
	known, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919810000001"}})
	if err != nil {
		t.Fatal(err)
	}
	a := known.Contacts[0].ID
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, []int64{a}, segs[:1], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	_, cursor := mfeed(t, s, ctx, ws.ID, nil, 100)

	up, err := s.UpsertContactsWith(ctx, ws.ID, []crm.ContactInput{
		{Phone: "+919810000001", AddToSegments: []int64{segs[0], segs[1]}}, // already in S0
		{Phone: "+919810000002", AddToSegments: []int64{segs[2], segs[1], segs[2]}},
		{Phone: "+919810000003"},
		{Phone: "+91 98100 00002", AddToSegments: []int64{segs[0]}},
	}, store.WithSegments)
	if err != nil {
		t.Fatal(err)
	}
	b, c := up.Contacts[1].ID, up.Contacts[2].ID
	if up.Assigned != 4 || up.Created != 2 {
		t.Errorf("assigned %d, created %d; want 4 and 2", up.Assigned, up.Created)
	}
	var got []string
	for _, seg := range up.Segments {
		got = append(got, fmt.Sprintf("%s:%d", seg.Name, seg.ContactCount))
	}
	if want := []string{"S0:2", "S1:2", "S2:1"}; !slices.Equal(got, want) {
		t.Errorf("segments back %q, want %q", got, want)
	}
	members := func(seg int64) []int64 {
		return storetest.Column[int64](t, s.DB(), "SELECT contact_id FROM memberships WHERE workspace_id = $1 AND segment_id = $2 ORDER BY contact_id", ws.ID, seg)
	}
	for i, want := range [][]int64{{a, b}, {a, b}, {b}} {
		if got := members(segs[i]); !slices.Equal(got, want) {
			t.Errorf("S%d holds %v, want %v", i, got, want)
		}
	}
	if got := members(segs[0]); slices.Contains(got, c) {
		t.Errorf("the contact without addToSegmentIds was added: %v", got)
	}
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
	drift, err := s.CheckCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drift {
		if d.WorkspaceID == ws.ID {
			t.Errorf("segments check: %+v", d)
		}
	}

	changes, _ := mfeed(t, s, ctx, ws.ID, &cursor, 100)
	gotFeed := mchanges(changes)
	slices.SortFunc(gotFeed, func(x, y mchange) int { return int(x.segment - y.segment) })
	wantFeed := []mchange{{true, segs[0], []int64{b}}, {true, segs[1], []int64{a, b}}, {true, segs[2], []int64{b}}}
	if !mchangesEqual(gotFeed, wantFeed) {
		t.Errorf("membershipChanges after the upsert: %v, want %v", gotFeed, wantFeed)
	}

	// Run again: nothing is added, the segments come back all the same.
	again, err := s.UpsertContactsWith(ctx, ws.ID, []crm.ContactInput{
		{Phone: "+919810000002", AddToSegments: []int64{segs[2], segs[0]}},
	}, store.WithSegments)
	if err != nil || again.Assigned != 0 || len(again.Segments) != 2 || again.Segments[0].ContactCount != 1 {
		t.Errorf("again: %+v, %v", again, err)
	}
	// Without WithSegments, none are read back.
	if up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919810000003", AddToSegments: segs[2:]}}); err != nil || up.Assigned != 1 || up.Segments != nil {
		t.Errorf("without segments: %+v, %v", up, err)
	}
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
}

// TestUpsertWithUnknownSegmentsChangesNothing: an ID that names no segment of the
// workspace (another workspace's too) is NOT_FOUND at its place in the entry's list,
// with the entries' other problems, and neither the contacts nor any membership are
// written; lists over their caps are TOO_MANY before anything is read.
func TestUpsertWithUnknownSegmentsChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	segs := newSegments(t, s, ws.ID, 2)
	theirs := newSegments(t, s, other.ID, 1)
	state := func() string {
		var out string
		if err := s.DB().QueryRowContext(ctx, `SELECT format('%s contacts, %s memberships, counts %s',
			(SELECT count(*) FROM contacts WHERE workspace_id = $1), (SELECT count(*) FROM memberships WHERE workspace_id = $1),
			(SELECT string_agg(contact_count::text, ',' ORDER BY id) FROM segments WHERE workspace_id = $1))`, ws.ID).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := state()
	many := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = segs[i%2]
		}
		return out
	}
	tenThousand := make([]crm.ContactInput, 101)
	for i := range tenThousand {
		tenThousand[i] = crm.ContactInput{Phone: fmt.Sprintf("+9198110%05d", i), AddToSegments: many(99)}
	}
	for _, tc := range []struct {
		name string
		in   []crm.ContactInput
		want []string
	}{
		{"unknown", []crm.ContactInput{
			{Phone: "+919811000001", AddToSegments: segs},
			{Phone: "+919811000002", AddToSegments: []int64{segs[1], 1 << 50, segs[0], theirs[0]}},
		}, []string{"NOT_FOUND at contacts.1.addToSegmentIds.1", "NOT_FOUND at contacts.1.addToSegmentIds.3"}},
		{"unknown beside a bad phone", []crm.ContactInput{
			{Phone: "12345", AddToSegments: segs},
			{Phone: "+919811000002", AddToSegments: []int64{1 << 50}},
		}, []string{"INVALID at contacts.0.phone", "NOT_FOUND at contacts.1.addToSegmentIds.0"}},
		{"101 in an entry", []crm.ContactInput{{Phone: "+919811000001", AddToSegments: many(101)}},
			[]string{"TOO_MANY at contacts.0.addToSegmentIds"}},
		{"10,001 in all", append(tenThousand[:101:101], crm.ContactInput{Phone: "+919811000001", AddToSegments: many(2)}),
			[]string{"TOO_MANY at contacts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.UpsertContactsWith(ctx, ws.ID, tc.in, store.WithSegments)
			var got []string
			for _, e := range crm.UserErrors(err) {
				got = append(got, string(e.Code)+" at "+strings.Join(e.Field, "."))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors %q (%v), want %q", got, err, tc.want)
			}
			if after := state(); after != before {
				t.Errorf("refused, yet %s, before %s", after, before)
			}
		})
	}
}

// TestUpsertsAndAssignmentsLockInOneOrder runs upserts that add their contacts (some
// new, some existing, listed in orders of their own) to segments, beside assignments,
// removals and deletions of the same contacts and segments, from eight connections at
// once. The upsert locks as an assignment does (contacts, then segments in id order,
// then the pairs in index order, whose triggers take the chunks and then the
// counters), so PostgreSQL meets no deadlock (the store would retry one, after
// deadlock_timeout); the counters and the bitmaps end exact.
func TestUpsertsAndAssignmentsLockInOneOrder(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 10})
	ws, _ := storetest.Workspace(t, s)
	phones := make([]string, 48)
	for i := range phones {
		phones[i] = fmt.Sprintf("+9198120%05d", i)
	}
	var ids phoneIDs
	in := make([]crm.ContactInput, len(phones)/2)
	for i := range in {
		in[i] = crm.ContactInput{Phone: phones[i]}
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	ids.note(up.Contacts)
	segments := newSegments(t, s, ws.ID, 4)
	pickSegments := func(rng *rand.Rand) []int64 {
		ss := make([]int64, 1+rng.IntN(4))
		for i := range ss {
			ss[i] = segments[rng.IntN(len(segments))]
		}
		return ss
	}
	var mu sync.Mutex
	upserts := 0
	before := storetest.Deadlocks(t, s)
	runWriters(t, 8, 40, 17, func(w, op int, rng *rand.Rand) error {
		var picked []string
		for _, i := range rng.Perm(len(phones))[:1+rng.IntN(30)] {
			picked = append(picked, phones[i])
		}
		switch {
		case w%4 != 3 || op%2 == 0: // an upsert adding its contacts to segments
			in := make([]crm.ContactInput, len(picked))
			for i, p := range picked {
				in[i] = crm.ContactInput{Phone: p, AddToSegments: pickSegments(rng)}
			}
			up, err := s.UpsertContactsWith(ctx, ws.ID, in, store.WithSegments)
			ids.note(up.Contacts)
			if err == nil {
				mu.Lock()
				upserts++
				mu.Unlock()
			}
			return err
		case op%3 == 0:
			_, err := s.DeleteContacts(ctx, ws.ID, ids.of(picked[:min(3, len(picked))]), store.WithSegments)
			return err
		case op%3 == 1:
			_, err := s.RemoveContactsFromSegments(ctx, ws.ID, ids.of(picked), pickSegments(rng), store.WithSegments)
			return err
		default:
			_, err := s.AssignContactsToSegments(ctx, ws.ID, ids.of(picked), pickSegments(rng), store.WithSegments)
			return err
		}
	})
	if n := storetest.Deadlocks(t, s) - before; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}
	if upserts != 280 { // 6 writers' 40 and 2 writers' 20: none is refused
		t.Errorf("%d upserts succeeded, want 280", upserts)
	}
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
}

// TestUpsertLocksAsAnAssignmentDoes stops an upsert that adds contacts to segments,
// and an assignment of the same, at one lock after another (a transaction of the
// test holds it), and looks at what the writer holds there: the order in which it
// locks must be the assignment's, which keeps the two from a deadlock:
//   - the contacts before the segments: stopped at a segment, the writer holds its
//     contact;
//   - the segments in id order, with KEY SHARE: stopped at the second segment (named
//     first), it holds the first, in no mode stronger than KEY SHARE;
//   - the pairs in index order, segment by segment, contacts ascending: stopped at
//     (segment 2, contact 1), it has inserted (segment 1, contact 2), and stopped at
//     (segment 1, contact 2), (segment 1, contact 1): no other writer can insert it.
//
// TestUpsertsAndAssignmentsLockInOneOrder, eight writers at random, passed with the
// upsert's pairs inserted contact by contact: a deadlock needs two writers to meet
// between two statements in opposite orders, which a run may never see. This test
// fails at once for each step taken out of order (the pairs contact by contact, the
// segments before the contacts, the segments in the order named).
func TestUpsertLocksAsAnAssignmentDoes(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919813000001"}, {Phone: "+919813000002"}})
	if err != nil {
		t.Fatal(err)
	}
	contacts := []crm.Contact{up.Contacts[0], up.Contacts[1]}
	slices.SortFunc(contacts, func(a, b crm.Contact) int { return int(a.ID - b.ID) })
	c1, c2 := contacts[0].ID, contacts[1].ID
	phone := map[int64]string{c1: contacts[0].Phone, c2: contacts[1].Phone}
	segs := newSegments(t, s, ws.ID, 2)
	slices.Sort(segs)
	s1, s2 := segs[0], segs[1]

	writers := []struct {
		name string
		add  func(contactIDs, segmentIDs []int64) error
	}{
		{"assignContactsToSegments", func(contactIDs, segmentIDs []int64) error {
			_, err := s.AssignContactsToSegments(ctx, ws.ID, contactIDs, segmentIDs, store.WithoutSegments)
			return err
		}},
		{"upsertContacts with addToSegmentIds", func(contactIDs, segmentIDs []int64) error {
			in := make([]crm.ContactInput, len(contactIDs))
			for i, id := range contactIDs {
				in[i] = crm.ContactInput{Phone: phone[id], AddToSegments: segmentIDs}
			}
			_, err := s.UpsertContactsWith(ctx, ws.ID, in, store.WithoutSegments)
			return err
		}},
	}
	for _, w := range writers {
		// Each stop starts from no membership, so that the writer inserts every pair.
		stop := func(t *testing.T, contactIDs, segmentIDs []int64, hold func(*sql.Tx) error, probe func(*sql.DB)) {
			t.Helper()
			stopAt(t, s, w.add, contactIDs, segmentIDs, hold, probe)
			if _, err := s.RemoveContactsFromSegments(ctx, ws.ID, []int64{c1, c2}, segs, store.WithoutSegments); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(w.name, func(t *testing.T) {
			// Contacts before segments.
			stop(t, []int64{c1}, []int64{s1}, lockRow("segments", ws.ID, s1, "UPDATE"), func(probe *sql.DB) {
				if err := tryLock(probe, "contacts", ws.ID, c1, "UPDATE"); !lockNotAvailable(err) {
					t.Errorf("stopped at its segment, the writer does not hold its contact (%v): it locks the segments first", err)
				}
			})
			// Segments in id order, KEY SHARE: named s2 first, s1 is locked first.
			stop(t, []int64{c1}, []int64{s2, s1}, lockRow("segments", ws.ID, s2, "UPDATE"), func(probe *sql.DB) {
				if err := tryLock(probe, "segments", ws.ID, s1, "UPDATE"); !lockNotAvailable(err) {
					t.Errorf("stopped at the second segment, the writer does not hold the first (%v): not in id order", err)
				}
				if err := tryLock(probe, "segments", ws.ID, s1, "NO KEY UPDATE"); err != nil {
					t.Errorf("the writer holds the first segment in a mode stronger than KEY SHARE: %v", err)
				}
			})
			// Pairs in index order: stopped at one, the writer has inserted the one
			// before it, which another writer then waits for. The test's own inserts
			// run without triggers, so that they meet the writer at the pairs alone, not
			// at the bitmaps' chunks and counters the triggers lock.
			insertPair := func(tx *sql.Tx, pair [2]int64) error {
				if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO memberships VALUES ($1, $2, $3)", ws.ID, pair[0], pair[1])
				return err
			}
			insertedBefore := func(held, before [2]int64, order string) {
				stop(t, []int64{c2, c1}, []int64{s2, s1}, func(tx *sql.Tx) error {
					return insertPair(tx, held)
				}, func(probe *sql.DB) {
					tx, err := probe.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer tx.Rollback()
					if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '200ms'"); err != nil {
						t.Fatal(err)
					}
					err = insertPair(tx, before)
					if !lockNotAvailable(err) {
						t.Errorf("stopped at (segment, contact) %v, the writer had not inserted %v (%v): the pairs are not %s", held, before, err, order)
					}
				})
			}
			insertedBefore([2]int64{s2, c1}, [2]int64{s1, c2}, "segment by segment")
			insertedBefore([2]int64{s1, c2}, [2]int64{s1, c1}, "in contact order within a segment")
		})
	}
	checkCounts(t, s, ws.ID)
	checkBitmaps(t, s, ws.ID)
}

// stopAt runs add(contactIDs, segmentIDs) while a transaction holds what hold takes,
// calls probe once the writer waits for that transaction, then ends it and checks
// that the writer succeeds; the memberships added are taken out again.
func stopAt(t *testing.T, s *store.Store, add func(contactIDs, segmentIDs []int64) error, contactIDs, segmentIDs []int64,
	hold func(*sql.Tx) error, probe func(*sql.DB)) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var holder int
	if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if err := hold(tx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- add(contactIDs, segmentIDs) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var waits bool
		if err := s.DB().QueryRowContext(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))", holder).Scan(&waits); err != nil {
			t.Fatal(err)
		}
		if waits {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the writer did not wait for the lock held: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not wait for the lock held within 10 s")
		}
	}
	probe(s.DB())
	tx.Rollback()
	if err := <-done; err != nil {
		t.Fatalf("the writer, once the lock was released: %v", err)
	}
}

// lockRow returns a hold for stopAt that locks the row of table with the id of
// workspace ws in mode ("UPDATE", "KEY SHARE").
func lockRow(table string, ws, id int64, mode string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.ExecContext(context.Background(), "SELECT FROM "+table+" WHERE workspace_id = $1 AND id = $2 FOR "+mode, ws, id)
		return err
	}
}

// tryLock locks the row of table with the id of workspace ws in mode, without waiting,
// in a transaction of its own that it then ends: lockNotAvailable(err) when another
// transaction holds it in a mode that conflicts.
func tryLock(db *sql.DB, table string, ws, id int64, mode string) error {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return lockRow(table, ws, id, mode+" NOWAIT")(tx)
}

// lockNotAvailable reports whether err is PostgreSQL's lock_not_available (55P03), of
// NOWAIT or lock_timeout.
func lockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
