package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// WorkspaceSummary is a workspace with its size, as the counters the triggers keep
// tell it (contact_counts, segments.contact_count): listing them reads a few rows of
// each workspace, never its contacts or memberships.
type WorkspaceSummary struct {
	crm.Workspace
	// Contacts, Segments and Memberships are the workspace's rows of each.
	Contacts, Segments, Memberships int64
	// ActiveKeys are its API keys that work (neither revoked nor expired), Keys all
	// of them.
	ActiveKeys, Keys int64
	// DeletingSince is when its deletion began, if it has (DeleteWorkspace): it is
	// cut off, and what is left of it is being deleted, or waits for a run of the
	// deletion that finishes.
	DeletingSince *time.Time
}

type workspaceSummaryRow struct {
	ID            int64      `bun:"id"`
	Name          string     `bun:"name"`
	CreatedAt     time.Time  `bun:"created_at"`
	DeletingSince *time.Time `bun:"deleting_since"`
	Contacts      int64      `bun:"contacts"`
	Segments      int64      `bun:"segments"`
	Memberships   int64      `bun:"memberships"`
	ActiveKeys    int64      `bun:"active_keys"`
	Keys          int64      `bun:"keys"`
}

const workspaceSummariesSQL = `
	SELECT w.id, w.name, w.created_at, d.started_at AS deleting_since,
	       coalesce(c.n, 0) AS contacts, s.n AS segments, coalesce(s.members, 0) AS memberships,
	       k.active AS active_keys, k.n AS keys
	  FROM workspaces w
	  LEFT JOIN workspace_deletions d ON d.workspace_id = w.id
	  CROSS JOIN LATERAL (SELECT sum(x.n) AS n FROM contact_counts x WHERE x.workspace_id = w.id) c
	  CROSS JOIN LATERAL (SELECT count(*) AS n, sum(x.contact_count) AS members FROM segments x WHERE x.workspace_id = w.id) s
	  CROSS JOIN LATERAL (SELECT count(*) AS n,
	                             count(*) FILTER (WHERE x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now())) AS active
	                        FROM api_keys x WHERE x.workspace_id = w.id) k
	 WHERE ?
	 ORDER BY w.id`

// WorkspaceSummaries returns every workspace with its size, oldest first (by ID).
// The administrative commands' (segments workspace list): it reads every workspace,
// as the owner.
func (s *Store) WorkspaceSummaries(ctx context.Context) ([]WorkspaceSummary, error) {
	return s.workspaceSummaries(ctx, bun.Safe("true"))
}

// WorkspaceSummary returns a workspace with its size, or a NOT_FOUND error.
func (s *Store) WorkspaceSummary(ctx context.Context, id int64) (WorkspaceSummary, error) {
	out, err := s.workspaceSummaries(ctx, bun.SafeQuery("w.id = ?", id))
	if err == nil && len(out) == 0 {
		err = crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
	}
	if err != nil {
		return WorkspaceSummary{}, err
	}
	return out[0], nil
}

func (s *Store) workspaceSummaries(ctx context.Context, cond any) ([]WorkspaceSummary, error) {
	var rows []workspaceSummaryRow
	if err := s.db.NewRaw(workspaceSummariesSQL, cond).Scan(ctx, &rows); err != nil {
		return nil, err
	}
	out := make([]WorkspaceSummary, len(rows))
	for i, r := range rows {
		out[i] = WorkspaceSummary{
			Workspace: crm.Workspace{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt},
			Contacts:  r.Contacts, Segments: r.Segments, Memberships: r.Memberships,
			ActiveKeys: r.ActiveKeys, Keys: r.Keys, DeletingSince: r.DeletingSince,
		}
	}
	return out, nil
}

// WorkspaceDeletionProgress is how far DeleteWorkspace has come, as it reports it
// after each batch.
type WorkspaceDeletionProgress struct {
	// Table is the table being emptied of the workspace's rows ("workspaces" for
	// the last step, the workspace's row and the few rows that cascade from it).
	Table string
	// Rows are the rows of Table this run deleted so far; Done, whether it has
	// deleted them all.
	Rows int64
	Done bool
}

// workspaceBatches are the tables DeleteWorkspace empties of a workspace's rows in
// batches, in this order, before it deletes the workspace's row, whose cascade takes
// the rest (its keys, counters, budgets: a few rows each). Memberships go first, with
// their segments' counters and bitmaps kept by their triggers as for any removal, so
// that deleting the segments and contacts after them cascades nothing; each table in
// the order of its primary key (key, after workspace_id), from where the last batch
// ended. A batch of each took 0.2-0.6 s at the benchmark's size (see DeleteWorkspace):
// far from the roles' statement_timeout (15 s), and short enough that the change
// feed of every other workspace, held back while any transaction runs, waits for
// none.
var workspaceBatches = []struct {
	table string
	key   string // the primary key's columns after workspace_id
	rows  int    // rows a batch
}{
	{"memberships", "segment_id, contact_id", 20_000},
	{"segments", "id", 1_000},
	{"contacts", "id", 10_000},
	{"deleted_contacts", "deleted_at, id", 20_000},
	{"membership_changes", "change_xid, id", 5_000}, // each up to 1,024 IDs, 8 KB
	{"idempotency_keys", "key", 500},                // each with its answer, up to 1 MB
}

// DeleteWorkspace deletes a workspace and everything in it, or returns a NOT_FOUND
// error. It cuts the workspace off first, at once and for every server (older ones
// too): its API keys find no workspace, and the server's role no longer sees its
// row, so a session naming it is refused (migration 20261216000004). A server that
// accepted one of its keys within its key cache's TTL may still let it through
// until then; what such a request writes goes with the rest. Then it deletes the
// workspace's rows in batches (workspaceBatches), each a short transaction of its
// own, and the workspace's row last. Stopped midway (an error, a cancel), the
// workspace stays cut off, and a call that runs to the end finishes the job.
//
// A single DELETE of the workspace's row, its rows cascading, took 79 s at 1M
// contacts and 5M memberships, past the roles' statement_timeout (15 s), so it failed
// there; run without one, it held every other workspace's change feed back for as
// long. report, if not nil, is called after each batch.
func (s *Store) DeleteWorkspace(ctx context.Context, id int64, report func(WorkspaceDeletionProgress)) error {
	if report == nil {
		report = func(WorkspaceDeletionProgress) {}
	}
	if err := s.cutOff(ctx, id); err != nil {
		return err
	}
	w := s.workspaceArg(id)
	for _, t := range workspaceBatches {
		var after []any
		var rows int64
		for {
			end, n, err := s.deleteBatch(ctx, w, t.table, t.key, t.rows, after)
			if err != nil {
				return fmt.Errorf("delete the workspace's %s: %w", t.table, err)
			}
			rows += n
			report(WorkspaceDeletionProgress{Table: t.table, Rows: rows, Done: end == nil})
			if end == nil {
				break
			}
			after = end
		}
	}
	// Its contacts' rows cascade, should requests have added any, locked as a
	// deletion of contacts locks them: it takes the workspace's contact turn as that
	// does, so that select-alls following one another do not keep it waiting
	// (contactTurnsKey).
	res, err := s.db.NewDelete().Model((*workspaceRow)(nil)).Where("w.id = ?", id).Where(contactTurnHeld(id)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete the workspace's row: %w", err)
	}
	n, _ := res.RowsAffected() // 0: another run of the deletion ended it meanwhile
	report(WorkspaceDeletionProgress{Table: "workspaces", Rows: n, Done: true})
	return nil
}

// cutOff marks workspace id as being deleted (workspace_deletions), unless it is
// already, or returns a NOT_FOUND error.
func (s *Store) cutOff(ctx context.Context, id int64) error {
	res, err := s.db.NewRaw(`INSERT INTO workspace_deletions (workspace_id)
		SELECT w.id FROM workspaces w WHERE w.id = ? ON CONFLICT (workspace_id) DO NOTHING`, id).Exec(ctx)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	// Being deleted already (a run of the deletion that stopped), or no workspace.
	var being bool
	if err := s.db.NewRaw(`SELECT EXISTS (SELECT FROM workspace_deletions WHERE workspace_id = ?)`, id).Scan(ctx, &being); err != nil {
		return err
	}
	if !being {
		return crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
	}
	return nil
}

// deleteBatch deletes, in a transaction, up to rows rows of workspace w from table,
// the first in the order of key (the primary key's columns after workspace_id) past
// after (none: from the first), and returns the key of the last of them, nil when it
// deleted the last row, and how many it deleted.
func (s *Store) deleteBatch(ctx context.Context, w workspaceArg, table, key string, rows int, after []any) (end []any, n int64, err error) {
	cols := len(strings.Split(key, ","))
	past, pastArgs := "true", []any(nil)
	if after != nil {
		past, pastArgs = "("+key+") > ("+placeholders(cols)+")", after
	}
	// Without the roles' statement_timeout, as the operator's checks run: a run of the
	// deletion after one that stopped begins by passing the index entries of what
	// that one deleted, which no vacuum may have cleared yet (at the benchmark's size,
	// stopped after 2.6M memberships: the rerun's first batch read past them all).
	err = s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		end = make([]any, cols)
		ptrs := make([]any, cols)
		for i := range end {
			ptrs[i] = &end[i]
		}
		// Every batch takes the workspace's contact turn, in its first statement, as a
		// deletion of contacts does (contactTurnHeld): a select-all that comes while a
		// batch waits for one before it waits at the turn, rather than locking what
		// the batch waits for beside the first.
		q := fmt.Sprintf(`/* workspace deletion */ SELECT %s FROM %s WHERE workspace_id = ? AND %s AND %s ORDER BY %s OFFSET ? LIMIT 1`,
			key, table, past, contactTurnHeld(w.id), key)
		err := tx.QueryRowContext(ctx, q, append(append([]any{w}, pastArgs...), rows-1)...).Scan(ptrs...)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			end = nil // the rest is less than a batch
		case err != nil:
			return err
		}
		upTo, upToArgs := "true", []any(nil)
		if end != nil {
			upTo, upToArgs = "("+key+") <= ("+placeholders(cols)+")", end
		}
		switch table {
		case "memberships":
			// Locked as a removal of members locks them (removingFromSegments), so
			// that the bitmaps' trigger meets no assignment to them: the segments
			// from the batch's first to its last.
			from, to := "true", "true"
			if after != nil {
				from = fmt.Sprintf("id >= %d", after[0])
			}
			if end != nil {
				to = fmt.Sprintf("id <= %d", end[0])
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`/* workspace deletion */ SELECT id FROM segments WHERE workspace_id = ? AND %s AND %s ORDER BY id FOR %s`,
				from, to, removingFromSegments), w); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, fmt.Sprintf(`/* workspace deletion */ DELETE FROM %s WHERE workspace_id = ? AND %s AND %s`, table, past, upTo),
			append(append([]any{w}, pastArgs...), upToArgs...)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return end, n, err
}

// placeholders returns n of Bun's placeholders, separated by commas.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
