package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSearchIndexesKeepShortPendingLists checks that the trigram indexes merge their
// pending lists at 256 kB (migration 20261201000003), so that no search reads more
// and no writer merges more: after new contacts and segment updates that add about
// ten times that much, each list holds at most 32 pages of 8 kB (pgstatginindex, from
// contrib's pgstattuple). With GIN's default of 4 MB, the lists would hold it all.
func TestSearchIndexesKeepShortPendingLists(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	if _, err := s.DB().ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pgstattuple"); err != nil {
		t.Skipf("pgstattuple (PostgreSQL's contrib) reads the pending lists: %v", err)
	}
	ws, _ := storetest.Workspace(t, s)
	checkPending := func(index string) {
		t.Helper()
		var pages int
		if err := s.DB().QueryRowContext(ctx, `SELECT pending_pages FROM pgstatginindex($1::regclass)`, index).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if pages > 32 {
			t.Errorf("%s: %d pending pages, want at most 32 (256 kB)", index, pages)
		}
	}

	// 3,000 contacts: about 2.4 MB of trigram entries.
	storetest.Exec(t, s.DB(), `INSERT INTO contacts (workspace_id, phone, name, email)
		SELECT $1, '+9188' || lpad(g::text, 8, '0'), 'Pending list ' || g, 'pending.list.' || g || '@example.com'
		FROM generate_series(1, 3000) AS g`, ws.ID)
	checkPending("contacts_search")

	// 30 segments updated 100 times, as their counters are: about 3 MB. Not HOT
	// updates: updated_at is indexed, so every index gets each new version.
	storetest.Exec(t, s.DB(), `INSERT INTO segments (workspace_id, name, description)
		SELECT $1, 'Pending list ' || g, 'A segment whose updates fill the pending list' FROM generate_series(1, 30) AS g`, ws.ID)
	for range 100 {
		storetest.Exec(t, s.DB(), `UPDATE segments SET updated_at = clock_timestamp() WHERE workspace_id = $1`, ws.ID)
	}
	checkPending("segments_search")
}

// TestSearchStatisticsSeeTwoCharacterTerms checks the statistics of
// contacts.search_text (migration 20261202000001): the planner estimates a
// two-character term that 0.5% of the contacts hold at about that, not at its floor
// of 0.01%, for which it read every contact instead of walking a page's order. The
// contacts are few enough for ANALYZE to read them all, and the term's are the 150
// that sort right after the first: between two of the entries of a default histogram
// of 100, so that none of those would match, but across five of 1,000.
func TestSearchStatisticsSeeTwoCharacterTerms(t *testing.T) {
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	db := s.DB()
	ws, _ := storetest.Workspace(t, s)
	// search_text starts with the lowercased name: "a", 150 times "b zz ...", then "c ...".
	storetest.Exec(t, db, `INSERT INTO contacts (workspace_id, phone, name)
		SELECT $1, '+9177' || lpad(g::text, 8, '0'),
		       CASE WHEN g = 0 THEN 'A' WHEN g <= 150 THEN 'B zz ' || g ELSE 'C ' || g END
		FROM generate_series(0, 29999) AS g`, ws.ID)
	storetest.Exec(t, db, `ANALYZE contacts`)
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	raw := storetest.Column[[]byte](t, db, `EXPLAIN (FORMAT JSON) SELECT 1 FROM contacts c WHERE c.search_text LIKE '%zz%'`)[0]
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("EXPLAIN: %v\n%s", err, raw)
	}
	if est := plan[0].Plan.Rows; est < 50 || est > 450 {
		t.Errorf("a term of 150 of 30,000 contacts estimated at %.0f rows, want about 150", est)
	}
}
