package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestStatisticsLearnNewWorkspaces proves that autovacuum analyzes the memberships
// after a new workspace's first few thousand rows, not after a tenth of the table
// (migration 20261202000005): beside a workspace of 400,000 memberships, a new one
// of 30,000 is in the planner's statistics within seconds. Before, the planner took
// the new workspace for one row until autovacuum's next round. With PostgreSQL's
// default thresholds, autovacuum waits for 40,050 changed rows here, and the test
// fails.
func TestStatisticsLearnNewWorkspaces(t *testing.T) {
	// A server of the test's own: autovacuum looks at the tables every second, not
	// every minute.
	pg := storetest.Server(t, "autovacuum_naptime=1")
	owner, _ := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	analyzed := func() int64 {
		t.Helper()
		return storetest.Column[int64](t, owner.DB(), `SELECT autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'memberships'`)[0]
	}
	planned := func(ws int64) float64 { return plannedRows(t, owner, "memberships", ws) }

	large, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, large.ID, 20_000, 1_000, 50)
	storetest.Exec(t, owner.DB(), "ANALYZE memberships; ANALYZE contacts; ANALYZE segments")

	// The new workspace, while autovacuum leaves the memberships alone.
	storetest.Exec(t, owner.DB(), "ALTER TABLE memberships SET (autovacuum_enabled = off)")
	small, _ := storetest.Workspace(t, owner)
	const smallMemberships = 1000 * 30
	fillWorkspace(t, owner, small.ID, 1000, 30, 1)
	if got := planned(small.ID); got > 1 {
		t.Fatalf("before autovacuum, the new workspace is planned at %.0f memberships: want 1, or the test proves nothing", got)
	}

	// Waits for the estimate itself, not for autoanalyze_count to move: under make
	// test's load the count once moved and the estimate was still 1 (an analysis
	// whose snapshot predated the new rows, or a count reported late).
	before := analyzed()
	storetest.Exec(t, owner.DB(), "ALTER TABLE memberships RESET (autovacuum_enabled)")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := planned(small.ID)
		if got >= smallMemberships/2 && got <= smallMemberships*2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after autovacuum was let at them, the new workspace's %d memberships are planned at %.0f (%d analyses by autovacuum meanwhile)",
				smallMemberships, got, analyzed()-before)
		}
	}
	if analyzed() == before {
		t.Errorf("the estimate moved without an analysis by autovacuum")
	}
}

// TestSegmentsOfAPageReadThePageMemberships proves that the segments of a page of
// contacts are read through the page's contacts in every plan PostgreSQL may keep
// for them (segments_of_contacts, migration 20261203000002). PL/pgSQL keeps a
// generic plan after five calls, and a generic plan expects the average workspace:
// in a database of many small businesses, few enough memberships to read them all
// through the primary key. Before, for the one large workspace here, that plan read
// all of its 80,000 memberships at every page: 10 times the buffers of the page's
// own (the test wants at most twice those of a plan made for the page's values).
func TestSegmentsOfAPageReadThePageMemberships(t *testing.T) {
	ctx := context.Background()
	// Commits flushed at once (storetest.Server's are not), so that VACUUM marks the
	// pages visible to all and index-only scans read no table: only the plans tell
	// the buffers apart.
	pg := storetest.Server(t, "autovacuum=off", "synchronous_commit=on")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	large, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, large.ID, 20_000, 100, 25)
	fillSmallWorkspaces(t, owner, 300, 20, 5, 2)
	storetest.Exec(t, owner.DB(), "VACUUM ANALYZE memberships, contacts, segments")

	conn, err := app.DB().Conn(store.WithWorkspace(ctx, large.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buffers := func(planCacheMode string) float64 {
		t.Helper()
		wctx := store.WithWorkspace(ctx, large.ID)
		if _, err := conn.ExecContext(wctx, "SET plan_cache_mode = "+planCacheMode); err != nil {
			t.Fatal(err)
		}
		page := fmt.Sprintf("SELECT * FROM segments_of_contacts(%d, (SELECT array_agg(id) FROM (SELECT id FROM contacts WHERE workspace_id = %[1]d ORDER BY id DESC LIMIT 50) AS page))", large.ID)
		// As a session of the server calls it: the plan PostgreSQL keeps after five
		// calls is the one measured.
		for range 10 {
			if _, err := conn.ExecContext(wctx, page); err != nil {
				t.Fatal(err)
			}
		}
		plan, _ := explainAnalyze(t, wctx, conn, page)
		hit, _ := plan["Shared Hit Blocks"].(float64)
		read, _ := plan["Shared Read Blocks"].(float64)
		return hit + read
	}
	custom := buffers("force_custom_plan")
	for _, mode := range []string{"auto", "force_generic_plan"} {
		got := buffers(mode)
		t.Logf("plan_cache_mode %s: %.0f buffers, against %.0f planned for the page", mode, got, custom)
		if got > 2*custom {
			t.Errorf("plan_cache_mode %s: the segments of a page of 50 contacts cost %.0f buffers, against %.0f planned for the page; want at most twice", mode, got, custom)
		}
	}
}

// TestSegmentsOfAPageInAWorkspaceTheStatisticsDoNotKnow proves that the segments of
// a page of contacts are looked up one by one in a workspace that the statistics
// take for a few rows, as they take any workspace whose import came after the last
// ANALYZE beside many small ones (segments_of_contacts, migration 20261203000004).
// Joined by the planner there, the page's memberships were grouped again for each of
// the workspace's 1,000 segments, a nested loop whose join filter kept one segment
// in a thousand. The test reads the plan PostgreSQL ran inside the function, which
// auto_explain sends it as notices, and wants no join filter in it and every segment
// of the page.
func TestSegmentsOfAPageInAWorkspaceTheStatisticsDoNotKnow(t *testing.T) {
	ctx := context.Background()
	url, owner, _, ws := newWorkspaceAfterAnalysis(t)
	fillWorkspace(t, owner, ws.ID, 2_000, 1_000, 20) // each contact in 50 segments
	if rows := plannedRows(t, owner, "memberships", ws.ID); rows > 10 {
		t.Fatalf("the statistics take the workspace for %g memberships, want a few (it has 100,000)", rows)
	}

	conn, plans := explainingConn(t, url)
	page := fmt.Sprintf("SELECT count(*) FROM segments_of_contacts(%d, (SELECT array_agg(id) FROM (SELECT id FROM contacts WHERE workspace_id = %[1]d ORDER BY id DESC LIMIT 50) AS page))", ws.ID)
	var segments int
	if err := conn.QueryRow(ctx, page).Scan(&segments); err != nil {
		t.Fatal(err)
	}
	if segments != 1000 {
		t.Errorf("the page's contacts are in %d segments; want all 1,000", segments)
	}
	plan := planOf(t, plans(), "Query Text: SELECT m.contacts")
	if strings.Contains(plan, "Join Filter") {
		t.Errorf("the page's segments are joined, not looked up:\n%s", plan)
	}
	if !membershipsLookedUpByContact.MatchString(plan) {
		t.Errorf("the page's memberships are not looked up by both columns for any workspace:\n%s", plan)
	}
}

// membershipsLookedUpByContact finds, in the plan of segments_of_contacts, its lookup
// of each contact's memberships by both columns of memberships_contact, planned for
// any workspace (migration 20261203000007). Planned for one the statistics take for
// a row, the function read memberships_pkey by the workspace alone and filtered on
// the contact: all of the workspace's memberships for each contact of the page.
var membershipsLookedUpByContact = regexp.MustCompile(`Index Cond: \(\(workspace_id = \$\d+\) AND \(contact_id = `)

// explainingConn opens a connection of its own to url, on which auto_explain sends
// the plan of every statement, those that functions and triggers run included, as a
// notice: plans returns those received so far. It shows what EXPLAIN cannot, the
// plans PL/pgSQL made inside a function.
func explainingConn(t *testing.T, url string) (conn *pgx.Conn, plans func() []string) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var notices []string
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, n.Message)
	}
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;
		SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on;
		SET auto_explain.log_level = notice`); err != nil {
		t.Fatal(err)
	}
	return conn, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(notices)
	}
}

// planOf returns the last of plans (explainingConn's) that holds fragment, of its
// statement's text.
func planOf(t *testing.T, plans []string, fragment string) string {
	t.Helper()
	for _, p := range slices.Backward(plans) {
		if strings.Contains(p, fragment) {
			return p
		}
	}
	t.Fatalf("no plan holds %q among %q", fragment, plans)
	return ""
}

// fillWorkspace fills workspace ws, as the owner (as a migration or an import by SQL
// would: the store does not see these writes), with contacts and segments, each
// contact in every step-th segment.
func fillWorkspace(t *testing.T, owner *store.Store, ws int64, contacts, segments, step int) {
	t.Helper()
	storetest.Exec(t, owner.DB(), fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone)
		SELECT %[1]d, '+91%[1]d' || lpad(g::text, 8, '0') FROM generate_series(1, %[2]d) g;
		INSERT INTO segments (workspace_id, name) SELECT %[1]d, 'Segment ' || g FROM generate_series(1, %[3]d) g;
		INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT %[1]d, s.id, c.id FROM segments s, contacts c
		 WHERE s.workspace_id = %[1]d AND c.workspace_id = %[1]d AND (s.id + c.id) %% %[4]d = 0`,
		ws, contacts, segments, step))
}

// fillSmallWorkspaces adds n workspaces, as the owner, each filled as fillWorkspace
// fills one, in two statements: the many small businesses beside which a large one
// is far from the average workspace that PostgreSQL's generic plans expect.
func fillSmallWorkspaces(t *testing.T, owner *store.Store, n, contacts, segments, step int) {
	t.Helper()
	storetest.Exec(t, owner.DB(), fmt.Sprintf(`
		WITH w AS (INSERT INTO workspaces (name) SELECT 'Small ' || g FROM generate_series(1, %[1]d) g RETURNING id),
		     c AS (INSERT INTO contacts (workspace_id, phone)
		           SELECT w.id, '+91' || w.id || lpad(g::text, 8, '0') FROM w, generate_series(1, %[2]d) g)
		INSERT INTO segments (workspace_id, name) SELECT w.id, 'Segment ' || g FROM w, generate_series(1, %[3]d) g`,
		n, contacts, segments))
	storetest.Exec(t, owner.DB(), fmt.Sprintf(`
		INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT s.workspace_id, s.id, c.id FROM workspaces w
		  JOIN segments s ON s.workspace_id = w.id JOIN contacts c ON c.workspace_id = w.id
		 WHERE w.name LIKE 'Small %%' AND (s.id + c.id) %% %d = 0`, step))
}

// TestSegmentsPlannedAsTheyAre proves that PostgreSQL plans the memberships of one
// segment of one workspace as the segment holds them, not as the product of the
// workspace's share and the segment's (migration 20261203000005): here, beside 3,300
// small workspaces and nine more like it, a workspace of 10,000 memberships holds a
// tenth of the table, and without the statistics of the dependency its segments of
// 2,000 are planned as a tenth of that. The 50 segments of 2,000 are all among the
// statistics' most common segments; any other would be planned as the average of
// the rest, with or without them.
func TestSegmentsPlannedAsTheyAre(t *testing.T) {
	_, owner, _, ws := newWorkspaceAfterAnalysis(t)
	for range 9 {
		other, _ := storetest.Workspace(t, owner)
		fillWorkspace(t, owner, other.ID, 2_000, 5, 1)
	}
	fillWorkspace(t, owner, ws.ID, 2_000, 5, 1) // 5 segments of 2,000
	storetest.Exec(t, owner.DB(), "ANALYZE memberships")
	segments := storetest.Column[int64](t, owner.DB(), "SELECT id FROM segments WHERE workspace_id = $1 ORDER BY id", ws.ID)
	for _, seg := range segments {
		got := plannedRowsWhere(t, owner, "memberships", fmt.Sprintf("workspace_id = %d AND segment_id = %d", ws.ID, seg))
		if got < 1_000 || got > 4_000 {
			t.Errorf("segment %d of 2,000 members is planned as %.0f; want 1,000-4,000", seg, got)

		}
	}
}

// newWorkspaceAfterAnalysis returns stores of a database of their own, its URL, and
// a new workspace the statistics have not seen, beside 3,300 small workspaces that
// they have (fillSmallWorkspaces, analyzed), with autovacuum kept from learning the
// new one: they take it for a few rows, as they take any business whose import came
// after the last ANALYZE, whatever it holds.
func newWorkspaceAfterAnalysis(t *testing.T) (url string, owner, app *store.Store, ws crm.Workspace) {
	t.Helper()
	url = storetest.Database(t)
	owner, app = storetest.MigratedStores(t, url, store.Options{MaxConns: 2})
	autovacuumOff(t, owner)
	fillSmallWorkspaces(t, owner, 3300, 3, 1, 1)
	storetest.Exec(t, owner.DB(), "ANALYZE memberships; ANALYZE contacts; ANALYZE segments")
	ws, _ = storetest.Workspace(t, owner)
	return url, owner, app, ws
}

// autovacuumOff keeps autovacuum from analyzing the tables whose statistics a test
// sets up: only the test's ANALYZE, and the store's, change them.
func autovacuumOff(t *testing.T, owner *store.Store) {
	t.Helper()
	storetest.Exec(t, owner.DB(), `ALTER TABLE memberships SET (autovacuum_enabled = off);
		ALTER TABLE contacts SET (autovacuum_enabled = off); ALTER TABLE segments SET (autovacuum_enabled = off)`)
}

// TestStoreAnalyzesNewWorkspaces proves that the store has a new workspace analyzed
// as soon as it has written enough of its rows, without waiting for autovacuum
// (analyze.go): with autovacuum off, a new workspace's 15,000 memberships written
// through the store are in the planner's statistics once the store is done. Writes
// into a workspace the statistics know leave the analyses to autovacuum. Without the
// store's analysis, nothing analyzes the memberships here, and the test fails.
func TestStoreAnalyzesNewWorkspaces(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t, "autovacuum=off")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	analyses := func(table string) int64 { return storeAnalyses(t, owner, table) }
	planned := func(ws int64) float64 { return plannedRows(t, owner, "memberships", ws) }

	large, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, large.ID, 20_000, 1_000, 100)
	storetest.Exec(t, owner.DB(), "ANALYZE memberships; ANALYZE contacts; ANALYZE segments")
	store.LearnStatistics(app)

	// Writes into the large workspace, which the statistics know, are left to
	// autovacuum: 2,000 new memberships of 200,000 analyze nothing.
	before := analyses("memberships")
	contactIDs := storetest.Column[int64](t, owner.DB(), `SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id LIMIT 1000`, large.ID)
	segmentIDs := storetest.Column[int64](t, owner.DB(), `SELECT id FROM segments WHERE workspace_id = $1 ORDER BY id DESC LIMIT 2`, large.ID)
	if _, err := app.AssignContactsToSegments(store.WithWorkspace(ctx, large.ID), large.ID, contactIDs, segmentIDs, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	store.WaitAnalyzed(app)
	if n := analyses("memberships") - before; n != 0 {
		t.Errorf("the store analyzed the memberships %d times after writes into a workspace the statistics know", n)
	}

	// A new business's import through the API: 4,000 contacts, 500 of them in 30
	// segments. Its first 1,000 contacts are analyzed at once; the next 3,000 after
	// analyzeSpacing (5 s). Its memberships, written meanwhile, do not wait for the
	// contacts' turn.
	fresh, _ := storetest.Workspace(t, owner)
	wctx := store.WithWorkspace(ctx, fresh.ID)
	contactIDs = contactIDs[:0]
	for b := range 4 {
		contactIDs = append(contactIDs, upsertNumbered(t, app, fresh.ID, b*crm.MaxBulkContacts)...)
	}
	segmentIDs = segmentIDs[:0]
	for i := range 30 {
		seg, err := app.CreateSegment(wctx, fresh.ID, crm.NewSegment{Name: fmt.Sprintf("Segment %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		segmentIDs = append(segmentIDs, seg.ID)
	}
	if planned(fresh.ID) > 1 {
		t.Fatalf("before its memberships, the new workspace is planned at %.0f memberships: want 1, or the test proves nothing", planned(fresh.ID))
	}
	before, contactsBefore := analyses("memberships"), analyses("contacts")
	if _, err := app.AssignContactsToSegments(wctx, fresh.ID, contactIDs[:500], segmentIDs, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	store.WaitAnalyzed(app)
	if n := analyses("memberships") - before; n != 1 {
		t.Errorf("the store analyzed the memberships %d times after a new workspace's 15,000: want once", n)
	}
	if n := analyses("contacts") - contactsBefore; n != 1 {
		t.Errorf("the store analyzed the contacts %d times after the memberships: want once more, for the workspace's last 3,000", n)
	}
	if order := storetest.Column[string](t, owner.DB(), `SELECT relname FROM pg_stat_user_tables
		WHERE relname IN ('contacts', 'memberships') ORDER BY last_analyze`); order[0] != "memberships" {
		t.Errorf("analyzed in the order %s; want the memberships first: they do not wait for the contacts' turn", order)
	}
	if got := planned(fresh.ID); got < 15_000/2 || got > 15_000*2 {
		t.Errorf("after the store's analysis, the new workspace's 15,000 memberships are planned at %.0f", got)
	}
}

// TestStoreAnalyzesWorkspacesItDidNotWrite: a workspace loaded by SQL beside 3,300
// small ones, which the store never wrote and autovacuum (off) never analyzed, is
// planned as a few rows until the store learns the statistics: it then finds the
// workspace from the counters (noteCounted) and has both tables analyzed, once. The
// next learning, with the statistics right, analyzes nothing.
func TestStoreAnalyzesWorkspacesItDidNotWrite(t *testing.T) {
	_, owner, app, ws := newWorkspaceAfterAnalysis(t)
	fillWorkspace(t, owner, ws.ID, 20_000, 20, 4) // 100,000 memberships
	planned := func(table string) float64 { return plannedRows(t, owner, table, ws.ID) }
	if c, m := planned("contacts"), planned("memberships"); c > 10 || m > 10 {
		t.Fatalf("the workspace loaded by SQL is planned at %.0f contacts and %.0f memberships: want a few, or the test proves nothing", c, m)
	}
	contacts, memberships := storeAnalyses(t, owner, "contacts"), storeAnalyses(t, owner, "memberships")
	store.LearnStatistics(app)
	store.WaitAnalyzed(app)
	if c, m := planned("contacts"), planned("memberships"); c < 20_000/2 || m < 100_000/2 {
		t.Errorf("after the store learned the statistics, the workspace is planned at %.0f contacts and %.0f memberships; want about 20,000 and 100,000", c, m)
	}
	if c, m := storeAnalyses(t, owner, "contacts")-contacts, storeAnalyses(t, owner, "memberships")-memberships; c != 1 || m != 1 {
		t.Errorf("the store analyzed the contacts %d times and the memberships %d; want once each", c, m)
	}
	contacts, memberships = storeAnalyses(t, owner, "contacts"), storeAnalyses(t, owner, "memberships")
	store.LearnStatistics(app)
	store.WaitAnalyzed(app)
	if c, m := storeAnalyses(t, owner, "contacts")-contacts, storeAnalyses(t, owner, "memberships")-memberships; c != 0 || m != 0 {
		t.Errorf("learning the statistics again analyzed the contacts %d times and the memberships %d; want none", c, m)
	}
}

// TestStoreAnalysisCountsRowsGained: the store counts the rows a workspace gains,
// its removals offsetting its additions (analyze.go). Beside 3,300 small workspaces,
// a new one of 60 contacts that, 50 times over, assigns 10 contacts to 2 segments and
// removes them, creates a segment of 10 and deletes it, and creates 20 contacts, adds
// them to a segment and deletes them (2,500 memberships and 1,000 contacts added, never
// more than 80 and 60 held) has nothing analyzed. Before, its additions alone were
// counted: the churn had the contacts and the memberships analyzed, which could
// change no estimate. The same workspace's 1,000 new contacts, then their 1,000
// memberships, have each table analyzed once, as before.
func TestStoreAnalysisCountsRowsGained(t *testing.T) {
	_, owner, app, ws := newWorkspaceAfterAnalysis(t)
	wctx := store.WithWorkspace(context.Background(), ws.ID)
	in := make([]crm.ContactInput, 60)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9171%08d", i)}
	}
	up, err := app.UpsertContacts(wctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	ten := make([]int64, 10)
	for i := range ten {
		ten[i] = up.Contacts[i].ID
	}
	var segmentIDs []int64
	for i := range 2 {
		seg, err := app.CreateSegment(wctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("Segment %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		segmentIDs = append(segmentIDs, seg.ID)
	}
	contacts, memberships := storeAnalyses(t, owner, "contacts"), storeAnalyses(t, owner, "memberships")
	analyzed := func(what string, wantContacts, wantMemberships int64) {
		t.Helper()
		store.WaitAnalyzed(app)
		c, m := storeAnalyses(t, owner, "contacts")-contacts, storeAnalyses(t, owner, "memberships")-memberships
		if c != wantContacts || m != wantMemberships {
			t.Errorf("after %s, the store analyzed the contacts %d times and the memberships %d; want %d and %d", what, c, m, wantContacts, wantMemberships)
		}
		contacts, memberships = contacts+c, memberships+m
	}

	for i := range 50 {
		if _, err := app.AssignContactsToSegments(wctx, ws.ID, ten, segmentIDs, store.WithSegments); err != nil {
			t.Fatal(err)
		}
		if _, err := app.RemoveContactsFromSegments(wctx, ws.ID, ten, segmentIDs, store.WithSegments); err != nil {
			t.Fatal(err)
		}
		seg, err := app.CreateSegment(wctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("Passing %d", i), ContactIDs: ten})
		if err != nil {
			t.Fatal(err)
		}
		if err := app.DeleteSegment(wctx, ws.ID, seg.ID); err != nil {
			t.Fatal(err)
		}
		passing := make([]crm.ContactInput, 20)
		for j := range passing {
			passing[j] = crm.ContactInput{Phone: fmt.Sprintf("+9172%08d", i*len(passing)+j)}
		}
		up, err := app.UpsertContacts(wctx, ws.ID, passing)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(up.Contacts))
		for j, c := range up.Contacts {
			ids[j] = c.ID
		}
		if _, err := app.AssignContactsToSegments(wctx, ws.ID, ids, segmentIDs[:1], store.WithSegments); err != nil {
			t.Fatal(err)
		}
		if _, err := app.DeleteContacts(wctx, ws.ID, ids, store.WithSegments); err != nil {
			t.Fatal(err)
		}
	}
	analyzed("the churn", 0, 0)

	grown := upsertNumbered(t, app, ws.ID, 0)
	analyzed("1,000 new contacts", 1, 0)
	if _, err := app.AssignContactsToSegments(wctx, ws.ID, grown, segmentIDs[:1], store.WithSegments); err != nil {
		t.Fatal(err)
	}
	analyzed("their 1,000 memberships", 0, 1)
}

// upsertNumbered creates, through s, the most contacts one upsert takes
// (crm.MaxBulkContacts) in workspace ws, numbered from first, and returns their IDs.
func upsertNumbered(t *testing.T, s *store.Store, ws int64, first int) []int64 {
	t.Helper()
	in := make([]crm.ContactInput, crm.MaxBulkContacts)
	for i := range in {
		in[i] = crm.ContactInput{Phone: fmt.Sprintf("+9170%08d", first+i)}
	}
	up, err := s.UpsertContacts(store.WithWorkspace(context.Background(), ws), ws, in)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(up.Contacts))
	for i, c := range up.Contacts {
		ids[i] = c.ID
	}
	return ids
}

// storeAnalyses is how many times table was analyzed other than by autovacuum.
func storeAnalyses(t *testing.T, owner *store.Store, table string) int64 {
	t.Helper()
	return storetest.Column[int64](t, owner.DB(), `SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1`, table)[0]
}

// plannedRows is the rows the planner expects of workspace ws in table.
func plannedRows(t *testing.T, owner *store.Store, table string, ws int64) float64 {
	t.Helper()
	return plannedRowsWhere(t, owner, table, fmt.Sprintf("workspace_id = %d", ws))
}

// plannedRowsWhere is the rows the planner expects of table's rows that meet the
// SQL condition cond.
func plannedRowsWhere(t *testing.T, owner *store.Store, table, cond string) float64 {
	t.Helper()
	var raw []byte
	if err := owner.DB().QueryRowContext(context.Background(), fmt.Sprintf("EXPLAIN (FORMAT JSON) SELECT 1 FROM %s WHERE %s", table, cond)).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	return plan[0].Plan.Rows
}

// TestStoreAnalyzesWorkspacesTheStatisticsCannotHold: in a table of many workspaces,
// the statistics name only the most common (100 by default), and take every other
// for the average of the rest. A workspace that grows among the others stays one of
// them after the store's analysis, and is analyzed again only when it has tripled,
// not at every further 1,000 rows. Here the statistics hold one workspace, and
// n_distinct says the table has 100,000.
func TestStoreAnalyzesWorkspacesTheStatisticsCannotHold(t *testing.T) {
	pg := storetest.Server(t, "autovacuum=off")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	large, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, large.ID, 20_000, 1, 1)
	storetest.Exec(t, owner.DB(), `ALTER TABLE contacts ALTER COLUMN workspace_id SET STATISTICS 1;
		ALTER TABLE contacts ALTER COLUMN workspace_id SET (n_distinct = 100000)`)
	storetest.Exec(t, owner.DB(), "ANALYZE contacts")
	store.LearnStatistics(app)

	ws, _ := storetest.Workspace(t, owner)
	var got []int64
	for b := range 3 {
		before := storeAnalyses(t, owner, "contacts")
		upsertNumbered(t, app, ws.ID, b*crm.MaxBulkContacts)
		store.WaitAnalyzed(app)
		got = append(got, storeAnalyses(t, owner, "contacts")-before)
	}
	if n := plannedRows(t, owner, "contacts", ws.ID); n > 100 {
		t.Fatalf("the workspace's 3,000 contacts are planned at %.0f: the statistics hold it, and the test proves nothing", n)
	}
	if !slices.Equal(got, []int64{1, 0, 1}) {
		t.Errorf("analyses of the contacts after each 1,000 of a workspace's: %v, want [1 0 1] (at 1,000, then at 3,000)", got)
	}
}

// TestStoreAnalysisWaitsOutALock: an analysis that finds its table locked (as by
// autovacuum, which holds the lock an ANALYZE takes while it vacuums the table)
// gives up after 100 ms rather than queueing behind it, and is tried again later.
func TestStoreAnalysisWaitsOutALock(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t, "autovacuum=off")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, owner)

	tx, err := owner.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE contacts IN SHARE UPDATE EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	before := storeAnalyses(t, owner, "contacts")
	upsertNumbered(t, app, ws.ID, 0)
	time.Sleep(time.Second) // the store's first try, which finds the lock
	if n := storeAnalyses(t, owner, "contacts") - before; n != 0 {
		t.Fatalf("the contacts were analyzed %d times while locked", n)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	store.WaitAnalyzed(app)
	if n := storeAnalyses(t, owner, "contacts") - before; n != 1 {
		t.Errorf("the contacts were analyzed %d times after their lock was released: want once", n)
	}
}

// TestStoreAnalysisFailureWarns: an analysis that fails other than on a lock (here
// the application's role may no longer run it, as after a DBA's REVOKE) is left to
// autovacuum, and the store's log says so, naming the tables and the error. Before,
// it failed silently, and a new workspace's pages stayed as slow as an empty
// workspace's plans make them with nothing to say why.
func TestStoreAnalysisFailureWarns(t *testing.T) {
	var log logtest.Buffer
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 2, Log: log.Logger()})
	appRole := storetest.Column[string](t, app.DB(), "SELECT current_user")[0]
	storetest.Exec(t, owner.DB(), "REVOKE EXECUTE ON FUNCTION segments_analyze_workspaces(text[]) FROM "+appRole)
	ws, _ := storetest.Workspace(t, owner)

	upsertNumbered(t, app, ws.ID, 0)
	store.WaitAnalyzed(app)
	got := log.String()
	t.Logf("the store's log: %s", got)
	for _, want := range []string{"level=WARN", "could not analyze", "contacts", "permission denied"} {
		if !strings.Contains(got, want) {
			t.Errorf("after an analysis the application's role may not run, the store's log says %q; want a warning with %q", got, want)
		}
	}
}

// TestStatisticsGiveWayToLocks proves that the store's background learning of the
// statistics waits for no lock (migration 20261206000001): while a session holds a
// table it reads (as a TRUNCATE ... CASCADE or a migration does while it takes its
// other tables), it gives up within its lock timeout and the store keeps what it
// knew. Before, it waited, holding what it had locked, until its own 10 s deadline:
// segments_workspace_counts, holding contact_counts and waiting for segments,
// deadlocked with TestTruncateKeepsDerivedDataExact's TRUNCATE in CI.
func TestStatisticsGiveWayToLocks(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	if !store.StatisticsKnown(s) {
		t.Fatal("the store does not know the statistics before the test")
	}
	for _, table := range []string{"contact_counts", "segments", "contact_search_sample", "contact_search_trigrams"} {
		t.Run(table, func(t *testing.T) {
			tx, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
				t.Fatal(err)
			}
			learned := make(chan struct{})
			go func() {
				store.LearnStatistics(s)
				close(learned)
			}()
			select {
			case <-learned:
			case <-time.After(5 * time.Second):
				t.Errorf("learning the statistics waited 5 s for the lock on %s", table)
				tx.Rollback()
				<-learned
			}
			if !store.StatisticsKnown(s) {
				t.Error("the store forgot the statistics it knew")
			}
		})
	}
}

// TestStatisticsFailuresWarn proves that the store tells its log when it cannot
// learn PostgreSQL's statistics, once statisticsWarnAfter (3) tries in a row have
// failed and not before (a lone failure, the background work giving way to a lock,
// is no news), and when it learns them again. Before, every failure was silent: a
// server could plan for hours by statistics from its start, or by none.
func TestStatisticsFailuresWarn(t *testing.T) {
	ctx := context.Background()
	var log logtest.Buffer
	s := storetest.NewStore(t, store.Options{MaxConns: 2, Log: log.Logger()})
	if !store.StatisticsKnown(s) {
		t.Fatal("the store does not know the statistics before the test")
	}
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// The trigrams of the search histogram are the last of what the store learns.
	if _, err := tx.Exec("LOCK TABLE contact_search_trigrams IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const warning = "the store cannot learn PostgreSQL's statistics"
	for try := 1; try <= 2; try++ {
		store.LearnStatistics(s)
		if got := log.String(); strings.Contains(got, warning) {
			t.Fatalf("after %d failed tries the store's log says %q; want no warning before the third", try, got)
		}
	}
	store.LearnStatistics(s)
	got := log.String()
	t.Logf("the store's log: %s", got)
	for _, want := range []string{warning, "failures=3", "learned=", " ago", "lock timeout"} {
		if !strings.Contains(got, want) {
			t.Errorf("after 3 failed tries the store's log says %q; want a warning with %q", got, want)
		}
	}
	if !store.StatisticsKnown(s) {
		t.Error("the store forgot the statistics it knew")
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	store.LearnStatistics(s)
	if got := log.String(); !strings.Contains(got, "the store learned PostgreSQL's statistics again") || !strings.Contains(got, "failures=3") {
		t.Errorf("once the lock was released the store's log says %q; want that it learned the statistics again after 3 failures", got)
	}
}
