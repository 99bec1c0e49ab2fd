package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// fixture is a workspace with contacts and segments of known sizes.
type fixture struct {
	ws       crm.Workspace
	contacts []int64
	segments map[string]int64 // by name
}

// newFixture creates a workspace whose segments hold the first n contacts, for each
// name: n of sizes.
func newFixture(t *testing.T, s *store.Store, phoneBase int, sizes map[string]int) fixture {
	t.Helper()
	ctx := context.Background()
	ws, _ := storetest.Workspace(t, s)
	in := make([]crm.ContactInput, 10)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", phoneBase+i)}
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{ws: ws, segments: map[string]int64{}}
	for _, c := range up.Contacts {
		f.contacts = append(f.contacts, c.ID)
	}
	for name, n := range sizes {
		seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: name, ContactIDs: f.contacts[:n]})
		if err != nil {
			t.Fatal(err)
		}
		f.segments[name] = seg.ID
	}
	return f
}

// segmentRows returns the workspace's segment rows as JSON, counters and timestamps
// included: equal results mean nothing changed.
func segmentRows(t *testing.T, s *store.Store, ws int64) string {
	t.Helper()
	var out string
	err := s.DB().QueryRowContext(context.Background(),
		"SELECT coalesce(json_agg(s ORDER BY s.id), '[]')::text FROM segments s WHERE s.workspace_id = $1", ws).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func setCounter(t *testing.T, s *store.Store, ws, segment, value int64) {
	t.Helper()
	res, err := s.DB().ExecContext(context.Background(),
		"UPDATE segments SET contact_count = $3 WHERE workspace_id = $1 AND id = $2", ws, segment, value)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("corrupted %d rows, want 1", n)
	}
}

// TestCheckAndRepairCounts corrupts two counters of one workspace by hand, and checks
// that CheckCounts reports exactly those, with the stored and the real count, that
// RepairCounts repairs exactly those, and that everything else stays as it was. The
// checks read every workspace: on a database of its own, which other tests' deliberate
// drift (concurrency_test.go, filter_test.go) does not reach.
func TestCheckAndRepairCounts(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	mine := newFixture(t, s, 10_000, map[string]int{"Alpha": 3, "Beta": 2, "Empty": 0})
	other := newFixture(t, s, 10_100, map[string]int{"Alpha": 4, "Gamma": 1})

	if drift, err := s.CheckCounts(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("before any corruption: drift %+v, %v", drift, err)
	}
	otherBefore := segmentRows(t, s, other.ws.ID)
	byID := func() map[int64]crm.Segment {
		segs, err := s.SegmentsByID(ctx, mine.ws.ID, []int64{mine.segments["Alpha"], mine.segments["Beta"], mine.segments["Empty"]})
		if err != nil {
			t.Fatal(err)
		}
		return segs
	}
	before := byID()

	alpha, empty := mine.segments["Alpha"], mine.segments["Empty"]
	setCounter(t, s, mine.ws.ID, alpha, 7)
	setCounter(t, s, mine.ws.ID, empty, 2) // no memberships at all: counted as 0
	want := []store.CountDrift{
		{WorkspaceID: mine.ws.ID, WorkspaceName: mine.ws.Name, SegmentID: alpha, SegmentName: "Alpha", Stored: 7, Actual: 3},
		{WorkspaceID: mine.ws.ID, WorkspaceName: mine.ws.Name, SegmentID: empty, SegmentName: "Empty", Stored: 2, Actual: 0},
	}
	slices.SortFunc(want, func(a, b store.CountDrift) int { return int(a.SegmentID - b.SegmentID) })

	// Checking reports and changes nothing.
	for range 2 {
		drift, err := s.CheckCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(drift, want) {
			t.Fatalf("check:\n got  %+v\n want %+v", drift, want)
		}
	}

	repaired, err := s.RepairCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(repaired, want) {
		t.Fatalf("repair:\n got  %+v\n want %+v", repaired, want)
	}
	after := byID()
	for name, n := range map[string]int64{"Alpha": 3, "Beta": 2, "Empty": 0} {
		if got := after[mine.segments[name]].ContactCount; got != n {
			t.Errorf("%s: contactCount %d after repair, want %d", name, got, n)
		}
	}
	// A repaired counter moves updated_at, like every change of a count; an untouched
	// segment keeps it.
	for _, id := range []int64{alpha, empty} {
		if !after[id].UpdatedAt.After(before[id].UpdatedAt) {
			t.Errorf("segment %d: updated_at %v did not move from %v", id, after[id].UpdatedAt, before[id].UpdatedAt)
		}
	}
	if beta := mine.segments["Beta"]; after[beta] != before[beta] {
		t.Errorf("Beta changed: %+v -> %+v", before[beta], after[beta])
	}
	if got := segmentRows(t, s, other.ws.ID); got != otherBefore {
		t.Errorf("the other workspace changed:\nbefore %s\nafter  %s", otherBefore, got)
	}

	// Clean again, and a repair with nothing to do writes nothing.
	if drift, err := s.CheckCounts(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("after repair: drift %+v, %v", drift, err)
	}
	mineAfter := segmentRows(t, s, mine.ws.ID)
	if repaired, err := s.RepairCounts(ctx); err != nil || len(repaired) != 0 {
		t.Fatalf("second repair: %+v, %v", repaired, err)
	}
	if got := segmentRows(t, s, mine.ws.ID); got != mineAfter {
		t.Errorf("a repair with nothing to repair changed the workspace:\nbefore %s\nafter  %s", mineAfter, got)
	}
}

// TestRepairCountsWhileWriting repairs a corrupted counter while writers keep
// changing the memberships of that segment and its neighbours: the repair must not
// lose a concurrent change, and a check during the writes must never report drift
// that is not there (a writer in the middle of a change is not drift). On a database
// of its own, as TestCheckAndRepairCounts.
func TestRepairCountsWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	ws, _ := storetest.Workspace(t, s)
	in := make([]crm.ContactInput, 200)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", 20_000+i)}
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	contacts := make([]int64, len(up.Contacts))
	for i, c := range up.Contacts {
		contacts[i] = c.ID
	}
	var segments []int64
	for i := range 4 {
		seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("S%d", i), ContactIDs: contacts[:50*i]})
		if err != nil {
			t.Fatal(err)
		}
		segments = append(segments, seg.ID)
	}
	const offset = 1000
	corrupted := segments[2]
	setCounter(t, s, ws.ID, corrupted, 100+offset)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for {
				select {
				case <-stop:
					return
				default:
				}
				cs := make([]int64, 1+rng.IntN(40))
				for i := range cs {
					cs[i] = contacts[rng.IntN(len(contacts))]
				}
				ss := []int64{segments[rng.IntN(len(segments))], corrupted}
				var err error
				if rng.IntN(2) == 0 {
					_, err = s.RemoveContactsFromSegments(ctx, ws.ID, cs, ss, store.WithSegments)
				} else {
					_, err = s.AssignContactsToSegments(ctx, ws.ID, cs, ss, store.WithSegments)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}

	// While they write: repairs and checks, until the corruption has been repaired
	// and at least a few more rounds have run.
	var fixed []store.CountDrift
	for round := 0; round < 5 || len(fixed) == 0; round++ {
		time.Sleep(30 * time.Millisecond)
		repaired, err := s.RepairCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fixed = append(fixed, repaired...)
		drift, err := s.CheckCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(drift) > 0 {
			t.Errorf("round %d: check during writes reports %+v", round, drift)
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

	// Exactly the corrupted counter was repaired, once, by exactly the corruption:
	// the writers' changes count in both the stored and the real number.
	if len(fixed) != 1 || fixed[0].SegmentID != corrupted || fixed[0].Stored-fixed[0].Actual != offset {
		t.Fatalf("repaired %+v, want segment %d off by %d", fixed, corrupted, offset)
	}
	checkCounts(t, s, ws.ID)
	if drift, err := s.CheckCounts(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("after the writers: drift %+v, %v", drift, err)
	}
}

// TestTriggerProblems turns the counter triggers off in the ways a restore or an
// operator can, on a database of its own, and checks that each is reported, and that
// a membership change with a trigger off is found as drift; and that a segment
// deleted with the memberships' cascade off leaves orphans that CheckOrphans finds
// and RepairOrphans deletes.
func TestTriggerProblems(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	problems := func(want ...string) {
		t.Helper()
		got, err := s.TriggerProblems(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("problems:\n got  %q\n want %q", got, want)
		}
	}
	problems()

	f := newFixture(t, s, 30_000, map[string]int{"Alpha": 2})
	storetest.Exec(t, s.DB(), "ALTER TABLE memberships DISABLE TRIGGER memberships_count_inserted")
	problems("trigger memberships_count_inserted on memberships is disabled")
	if _, err := s.AssignContactsToSegments(ctx, f.ws.ID, f.contacts[2:5], []int64{f.segments["Alpha"]}, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	drift, err := s.CheckCounts(ctx)
	if err != nil || len(drift) != 1 || drift[0].Stored != 2 || drift[0].Actual != 5 {
		t.Fatalf("drift %+v, %v; want Alpha stored 2, actual 5", drift, err)
	}

	storetest.Exec(t, s.DB(), "ALTER TABLE memberships DISABLE TRIGGER memberships_bitmaps_deleted")
	problems("trigger memberships_count_inserted on memberships is disabled",
		"trigger memberships_bitmaps_deleted on memberships is disabled")
	if _, err := s.RemoveContactsFromSegments(ctx, f.ws.ID, f.contacts[:1], []int64{f.segments["Alpha"]}, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	bitmaps, err := s.CheckBitmaps(ctx)
	if err != nil || len(bitmaps) != 1 || bitmaps[0].SegmentID != f.segments["Alpha"] {
		t.Fatalf("bitmap drift %+v, %v; want Alpha", bitmaps, err)
	}
	storetest.Exec(t, s.DB(), "ALTER TABLE memberships ENABLE TRIGGER memberships_bitmaps_deleted")
	if repaired, err := s.RepairBitmaps(ctx); err != nil || len(repaired) != 1 || repaired[0].SegmentID != f.segments["Alpha"] {
		t.Fatalf("repaired %+v, %v; want Alpha", repaired, err)
	}
	if bitmaps, err := s.CheckBitmaps(ctx); err != nil || len(bitmaps) != 0 {
		t.Fatalf("bitmap drift after the repair: %+v, %v", bitmaps, err)
	}
	// Counted from the repaired bitmaps: Alpha alone would be counted by its
	// contact_count, which still drifts here; a None list (of no segment) keeps it off.
	n, err := s.CountContacts(ctx, f.ws.ID, crm.ContactQuery{Segments: crm.MembershipFilter{
		Any: []int64{f.segments["Alpha"]}, None: []int64{1 << 50}}})
	if err != nil || n != 4 {
		t.Fatalf("audience of Alpha after the repair: %d, %v; want 4", n, err)
	}

	storetest.Exec(t, s.DB(), "ALTER TABLE contacts DISABLE TRIGGER contacts_count_deleted")
	problems("trigger memberships_count_inserted on memberships is disabled",
		"trigger contacts_count_deleted on contacts is disabled")
	if _, err := s.DeleteContacts(ctx, f.ws.ID, f.contacts[9:], store.WithSegments); err != nil {
		t.Fatal(err)
	}
	if drift, err := s.CheckContactCounts(ctx); err != nil || len(drift) != 1 || drift[0].Stored != 10 || drift[0].Actual != 9 {
		t.Fatalf("contact count drift %+v, %v; want stored 10, actual 9", drift, err)
	}
	storetest.Exec(t, s.DB(), "ALTER TABLE contacts ENABLE TRIGGER contacts_count_deleted")

	// With the memberships' cascade off, a deleted segment leaves its memberships.
	storetest.Exec(t, s.DB(), "ALTER TABLE segments DISABLE TRIGGER segments_memberships_deleted")
	problems("trigger memberships_count_inserted on memberships is disabled",
		"trigger segments_memberships_deleted on segments is disabled")
	beta, err := s.CreateSegment(ctx, f.ws.ID, crm.NewSegment{Name: "Beta", ContactIDs: f.contacts[:3]})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSegment(ctx, f.ws.ID, beta.ID); err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, s.DB(), "ALTER TABLE segments ENABLE TRIGGER segments_memberships_deleted")
	if orphans, err := s.CheckOrphans(ctx); err != nil || len(orphans) != 1 || orphans[0].WorkspaceID != f.ws.ID || orphans[0].Memberships != 3 {
		t.Fatalf("orphans %+v, %v; want the workspace's 3", orphans, err)
	}
	if deleted, err := s.RepairOrphans(ctx); err != nil || len(deleted) != 1 || deleted[0].Memberships != 3 {
		t.Fatalf("deleted orphans %+v, %v; want 3", deleted, err)
	}
	if orphans, err := s.CheckOrphans(ctx); err != nil || len(orphans) != 0 {
		t.Fatalf("orphans after the repair: %+v, %v", orphans, err)
	}

	storetest.Exec(t, s.DB(), "ALTER TABLE memberships ENABLE REPLICA TRIGGER memberships_count_inserted")
	problems("trigger memberships_count_inserted on memberships fires only in replica sessions")
	storetest.Exec(t, s.DB(), "ALTER TABLE memberships ENABLE ALWAYS TRIGGER memberships_count_inserted")
	storetest.Exec(t, s.DB(), "DROP TRIGGER memberships_count_deleted ON memberships")
	problems("trigger memberships_count_deleted on memberships is missing")

	// Without the recording trigger, deleted contacts go unlisted (deletedContacts).
	storetest.Exec(t, s.DB(), "ALTER TABLE contacts DISABLE TRIGGER contacts_deletions_recorded")
	problems("trigger memberships_count_deleted on memberships is missing",
		"trigger contacts_deletions_recorded on contacts is disabled")
}

// insertUnchecked inserts memberships of the segment as a restore with the triggers
// off would (session_replication_role = replica, which needs a superuser, as the
// tests' owner is): no counter, bitmap or reference trigger fires.
func insertUnchecked(t *testing.T, s *store.Store, ws, segment int64, contacts ...int64) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	for _, c := range contacts {
		if _, err := tx.ExecContext(ctx, "INSERT INTO memberships VALUES ($1, $2, $3)", ws, segment, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// bitmapRows returns the workspace's bitmap chunks as JSON: equal results mean
// nothing changed.
func bitmapRows(t *testing.T, s *store.Store, ws int64) string {
	t.Helper()
	var out string
	err := s.DB().QueryRowContext(context.Background(), `SELECT coalesce(json_agg(b ORDER BY b.segment_id, b.chunk), '[]')::text
		FROM segment_bitmaps b WHERE b.workspace_id = $1`, ws).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// repairAll runs the repairs in the order "segments check --repair" does.
func repairAll(t *testing.T, s *store.Store) ([]store.Orphans, []store.CountDrift, []store.BitmapDrift) {
	t.Helper()
	ctx := context.Background()
	orphans, err := s.RepairOrphans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := s.RepairCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bitmaps, err := s.RepairBitmaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return orphans, counts, bitmaps
}

// checkAll runs the checks that repairAll's repairs answer.
func checkAll(t *testing.T, s *store.Store) ([]store.Orphans, []store.CountDrift, []store.BitmapDrift) {
	t.Helper()
	ctx := context.Background()
	orphans, err := s.CheckOrphans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := s.CheckCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bitmaps, err := s.CheckBitmaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return orphans, counts, bitmaps
}

// TestRepairOrphansNeverCounted deletes memberships of contacts that do not exist,
// written with the triggers off, so never counted: in a segment counted 0 (whose
// counter the memberships' delete trigger would take below zero, which its CHECK
// refuses) and in one whose counter is right. Deleting them must leave every segment
// row as it was (count and updated_at: no client ever sees a count they did not
// make), and there is no drift to repair or report, before or after. On a database of
// its own: the checks read every workspace.
func TestRepairOrphansNeverCounted(t *testing.T) {
	s := storetest.NewStore(t, store.Options{})
	f := newFixture(t, s, 31_000, map[string]int{"Alpha": 3, "Empty": 0})
	alpha, empty := f.segments["Alpha"], f.segments["Empty"]
	insertUnchecked(t, s, f.ws.ID, empty, 999_999)
	insertUnchecked(t, s, f.ws.ID, alpha, 999_998, 999_999)
	want := []store.Orphans{{WorkspaceID: f.ws.ID, WorkspaceName: f.ws.Name, Memberships: 3}}

	// The counters and bitmaps are right: only the memberships are wrong.
	orphans, counts, bitmaps := checkAll(t, s)
	if !slices.Equal(orphans, want) || len(counts) != 0 || len(bitmaps) != 0 {
		t.Errorf("check: orphans %+v, counters %+v, bitmaps %+v; want only the 3 orphans", orphans, counts, bitmaps)
	}

	before, bitmapsBefore := segmentRows(t, s, f.ws.ID), bitmapRows(t, s, f.ws.ID)
	if orphans, err := s.RepairOrphans(context.Background()); err != nil || !slices.Equal(orphans, want) {
		t.Fatalf("repair orphans: %+v, %v; want %+v", orphans, err, want)
	}
	if got := segmentRows(t, s, f.ws.ID); got != before {
		t.Errorf("deleting the orphans changed the segments:\nbefore %s\nafter  %s", before, got)
	}
	if bitmapRows(t, s, f.ws.ID) != bitmapsBefore {
		t.Error("deleting the orphans changed the bitmaps")
	}
	if orphans, counts, bitmaps := repairAll(t, s); len(orphans)+len(counts)+len(bitmaps) != 0 {
		t.Errorf("second repair: orphans %+v, counters %+v, bitmaps %+v; want nothing", orphans, counts, bitmaps)
	}
	if orphans, counts, bitmaps := checkAll(t, s); len(orphans)+len(counts)+len(bitmaps) != 0 {
		t.Errorf("check after the repair: orphans %+v, counters %+v, bitmaps %+v", orphans, counts, bitmaps)
	}
	checkCounts(t, s, f.ws.ID)
}

// TestRepairOrphansCounted deletes memberships of a contact deleted with the
// memberships' cascade off, which were counted and set their bits when they were
// written, beside memberships never counted: the check reports the counter and the
// bitmaps that include the deleted contact, with the stored and the true count, and
// the repair repairs and reports exactly what the check reported, the counter in one
// step from the stored value to the true one.
func TestRepairOrphansCounted(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	f := newFixture(t, s, 32_000, map[string]int{"Alpha": 4, "Beta": 2})
	alpha, beta := f.segments["Alpha"], f.segments["Beta"]
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"ALTER TABLE contacts DISABLE TRIGGER contacts_memberships_deleted",
		fmt.Sprintf("DELETE FROM contacts WHERE workspace_id = %d AND id = %d", f.ws.ID, f.contacts[3]), // in Alpha only
		"ALTER TABLE contacts ENABLE TRIGGER contacts_memberships_deleted",
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	insertUnchecked(t, s, f.ws.ID, beta, 999_999)
	// A chunk of zeros where that orphan would be, as only a hand can write one: the
	// bitmaps' delete trigger deletes such a chunk.
	storetest.Exec(t, s.DB(), "INSERT INTO segment_bitmaps VALUES ($1, $2, 999999 >> 15, B'0'::bit(32768))", f.ws.ID, beta)

	wantOrphans := []store.Orphans{{WorkspaceID: f.ws.ID, WorkspaceName: f.ws.Name, Memberships: 2}}
	wantCounts := []store.CountDrift{{WorkspaceID: f.ws.ID, WorkspaceName: f.ws.Name, SegmentID: alpha, SegmentName: "Alpha", Stored: 4, Actual: 3}}
	wantBitmaps := []store.BitmapDrift{
		{WorkspaceID: f.ws.ID, WorkspaceName: f.ws.Name, SegmentID: alpha, SegmentName: "Alpha", Chunks: 1},
		{WorkspaceID: f.ws.ID, WorkspaceName: f.ws.Name, SegmentID: beta, SegmentName: "Beta", Chunks: 1},
	}
	slices.SortFunc(wantBitmaps, func(a, b store.BitmapDrift) int { return int(a.SegmentID - b.SegmentID) })
	orphans, counts, bitmaps := checkAll(t, s)
	if !slices.Equal(orphans, wantOrphans) || !slices.Equal(counts, wantCounts) || !slices.Equal(bitmaps, wantBitmaps) {
		t.Errorf("check:\n got  %+v %+v %+v\n want %+v %+v %+v", orphans, counts, bitmaps, wantOrphans, wantCounts, wantBitmaps)
	}

	before, bitmapsBefore := segmentRows(t, s, f.ws.ID), bitmapRows(t, s, f.ws.ID)
	orphans, err = s.RepairOrphans(ctx)
	if err != nil || !slices.Equal(orphans, wantOrphans) {
		t.Fatalf("repair orphans: %+v, %v; want %+v", orphans, err, wantOrphans)
	}
	// Nothing derived moved: the counter and the bitmaps still say what they said,
	// for the repairs to compare with the truth.
	if got := segmentRows(t, s, f.ws.ID); got != before {
		t.Errorf("deleting the orphans changed the segments:\nbefore %s\nafter  %s", before, got)
	}
	if bitmapRows(t, s, f.ws.ID) != bitmapsBefore {
		t.Error("deleting the orphans changed the bitmaps")
	}
	if orphans, counts, bitmaps := checkAll(t, s); len(orphans) != 0 || !slices.Equal(counts, wantCounts) || !slices.Equal(bitmaps, wantBitmaps) {
		t.Errorf("check after deleting the orphans: %+v %+v %+v; want the same counter and bitmaps", orphans, counts, bitmaps)
	}

	_, counts, bitmaps = repairAll(t, s)
	if !slices.Equal(counts, wantCounts) || !slices.Equal(bitmaps, wantBitmaps) {
		t.Errorf("repair:\n got  %+v %+v\n want %+v %+v", counts, bitmaps, wantCounts, wantBitmaps)
	}
	if orphans, counts, bitmaps := checkAll(t, s); len(orphans)+len(counts)+len(bitmaps) != 0 {
		t.Errorf("check after the repair: orphans %+v, counters %+v, bitmaps %+v", orphans, counts, bitmaps)
	}
	checkCounts(t, s, f.ws.ID)
}

// TestRepairOrphansOfADeletedSegment: the memberships of a segment deleted with the
// triggers off are orphans, deleted with the bitmaps the segment left. The repair
// failed on the bitmaps' reference to the segment, as it set their bits again, and
// repaired nothing.
func TestRepairOrphansOfADeletedSegment(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	f := newFixture(t, s, 33_000, map[string]int{"Gone": 3, "Kept": 2})
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		"SET LOCAL session_replication_role = replica",
		fmt.Sprintf("DELETE FROM segments WHERE workspace_id = %d AND id = %d", f.ws.ID, f.segments["Gone"]),
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []store.Orphans{{WorkspaceID: f.ws.ID, WorkspaceName: f.ws.Name, Memberships: 3}}
	if orphans, _, _ := checkAll(t, s); !slices.Equal(orphans, want) {
		t.Fatalf("check: %+v, want %+v", orphans, want)
	}
	if orphans, err := s.RepairOrphans(ctx); err != nil || !slices.Equal(orphans, want) {
		t.Fatalf("repair orphans: %+v, %v; want %+v", orphans, err, want)
	}
	left := storetest.Column[int64](t, s.DB(), `SELECT (SELECT count(*) FROM memberships WHERE workspace_id = $1 AND segment_id = $2)
		+ (SELECT count(*) FROM segment_bitmaps WHERE workspace_id = $1 AND segment_id = $2)`, f.ws.ID, f.segments["Gone"])
	if left[0] != 0 {
		t.Errorf("%d memberships and bitmap chunks of the deleted segment left", left[0])
	}
	if orphans, counts, bitmaps := checkAll(t, s); len(orphans)+len(counts)+len(bitmaps) != 0 {
		t.Errorf("check after the repair: %+v %+v %+v", orphans, counts, bitmaps)
	}
}

// TestChecksOutlastTheStatementTimeout: the checks and repairs read every membership
// of every workspace, and run without the statement_timeout the server gives the
// roles (15 s by default), which is meant for the API's requests. At 5M memberships
// two of the check's statements took 11-12 s on the benchmark's machine: under the
// role's timeout, a check of a little more failed with 57014. Here the role's timeout
// is 5 ms, which reading 200,000 memberships takes far longer than.
func TestChecksOutlastTheStatementTimeout(t *testing.T) {
	if storetest.ThroughPgBouncer() {
		// The role's setting reaches the sessions begun after it, and PgBouncer may
		// hand the store one it began before, for the data's load: the read that
		// proves the timeout holds then finished under none.
		t.Skip("PgBouncer's pooled sessions may predate the role's statement_timeout")
	}
	ctx := context.Background()
	url := storetest.Database(t)
	loader := storetest.MigratedStore(t, url, store.Options{})
	o := benchdata.Options{Workspace: "checked", Contacts: 40_000, Segments: 20, Memberships: 200_000, BigSegments: 2, BigSize: 20_000, Seed: 3}
	if _, err := benchdata.Load(ctx, loader, o, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, url, store.Options{StatementTimeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.DB().ExecContext(ctx, "SELECT count(*) FROM memberships"); !store.Canceled(err) {
		t.Fatalf("a read of every membership under the role's timeout: %v, want it stopped (57014)", err)
	}
	for name, run := range map[string]func() error{
		"CheckCounts":         func() error { _, err := s.CheckCounts(ctx); return err },
		"CheckContactCounts":  func() error { _, err := s.CheckContactCounts(ctx); return err },
		"CheckBitmaps":        func() error { _, err := s.CheckBitmaps(ctx); return err },
		"CheckOrphans":        func() error { _, err := s.CheckOrphans(ctx); return err },
		"RepairOrphans":       func() error { _, err := s.RepairOrphans(ctx); return err },
		"RepairCounts":        func() error { _, err := s.RepairCounts(ctx); return err },
		"RepairContactCounts": func() error { _, err := s.RepairContactCounts(ctx); return err },
		"RepairBitmaps":       func() error { _, err := s.RepairBitmaps(ctx); return err },
	} {
		if err := run(); err != nil {
			t.Errorf("%s under a role's statement_timeout of 5 ms: %v", name, err)
		}
	}
}
