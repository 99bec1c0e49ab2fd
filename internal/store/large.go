package store

import (
	"context"
	"database/sql"
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
// the workspace's matches are not nearly all of the term's. For the benchmark's
// workspace, 1M contacts and 89% of its table, it cost 1.4-2.1 ms more per rare term
// and up to 13 ms more for a common one, with few other rows to skip; for a
// workspace of 100,000 contacts (9%), rare terms cost 0-0.35 ms more and common ones
// 19-38 ms less. So a workspace that held half of a table or more kept the integer.
// Beside 3,000 small businesses, the benchmark's workspace at 68% of the contacts
// then read every neighbour's matches of a common term: through the API a count of
// "patel" up to 10,000 took 68 ms, and its totalCount 127 ms (26 and 90 with the
// bigint). Measured through the store at 1M contacts (median of 7; the neighbours'
// rows before the workspace's in the table, or after them; rare terms are the
// benchmark's W4 tags, common ones "patel", "sharma", "vikram", and "gmail" in whole
// counts), bigint against integer, in ms:
//
//	share, rows    rare term     count up to 10,000   whole count          by name, "vikram"
//	68%, before    0.89 : 0.34   19-23 : 27-33        61-170 : 82-215      126 : 155
//	80%, before    0.85 : 0.32   17-20 : 17-24        57-182 : 66-196      124 : 137
//	80%, after     0.82 : 0.32   15-17 : 13-15        50-154 : 58-168      101 : 109
//	89%, before    0.82 : 0.31   15-19 : 14-17        62-185 : 65-180      112 : 114
//	89%, after     0.84 : 0.32   13-19 : 10-15        53-152 : 55-154      101 : 105
//	100%           0.87 : 0.34   18-22 : 15-18        60-171 : 56-162      135 : 129
//
// (A page newest first walks the workspace's own index, and a search of a workspace's
// 1,000 segments took 0.2 ms: the same either way.) A rare term costs half a
// millisecond more with the bigint at any share: it has few matches anywhere, and the
// index reads the workspace's entries around them (a W4 tag at 100%: 128 pages of the
// index against 13). A common
// one costs the neighbours' matches with the integer, and the workspace's entries
// with the bigint: its counts gain from the bigint up to about 80%, are even to 89%,
// and lose beyond. So a workspace that holds at least largeShare of a table keeps
// the integer for its searches of the table; one that holds at least rareTermShare
// of the contacts keeps it for a contact search whose term the search sample holds
// none of (searchsample.go: a rare term, as the benchmark's); every other search
// gets the bigint.

// largeShare is the share of a table's rows from which a workspace's searches of the
// table leave the workspace out of the trigram index.
const largeShare = 0.85

// rareTermShare is the share of the contacts from which a workspace's searches for a
// rare term (one no entry of the search sample holds) leave the workspace out of the
// trigram index.
const rareTermShare = 0.5

// searchWorkspace returns the condition that holds a search of table for term, under
// alias, to workspace ws, with its argument: one the table's trigram index can take,
// unless the workspace is large for the search (searchesPastIndex). Such a workspace
// is among the table's most common, so it is named by its constant, whatever the
// other table's statistics say (workspacearg.go): the trigram index takes
// `workspace_id = (SELECT 2::bigint)` as it takes the bigint.
func (s *Store) searchWorkspace(table, alias string, ws workspaceArg, term string) (string, any) {
	if s.searchesPastIndex(table, ws.id, term) {
		return alias + ".workspace_id = ?", ws.id
	}
	return alias + ".workspace_id = ?::bigint", ws
}

type tableWorkspace struct {
	table string
	ws    int64
}

// searchesPastIndex reports whether a search of table for term in workspace ws
// leaves the workspace out of the trigram index, by what the store last learned
// (statistics.go): the workspace holds at least largeShare of the table's rows, or at
// least rareTermShare of the contacts and the search sample holds none of the term
// (see above). Until the first answer, every search gives the index its workspace.
func (s *Store) searchesPastIndex(table string, ws int64, term string) bool {
	stats := s.statistics()
	share := stats.rows.common[tableWorkspace{table, ws}].share
	return share >= largeShare || table == "contacts" && share >= rareTermShare && !stats.sample.mayHold(term)
}

// queryWorkspaceRows returns what the planner expects of each workspace's rows, and
// the most common workspaces' shares (migration
// 20261203000001_store_analyzes_new_workspaces).
func (s *Store) queryWorkspaceRows(ctx context.Context) (workspaceRows, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT table_name, workspace_id, share, planned_rows, analyzed_at FROM segments_workspace_rows()")
	if err != nil {
		return workspaceRows{}, err
	}
	defer rows.Close()
	planned := newWorkspaceRows()
	for rows.Next() {
		var (
			table      string
			ws         sql.NullInt64
			share, n   float64
			analyzedAt sql.NullTime
		)
		if err := rows.Scan(&table, &ws, &share, &n, &analyzedAt); err != nil {
			return workspaceRows{}, err
		}
		planned.analyzedAt[table] = analyzedAt.Time
		if !ws.Valid {
			planned.other[table] = n
			continue
		}
		planned.common[tableWorkspace{table, ws.Int64}] = commonWorkspace{share: share, rows: n}
	}
	return planned, rows.Err()
}
