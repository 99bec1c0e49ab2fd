package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
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

// mchange is an entry of the feed of memberships as the tests compare them: "+" or
// "-", the segment, the contacts.
type mchange struct {
	added    bool
	segment  int64
	contacts []int64
}

func (c mchange) String() string {
	op := "-"
	if c.added {
		op = "+"
	}
	return fmt.Sprintf("%s%d%v", op, c.segment, c.contacts)
}

func mchanges(items []crm.MembershipChange) []mchange {
	out := make([]mchange, len(items))
	for i, c := range items {
		out[i] = mchange{c.Added, c.SegmentID, c.ContactIDs}
	}
	return out
}

func mchangesEqual(a, b []mchange) bool {
	return slices.EqualFunc(a, b, func(x, y mchange) bool {
		return x.added == y.added && x.segment == y.segment && slices.Equal(x.contacts, y.contacts)
	})
}

// mfeed reads the feed of memberships of ws from after to its end (at most 1,000
// pages of first), checking each entry's shape, and returns the entries and the last
// endCursor.
func mfeed(t *testing.T, s *store.Store, ctx context.Context, ws int64, after *string, first int) ([]crm.MembershipChange, string) {
	t.Helper()
	var all []crm.MembershipChange
	for range 1000 {
		p, err := s.MembershipChanges(ctx, ws, crm.PageArgs{First: &first, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if p.EndCursor == "" {
			t.Fatal("an empty endCursor")
		}
		if len(p.Items) > first {
			t.Fatalf("a page of %d entries, first %d", len(p.Items), first)
		}
		for _, c := range p.Items {
			if len(c.ContactIDs) < 1 || len(c.ContactIDs) > crm.MaxMembershipChangeContacts || !slices.IsSorted(c.ContactIDs) {
				t.Fatalf("an entry of %d contacts, sorted %v", len(c.ContactIDs), slices.IsSorted(c.ContactIDs))
			}
		}
		all = append(all, p.Items...)
		after = &p.EndCursor
		if !p.HasNextPage {
			return all, p.EndCursor
		}
	}
	t.Fatal("the feed did not end in 1,000 pages")
	return nil, ""
}

// mpollUntil polls the feed of ws from after until it lists want (another test's
// transaction may hold the horizon back for a moment), and returns its endCursor.
func mpollUntil(t *testing.T, s *store.Store, ctx context.Context, ws int64, after *string, want []mchange) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, end := mfeed(t, s, ctx, ws, after, 3)
		if mchangesEqual(mchanges(got), want) {
			return end
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed lists %v, want %v", mchanges(got), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mend returns the endCursor of the feed of ws once it has caught up: at the
// workspace's last change. The feed lists changes below its statement's xmin
// horizon, which any transaction of the cluster that was running when the last change
// was made holds back (a background ANALYZE, another test's write), and a poll held
// back ends where the listing started, before the changes (after a sync from the
// start with none below the horizon, at transaction 0). Polling until a poll listed
// nothing more (20 ms apart) returned such a cursor when the horizon stayed back for
// both polls, and TestMembershipChangesRefuseCursors' cursor 1,000 transactions
// "ahead" of it was then still behind the workspace's changes, and accepted. So it
// waits for the horizon to pass a transaction ID taken after every change made so
// far, then lists the feed from the start.
func mend(t *testing.T, s *store.Store, ctx context.Context, ws int64) string {
	t.Helper()
	// The horizon is the cluster's: no workspace is needed to read it (nor allowed
	// with driver arguments).
	bg := context.Background()
	var after string
	if err := s.DB().QueryRowContext(bg, "SELECT pg_current_xact_id()::text").Scan(&after); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var passed bool
		if err := s.DB().QueryRowContext(bg, "SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8", after).Scan(&passed); err != nil {
			t.Fatal(err)
		}
		if passed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the xmin horizon did not pass transaction %s in 30 s", after)
		}
	}
	_, end := mfeed(t, s, ctx, ws, nil, 100)
	return end
}

func phones(from, n int) []crm.ContactInput {
	in := make([]crm.ContactInput, n)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", from+i)}
	}
	return in
}

// upsertMany writes n contacts to ws, 1,000 a request, and returns their IDs sorted.
func upsertMany(t *testing.T, s *store.Store, ctx context.Context, ws int64, n int) []int64 {
	t.Helper()
	var ids []int64
	for from := 0; from < n; from += 1000 {
		up, err := s.UpsertContacts(ctx, ws, phones(from, min(1000, n-from)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, crm.ContactIDs(up.Contacts)...)
	}
	slices.Sort(ids)
	return ids
}

// TestMembershipChangesListEveryWritePath proves that every way memberships change
// is listed, with exactly its contacts and action, in order: assignments and
// removals by IDs, select-alls, createSegment with contacts, deleteSegment (its
// members removed) and deleteContacts (their memberships removed); that a W6-like
// request (100 contacts to 10 segments) is 10 entries, and a statement of 2,500 of a
// segment's memberships entries of 1,024 at most; and that a statement that changes
// nothing lists nothing.
func TestMembershipChangesListEveryWritePath(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 2500)
	segs := newSegments(t, s, ws.ID, 10)
	end := mend(t, s, ctx, ws.ID)

	var want []mchange
	// W6: 100 contacts to 10 segments, one entry a segment.
	w6 := ids[1000:1100]
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, w6, segs, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs {
		want = append(want, mchange{true, seg, w6})
	}
	end = mpollUntil(t, s, ctx, ws.ID, &end, want)
	// Again: nothing changes, nothing is listed. Then a removal of some of them, given
	// in another order and with repeats.
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, w6, segs, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveContactsFromSegments(ctx, ws.ID, []int64{w6[5], w6[2], w6[5], ids[0]}, segs[:2], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	want = []mchange{{false, segs[0], []int64{w6[2], w6[5]}}, {false, segs[1], []int64{w6[2], w6[5]}}}
	end = mpollUntil(t, s, ctx, ws.ID, &end, want)

	// A select-all of every contact: 2,500 to a segment in entries of up to 1,024
	// (the 100 it has already are no change).
	all := crm.ContactQuery{}
	if _, err := s.AssignContactsMatching(ctx, ws.ID, all, segs[2:3], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	rest := slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return slices.Contains(w6, id) })
	want = []mchange{{true, segs[2], rest[:1024]}, {true, segs[2], rest[1024:2048]}, {true, segs[2], rest[2048:]}}
	end = mpollUntil(t, s, ctx, ws.ID, &end, want)
	// Its removal by a selection: the members of segs[3] (w6) out of segs[2].
	if _, err := s.RemoveContactsMatching(ctx, ws.ID, crm.ContactQuery{Segments: crm.MembershipFilter{Any: segs[3:4]}}, segs[2:3], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	end = mpollUntil(t, s, ctx, ws.ID, &end, []mchange{{false, segs[2], w6}})

	// createSegment with contacts; deleteSegment; deleteContacts.
	created, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Created", ContactIDs: []int64{ids[7], ids[3]}})
	if err != nil {
		t.Fatal(err)
	}
	end = mpollUntil(t, s, ctx, ws.ID, &end, []mchange{{true, created.ID, []int64{ids[3], ids[7]}}})
	if err := s.DeleteSegment(ctx, ws.ID, segs[2]); err != nil {
		t.Fatal(err)
	}
	end = mpollUntil(t, s, ctx, ws.ID, &end, []mchange{{false, segs[2], rest[:1024]}, {false, segs[2], rest[1024:2048]}, {false, segs[2], rest[2048:]}})
	if _, err := s.DeleteContacts(ctx, ws.ID, []int64{w6[0], ids[3]}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	want = []mchange{{false, created.ID, []int64{ids[3]}}}
	for _, seg := range segs {
		if seg != segs[2] {
			want = append(want, mchange{false, seg, []int64{w6[0]}})
		}
	}
	// One statement: ordered by segment within it (the entries' ids).
	got, _ := mfeed(t, s, ctx, ws.ID, &end, 100)
	slices.SortFunc(want, func(a, b mchange) int { return int(a.segment - b.segment) })
	if !mchangesEqual(mchanges(got), want) {
		t.Errorf("deleteContacts: %v, want %v", mchanges(got), want)
	}
	for _, c := range got {
		if c.ChangedAt == nil || time.Since(*c.ChangedAt) > time.Minute {
			t.Errorf("a change at %v", c.ChangedAt)
		}
	}
}

// TestMembershipChangesFullSync proves the sync from the start: every segment's
// current members, segment by segment and contacts ascending, in entries of up to
// 1,024 with no changedAt, over pages of any size, then the changes made after it
// began; a segment deleted mid-sync is removed again, and the mirror ends exact.
func TestMembershipChangesFullSync(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 1100)
	segs := newSegments(t, s, ws.ID, 3)
	if _, err := s.AssignContactsMatching(ctx, ws.ID, crm.ContactQuery{}, segs[1:2], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[:3], []int64{segs[0], segs[2]}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	otherIDs := upsertMany(t, s, ctx, other.ID, 2)
	if _, err := s.CreateSegment(ctx, other.ID, crm.NewSegment{Name: "Theirs", ContactIDs: otherIDs}); err != nil {
		t.Fatal(err)
	}
	listed := []mchange{{true, segs[0], ids[:3]}, {true, segs[1], ids[:1024]}, {true, segs[1], ids[1024:]}, {true, segs[2], ids[:3]}}
	for _, first := range []int{1, 2, 3, 100} {
		got, _ := mfeed(t, s, ctx, ws.ID, nil, first)
		if !mchangesEqual(mchanges(got), listed) {
			t.Fatalf("first %d: %v, want %v", first, mchanges(got), listed)
		}
		for _, c := range got {
			if c.ChangedAt != nil {
				t.Errorf("a listed member with changedAt %v", c.ChangedAt)
			}
		}
	}
	// A sync stopped after its first page; memberships change; it goes on.
	one := 1
	p, err := s.MembershipChanges(ctx, ws.ID, crm.PageArgs{First: &one})
	if err != nil {
		t.Fatal(err)
	}
	after := p.EndCursor
	if err := s.DeleteSegment(ctx, ws.ID, segs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveContactsFromSegments(ctx, ws.ID, ids[:1], segs[:1], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[5:6], segs[:1], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	// The listing goes on from where it stopped, as the memberships are now (segs[0]
	// has ids[5] after ids[2]; segs[1] is gone), then the changes since the first
	// page, whatever the listing showed of them already.
	want := append(mchanges(p.Items), mchange{true, segs[0], ids[5:6]}, mchange{true, segs[2], ids[:3]},
		mchange{false, segs[1], ids[:1024]}, mchange{false, segs[1], ids[1024:]},
		mchange{false, segs[0], ids[:1]}, mchange{true, segs[0], ids[5:6]})
	got := mchanges(p.Items)
	deadline := time.Now().Add(10 * time.Second)
	for {
		more, _ := mfeed(t, s, ctx, ws.ID, &after, 2)
		if mchangesEqual(append(slices.Clone(got), mchanges(more)...), want) {
			got = append(got, mchanges(more)...)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sync lists %v, want %v", append(got, mchanges(more)...), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := mirror(got); !mapsEqual(m, memberships(t, s, ws.ID)) {
		t.Errorf("the mirror %v, the table %v", m, memberships(t, s, ws.ID))
	}
}

// mirror applies entries to empty sets of members.
func mirror(changes []mchange) map[int64][]int64 {
	sets := map[int64]map[int64]bool{}
	for _, c := range changes {
		if sets[c.segment] == nil {
			sets[c.segment] = map[int64]bool{}
		}
		for _, id := range c.contacts {
			if c.added {
				sets[c.segment][id] = true
			} else {
				delete(sets[c.segment], id)
			}
		}
	}
	out := map[int64][]int64{}
	for seg, set := range sets {
		for id := range set {
			out[seg] = append(out[seg], id)
		}
		slices.Sort(out[seg])
	}
	return out
}

// memberships reads ws's memberships as the owner.
func memberships(t *testing.T, s *store.Store, ws int64) map[int64][]int64 {
	t.Helper()
	rows, err := s.DB().Query("SELECT segment_id, contact_id FROM memberships WHERE workspace_id = $1 ORDER BY 1, 2", ws)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][]int64{}
	for rows.Next() {
		var seg, c int64
		if err := rows.Scan(&seg, &c); err != nil {
			t.Fatal(err)
		}
		out[seg] = append(out[seg], c)
	}
	return out
}

func mapsEqual(a, b map[int64][]int64) bool {
	n := 0
	for k, v := range a {
		if len(v) == 0 {
			continue
		}
		n++
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return n == len(b)
}

// TestMembershipChangesMirrorConcurrentWriters proves the feed's promise: a mirror
// that syncs from the start while 4 writers assign, remove (by IDs and by selection),
// create and delete segments and delete contacts at random, then polls until they
// stop and the feed is read to its end, holds exactly the memberships table. The
// writers share a few contacts and segments, so that their changes meet.
func TestMembershipChangesMirrorConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 120)
	segs := newSegments(t, s, ws.ID, 6)
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[:30], segs[:3], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	live := slices.Clone(segs)
	pick := func(r *rand.Rand, from []int64, n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = from[r.IntN(len(from))]
		}
		return out
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, refused sync.Map
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				segsNow := slices.Clone(live)
				mu.Unlock()
				var err error
				op := r.IntN(40)
				switch {
				case op < 16 || op >= 37:
					_, err = s.AssignContactsToSegments(ctx, ws.ID, pick(r, ids, 1+r.IntN(8)), pick(r, segsNow, 1+r.IntN(3)), store.WithoutSegments)
				case op < 28:
					_, err = s.RemoveContactsFromSegments(ctx, ws.ID, pick(r, ids, 1+r.IntN(8)), pick(r, segsNow, 1+r.IntN(3)), store.WithoutSegments)
				case op < 32:
					q := crm.ContactQuery{Segments: crm.MembershipFilter{Any: pick(r, segsNow, 1)}}
					if r.IntN(2) == 0 {
						_, err = s.AssignContactsMatching(ctx, ws.ID, q, pick(r, segsNow, 1), store.WithoutSegments)
					} else {
						_, err = s.RemoveContactsMatching(ctx, ws.ID, q, pick(r, segsNow, 1), store.WithoutSegments)
					}
				case op < 34:
					var seg crm.Segment
					seg, err = s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("W%d-%d", w, i), ContactIDs: pick(r, ids, 1+r.IntN(5))})
					if err == nil {
						mu.Lock()
						live = append(live, seg.ID)
						mu.Unlock()
					}
				case op < 36 && len(segsNow) > 3:
					victim := pick(r, segsNow, 1)[0]
					mu.Lock()
					live = slices.DeleteFunc(live, func(id int64) bool { return id == victim })
					mu.Unlock()
					err = s.DeleteSegment(ctx, ws.ID, victim)
				case op < 37:
					victim := pick(r, ids, 1)
					_, err = s.DeleteContacts(ctx, ws.ID, victim, store.WithoutSegments)
				}
				if err != nil {
					// A contact or segment another writer deleted: NOT_FOUND, as a
					// user error (userErrors) or the error itself (deleteSegment).
					var e *crm.Error
					if crm.UserErrors(err) == nil && !(errors.As(err, &e) && e.Code == crm.CodeNotFound) {
						refused.Store(err.Error(), true)
					}
				} else {
					n, _ := writes.LoadOrStore(w, new(int))
					*n.(*int)++
				}
			}
		}()
	}
	// The mirror syncs from the start while they write, a small page at a time.
	var got []mchange
	var after *string
	two := 2
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		p, err := s.MembershipChanges(ctx, ws.ID, crm.PageArgs{First: &two, After: after})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, mchanges(p.Items)...)
		after = &p.EndCursor
		if !p.HasNextPage {
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	end := time.Now().Add(10 * time.Second)
	want := memberships(t, s, ws.ID)
	for {
		more, e := mfeed(t, s, ctx, ws.ID, after, 50)
		got, after = append(got, mchanges(more)...), &e
		if mapsEqual(mirror(got), want) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the mirror %v\nthe table  %v", mirror(got), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := 0
	writes.Range(func(_, v any) bool { n += *v.(*int); return true })
	pairs := 0
	for _, m := range want {
		pairs += len(m)
	}
	t.Logf("%d writes, %d entries listed, %d memberships at the end", n, len(got), pairs)
	refused.Range(func(k, _ any) bool { t.Errorf("a write failed: %v", k); return true })
	if n < 20 {
		t.Errorf("only %d writes", n)
	}
}

// TestMembershipChangesOrderedByCommit proves the order check: a transaction that
// took its ID before another (as the store's first lock of contacts gives it one),
// and changes a membership after that younger one changed it and committed, records
// its change after the younger's (at its place), not at its own ID. Listed by ID, the
// older change came first, and a mirror ended with the younger's: without the check
// the membership was in the table and not in the mirror. Another membership of the
// same segment is no conflict: recorded at its own ID.
func TestMembershipChangesOrderedByCommit(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 3)
	seg := newSegments(t, s, ws.ID, 1)[0]
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[:1], []int64{seg}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	end := mend(t, s, ctx, ws.ID)
	older := func() *sql.Tx {
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Its ID first, as a lock of its contacts gives it one.
		if _, err := tx.ExecContext(ctx, "SELECT pg_current_xact_id()"); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	old := older()
	defer old.Rollback()
	// The younger transaction removes the membership and commits first.
	if _, err := s.RemoveContactsFromSegments(ctx, ws.ID, ids[:1], []int64{seg}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, "INSERT INTO memberships (workspace_id, segment_id, contact_id) VALUES ($1, $2, $3)", ws.ID, seg, ids[0]); err != nil {
		t.Fatalf("the older transaction's assignment after the younger's removal: %v", err)
	}
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	// Another contact of the segment: recorded.
	other := older()
	defer other.Rollback()
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[2:3], []int64{seg}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "INSERT INTO memberships (workspace_id, segment_id, contact_id) VALUES ($1, $2, $3)", ws.ID, seg, ids[1]); err != nil {
		t.Fatalf("another membership of the segment: %v", err)
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	// In ID order the older transaction's entry comes before the younger's that
	// committed first: the two name other memberships.
	// The older transaction's assignment of ids[0], committed after the younger's
	// removal, is listed after it (at its place), so the mirror ends with the
	// membership the table has.
	mpollUntil(t, s, ctx, ws.ID, &end, []mchange{{false, seg, ids[:1]}, {true, seg, ids[:1]}, {true, seg, ids[1:2]}, {true, seg, ids[2:3]}})
}

// TestMembershipChangesNeverSkipLateCommits proves that a change whose transaction
// began (and took its ID) before a poll, and committed after it, is listed by the
// next poll: the poll between lists nothing after it, not even a change that
// committed first.
func TestMembershipChangesNeverSkipLateCommits(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 2)
	segs := newSegments(t, s, ws.ID, 2)
	end := mend(t, s, ctx, ws.ID)
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO memberships (workspace_id, segment_id, contact_id) VALUES ($1, $2, $3)", ws.ID, segs[0], ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[1:], segs[1:], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if got, again := mfeed(t, s, ctx, ws.ID, &end, 10); len(got) != 0 {
		t.Errorf("with the older transaction open, the feed lists %v", mchanges(got))
	} else {
		end = again
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	mpollUntil(t, s, ctx, ws.ID, &end, []mchange{{true, segs[0], ids[:1]}, {true, segs[1], ids[1:]}})
}

// TestMembershipChangesUnderRLS proves tenant isolation as the server's role: a
// workspace's feed, from the start and polled, never lists another's changes, nor
// does raw SQL show their rows; and the role may not update the rows.
func TestMembershipChangesUnderRLS(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	for _, w := range []int64{a.ID, b.ID} {
		ids := upsertMany(t, owner, ctx, w, 2)
		if _, err := owner.CreateSegment(ctx, w, crm.NewSegment{Name: "Mine", ContactIDs: ids}); err != nil {
			t.Fatal(err)
		}
	}
	asA := store.WithWorkspace(ctx, a.ID)
	idsA := storetest.Column[int64](t, owner.DB(), "SELECT contact_id FROM memberships WHERE workspace_id = $1 ORDER BY 1", a.ID)
	segA := storetest.Column[int64](t, owner.DB(), "SELECT id FROM segments WHERE workspace_id = $1", a.ID)[0]
	got, end := mfeed(t, app, asA, a.ID, nil, 10)
	if !mchangesEqual(mchanges(got), []mchange{{true, segA, idsA}}) {
		t.Errorf("A's sync: %v", mchanges(got))
	}
	if got, _ := mfeed(t, app, asA, b.ID, nil, 10); len(got) != 0 {
		t.Errorf("acting for A, B's feed lists %v", mchanges(got))
	}
	if got, _ := mfeed(t, app, asA, a.ID, &end, 10); len(got) != 0 {
		t.Errorf("acting for A, A's poll lists %v", mchanges(got))
	}
	if n := count(t, app.DB(), asA, fmt.Sprintf("SELECT count(*) FROM membership_changes WHERE workspace_id <> %d", a.ID)); n != 0 {
		t.Errorf("acting for A, membership_changes shows %d rows of other workspaces", n)
	}
	conn, err := app.DB().Conn(asA)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.ExecContext(asA, "UPDATE membership_changes SET added = NOT added")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("the server's role updating membership_changes: %v, want 42501", err)
	}
}

// TestMembershipChangesRefuseCursors proves RESYNC_REQUIRED for a cursor older than
// 29 days, one ahead of the workspace's last change (forged, or made before a
// restore of an older dump) and one of another epoch; and INVALID for another
// feed's cursor.
func TestMembershipChangesRefuseCursors(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 2)
	if _, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "A", ContactIDs: ids}); err != nil {
		t.Fatal(err)
	}
	end := mend(t, s, ctx, ws.ID)
	edit := func(f func(map[string]any)) string {
		b, _ := base64.RawURLEncoding.DecodeString(end)
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ = json.Marshal(m)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	first := 10
	for name, c := range map[string]string{
		"30 days old": edit(func(m map[string]any) {
			m["t"] = time.Now().Add(-30 * 24 * time.Hour).UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
		}),
		"ahead": edit(func(m map[string]any) {
			v, _ := m["v"].(json.Number).Int64()
			m["v"] = v + 1000
		}),
		"epoch": edit(func(m map[string]any) { m["e"] = 12345 }),
	} {
		var resync *store.ResyncError
		if _, err := s.MembershipChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &c}); !errors.As(err, &resync) {
			t.Errorf("%s: %v, want a ResyncError", name, err)
		}
	}
	ok := edit(func(m map[string]any) {
		m["t"] = time.Now().Add(-28 * 24 * time.Hour).UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
	})
	if _, err := s.MembershipChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &ok}); err != nil {
		t.Errorf("a cursor of 28 days: %v", err)
	}
	contacts, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MembershipChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &contacts.EndCursor}); err == nil || !strings.Contains(err.Error(), "another list") {
		t.Errorf("contactChanges' cursor: %v", err)
	}
	if _, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &end}); err == nil || !strings.Contains(err.Error(), "not a valid cursor") {
		t.Errorf("membershipChanges' cursor to contactChanges: %v", err)
	}
}

// TestMembershipChangesStoreAndCheck proves, on a database of its own, what keeps
// the feed whole: check reports its triggers dropped or disabled; rows older than 30
// days are pruned by the next statement of the workspace; a workspace being deleted
// records nothing, and its rows go with it; TRUNCATE empties the feed; and rows
// stamped ahead of the transactions (a restore into a new cluster) are found, stamped
// again as the store opens, and void the cursors made before.
func TestMembershipChangesStoreAndCheck(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 4})
	ws, _ := storetest.Workspace(t, s)
	gone, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 3)
	seg := newSegments(t, s, ws.ID, 1)[0]
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[:1], []int64{seg}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	for _, trig := range []string{"memberships_feed_inserted", "memberships_feed_deleted", "memberships_feed_truncated"} {
		storetest.Exec(t, s.DB(), "ALTER TABLE memberships DISABLE TRIGGER "+trig)
		if got, err := s.TriggerProblems(ctx); err != nil || !slices.Equal(got, []string{"trigger " + trig + " on memberships is disabled"}) {
			t.Errorf("%s disabled: trigger problems %q, %v", trig, got, err)
		}
		storetest.Exec(t, s.DB(), "ALTER TABLE memberships ENABLE TRIGGER "+trig)
	}
	storetest.Exec(t, s.DB(), "DROP TRIGGER memberships_feed_inserted ON memberships")
	if got, err := s.TriggerProblems(ctx); err != nil || len(got) != 1 || !strings.Contains(got[0], "memberships_feed_inserted") {
		t.Errorf("memberships_feed_inserted dropped: trigger problems %q, %v", got, err)
	}
	storetest.Exec(t, s.DB(), `CREATE TRIGGER memberships_feed_inserted AFTER INSERT ON memberships
		REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION memberships_feed_recorded()`)

	// Pruning: a row of 31 days is deleted by the next change, one of 29 kept.
	storetest.Exec(t, s.DB(), "UPDATE membership_changes SET changed_at = now() - interval '31 days' WHERE workspace_id = $1", ws.ID)
	storetest.Exec(t, s.DB(), `INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
		VALUES ($1, pg_current_xact_id(), $2, true, ARRAY[$3::bigint], now() - interval '29 days')`, ws.ID, seg, ids[2])
	if _, err := s.AssignContactsToSegments(ctx, ws.ID, ids[1:2], []int64{seg}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Column[int64](t, s.DB(), "SELECT contact_ids[1] FROM membership_changes WHERE workspace_id = $1 ORDER BY change_xid, id", ws.ID); !slices.Equal(got, []int64{ids[2], ids[1]}) {
		t.Errorf("after pruning, the rows of contacts %v; want %v", got, []int64{ids[2], ids[1]})
	}

	// A workspace being deleted: nothing recorded, and its rows deleted, 2 a batch
	// (the second from the first's last place).
	gids := upsertMany(t, s, ctx, gone.ID, 2)
	for i := range 3 {
		if _, err := s.CreateSegment(ctx, gone.ID, crm.NewSegment{Name: fmt.Sprintf("G%d", i), ContactIDs: gids}); err != nil {
			t.Fatal(err)
		}
	}
	defer store.SetWorkspaceBatchRows(2)()
	var batches []store.WorkspaceDeletionProgress
	if err := s.DeleteWorkspace(ctx, gone.ID, func(p store.WorkspaceDeletionProgress) {
		if p.Table == "membership_changes" {
			batches = append(batches, p)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 || batches[1] != (store.WorkspaceDeletionProgress{Table: "membership_changes", Rows: 3, Done: true}) {
		t.Errorf("membership_changes deleted in %v; want 3 rows in 2 batches, none recorded by the deletion", batches)
	}
	if n := count(t, s.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM membership_changes WHERE workspace_id = %d", gone.ID)); n != 0 {
		t.Errorf("a deleted workspace left %d rows", n)
	}

	// Ahead of the transactions: found, stamped again as the store opens, and the
	// cursors made before refused.
	end := mend(t, s, ctx, ws.ID)
	storetest.Exec(t, s.DB(), "UPDATE membership_changes SET change_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000 + id)::text::xid8")
	if ahead, err := s.CheckChangesAhead(ctx); err != nil || len(ahead) != 1 || ahead[0].WorkspaceID != ws.ID {
		t.Fatalf("membership changes stamped ahead: %+v, %v; want the workspace", ahead, err)
	}
	opened := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	if ahead, err := opened.CheckChangesAhead(ctx); err != nil || len(ahead) != 0 {
		t.Errorf("after the open, ahead: %+v, %v", ahead, err)
	}
	first := 10
	var resync *store.ResyncError
	if _, err := opened.MembershipChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &end}); !errors.As(err, &resync) {
		t.Errorf("a cursor made before the restore: %v, want a ResyncError", err)
	}

	// TRUNCATE (the owner's) empties the feed.
	storetest.Exec(t, s.DB(), "TRUNCATE contacts")
	if n := count(t, s.DB(), ctx, "SELECT count(*) FROM membership_changes"); n != 0 {
		t.Errorf("after TRUNCATE contacts, %d rows", n)
	}
}
