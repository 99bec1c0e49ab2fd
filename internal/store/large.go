package store

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// How a search names its workspace.
//
// The trigram indexes (contacts_search, segments_search) lead with the workspace
// (btree_gin), so that a search can ask them for its own workspace's matches alone.
// They take the workspace's condition only when its value is a bigint: btree_gin's
// int8 operator class has no cross-type operators, and Bun writes an int64 as an
// integer literal, an int4, which the B-tree indexes take but a GIN index cannot.
// Written as `c.workspace_id = 2`, a contact search read every workspace's matches
// from the index and dropped the others' at the table. By EXPLAIN ANALYZE in a table
// of 1.1M contacts: in a workspace of 1,000, "patel" read 44,273 rows to find 36 (18
// ms); in one of 20,000, "98808" read 1,351 to find 21 (31 ms) and "pillai.l" 2,095
// to find 17 (75 ms). Written as `c.workspace_id = 2::bigint`, the index intersects
// the term's entries with the workspace's: 2.6, 3.5 and 5.0 ms. Such a search costs
// what its workspace holds, not what the whole table does.
//
// The intersection reads the workspace's entries of the index, which pays only while
// the workspace is a minority of the table. For the benchmark's workspace, 1M
// contacts and 89% of its table, it cost 1.4-2.1 ms more per rare term and up to 13
// ms more for a common one, with few other rows to skip; for a workspace of 100,000
// contacts (9%), rare terms cost 0-0.35 ms more and common ones 19-38 ms less. So a
// workspace that holds at least largeShare of a table keeps the integer for its
// searches of that table, and every other one gets the bigint.

// largeShare is the share of a table's rows from which a workspace's searches of the
// table leave the workspace out of the trigram index.
const largeShare = 0.5

// largeWorkspacesTTL is how long the store goes by what it last learned of the
// large workspaces. They change only when ANALYZE (autovacuum's, after a tenth of a
// table has changed) gives PostgreSQL new statistics.
const largeWorkspacesTTL = time.Minute

// largeWorkspaces are the workspaces that hold at least largeShare of the rows of a
// searched table (by table name), as PostgreSQL's statistics had them at a time.
type largeWorkspaces struct {
	at  time.Time
	set map[tableWorkspace]bool
}

type tableWorkspace struct {
	table string
	ws    int64
}

// largeTables tracks the large workspaces of the store's database.
type largeTables struct {
	known    atomic.Pointer[largeWorkspaces]
	loading  atomic.Bool
	loadings sync.WaitGroup
}

// searchWorkspace returns the condition that holds a search of table, under alias,
// to workspace ws (its placeholder takes ws): one the table's trigram index can take,
// unless ws holds half of the table or more.
func (s *Store) searchWorkspace(table, alias string, ws int64) string {
	if s.isLarge(table, ws) {
		return alias + ".workspace_id = ?"
	}
	return alias + ".workspace_id = ?::bigint"
}

// isLarge reports whether workspace ws holds at least largeShare of table's rows, by
// what the store last learned. When that is older than largeWorkspacesTTL, or there
// is none yet, it learns again in the background: no request waits for it, or sends
// a statement more for it. Until the first answer, no workspace is large.
//
// Open asks first, so that a server's first searches are already written as they
// will be (and a benchmark that records them records what the server sends from then
// on); a database not migrated yet has no answer, and the first search asks again.
func (s *Store) isLarge(table string, ws int64) bool {
	known := s.large.known.Load()
	if known == nil || time.Since(known.at) > largeWorkspacesTTL {
		s.loadStatistics(known)
	}
	return known != nil && known.set[tableWorkspace{table, ws}]
}

// learnStatistics brings the store's statistics up to date (queryStatistics: the
// large workspaces, and the copy of the search histogram) and waits for the answer.
func (s *Store) learnStatistics(ctx context.Context) {
	if set, err := s.queryStatistics(ctx); err == nil {
		s.large.known.Store(&largeWorkspaces{at: time.Now(), set: set})
	}
}

// loadStatistics brings the store's statistics up to date (queryStatistics) in a
// goroutine of its own, unless one is already at it. On failure the store goes on with what it knew
// (prev), until the next try a largeWorkspacesTTL later: the answer only chooses
// between two plans of the same search.
func (s *Store) loadStatistics(prev *largeWorkspaces) {
	if !s.large.loading.CompareAndSwap(false, true) {
		return
	}
	s.large.loadings.Add(1)
	go func() {
		defer s.large.loadings.Done()
		defer s.large.loading.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		set, err := s.queryStatistics(ctx)
		if err != nil {
			set = nil
			if prev != nil {
				set = prev.set
			}
		}
		s.large.known.Store(&largeWorkspaces{at: time.Now(), set: set})
	}()
}

// queryStatistics brings the statistics the store keeps up to date: it has the
// database copy a new histogram of the contacts' search text for the estimates of
// searches (searchpages.go), and returns the large workspaces.
func (s *Store) queryStatistics(ctx context.Context) (map[tableWorkspace]bool, error) {
	// A copy that fails (a database in recovery cannot write) leaves the last one,
	// or none, where the walks read searchWalkFactor rows a page row: it only chooses
	// between two plans of the same search.
	_, _ = s.db.ExecContext(ctx, sampleContactSearch)
	return s.queryLarge(ctx)
}

// sampleContactSearch has the database copy the histogram of the contacts' search
// text, when contacts were analyzed since its last copy (migration
// 20261202000002_contact_search_sample).
const sampleContactSearch = "SELECT segments_sample_contact_search()"

// queryLarge returns the workspaces that hold at least largeShare of a searched
// table's rows (migration 20261130000001_large_workspaces).
func (s *Store) queryLarge(ctx context.Context) (map[tableWorkspace]bool, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT table_name, workspace_id FROM segments_large_workspaces("+
		strconv.FormatFloat(largeShare, 'g', -1, 64)+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[tableWorkspace]bool{}
	for rows.Next() {
		var k tableWorkspace
		if err := rows.Scan(&k.table, &k.ws); err != nil {
			return nil, err
		}
		set[k] = true
	}
	return set, rows.Err()
}
