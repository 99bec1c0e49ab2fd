package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// HeldTransaction is a transaction, running in any database of the PostgreSQL
// cluster, that holds the change feed's horizon back: it has a transaction ID, and
// the feed lists no change at or above the oldest running one (changes.go), in any
// workspace, until it ends.
type HeldTransaction struct {
	// PID is its backend's process ID; 0 for a prepared transaction, which has none.
	PID int64
	// Xid is its transaction ID (a prepared transaction's too): with PID, it tells
	// one transaction from the next of the same backend.
	Xid                            string
	Database, User, AppName, State string
	// Age is how long it has been running (a prepared transaction: since it was
	// prepared), when Visible.
	Age time.Duration
	// Visible is false when the store's role may not see the session's details
	// (xact_start, state): only superusers and members of pg_read_all_stats (or
	// pg_monitor) see other roles' sessions. Its PID, Xid, database, user and
	// application name are still known.
	Visible bool
}

// heldTransactionsSQL reads the transactions holding the horizon back. Only backend_xid
// counts: the feed's horizon is pg_snapshot_xmin(pg_current_snapshot()), the oldest
// transaction ID still running, which a session with only a snapshot (backend_xmin:
// a read-only transaction) does not hold back. The calling session is left out; it
// has no ID anyway unless it wrote. Prepared transactions hold their IDs until they
// are committed or rolled back, and are in no backend.
const heldTransactionsSQL = `
	SELECT pid, backend_xid::text AS xid, coalesce(datname, '') AS datname, coalesce(usename, '') AS usename,
	       coalesce(application_name, '') AS application_name, coalesce(state, '') AS state,
	       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age
	FROM pg_stat_activity
	WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
	UNION ALL
	SELECT 0, transaction::text, database, owner, '', 'prepared', extract(epoch FROM clock_timestamp() - prepared)::float8
	FROM pg_prepared_xacts
	ORDER BY age DESC NULLS LAST`

// HeldTransactions returns the transactions of the whole cluster that hold the
// change feed's horizon back, oldest first, those whose age the store's role may not
// see last. It reads two system views, in one statement: cheap enough to run every
// few seconds.
func (s *Store) HeldTransactions(ctx context.Context) ([]HeldTransaction, error) {
	rows, err := s.db.QueryContext(ctx, heldTransactionsSQL)
	if err != nil {
		return nil, fmt.Errorf("store: read the running transactions: %w", err)
	}
	defer rows.Close()
	var held []HeldTransaction
	for rows.Next() {
		var t HeldTransaction
		var age sql.NullFloat64
		if err := rows.Scan(&t.PID, &t.Xid, &t.Database, &t.User, &t.AppName, &t.State, &age); err != nil {
			return nil, fmt.Errorf("store: read the running transactions: %w", err)
		}
		t.Visible = age.Valid
		if age.Valid {
			t.Age = time.Duration(age.Float64 * float64(time.Second))
		}
		held = append(held, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the running transactions: %w", err)
	}
	return held, nil
}
