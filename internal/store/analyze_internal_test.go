package store

import (
	"testing"
	"time"
)

// TestPlannedAtScale checks when the store takes PostgreSQL to plan a workspace at
// its size (plannedAtScale): when the statistics of both its contacts and its
// memberships hold it among their most common workspaces, until the store has
// written as many rows again as they expect into either, and again once the table
// has been analyzed since.
func TestPlannedAtScale(t *testing.T) {
	const ws, other = 7, 8
	analyzed := time.Now().Add(-time.Hour)
	rows := newWorkspaceRows()
	for _, table := range []string{"contacts", "memberships"} {
		rows.common[tableWorkspace{table, ws}] = commonWorkspace{share: 0.5, rows: 1000}
		rows.other[table] = 3
		rows.analyzedAt[table] = analyzed
	}
	rows.common[tableWorkspace{"contacts", other}] = commonWorkspace{share: 0.4, rows: 800}
	s := &Store{analyzer: newAnalyzer()}
	s.stats.loading.Store(true) // as if loading: the store has no database to learn from
	learn := func(rows workspaceRows) { s.stats.known.Store(&statistics{at: time.Now(), rows: rows}) }
	check := func(when string, ws int64, want bool) {
		t.Helper()
		if got := s.plannedAtScale(ws); got != want {
			t.Errorf("%s: plannedAtScale(%d) = %v; want %v", when, ws, got, want)
		}
	}

	check("before the store learned the statistics", ws, false)
	learn(rows)
	check("the statistics hold it in both tables", ws, true)
	check("they hold its contacts alone", other, false)

	// The store's writes since the analysis, as noteWritten counts them.
	written := &workspaceWrites{rows: 1999}
	s.analyzer.since["memberships"] = analyzed
	s.analyzer.written[tableWorkspace{"memberships", ws}] = written
	check("1,999 memberships written over the 1,000 expected", ws, true)
	written.rows = 2000
	check("2,000 memberships written over the 1,000 expected", ws, false)

	// Analyzed since: the statistics saw those rows.
	later := rows
	later.analyzedAt = map[string]time.Time{"contacts": analyzed, "memberships": analyzed.Add(time.Minute)}
	learn(later)
	check("the memberships analyzed after the writes", ws, true)
}
