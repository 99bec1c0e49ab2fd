package benchdata_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func TestSizes(t *testing.T) {
	for _, o := range []benchdata.Options{
		{},
		{Contacts: 50_000},
		{Contacts: 2000, Segments: 30, Memberships: 9000, BigSegments: 3, BigSize: 1000},
		{Contacts: 100, Segments: 5, Memberships: 30, BigSegments: 1, BigSize: 10},
	} {
		o = o.Fill()
		if err := o.Check(); err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		sizes := o.Sizes()
		sum := 0
		for k, n := range sizes {
			sum += n
			if k < o.BigSegments && n != o.BigSize {
				t.Errorf("%+v: big segment %d has %d members", o, k, n)
			}
			if k >= o.BigSegments && (n > o.BigSize/2+1 || n < 0) {
				t.Errorf("%+v: segment %d has %d members, more than half a big one", o, k, n)
			}
		}
		if sum != o.Memberships {
			t.Errorf("%+v: sizes sum to %d, want %d", o, sum, o.Memberships)
		}
		// Skewed: the tail is smaller than the head.
		if n := len(sizes); n > o.BigSegments+10 && sizes[o.BigSegments] <= sizes[n-1] {
			t.Errorf("%+v: no skew: first %d, last %d", o, sizes[o.BigSegments], sizes[n-1])
		}
	}
	if err := (benchdata.Options{Contacts: 10, Segments: 2, Memberships: 100, BigSegments: 1, BigSize: 10}).Check(); err == nil {
		t.Error("100 memberships in 2 segments of 10 contacts: no error")
	}
}

// TestLoad loads a small dataset twice and checks what segments check checks (no
// drift of counters or bitmaps, counter triggers on), that every index and
// constraint is back exactly as migrated, and that the same options give the same rows.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	defs := func() []string {
		t.Helper()
		return storetest.Column[string](t, s.DB(), `
			SELECT 'index ' || indexrelid::regclass::text || ': ' || pg_get_indexdef(indexrelid) FROM pg_index
			WHERE indrelid IN ('contacts'::regclass, 'memberships'::regclass, 'segments'::regclass)
			UNION ALL
			SELECT 'constraint ' || conname || ' on ' || conrelid::regclass::text || ': ' || pg_get_constraintdef(oid) || ' ' || convalidated
			FROM pg_constraint WHERE conrelid IN ('contacts'::regclass, 'memberships'::regclass, 'segments'::regclass)
			UNION ALL
			SELECT 'trigger ' || tgname || ': ' || tgenabled::text FROM pg_trigger
			WHERE tgrelid IN ('contacts'::regclass, 'memberships'::regclass) AND NOT tgisinternal
			ORDER BY 1`)
	}
	before := defs()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := benchdata.Options{Workspace: "bench test", Contacts: 3000, Segments: 40, Memberships: 12_000, BigSegments: 3, BigSize: 900, Seed: 7}
	res1, err := benchdata.Load(ctx, s, o, log)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := benchdata.Load(ctx, s, o, log)
	if err != nil {
		t.Fatal(err)
	}
	if after := defs(); !slices.Equal(before, after) {
		t.Fatalf("indexes, constraints or triggers changed:\nbefore %q\nafter  %q", before, after)
	}
	if problems, err := s.TriggerProblems(ctx); err != nil || len(problems) > 0 {
		t.Fatalf("counter triggers: %v %v", problems, err)
	}
	checkDerived(t, s, "the load")
	if res1.Memberships != o.Memberships {
		t.Fatalf("%d memberships loaded, want %d", res1.Memberships, o.Memberships)
	}
	// Deterministic: both loads hold the same rows, up to their IDs.
	digest := func(res benchdata.Result) [3]string {
		t.Helper()
		var d [3]string
		for i, q := range []string{
			`SELECT md5(string_agg(concat_ws('|', id - $2, phone, name, email, attributes::text, created_at, updated_at), ',' ORDER BY id)) FROM contacts WHERE workspace_id = $1 AND $2 > 0`,
			`SELECT md5(string_agg(concat_ws('|', id - $2, name, description, contact_count, created_at), ',' ORDER BY id)) FROM segments WHERE workspace_id = $1 AND $2 > 0`,
			`SELECT md5(string_agg(concat_ws('|', segment_id - $2, contact_id - $3), ',' ORDER BY segment_id, contact_id)) FROM memberships WHERE workspace_id = $1`,
		} {
			args := []any{res.Workspace.ID, res.FirstContactID}
			if i == 1 {
				args[1] = res.SegmentIDs[0]
			}
			if i == 2 {
				args = append(args[:1], res.SegmentIDs[0], res.FirstContactID)
			}
			if err := s.DB().QueryRowContext(ctx, q, args...).Scan(&d[i]); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	if d1, d2 := digest(res1), digest(res2); d1 != d2 {
		t.Fatalf("two loads with the same options differ: %v vs %v", d1, d2)
	}
	// The API works on the loaded data, and its writes keep counting.
	seg := res1.SegmentIDs[len(res1.SegmentIDs)-1]
	var before1 int64
	if err := s.DB().QueryRowContext(ctx, "SELECT contact_count FROM segments WHERE id = $1", seg).Scan(&before1); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 50 {
		ids = append(ids, res1.FirstContactID+int64(i))
	}
	ch, err := s.AssignContactsToSegments(ctx, res1.Workspace.ID, ids, []int64{seg}, store.WithSegments)
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.Segments[0].ContactCount; got != before1+int64(ch.Changed) || ch.Changed == 0 {
		t.Fatalf("count after assigning %d: %d, was %d", ch.Changed, got, before1)
	}
	checkDerived(t, s, "an API write")

	found, err := benchdata.Find(ctx, s.DB(), "bench test")
	if err != nil || found.WorkspaceID != res2.Workspace.ID || found.Contacts != o.Contacts || found.Memberships != int64(o.Memberships) {
		t.Fatalf("Find: %+v %v", found, err)
	}
}

// TestLoadNeighbours loads small workspaces beside a dataset, then more of them, and
// checks that each holds the Neighbour dataset with its counters and bitmaps kept by
// the triggers, that each has data of its own, and that those already there are
// kept rather than loaded again.
func TestLoadNeighbours(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := benchdata.Options{Workspace: "bench test", Contacts: 1000, Segments: 20, Memberships: 3000, BigSegments: 2, BigSize: 300, Seed: 7}
	if _, err := benchdata.Load(ctx, s, o, log); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ n, loaded int }{{3, 3}, {5, 2}, {5, 0}} {
		if loaded, err := benchdata.LoadNeighbours(ctx, s, step.n, 1, log); err != nil || loaded != step.loaded {
			t.Fatalf("LoadNeighbours(%d): %d loaded (%v), want %d", step.n, loaded, err, step.loaded)
		}
	}
	type held struct {
		contacts, segments, memberships, counted int64
		names                                    string
	}
	rows := storetest.Column[string](t, s.DB(), `
		SELECT concat_ws(' ', w.name,
		       (SELECT count(*) FROM contacts c WHERE c.workspace_id = w.id),
		       (SELECT count(*) FROM segments g WHERE g.workspace_id = w.id),
		       (SELECT count(*) FROM memberships m WHERE m.workspace_id = w.id),
		       (SELECT sum(contact_count) FROM segments g WHERE g.workspace_id = w.id),
		       (SELECT md5(string_agg(name, ',' ORDER BY id)) FROM contacts c WHERE c.workspace_id = w.id))
		  FROM workspaces w WHERE starts_with(w.name, $1) ORDER BY w.id`, benchdata.NeighbourPrefix)
	if len(rows) != 5 {
		t.Fatalf("%d neighbours, want 5: %q", len(rows), rows)
	}
	n := benchdata.Neighbour.Fill()
	digests := map[string]bool{}
	for k, row := range rows {
		var h held
		var name1, name2 string
		if _, err := fmt.Sscan(row, &name1, &name2, &h.contacts, &h.segments, &h.memberships, &h.counted, &h.names); err != nil {
			t.Fatalf("%q: %v", row, err)
		}
		if want := fmt.Sprintf("Neighbour %d", k+1); name1+" "+name2 != want ||
			h.contacts != int64(n.Contacts) || h.segments != int64(n.Segments) || h.memberships != int64(n.Memberships) || h.counted != h.memberships {
			t.Errorf("%s: %+v, want %s with %d contacts, %d segments and %d memberships, all counted", name1+" "+name2, h, want, n.Contacts, n.Segments, n.Memberships)
		}
		digests[h.names] = true
	}
	if len(digests) != len(rows) {
		t.Errorf("the neighbours' contacts are named alike: %d kinds in %d", len(digests), len(rows))
	}
	checkDerived(t, s, "the neighbours")
	if found, err := benchdata.Find(ctx, s.DB(), "bench test"); err != nil || found.Contacts != o.Contacts {
		t.Fatalf("Find after the neighbours: %+v %v", found, err)
	}
}

// checkDerived fails the test unless what the database derives from the rows (the
// segments' counters, their bitmaps, the workspaces' contact counts) agrees with
// them after what (a step of the test).
func checkDerived(t *testing.T, s *store.Store, after string) {
	t.Helper()
	ctx := context.Background()
	if drift, err := s.CheckCounts(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("drift after %s: %+v %v", after, drift, err)
	}
	if drift, err := s.CheckBitmaps(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("bitmaps differ from the memberships after %s: %+v %v", after, drift, err)
	}
	if drift, err := s.CheckContactCounts(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("contact counts differ from the contacts after %s: %+v %v", after, drift, err)
	}
}

// TestVerify changes a loaded dataset the ways a lab or an interrupted run can, and
// checks that Verify names each change, and that it finds the dataset as loaded again
// once the change is undone.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := benchdata.Options{Workspace: "bench verify", Contacts: 2000, Segments: 30, Memberships: 6000, BigSegments: 2, BigSize: 600, Seed: 3}
	res, err := benchdata.Load(ctx, s, o, log)
	if err != nil {
		t.Fatal(err)
	}
	ws := res.Workspace.ID
	verify := func(step string, want ...string) {
		t.Helper()
		in, err := benchdata.Find(ctx, s.DB(), o.Workspace)
		if err != nil {
			t.Fatal(err)
		}
		err = benchdata.Verify(ctx, s.DB(), in, o)
		if len(want) == 0 {
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("%s: the dataset is as loaded, says Verify", step)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", step, err, w)
			}
		}
	}
	verify("the load")

	lab, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: "lab 1"})
	if err != nil {
		t.Fatal(err)
	}
	contacts := []int64{res.FirstContactID, res.FirstContactID + 1, res.FirstContactID + 2}
	if _, err := s.AssignContactsToSegments(ctx, ws, contacts, []int64{lab.ID}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	verify("a segment added", "31 segments, not 30", fmt.Sprintf(`segment %d ("lab 1", 3 members) is not one of the dataset's`, lab.ID))
	if err := s.DeleteSegment(ctx, ws, lab.ID); err != nil {
		t.Fatal(err)
	}
	verify("the segment deleted")

	small := res.SegmentIDs[len(res.SegmentIDs)-1]
	before := o.Fill().Sizes()[len(res.SegmentIDs)-1]
	member := storetest.Column[int64](t, s.DB(), `SELECT contact_id FROM memberships WHERE segment_id = $1 LIMIT 1`, small)
	if _, err := s.RemoveContactsFromSegments(ctx, ws, member, []int64{small}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	verify("a member removed", fmt.Sprintf("segment %d (%q) has %d members, not %d", small, benchdata.SegmentName(len(res.SegmentIDs)-1, o.BigSegments), before-1, before))
	if _, err := s.AssignContactsToSegments(ctx, ws, member, []int64{small}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	verify("the member back")

	up, err := s.UpsertContacts(ctx, ws, []crm.ContactInput{{Phone: "+919999000001"}})
	if err != nil {
		t.Fatal(err)
	}
	verify("a contact added", "2001 contacts, not 2000")
	if _, err := s.DeleteContacts(ctx, ws, []int64{up.Contacts[0].ID}, store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
	verify("the contact deleted")
}
