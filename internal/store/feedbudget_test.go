package store_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// feedRowBytes is what the budget counts for an entry of n contact IDs stored in its
// row (migration 20261218000003).
func feedRowBytes(t *testing.T, s *store.Store, n int) int64 {
	t.Helper()
	return storetest.Column[int64](t, s.DB(), "SELECT pg_column_size(array_agg(i::bigint)) + 100 FROM generate_series(1, $1) i", n)[0]
}

// pruneUntil runs the feed's pruning of ws (as the triggers do) until the workspace's
// budget has counted every row (another test's transaction may hold the horizon
// back), and returns how many rows each run deleted.
func pruneUntil(t *testing.T, s *store.Store, ws int64) []int {
	t.Helper()
	var deleted []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := count(t, s.DB(), context.Background(), "SELECT count(*) FROM membership_changes")
		storetest.Exec(t, s.DB(), "SELECT membership_changes_pruned($1)", ws)
		after := count(t, s.DB(), context.Background(), "SELECT count(*) FROM membership_changes")
		deleted = append(deleted, before-after)
		counted := storetest.Column[bool](t, s.DB(), `SELECT coalesce((SELECT (b.counted_xid, b.counted_id) = (m.change_xid, m.id)
			FROM membership_changes_budgets b,
			     LATERAL (SELECT change_xid, id FROM membership_changes WHERE workspace_id = b.workspace_id ORDER BY change_xid DESC, id DESC LIMIT 1) m
			WHERE b.workspace_id = $1), false)`, ws)[0]
		if counted && before == after {
			return deleted
		}
		if time.Now().After(deadline) {
			t.Fatalf("the budget of workspace %d has not counted its rows in 10 s (deleted %v)", ws, deleted)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkKept checks that a workspace's budget counts exactly the bytes of its rows up
// to its counted place.
func checkKept(t *testing.T, s *store.Store, ws int64) {
	t.Helper()
	kept := storetest.Column[int64](t, s.DB(), "SELECT kept FROM membership_changes_budgets WHERE workspace_id = $1", ws)
	rows := storetest.Column[int64](t, s.DB(), `SELECT coalesce(sum(pg_column_size(m.contact_ids) + 100), 0)::bigint
		FROM membership_changes_budgets b JOIN membership_changes m ON m.workspace_id = b.workspace_id
		 AND (m.change_xid, m.id) <= (b.counted_xid, b.counted_id)
		WHERE b.workspace_id = $1`, ws)
	if !slices.Equal(kept, rows) {
		t.Errorf("the budget of workspace %d counts %v bytes, its rows up to its counted place %v", ws, kept, rows)
	}
}

// TestMembershipChangesBudget proves that a workspace keeps at most its budget of
// membership changes (migration 20261218000003): its oldest entries are pruned early,
// a cursor before the last one pruned is refused with a ResyncError, one at it reads
// exactly the changes after it, and a sync from the start still mirrors the
// memberships; that each statement deletes at most 1,000 rows, however far over its
// budget the workspace is; that the budget counts exactly its rows; and that other
// workspaces are left alone.
func TestMembershipChangesBudget(t *testing.T) {
	ctx := context.Background()
	s, app := storetest.NewStores(t, store.Options{MaxConns: 4})
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 8)
	seg := newSegments(t, s, ws.ID, 1)[0]
	otherIDs := upsertMany(t, s, ctx, other.ID, 2)
	if _, err := s.CreateSegment(ctx, other.ID, crm.NewSegment{Name: "Theirs", ContactIDs: otherIDs}); err != nil {
		t.Fatal(err)
	}
	// Three entries of one ID each.
	asWS := store.WithWorkspace(ctx, ws.ID) // the server's role, under row-level security
	row := feedRowBytes(t, s, 1)
	storetest.Exec(t, s.DB(), "INSERT INTO membership_changes_settings (one, budget) VALUES (true, $1)", 3*row)

	// Eight assignments, one contact each (as the server's role): cursors after the
	// fourth and the fifth.
	var cursors []string
	var want []mchange
	after := mend(t, app, asWS, ws.ID)
	polled := 0
	for i, id := range ids {
		if _, err := app.AssignContactsToSegments(asWS, ws.ID, []int64{id}, []int64{seg}, store.WithoutSegments); err != nil {
			t.Fatal(err)
		}
		want = append(want, mchange{true, seg, []int64{id}})
		if i == 3 || i == 4 {
			after = mpollUntil(t, app, asWS, ws.ID, &after, want[polled:])
			cursors, polled = append(cursors, after), len(want)
		}
	}
	pruneUntil(t, s, ws.ID)
	checkKept(t, s, ws.ID)
	left := storetest.Column[int64](t, s.DB(), "SELECT contact_ids[1] FROM membership_changes WHERE workspace_id = $1 ORDER BY change_xid, id", ws.ID)
	if !slices.Equal(left, ids[5:]) {
		t.Fatalf("with a budget of 3 entries, the entries of contacts %v are kept; want the last 3, %v", left, ids[5:])
	}
	if n := count(t, s.DB(), ctx, "SELECT count(*) FROM membership_changes WHERE workspace_id = "+itoa(other.ID)); n != 1 {
		t.Errorf("the other workspace keeps %d entries, want its 1", n)
	}

	// Before the last entry pruned (the fifth): refused, as an expired cursor is.
	first := 10
	var resync *store.ResyncError
	if _, err := app.MembershipChanges(asWS, ws.ID, crm.PageArgs{First: &first, After: &cursors[0]}); !errors.As(err, &resync) {
		t.Errorf("a cursor before the pruned place: %v, want a ResyncError", err)
	}
	// At it: every change after it, exactly.
	mpollUntil(t, app, asWS, ws.ID, &cursors[1], want[5:])
	// From the start: the members, then nothing.
	all, _ := mfeed(t, app, asWS, ws.ID, nil, 2)
	if m := mirror(mchanges(all)); !mapsEqual(m, memberships(t, s, ws.ID)) {
		t.Errorf("a sync from the start after pruning mirrors %v, want %v", m, memberships(t, s, ws.ID))
	}

	// Far over the budget (2,500 entries recorded by hand): each run of the pruning,
	// as each statement's trigger, deletes at most 1,000.
	storetest.Exec(t, s.DB(), `INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
		SELECT $1, pg_current_xact_id(), $2, true, ARRAY[$3::bigint], now() FROM generate_series(1, 2500)`, ws.ID, seg, ids[0])
	deleted := pruneUntil(t, s, ws.ID)
	if total := sumInts(deleted); total != 2500 || slices.Max(deleted) != 1000 {
		t.Errorf("the pruning deleted %v rows a run (%d in all); want at most 1,000 a run, 2,500 in all", deleted, total)
	}
	checkKept(t, s, ws.ID)

	// No budget (-1): nothing is pruned early.
	if err := s.SetMembershipChangesBudget(ctx, -1); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:4] {
		if _, err := app.RemoveContactsFromSegments(asWS, ws.ID, []int64{id}, []int64{seg}, store.WithoutSegments); err != nil {
			t.Fatal(err)
		}
	}
	pruneUntil(t, s, ws.ID)
	if n := count(t, s.DB(), ctx, "SELECT count(*) FROM membership_changes WHERE workspace_id = "+itoa(ws.ID)); n != 7 {
		t.Errorf("without a budget, %d entries kept, want 7", n)
	}
	checkKept(t, s, ws.ID)
	// The default, set by serve.
	if err := s.SetMembershipChangesBudget(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Column[int64](t, s.DB(), "SELECT budget FROM membership_changes_settings"); !slices.Equal(got, []int64{store.DefaultMembershipChangesBudget}) {
		t.Errorf("the default budget set: %v, want %d", got, store.DefaultMembershipChangesBudget)
	}
}

// TestMembershipChangesDefaultBudgetIsTheMigrations checks that the migration's
// function, without a budget set, keeps store.DefaultMembershipChangesBudget.
func TestMembershipChangesDefaultBudgetIsTheMigrations(t *testing.T) {
	s := storetest.Store(t)
	src := storetest.Column[string](t, s.DB(), "SELECT prosrc FROM pg_proc WHERE proname = 'membership_changes_pruned'")
	if len(src) != 1 || !containsNumber(src[0], store.DefaultMembershipChangesBudget) {
		t.Errorf("membership_changes_pruned does not default to %d bytes", store.DefaultMembershipChangesBudget)
	}
}

// TestMembershipChangesOfGoneWorkspaces proves that the rows of a workspace that no
// longer exists (an older server deleted it) are found, deleted a bounded batch a
// statement, and deleted as the store opens, while other workspaces keep theirs.
func TestMembershipChangesOfGoneWorkspaces(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 4})
	ws, _ := storetest.Workspace(t, s)
	ids := upsertMany(t, s, ctx, ws.ID, 2)
	if _, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Kept", ContactIDs: ids}); err != nil {
		t.Fatal(err)
	}
	gone := []int64{ws.ID + 1000, ws.ID + 2000}
	for _, g := range gone {
		storetest.Exec(t, s.DB(), `INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
			SELECT $1, pg_current_xact_id(), 1, true, ARRAY[i::bigint], now() FROM generate_series(1, 12) i`, g)
	}
	found, err := s.CheckGoneWorkspaceChanges(ctx)
	if err != nil || !slices.Equal(found, []store.GoneWorkspaceChanges{{WorkspaceID: gone[0], Rows: 12}, {WorkspaceID: gone[1], Rows: 12}}) {
		t.Fatalf("gone workspaces' changes: %+v, %v", found, err)
	}
	defer store.SetGoneWorkspaceBatch(5)()
	deleted, left, err := s.PruneGoneWorkspaceChanges(ctx, 3)
	if err != nil || !left || !slices.Equal(deleted, []store.GoneWorkspaceChanges{{WorkspaceID: gone[0], Rows: 12}}) {
		t.Fatalf("3 statements of 5 rows: deleted %+v, left %v, %v; want the first workspace's 12, some left", deleted, left, err)
	}
	// As the store opens (Migrate): the rest.
	storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	if n := count(t, s.DB(), ctx, "SELECT count(*) FROM membership_changes WHERE workspace_id <> "+itoa(ws.ID)); n != 0 {
		t.Errorf("after an open, %d rows of gone workspaces are left", n)
	}
	if n := count(t, s.DB(), ctx, "SELECT count(*) FROM membership_changes WHERE workspace_id = "+itoa(ws.ID)); n != 1 {
		t.Errorf("the workspace that exists keeps %d rows, want its 1", n)
	}
	if found, err := s.CheckGoneWorkspaceChanges(ctx); err != nil || len(found) != 0 {
		t.Errorf("after the repair: %+v, %v", found, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func sumInts(v []int) (sum int) {
	for _, n := range v {
		sum += n
	}
	return sum
}

// containsNumber reports whether text holds n as a whole number.
func containsNumber(text string, n int64) bool {
	return regexp.MustCompile(`\b` + strconv.FormatInt(n, 10) + `\b`).MatchString(text)
}
