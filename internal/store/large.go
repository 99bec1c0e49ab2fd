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
// the workspace is a minority of the table. For the benchmark's workspace, 1M
// contacts and 89% of its table, it cost 1.4-2.1 ms more per rare term and up to 13
// ms more for a common one, with few other rows to skip; for a workspace of 100,000
// contacts (9%), rare terms cost 0-0.35 ms more and common ones 19-38 ms less. So a
// workspace that holds at least largeShare of a table keeps the integer for its
// searches of that table, and every other one gets the bigint.

// largeShare is the share of a table's rows from which a workspace's searches of the
// table leave the workspace out of the trigram index.
const largeShare = 0.5

// searchWorkspace returns the condition that holds a search of table, under alias,
// to workspace ws, with its argument: one the table's trigram index can take, unless
// ws holds half of the table or more. Such a workspace is among the table's most
// common, so it is named by its constant, whatever the other table's statistics say
// (workspacearg.go): the trigram index takes `workspace_id = (SELECT 2::bigint)` as
// it takes the bigint.
func (s *Store) searchWorkspace(table, alias string, ws workspaceArg) (string, any) {
	if s.isLarge(table, ws.id) {
		return alias + ".workspace_id = ?", ws.id
	}
	return alias + ".workspace_id = ?::bigint", ws
}

type tableWorkspace struct {
	table string
	ws    int64
}

// isLarge reports whether workspace ws holds at least largeShare of table's rows, by
// what the store last learned (statistics.go). Until the first answer, no workspace
// is large.
func (s *Store) isLarge(table string, ws int64) bool {
	return s.statistics().rows.common[tableWorkspace{table, ws}].share >= largeShare
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
