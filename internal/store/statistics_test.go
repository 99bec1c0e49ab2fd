package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestStatisticsLearnNewWorkspaces proves that autovacuum analyzes the memberships
// after a new workspace's first few thousand rows, not after a tenth of the table
// (migration 20261202000005): beside a workspace of 200,000 memberships, a new one
// of 15,000 is in the planner's statistics within seconds, and the segments of a
// page of its contacts are then read by key. Before, the planner took the new
// workspace for one row, and read all of its memberships again for each of its
// segments. With PostgreSQL's default thresholds, autovacuum waits for 20,050
// changed rows here, and the test fails.
func TestStatisticsLearnNewWorkspaces(t *testing.T) {
	ctx := context.Background()
	// A server of the test's own: autovacuum looks at the tables every second, not
	// every minute.
	pg := storetest.Server(t, "autovacuum_naptime=1")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})

	// members fills workspace ws with contacts and segments, each contact in every
	// step-th segment.
	members := func(ws int64, contacts, segments, step int) {
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
	analyzed := func() int64 {
		t.Helper()
		return storetest.Column[int64](t, owner.DB(), `SELECT autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'memberships'`)[0]
	}

	large, _ := storetest.Workspace(t, owner)
	members(large.ID, 20_000, 1_000, 100)
	storetest.Exec(t, owner.DB(), "ANALYZE memberships; ANALYZE contacts; ANALYZE segments")

	// The new workspace, while autovacuum leaves the memberships alone.
	storetest.Exec(t, owner.DB(), "ALTER TABLE memberships SET (autovacuum_enabled = off)")
	small, _ := storetest.Workspace(t, owner)
	const smallMemberships = 500 * 30
	members(small.ID, 500, 30, 1)
	// buffers is how many buffers query costs, as the server's role.
	buffers := func(query string) float64 {
		t.Helper()
		plan, _ := explainAnalyze(t, store.WithWorkspace(ctx, small.ID), app.DB(), query)
		hit, _ := plan["Shared Hit Blocks"].(float64)
		got, _ := plan["Shared Read Blocks"].(float64)
		return hit + got
	}
	page := fmt.Sprintf("SELECT * FROM segments_of_contacts(%d, (SELECT array_agg(id) FROM (SELECT id FROM contacts WHERE workspace_id = %[1]d ORDER BY id LIMIT 50) AS page))", small.ID)
	// Misplanned, the segments of a page of contacts read every membership of the
	// workspace again for each segment.
	misplanned := buffers(page)

	before := analyzed()
	storetest.Exec(t, owner.DB(), "ALTER TABLE memberships RESET (autovacuum_enabled)")
	for deadline := time.Now().Add(30 * time.Second); analyzed() == before; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("autovacuum did not analyze the memberships within 30 s of a new workspace's %d", smallMemberships)
		}
	}
	// 50 contacts in 30 segments: 1,500 memberships, found by key.
	planned := buffers(page)
	t.Logf("the segments of a page of 50 contacts: %.0f buffers before the workspace was analyzed, %.0f after", misplanned, planned)
	if planned*5 > misplanned {
		t.Errorf("analyzed, the segments of a page of 50 contacts cost %.0f buffers, against %.0f before; want at most a fifth", planned, misplanned)
	}
}
