package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestAssignSkipsExistingMemberships assigns contacts to segments some of which
// they are already in, to segments named out of order and twice, beside a segment
// between them in ID order that is not named. The store finds the existing
// memberships itself and inserts the others without ON CONFLICT (insertMemberships):
// a membership it missed would fail the insert, one it invented would go uncounted.
func TestAssignSkipsExistingMemberships(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f, first, between, last := rangeFixture(t, s, 40_700)
	c := f.contacts

	withRepeat := append(slices.Clone(c), c[0])
	got, err := s.AssignContactsToSegments(ctx, f.ws.ID, withRepeat, []int64{last, first, last}, store.WithSegments)
	if err != nil {
		t.Fatal(err)
	}
	if want := (10 - 4) + (10 - 1); got.Changed != want {
		t.Errorf("changed %d memberships, want %d", got.Changed, want)
	}
	if len(got.Segments) != 2 || got.Segments[0].ID != last || got.Segments[1].ID != first {
		t.Errorf("segments %+v, want Last then First", got.Segments)
	}
	for _, seg := range []int64{first, between, last} {
		q := fmt.Sprintf("SELECT count(*) FROM memberships WHERE workspace_id = %d AND segment_id = %d", f.ws.ID, seg)
		if n := count(t, s.DB(), ctx, q); n != 10 {
			t.Errorf("segment %d has %d memberships, want 10", seg, n)
		}
	}
	checkDerived(t, s, f.ws.ID)

	again, err := s.AssignContactsToSegments(ctx, f.ws.ID, c, []int64{first, between, last}, store.WithoutSegments)
	if err != nil || again.Changed != 0 || again.Segments != nil {
		t.Errorf("assigning again without segments: changed %d, segments %+v, %v; want 0, none", again.Changed, again.Segments, err)
	}
	checkDerived(t, s, f.ws.ID)
}

// rangeFixture makes a fixture of ten contacts (newFixture, phones from phoneBase)
// and three segments in its workspace, created in this order so that their IDs
// ascend: First with the first four contacts, Between with all ten, and Last with the
// sixth. Tests name First and Last; Between lies in their ID range, where the store
// reads each contact's memberships (existingMemberships), and must be left alone.
func rangeFixture(t *testing.T, s *store.Store, phoneBase int) (f fixture, first, between, last int64) {
	t.Helper()
	f = newFixture(t, s, phoneBase, nil)
	segment := func(name string, members []int64) int64 {
		seg, err := s.CreateSegment(context.Background(), f.ws.ID, crm.NewSegment{Name: name, ContactIDs: members})
		if err != nil {
			t.Fatal(err)
		}
		return seg.ID
	}
	c := f.contacts
	return f, segment("First", c[:4]), segment("Between", c), segment("Last", c[5:6])
}

// TestRemoveOnlyNamedMemberships removes contacts from segments they are partly in,
// named out of order and twice, beside a segment between them in ID order that is
// not named. The store finds the memberships to delete as it finds the existing ones
// of an assignment (through each contact's index entries in the range of the
// segments' IDs) and deletes them by their row addresses (deleteMemberships).
func TestRemoveOnlyNamedMemberships(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f, first, between, last := rangeFixture(t, s, 40_800)
	c := f.contacts

	// c[2] and c[3] are in First, c[5] in Last, c[4] and c[6] in neither.
	named := []int64{c[6], c[2], c[5], c[3], c[4], c[2]}
	got, err := s.RemoveContactsFromSegments(ctx, f.ws.ID, named, []int64{last, first, last}, store.WithSegments)
	if err != nil {
		t.Fatal(err)
	}
	if got.Changed != 3 {
		t.Errorf("removed %d memberships, want 3", got.Changed)
	}
	if len(got.Segments) != 2 || got.Segments[0].ID != last || got.Segments[0].ContactCount != 0 ||
		got.Segments[1].ID != first || got.Segments[1].ContactCount != 2 {
		t.Errorf("segments %+v, want Last with 0 contacts, then First with 2", got.Segments)
	}
	for seg, want := range map[int64][]int64{first: c[:2], between: c, last: nil} {
		q := `SELECT contact_id FROM memberships WHERE workspace_id = $1 AND segment_id = $2 ORDER BY contact_id`
		if members := storetest.Column[int64](t, s.DB(), q, f.ws.ID, seg); !slices.Equal(members, want) {
			t.Errorf("segment %d has members %v, want %v", seg, members, want)
		}
	}
	checkDerived(t, s, f.ws.ID)

	again, err := s.RemoveContactsFromSegments(ctx, f.ws.ID, named, []int64{first, between, last}, store.WithSegments)
	if err != nil || again.Changed != 5 {
		t.Errorf("removing again from all three: removed %d, %v; want the 5 of Between", again.Changed, err)
	}
	checkDerived(t, s, f.ws.ID)
}

// TestMembershipStatementPlans plans the statements that add and remove memberships
// for a request of 1,000 contacts and 100 segments, as the app role, in a workspace
// whose memberships are worth an index. Both must find a request's memberships
// through each contact's entries in memberships_contact and never read the table
// whole for that: a removal written on both ID lists was planned as a sequential scan
// of every workspace's memberships, 0.6-1.8 s at the benchmark's 6M
// (existingMemberships). The removal then deletes the rows it found by their
// addresses, looked up one by one or hashed against a pass over the table, which
// PostgreSQL chooses where the table is small, as the test's is (at the benchmark's
// size it looks them up: deleteMemberships).
func TestMembershipStatementPlans(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	if _, err := owner.DB().ExecContext(ctx, fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone) SELECT %[1]d, '+9196' || lpad(g::text, 8, '0') FROM generate_series(1, 2000) g;
		INSERT INTO segments (workspace_id, name) SELECT %[1]d, 'Plan ' || g FROM generate_series(1, 100) g;
		INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT %[1]d, s.id, c.id FROM segments s JOIN contacts c ON c.workspace_id = s.workspace_id AND (c.id + s.id) %% 10 = 0
		 WHERE s.workspace_id = %[1]d;
		ANALYZE contacts; ANALYZE segments; ANALYZE memberships`, ws.ID)); err != nil {
		t.Fatal(err)
	}
	contacts := storetest.Column[int64](t, owner.DB(), `SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1000`, ws.ID)
	segments := storetest.Column[int64](t, owner.DB(), `SELECT id FROM segments WHERE workspace_id = $1`, ws.ID)
	insert, remove := store.MembershipsSQL(app, ws.ID, contacts, segments)
	for _, c := range []struct {
		name, sql string
		nodes     []string // one of them
	}{
		{"insert", insert, []string{"Insert on memberships"}},
		{"remove", remove, []string{"TID Cond: (ctid = e.address)", "Hash Cond: (e.address = m.ctid)"}},
	} {
		_, plan := indexCond(t, store.WithWorkspace(ctx, ws.ID), app.DB(), "", c.sql, "memberships_contact")
		found := slices.ContainsFunc(c.nodes, func(n string) bool { return strings.Contains(plan, n) })
		finding := strings.ReplaceAll(plan, "Seq Scan on memberships m ", "") // the removal's pass, above
		if !found || strings.Contains(finding, "Seq Scan on memberships") {
			t.Errorf("%s: want one of %q, and no sequential scan of memberships to find the request's:\n%s", c.name, c.nodes, plan)
		}
	}
}

// TestAssignmentToAWorkspaceTheStatisticsDoNotKnow assigns 1,000 contacts to a
// segment in a workspace whose 20,000 contacts came after the last ANALYZE, beside
// many small workspaces: the statistics take it for one row. The check of the
// assignment's references (memberships_references_checked) looks each contact up by
// (workspace_id, id). Planned by PL/pgSQL for that workspace, "workspace_id = ?"
// alone costs as little as both columns, and PostgreSQL may take either: where it
// took the workspace alone (1M contacts loaded by SQL), each lookup scanned the
// workspace, and 1,783 contacts ran past two minutes. The test reads the plan the
// trigger ran (explainingConn): a generic plan's lookup, by both columns, for any
// workspace (migration 20261203000006).
func TestAssignmentToAWorkspaceTheStatisticsDoNotKnow(t *testing.T) {
	ctx := context.Background()
	url, owner, _, ws := newWorkspaceAfterAnalysis(t)
	fillWorkspace(t, owner, ws.ID, 20_000, 1, 1<<30) // one segment, no members yet
	if rows := plannedRows(t, owner, "contacts", ws.ID); rows > 10 {
		t.Fatalf("the statistics take the workspace for %g contacts, want a few (it has 20,000)", rows)
	}
	conn, plans := explainingConn(t, url)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT %[1]d, s.id, c.id FROM segments s, (SELECT id FROM contacts WHERE workspace_id = %[1]d ORDER BY id LIMIT 1000) c
		 WHERE s.workspace_id = %[1]d`, ws.ID)); err != nil {
		t.Fatal(err)
	}
	plan := planOf(t, plans(), "LATERAL (SELECT FROM contacts c")
	if !lookedUpByBothColumns.MatchString(plan) {
		t.Errorf("the check's lookup of a contact is not by both columns for any workspace:\n%s", plan)
	}
	checkDerived(t, owner, ws.ID)
}

// TestRemovalClearsBitsByLookup removes 500 contacts from 10 segments of a workspace
// whose 500 bitmap chunks came after the last ANALYZE of segment_bitmaps, as the
// application does it (its role, under row-level security). The trigger that clears
// their bits (migration 20261203000008) must look each changed chunk up by its key:
// planned as joins, with the workspace's chunks taken for one row, it read all of
// them for each chunk removed (at 1M contacts, 31,000 chunks 10 times over, 0.6-0.7 s
// for 500 memberships). The test reads the trigger's plans through auto_explain and
// counts the chunks they read.
func TestRemovalClearsBitsByLookup(t *testing.T) {
	ctx := context.Background()
	url, owner, _, ws := newWorkspaceAfterAnalysis(t)
	storetest.Exec(t, owner.DB(), "ANALYZE segment_bitmaps")
	fillWorkspace(t, owner, ws.ID, 2_000, 500, 10) // 500 segments of 200, a chunk each
	conn, plans := explainingConn(t, url)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`SET auto_explain.log_format = json;
		SET ROLE segments_app; SET app.workspace_id = '%d'`, ws.ID)); err != nil {
		t.Fatal(err)
	}
	var removed int
	if err := conn.QueryRow(ctx, fmt.Sprintf(`WITH d AS (DELETE FROM memberships WHERE workspace_id = %[1]d
		AND segment_id IN (SELECT id FROM segments WHERE workspace_id = %[1]d ORDER BY id LIMIT 10)
		AND contact_id IN (SELECT id FROM contacts WHERE workspace_id = %[1]d ORDER BY id LIMIT 500)
		RETURNING 1) SELECT count(*) FROM d`, ws.ID)).Scan(&removed); err != nil {
		t.Fatal(err)
	}
	if removed == 0 {
		t.Fatal("nothing removed: the test proves nothing")
	}
	read := 0.0
	for _, p := range plans() {
		_, plan := autoExplained(t, p)
		read += rowsRead(plan, "segment_bitmaps")
	}
	// The 10 segments' chunks, each read once to be updated and perhaps once more
	// to be deleted.
	if read == 0 || read > 20 {
		t.Errorf("the removal of %d memberships from 10 segments of a chunk each read %.0f bitmap chunks; want 10 to 20", removed, read)
	}
	checkDerived(t, owner, ws.ID)
}

// lookedUpByBothColumns finds, in the plan of the check of an assignment's
// contacts, their lookup by both columns of the primary key, planned for any
// workspace (its value a parameter, not a constant).
var lookedUpByBothColumns = regexp.MustCompile(`Index Cond: \(\(workspace_id = \$\d+\) AND \(id = i\.id\)\)`)

// TestRemovalFromAWorkspaceTheStatisticsDoNotKnow removes 1,000 contacts from 100
// segments (100,000 memberships) in a workspace that got them after the last ANALYZE,
// in a database of many small workspaces: the statistics take it for a few rows, as
// they take any new workspace until autovacuum's next round. The statement must look
// the memberships it found up by their addresses, or hash them, and never test each
// row of the workspace against the whole list: planned so (an index scan of the
// workspace filtered by ctid = ANY(the addresses)), the removal compared every row
// with every address, 100,000 × 100,000, and took 53-57 s where it takes 0.5 s (a
// server test ran into its one-minute deadline this way). The test checks that the
// statistics do take the workspace for a few rows before it removes anything.
func TestRemovalFromAWorkspaceTheStatisticsDoNotKnow(t *testing.T) {
	ctx := context.Background()
	_, owner, app, ws := newWorkspaceAfterAnalysis(t)
	fillWorkspace(t, owner, ws.ID, 1000, 100, 1)
	if rows := plannedRows(t, owner, "memberships", ws.ID); rows > 10 {
		t.Fatalf("the statistics take the workspace for %g memberships, want a few (it has 100,000)", rows)
	}
	contacts := storetest.Column[int64](t, owner.DB(), `SELECT id FROM contacts WHERE workspace_id = $1`, ws.ID)
	segments := storetest.Column[int64](t, owner.DB(), `SELECT id FROM segments WHERE workspace_id = $1`, ws.ID)

	_, remove := store.MembershipsSQL(app, ws.ID, contacts, segments)
	wctx := store.WithWorkspace(ctx, ws.ID)
	_, plan := indexCond(t, wctx, app.DB(), "", remove, "memberships_contact")
	if strings.Contains(plan, "Filter: (ctid = ") {
		t.Errorf("the removal tests the workspace's rows against its list of addresses:\n%s", plan)
	}
	// And it runs: all 100,000 go, within a deadline far above its half second.
	dctx, cancel := context.WithTimeout(wctx, 20*time.Second)
	defer cancel()
	out, err := app.RemoveContactsFromSegments(dctx, ws.ID, contacts, segments, store.WithSegments)
	if err != nil || out.Changed != 100_000 {
		t.Fatalf("removed %d, %v; want 100,000", out.Changed, err)
	}
	checkDerived(t, owner, ws.ID)
}

// TestCountersCountBeforeThePolicy assigns 2,000 contacts to 10 segments, removes
// them from 5, and deletes the contacts, as the application does it (its role, under
// row-level security), and reads the plans of the triggers that keep the counters.
// Each joins its transition table's counts to a table under the policy on
// workspace_id, and PostgreSQL carries the policy's test over the join: asked of
// the transition table, it runs once for every changed row and takes them for 0.5%
// of their number. The memberships' counter then sorted a bulk assignment's 100,000
// rows on disk where it hashes them in memory: 40-60 ms a request instead of 15,
// 0.35-0.45 s of W7's ten requests. The counters now count first (migration
// 20261205000001), and the test finds no transition table filtered by the policy.
func TestCountersCountBeforeThePolicy(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	owner, _ := storetest.MigratedStores(t, url, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, ws.ID, 2_000, 10, 1<<30) // no memberships yet
	conn, plans := explainingConn(t, url)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`SET auto_explain.log_format = json;
		SET ROLE segments_app; SET app.workspace_id = '%d'`, ws.ID)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{
		`INSERT INTO memberships (workspace_id, segment_id, contact_id)
		 SELECT %[1]d, s.id, c.id FROM segments s, contacts c WHERE s.workspace_id = %[1]d AND c.workspace_id = %[1]d`,
		`DELETE FROM memberships WHERE workspace_id = %[1]d
		   AND segment_id IN (SELECT id FROM segments WHERE workspace_id = %[1]d ORDER BY id LIMIT 5)`,
		`DELETE FROM contacts WHERE workspace_id = %[1]d`,
	} {
		if _, err := conn.Exec(ctx, fmt.Sprintf(step, ws.ID)); err != nil {
			t.Fatal(err)
		}
	}
	// The memberships' counter after the assignment, and after the removal and the
	// contacts' cascade; the contacts' after their delete.
	counters := map[string]bool{"contact_count +": false, "contact_count -": false, "INSERT INTO contact_counts": false}
	for _, p := range plans() {
		query, plan := autoExplained(t, p)
		counter := false
		for fragment := range counters {
			if strings.Contains(query, fragment) {
				counters[fragment], counter = true, true
			}
		}
		if !counter {
			continue
		}
		scans := nodesOf(plan, "Named Tuplestore Scan")
		if len(scans) == 0 {
			t.Errorf("a counter's plan reads no transition table:\n%s", query)
		}
		for _, scan := range scans {
			if scan["Filter"] != nil {
				t.Errorf("a counter tests each of its %v changed rows (%v):\n%s", scan["Actual Rows"], scan["Filter"], query)
			}
		}
	}
	for fragment, seen := range counters {
		if !seen {
			t.Errorf("no plan of the counter's statement %q", fragment)
		}
	}
	checkDerived(t, owner, ws.ID)
}

// nodesOf returns the nodes of plan n of the given type.
func nodesOf(n map[string]any, nodeType string) []map[string]any {
	var found []map[string]any
	if n["Node Type"] == nodeType {
		found = append(found, n)
	}
	for _, c := range children(n) {
		found = append(found, nodesOf(c, nodeType)...)
	}
	return found
}

// autoExplained reads a notice of auto_explain in JSON ("duration: … plan:" and the
// plan): the statement and its plan.
func autoExplained(t *testing.T, notice string) (query string, plan map[string]any) {
	t.Helper()
	var explained struct {
		Query string `json:"Query Text"`
		Plan  map[string]any
	}
	if err := json.Unmarshal([]byte(notice[strings.Index(notice, "{"):]), &explained); err != nil {
		t.Fatalf("%v: %s", err, notice)
	}
	return explained.Query, explained.Plan
}
