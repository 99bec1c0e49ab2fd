package store

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// Analyzing new workspaces.
//
// PostgreSQL plans every statement from ANALYZE's statistics of workspace_id, and
// takes a workspace that the last ANALYZE did not see for one row: its statements
// are planned as if it were empty, with nested loops that read all of its
// memberships again for each of its segments or contacts. Autovacuum analyzes a table
// after 5,000 changed rows (migration 20261202000005), but at most once a minute, so
// a business that imports its contacts and opens its audience right after is served
// by those plans: at 5,000 contacts beside 1M, pages of 6-200 ms where 4-7 ms are
// due (docs/design.md). The store counts the rows each workspace's contacts and
// memberships gained through it since the table was last analyzed; once they are at
// least analyzeMinRows and analyzeUnderestimate times what the statistics expect of
// the workspace, it has PostgreSQL analyze the table's workspace_id (0.7-1.2 s at 1M
// contacts and 5M memberships, in the background) and learns the statistics again.
//
// The rows gained are those the store added (contacts upserted, memberships assigned
// or given to a segment as it is created) less those it removed (memberships
// removed, contacts and segments deleted with theirs), never fewer than none: what
// the workspace holds above the least it held since the counts began, which is what
// can make the statistics underestimate it. Counted as rows added alone, a workspace
// of 60 contacts that assigned 10 of them to 2 segments and took them out again,
// over and over, holding 20 memberships at most, had the memberships analyzed after
// 1,100 assignments and again after 3,200 (beside 3,000 small workspaces and one of
// 5M memberships): analyses that could change no estimate. A workspace that only
// grows is analyzed as soon as before, or sooner where it creates segments with
// their contacts, whose memberships were not counted.
//
// A workspace that keeps growing is analyzed again each time it has tripled, a
// handful of times in its life, also one that the statistics cannot hold among the
// workspaces they know by name (the 100 most common); a workspace they know is left
// to autovacuum. Each store counts only its own writes: with several servers, a
// workspace's writes shared among them reach the thresholds later.
//
// Rows the store did not write (a restore, a load by SQL, another server's writes)
// it finds from the counters the triggers keep exact, each time it learns the
// statistics (once a minute): a workspace whose counters hold as many rows as the
// same thresholds want has its table analyzed too (noteCounted, migration
// 20261203000009). Without that, such a workspace waited for autovacuum, and with
// autovacuum late or off, forever.

const (
	// analyzeMinRows is how many rows a workspace gets in a table before the store
	// would analyze it: below it, a plan for one row costs little.
	analyzeMinRows = 1000
	// analyzeUnderestimate is how many times the rows the statistics expect of a
	// workspace the store must have written into it since the table was last
	// analyzed before it analyzes.
	analyzeUnderestimate = 2
	// analyzeGrowth is how many times the rows it had when it last called for an
	// analysis a workspace must have before it calls for another.
	analyzeGrowth = 3
	// analyzeSpacing is the least time between two analyses of a table by one
	// store, so that many new workspaces at once cost PostgreSQL at most about a
	// fifth of a core for each table.
	analyzeSpacing = 5 * time.Second
	// analyzeTimeout bounds an analysis and the statistics learned after it.
	analyzeTimeout = time.Minute
)

// workspaceRows is what PostgreSQL's statistics expect of the workspaces' rows, by
// table (migration 20261203000001_store_analyzes_new_workspaces).
type workspaceRows struct {
	common     map[tableWorkspace]commonWorkspace // the most common workspaces
	other      map[string]float64                 // the rows of any other workspace
	analyzedAt map[string]time.Time               // when the table was last analyzed
}

// commonWorkspace is what the statistics hold of one of a table's most common
// workspaces: its share of the table's rows, and those rows.
type commonWorkspace struct {
	share, rows float64
}

func newWorkspaceRows() workspaceRows {
	return workspaceRows{common: map[tableWorkspace]commonWorkspace{}, other: map[string]float64{}, analyzedAt: map[string]time.Time{}}
}

// planned returns the rows the planner expects of workspace ws in table: none for a
// table never analyzed.
func (r workspaceRows) planned(table string, ws int64) float64 {
	if w, ok := r.common[tableWorkspace{table, ws}]; ok {
		return w.rows
	}
	return r.other[table]
}

// analyzer counts the rows the store writes into each workspace since its table was
// last analyzed, and runs the analyses they call for, one at a time.
type analyzer struct {
	mu      sync.Mutex
	since   map[string]time.Time // the analysis of each table that the counts follow
	written map[tableWorkspace]*workspaceWrites
	// counted is the rows of each workspace by the counters when they last called
	// for an analysis of its table (noteCounted).
	counted map[tableWorkspace]float64
	pending map[string]bool // tables to analyze
	running bool
	wake    chan struct{}        // a table became pending while analyze waits
	last    map[string]time.Time // when each table's last analysis ended
}

func newAnalyzer() analyzer {
	return analyzer{
		since:   map[string]time.Time{},
		written: map[tableWorkspace]*workspaceWrites{},
		counted: map[tableWorkspace]float64{},
		pending: map[string]bool{},
		wake:    make(chan struct{}, 1),
		last:    map[string]time.Time{},
	}
}

// workspaceWrites is what the store wrote into one workspace's table.
type workspaceWrites struct {
	// rows is the rows gained since the counts began: those added less those
	// removed, never below none (see above).
	rows      float64
	triggered float64 // rows when they last called for an analysis
}

// noteWritten records that n new rows of workspace ws are in table, and has the
// table analyzed when its statistics underestimate the workspace (see above).
func (s *Store) noteWritten(table string, ws int64, n int) {
	if n <= 0 {
		return
	}
	rows := s.statistics().rows
	a := &s.analyzer
	a.mu.Lock()
	defer a.mu.Unlock()
	if at := rows.analyzedAt[table]; !at.Equal(a.since[table]) {
		// Analyzed since the counts began: they start again for the workspaces the
		// statistics now hold among their most common. The others' counts go on:
		// the statistics still take them for any other workspace, which a table of
		// many workspaces may do whatever their size (only the 100 most common are
		// held), and analyzing again would not change that until they have grown.
		a.since[table] = at
		maps.DeleteFunc(a.written, func(k tableWorkspace, _ *workspaceWrites) bool {
			_, common := rows.common[k]
			return k.table == table && common
		})
	}
	k := tableWorkspace{table, ws}
	w := a.written[k]
	if w == nil {
		w = &workspaceWrites{}
		a.written[k] = w
	}
	w.rows += float64(n)
	if w.rows < analyzeMinRows || w.rows < analyzeUnderestimate*rows.planned(table, ws) || w.rows < analyzeGrowth*w.triggered {
		return
	}
	w.triggered = w.rows
	// The counters hold at least as many rows: they need not call for this one.
	a.counted[k] = max(a.counted[k], w.rows)
	s.callForAnalysis(table)
}

// noteRemoved records that n rows of workspace ws left table: they offset the rows
// the store counted as gained (noteWritten), down to none. A workspace whose counts
// have not begun has gained none to offset.
func (s *Store) noteRemoved(table string, ws int64, n int) {
	if n <= 0 {
		return
	}
	a := &s.analyzer
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.written[tableWorkspace{table, ws}]; w != nil {
		w.rows = max(w.rows-float64(n), 0)
	}
}

// callForAnalysis has table analyzed, in the background (analyze). The caller holds
// the analyzer's mutex.
func (s *Store) callForAnalysis(table string) {
	a := &s.analyzer
	a.pending[table] = true
	if !a.running {
		a.running = true
		s.goBackground(s.analyze)
		return
	}
	select { // wake the analyses from waiting for another table's turn
	case a.wake <- struct{}{}:
	default:
	}
}

// noteCounted has each table analyzed whose statistics (rows) underestimate a
// workspace by the counters (counted, the workspaces of analyzeMinRows rows or more):
// the workspace holds analyzeUnderestimate times the rows they expect, and
// analyzeGrowth times what it held when the counters last called for an analysis
// of it (so that a workspace the statistics cannot name is analyzed again only once
// it has grown, not every minute).
func (s *Store) noteCounted(rows workspaceRows, counted map[tableWorkspace]float64) {
	a := &s.analyzer
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, n := range counted {
		if n < analyzeMinRows || n < analyzeUnderestimate*rows.planned(k.table, k.ws) || n < analyzeGrowth*a.counted[k] {
			continue
		}
		a.counted[k] = n
		s.callForAnalysis(k.table)
	}
}

// queryWorkspaceCounts returns the rows of the workspaces that hold at least
// analyzeMinRows contacts or memberships, by their counters (migration
// 20261203000009_store_counts_workspaces).
func (s *Store) queryWorkspaceCounts(ctx context.Context) (map[tableWorkspace]float64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT table_name, workspace_id, counted FROM segments_workspace_counts(?)", float64(analyzeMinRows))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counted := map[tableWorkspace]float64{}
	for rows.Next() {
		var k tableWorkspace
		var n float64
		if err := rows.Scan(&k.table, &k.ws, &n); err != nil {
			return nil, err
		}
		counted[k] = n
	}
	return counted, rows.Err()
}

// analyze runs the pending analyses until there are none, each table's at most
// once per analyzeSpacing, and learns the statistics each made. It stops when ctx,
// the store's background, ends. An analysis that found its table locked
// (autovacuum vacuuming or analyzing it: the function waits 100 ms for the lock) is
// tried again a spacing later; one that failed otherwise is left to autovacuum, and
// logged: nothing else would tell an operator why new workspaces are slow.
func (s *Store) analyze(ctx context.Context) {
	a := &s.analyzer
	for {
		a.mu.Lock()
		if len(a.pending) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		var ready []string
		wait := analyzeSpacing
		for table := range a.pending {
			if w := time.Until(a.last[table].Add(analyzeSpacing)); w > 0 {
				wait = min(wait, w)
				continue
			}
			ready = append(ready, table)
			delete(a.pending, table)
		}
		a.mu.Unlock()
		if len(ready) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.wake:
			case <-time.After(wait):
			}
			continue
		}
		slices.Sort(ready)
		analysisCtx, cancel := context.WithTimeout(ctx, analyzeTimeout)
		_, err := s.db.ExecContext(analysisCtx, "SELECT segments_analyze_workspaces(?)", pgdialect.Array(ready))
		if err == nil {
			s.learnStatistics(analysisCtx)
		}
		cancel()
		locked := lockHeld(err)
		if err != nil && !locked && ctx.Err() == nil {
			s.log.Warn("the store could not analyze the tables its writes grew; new workspaces in them are planned as empty until autovacuum analyzes them",
				"tables", ready, "err", err)
		}
		a.mu.Lock()
		for _, table := range ready {
			a.last[table] = time.Now()
			if locked {
				a.pending[table] = true
			}
		}
		a.mu.Unlock()
	}
}

// plannedAtScale reports whether PostgreSQL plans workspace ws's contacts and
// memberships at about their size: the statistics of both tables hold the
// workspace among their most common, and the store has not written into either
// since as many rows again as they expect (analyzeUnderestimate). Otherwise the
// planner may take the workspace for a few rows (any other workspace is the average
// of the rest): a business whose import came after the last analysis, among many
// small ones, or that a statement of the store's would call for (noteWritten); or
// any workspace, until the store first learned the statistics. Its statements then
// name it as PostgreSQL plans the average workspace (workspaceArg), and are written
// in forms that cost what they read whatever the plan (see allMembersOf and
// contactsIn), where their fastest forms are fast only when the planner knows
// their rows.
func (s *Store) plannedAtScale(ws int64) bool {
	rows := s.statistics().rows
	for _, table := range []string{"contacts", "memberships"} {
		w, ok := rows.common[tableWorkspace{table, ws}]
		if !ok || s.analyzer.writtenSince(table, ws, rows.analyzedAt[table]) >= analyzeUnderestimate*w.rows {
			return false
		}
	}
	return true
}

// writtenSince returns the rows the store wrote into workspace ws's table since the
// table's analysis at analyzedAt: none when its counts began before that analysis,
// which saw them.
func (a *analyzer) writtenSince(table string, ws int64, analyzedAt time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.written[tableWorkspace{table, ws}]
	if w == nil || !a.since[table].Equal(analyzedAt) {
		return 0
	}
	return w.rows
}
