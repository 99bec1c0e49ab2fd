package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// The consistency check of the derived data, over all workspaces: the things the
// schema cannot enforce by itself are segments.contact_count and segment_bitmaps,
// which the membership triggers maintain, and contact_counts, which the contacts'
// triggers maintain. Everything else it would make sense to look for is already
// impossible:
//
//   - a membership whose contact or segment belongs to another workspace: memberships
//     reference segments and contacts by (workspace_id, id), so both must be rows of
//     the membership's own workspace;
//   - a membership of a deleted contact or segment: deleting contacts or segments
//     deletes their memberships, and inserting a membership checks and locks its
//     contact and segment (the reference triggers of migration
//     20261201000001_membership_references, which replaced per-row foreign keys;
//     TriggerProblems reports them off like the counters' own);
//   - a negative counter: CHECK (contact_count >= 0).
//
// Counters drift only when membership rows change without the triggers firing (a
// trigger disabled by hand, a restore with session_replication_role = replica or
// pg_restore --disable-triggers, rows written by hand with the triggers off) or when a
// counter is written directly. TriggerProblems finds the first cause, CheckCounts and
// CheckBitmaps the damage, RepairCounts and RepairBitmaps repair it.

// CountDrift is a segment whose stored contact_count differs from the number of its
// memberships (of contacts that exist).
type CountDrift struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"`
	SegmentID     int64  `bun:"segment_id"`
	SegmentName   string `bun:"segment_name"`
	Stored        int64  `bun:"stored"` // contact_count as stored (before a repair)
	Actual        int64  `bun:"actual"` // the number of memberships of contacts that exist
}

// ofContact is the condition on memberships m of one whose contact exists. The
// counters and bitmaps are compared with, and rebuilt from, these memberships alone:
// one of a contact that does not exist is an orphan, which RepairOrphans deletes
// without touching the counters or bitmaps (it cannot know whether the orphan was
// ever counted), so the truth they are repaired to must leave it out already.
const ofContact = `EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = m.workspace_id AND c.id = m.contact_id)`

// countDriftSQL finds every drifting segment in one pass over memberships: one
// snapshot, so a counter and the memberships it counts are read as of the same
// committed state, and a writer in the middle of a change is never reported as drift
// (its counter update commits together with its memberships).
const countDriftSQL = `
	SELECT s.workspace_id, w.name AS workspace_name, s.id AS segment_id, s.name AS segment_name,
	       s.contact_count AS stored, coalesce(m.n, 0) AS actual
	FROM segments s
	JOIN workspaces w ON w.id = s.workspace_id
	LEFT JOIN (SELECT m.workspace_id, m.segment_id, count(*) AS n FROM memberships m WHERE ` + ofContact + ` GROUP BY 1, 2) m
	       ON m.workspace_id = s.workspace_id AND m.segment_id = s.id
	WHERE s.contact_count <> coalesce(m.n, 0)
	ORDER BY s.workspace_id, s.id`

// CheckCounts returns every segment, of any workspace, whose contact_count differs
// from the number of its memberships, by workspace and segment. It only reads, takes
// no locks, and is safe while the API serves writes.
func (s *Store) CheckCounts(ctx context.Context) ([]CountDrift, error) {
	var drift []CountDrift
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error { return tx.NewRaw(countDriftSQL).Scan(ctx, &drift) })
	if err != nil {
		return nil, fmt.Errorf("store: check counts: %w", err)
	}
	return drift, nil
}

// RepairCounts sets the contact_count of every drifting segment to the number of its
// memberships, in one transaction, and returns what it repaired (Stored is the value
// it replaced). It is safe while the API serves writes:
//
//   - It locks the drifting segments FOR UPDATE in id order, the order in which every
//     writer locks the segments whose counters it changes (ids come from one sequence,
//     so id order across workspaces agrees with each workspace's order); a deadlock
//     with a writer that cascades into counters out of order is retried by inTx.
//   - It counts only after it holds the locks, in a statement of its own (READ
//     COMMITTED: a new snapshot). A writer that had changed those segments has
//     committed by then, so its memberships are counted; one that changes them later
//     waits for the lock and then adds its difference to the repaired value. Counting
//     in the UPDATE that waits for the lock would use a snapshot from before the wait
//     and lose the waited-for change.
//   - It writes only segments that still drift under the lock: one repaired in the
//     meantime is left alone, and one that started to drift after the first look is
//     left to the next run.
//
// A repair moves updated_at, like every other change of contact_count (the membership
// triggers move it too): the count clients see changes, and a client that syncs
// segments by updatedAt must see the corrected count.
func (s *Store) RepairCounts(ctx context.Context) ([]CountDrift, error) {
	var repaired []CountDrift
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		repaired = nil
		var found []CountDrift
		if err := tx.NewRaw(countDriftSQL).Scan(ctx, &found); err != nil {
			return err
		}
		if len(found) == 0 {
			return nil
		}
		wss, ids := make([]int64, len(found)), make([]int64, len(found))
		for i, d := range found {
			wss[i], ids[i] = d.WorkspaceID, d.SegmentID
		}
		// (workspace_id, id) pairs, so that the primary key finds the rows.
		var locked []int64
		err := tx.NewSelect().Table("segments").Column("id").
			Where("(workspace_id, id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))",
				pgdialect.Array(wss), pgdialect.Array(ids)).
			OrderExpr("id").For("UPDATE").
			Scan(ctx, &locked)
		if err != nil || len(locked) == 0 {
			return err
		}
		return tx.NewRaw(`
			WITH actual AS (
				SELECT s.workspace_id, s.id, s.contact_count AS stored,
				       (SELECT count(*) FROM memberships m WHERE m.workspace_id = s.workspace_id AND m.segment_id = s.id
				         AND `+ofContact+`) AS n
				FROM segments s
				WHERE (s.workspace_id, s.id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))
			)
			UPDATE segments s
			SET contact_count = a.n, updated_at = now()
			FROM actual a, workspaces w
			WHERE s.workspace_id = a.workspace_id AND s.id = a.id AND a.stored <> a.n
			  AND w.id = s.workspace_id
			RETURNING s.workspace_id, w.name AS workspace_name, s.id AS segment_id, s.name AS segment_name,
			          a.stored, a.n AS actual`,
			pgdialect.Array(wss), pgdialect.Array(ids)).Scan(ctx, &repaired)
	})
	if err != nil {
		return nil, fmt.Errorf("store: repair counts: %w", err)
	}
	sortDrift(repaired)
	return repaired, nil
}

// maintainedTrigger is a trigger that keeps derived data exact or references whole.
type maintainedTrigger struct{ table, name string }

// maintainedTriggers are the triggers on memberships that keep contact_count and
// segment_bitmaps exact, and those on contacts that keep contact_counts exact; then
// those that keep memberships referring to contacts and segments that exist; then
// those that do both for TRUNCATE; then those that version the workspaces' segment
// catalogs (catalog.go); then the one that records deleted contacts (deleted.go);
// then those that stamp each change of contacts with its transaction for the change
// feed (changes.go); then those that record membership changes for the feed of
// memberships (membershipchanges.go).
var maintainedTriggers = []maintainedTrigger{
	{"memberships", "memberships_count_inserted"}, {"memberships", "memberships_count_deleted"},
	{"memberships", "memberships_bitmaps_inserted"}, {"memberships", "memberships_bitmaps_deleted"},
	{"contacts", "contacts_count_inserted"}, {"contacts", "contacts_count_deleted"},
	{"memberships", "memberships_a_references_inserted"}, {"memberships", "memberships_a_references_updated"},
	{"contacts", "contacts_memberships_deleted"}, {"segments", "segments_memberships_deleted"},
	{"contacts", "contacts_keys_kept"}, {"segments", "segments_keys_kept"},
	{"memberships", "memberships_truncated"}, {"contacts", "contacts_count_truncated"},
	{"contacts", "contacts_memberships_truncated"}, {"segments", "segments_memberships_truncated"},
	{"segments", "segments_catalog_inserted"}, {"segments", "segments_catalog_deleted"},
	{"segments", "segments_catalog_updated"}, {"segments", "segments_catalog_truncated"},
	{"contacts", "contacts_deletions_recorded"},
	{"contacts", "contacts_change_xid"}, {"deleted_contacts", "deleted_contacts_change_xid"},
	{"memberships", "memberships_feed_inserted"}, {"memberships", "memberships_feed_deleted"},
	{"memberships", "memberships_feed_truncated"},
}

// TriggerProblems reports each trigger that maintains contact_count, segment_bitmaps
// or contact_counts, memberships' references, the catalogs' versions, the list of
// deleted contacts, the change feed's transaction IDs or the feed of memberships, and
// is missing or does not fire in ordinary sessions. With one of them off, every
// change of memberships or contacts makes counters or bitmaps drift again, so a
// repair would not last, or leaves memberships of contacts or segments that do not
// exist, or deletions unlisted, or changes the feeds never list.
func (s *Store) TriggerProblems(ctx context.Context) ([]string, error) {
	tables, names := make([]string, len(maintainedTriggers)), make([]string, len(maintainedTriggers))
	for i, t := range maintainedTriggers {
		tables[i], names[i] = t.table, t.name
	}
	var rows []struct {
		Table   string `bun:"tbl"`
		Name    string `bun:"name"`
		Enabled string `bun:"enabled"` // pg_trigger.tgenabled; '' when missing
	}
	err := s.db.NewRaw(`
		SELECT t.tbl, t.name, coalesce(tg.tgenabled::text, '') AS enabled
		FROM unnest(?::text[], ?::text[]) WITH ORDINALITY AS t(tbl, name, i)
		LEFT JOIN pg_trigger tg ON tg.tgrelid = t.tbl::regclass AND tg.tgname = t.name
		ORDER BY t.i`, pgdialect.Array(tables), pgdialect.Array(names)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("store: check triggers: %w", err)
	}
	var problems []string
	for _, r := range rows {
		switch r.Enabled {
		case "O", "A": // fires in origin sessions (the default), or always
		case "":
			problems = append(problems, fmt.Sprintf("trigger %s on %s is missing", r.Name, r.Table))
		case "D":
			problems = append(problems, fmt.Sprintf("trigger %s on %s is disabled", r.Name, r.Table))
		default: // "R": fires only with session_replication_role = replica
			problems = append(problems, fmt.Sprintf("trigger %s on %s fires only in replica sessions", r.Name, r.Table))
		}
	}
	return problems, nil
}

// ContactCountDrift is a workspace whose contact_counts add up to another number than
// its contacts.
type ContactCountDrift struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"`
	Stored        int64  `bun:"stored"` // the sum of its contact_counts (before a repair)
	Actual        int64  `bun:"actual"` // the number of its contacts
}

// contactCountDriftSQL finds every workspace whose counters drifted, in one snapshot
// like countDriftSQL.
const contactCountDriftSQL = `
	SELECT w.id AS workspace_id, w.name AS workspace_name, coalesce(cc.n, 0) AS stored, coalesce(c.n, 0) AS actual
	FROM workspaces w
	LEFT JOIN (SELECT workspace_id, sum(n) AS n FROM contact_counts GROUP BY 1) cc ON cc.workspace_id = w.id
	LEFT JOIN (SELECT workspace_id, count(*) AS n FROM contacts GROUP BY 1) c ON c.workspace_id = w.id
	WHERE coalesce(cc.n, 0) <> coalesce(c.n, 0)
	ORDER BY w.id`

// CheckContactCounts returns every workspace whose contact_counts differ from the
// number of its contacts, by workspace. It only reads, takes no locks, and is safe
// while the API serves writes.
func (s *Store) CheckContactCounts(ctx context.Context) ([]ContactCountDrift, error) {
	var drift []ContactCountDrift
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error { return tx.NewRaw(contactCountDriftSQL).Scan(ctx, &drift) })
	if err != nil {
		return nil, fmt.Errorf("store: check contact counts: %w", err)
	}
	return drift, nil
}

// RepairContactCounts replaces the counters of every drifting workspace with one
// holding the number of its contacts, in one transaction, and returns what it
// repaired (Stored is the sum it replaced). It is safe while the API serves writes:
// when it finds drift, it locks contact_counts against writers (EXCLUSIVE: every
// insert and delete of contacts waits at its trigger, after a writer that already
// passed it has committed), then looks again in a statement of its own (a new
// snapshot, which counts every committed contact and sees every committed counter),
// and repairs what still drifts. A writer waiting at its trigger adds its change to
// the repaired value when the repair commits.
func (s *Store) RepairContactCounts(ctx context.Context) ([]ContactCountDrift, error) {
	var repaired []ContactCountDrift
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		repaired = nil
		var found []ContactCountDrift
		if err := tx.NewRaw(contactCountDriftSQL).Scan(ctx, &found); err != nil || len(found) == 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, "LOCK TABLE contact_counts IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		if err := tx.NewRaw(contactCountDriftSQL).Scan(ctx, &repaired); err != nil || len(repaired) == 0 {
			return err
		}
		wss, ns := make([]int64, len(repaired)), make([]int64, len(repaired))
		for i, d := range repaired {
			wss[i], ns[i] = d.WorkspaceID, d.Actual
		}
		if _, err := tx.NewRaw("DELETE FROM contact_counts WHERE workspace_id = ANY(?)", pgdialect.Array(wss)).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewRaw("INSERT INTO contact_counts (workspace_id, slot, n) SELECT w, 0, n FROM unnest(?::bigint[], ?::bigint[]) AS r(w, n)",
			pgdialect.Array(wss), pgdialect.Array(ns)).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: repair contact counts: %w", err)
	}
	return repaired, nil
}

// sortDrift orders drift by workspace and segment, as CheckCounts returns it
// (UPDATE ... RETURNING has no order).
func sortDrift(d []CountDrift) {
	slices.SortFunc(d, func(a, b CountDrift) int {
		return cmp.Or(cmp.Compare(a.WorkspaceID, b.WorkspaceID), cmp.Compare(a.SegmentID, b.SegmentID))
	})
}

// BitmapDrift is a segment whose bitmaps (segment_bitmaps) differ from its memberships.
type BitmapDrift struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"`
	SegmentID     int64  `bun:"segment_id"`
	SegmentName   string `bun:"segment_name"`
	Chunks        int64  `bun:"chunks"` // chunks that differ (before a repair)
}

// bitmapDriftSQL rebuilds the bitmaps from the memberships (ofContact), with the function the
// triggers use, and compares them chunk by chunk with the stored ones (a stored chunk
// of zeros is drift too: the triggers delete those). One statement, one snapshot, as
// for the counters. The first argument, when not NULL, restricts it to the segments
// given as (workspace_id, segment_id) pairs by the next two. Memberships are passed to
// segment_bitmap_chunks one segment at a time, so no array grows past the largest
// segment. About 1 µs per membership.
const bitmapDriftSQL = `
	WITH listed AS (
		SELECT * FROM unnest(?::bigint[], ?::bigint[]) AS l(workspace_id, segment_id)
	), actual AS (
		SELECT m.workspace_id, c.segment_id, c.chunk, c.bits
		FROM (SELECT m.workspace_id, array_agg(m.segment_id) AS s, array_agg(m.contact_id) AS c
		      FROM memberships m
		      WHERE (? OR (m.workspace_id, m.segment_id) IN (SELECT * FROM listed)) AND ` + ofContact + `
		      GROUP BY m.workspace_id, m.segment_id) m,
		     segment_bitmap_chunks(m.s, m.c) c
	), stored AS (
		SELECT workspace_id, segment_id, chunk, bits FROM segment_bitmaps
		WHERE ? OR (workspace_id, segment_id) IN (SELECT * FROM listed)
	), diff AS (
		SELECT coalesce(a.workspace_id, b.workspace_id) AS workspace_id,
		       coalesce(a.segment_id, b.segment_id) AS segment_id, count(*) AS chunks
		FROM actual a
		FULL JOIN stored b ON a.workspace_id = b.workspace_id AND a.segment_id = b.segment_id AND a.chunk = b.chunk
		WHERE a.bits IS DISTINCT FROM b.bits
		GROUP BY 1, 2
	)
	SELECT d.workspace_id, w.name AS workspace_name, d.segment_id, s.name AS segment_name, d.chunks
	FROM diff d
	JOIN segments s ON s.workspace_id = d.workspace_id AND s.id = d.segment_id
	JOIN workspaces w ON w.id = d.workspace_id
	ORDER BY d.workspace_id, d.segment_id`

// bitmapDrift runs bitmapDriftSQL on db, over every segment when wss is nil.
func bitmapDrift(ctx context.Context, db bun.IDB, wss, ids []int64) ([]BitmapDrift, error) {
	var drift []BitmapDrift
	everything := wss == nil
	err := db.NewRaw(bitmapDriftSQL, pgdialect.Array(wss), pgdialect.Array(ids), everything, everything).Scan(ctx, &drift)
	return drift, err
}

// CheckBitmaps returns every segment, of any workspace, whose bitmaps differ from its
// memberships, by workspace and segment. It only reads, takes no locks, and is safe
// while the API serves writes.
func (s *Store) CheckBitmaps(ctx context.Context) ([]BitmapDrift, error) {
	var drift []BitmapDrift
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) (err error) {
		drift, err = bitmapDrift(ctx, tx, nil, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: check bitmaps: %w", err)
	}
	return drift, nil
}

// RepairBitmaps rebuilds the bitmaps of every drifting segment from its memberships,
// in one transaction, and returns what it repaired. Like RepairCounts, it is safe
// while the API serves writes: it locks the drifting segments in id order (the order
// of every writer), then looks again under the lock and rebuilds only the segments
// that still drift.
func (s *Store) RepairBitmaps(ctx context.Context) ([]BitmapDrift, error) {
	var repaired []BitmapDrift
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		found, err := bitmapDrift(ctx, tx, nil, nil)
		if err != nil || len(found) == 0 {
			return err
		}
		wss, ids := make([]int64, len(found)), make([]int64, len(found))
		for i, d := range found {
			wss[i], ids[i] = d.WorkspaceID, d.SegmentID
		}
		err = tx.NewRaw(`SELECT id FROM segments
			WHERE (workspace_id, id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))
			ORDER BY id FOR UPDATE`, pgdialect.Array(wss), pgdialect.Array(ids)).Scan(ctx, new([]int64))
		if err != nil {
			return err
		}
		if repaired, err = bitmapDrift(ctx, tx, wss, ids); err != nil || len(repaired) == 0 {
			return err
		}
		wss, ids = wss[:0], ids[:0]
		for _, d := range repaired {
			wss, ids = append(wss, d.WorkspaceID), append(ids, d.SegmentID)
		}
		listed := []any{pgdialect.Array(wss), pgdialect.Array(ids)}
		if _, err := tx.NewRaw(`DELETE FROM segment_bitmaps
			WHERE (workspace_id, segment_id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))`, listed...).Exec(ctx); err != nil {
			return err
		}
		_, err = tx.NewRaw(`
			INSERT INTO segment_bitmaps (workspace_id, segment_id, chunk, bits)
			SELECT m.workspace_id, c.segment_id, c.chunk, c.bits
			FROM (SELECT m.workspace_id, array_agg(m.segment_id) AS s, array_agg(m.contact_id) AS c
			      FROM memberships m
			      WHERE (m.workspace_id, m.segment_id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))
			        AND `+ofContact+`
			      GROUP BY m.workspace_id, m.segment_id) m,
			     segment_bitmap_chunks(m.s, m.c) c`, listed...).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: repair bitmaps: %w", err)
	}
	return repaired, nil
}

// Orphans is a workspace that has memberships of a contact or segment that does not
// exist. Only rows changed with the reference triggers off leave them behind
// (TriggerProblems reports those triggers): with them on, a membership's contact and
// segment are checked when it is written and its deletion follows theirs.
type Orphans struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"` // "" when the workspace is gone too
	Memberships   int64  `bun:"memberships"`
}

// orphaned is the condition on memberships m of an orphaned membership.
const orphaned = `(NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = m.workspace_id AND c.id = m.contact_id)
	OR NOT EXISTS (SELECT 1 FROM segments s WHERE s.workspace_id = m.workspace_id AND s.id = m.segment_id))`

// orphansByWorkspace counts the workspace_id column of rows by workspace, as Orphans.
func orphansByWorkspace(rows string) string {
	return `SELECT o.workspace_id, coalesce(w.name, '') AS workspace_name, count(*) AS memberships
		FROM ` + rows + ` o LEFT JOIN workspaces w ON w.id = o.workspace_id
		GROUP BY 1, 2 ORDER BY 1`
}

// CheckOrphans returns each workspace with orphaned memberships and how many, by
// workspace. It only reads and is safe while the API serves writes.
func (s *Store) CheckOrphans(ctx context.Context) ([]Orphans, error) {
	var found []Orphans
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw(orphansByWorkspace(`(SELECT m.workspace_id FROM memberships m WHERE `+orphaned+`)`)).Scan(ctx, &found)
	})
	if err != nil {
		return nil, fmt.Errorf("store: check orphaned memberships: %w", err)
	}
	return found, nil
}

// RepairOrphans deletes every orphaned membership, in one transaction, and returns
// what it deleted by workspace. It leaves the counters and bitmaps exactly as they
// were: whether an orphan was ever counted is unknowable (one written with the
// triggers off never was), so taking it out of them, as the memberships' delete
// triggers do, could move a counter by a membership it never counted, below zero even,
// which the counter's CHECK refuses. RepairCounts and RepairBitmaps then compare what
// is stored with the memberships that remain, which is what a check reports too
// (ofContact), and each repairs a value in one step from the stored to the true one:
// no client ever sees a count that was neither.
//
// The triggers still fire (turning them off needs a superuser or the table's owner
// and a lock that stops every writer), and their work is undone in the same
// transaction: the statement that deletes the orphans first adds their number to each
// existing segment's counter, which the counters' trigger then takes off again at the
// end of the statement, so the CHECK holds throughout; updated_at, which the trigger
// moves, is set back; and the bits the bitmaps' trigger clears (only those that were
// set) are set again. Like RepairCounts, it locks the segments it changes in id order
// first, so no writer changes them in between; a deadlock with a writer is retried
// by inTx.
func (s *Store) RepairOrphans(ctx context.Context) ([]Orphans, error) {
	var deleted []Orphans
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		deleted = nil
		var locked []struct {
			WorkspaceID int64     `bun:"workspace_id"`
			ID          int64     `bun:"id"`
			UpdatedAt   time.Time `bun:"updated_at"`
		}
		err := tx.NewRaw(`SELECT s.workspace_id, s.id, s.updated_at FROM segments s
			WHERE (s.workspace_id, s.id) IN (SELECT m.workspace_id, m.segment_id FROM memberships m WHERE NOT `+ofContact+`)
			ORDER BY s.id FOR UPDATE`).Scan(ctx, &locked)
		if err != nil {
			return err
		}
		var gone []struct {
			Orphans
			// The orphans whose bits were set, as (segment, contact) pairs, and the
			// chunks of orphans that held no bit at all (only a hand-made chunk can):
			// the bitmaps' trigger clears the former and deletes the latter.
			SetSegments   []int64 `bun:"set_segments,array"`
			SetContacts   []int64 `bun:"set_contacts,array"`
			EmptySegments []int64 `bun:"empty_segments,array"`
			EmptyChunks   []int64 `bun:"empty_chunks,array"`
		}
		// One statement: the counters' compensation counts exactly the rows deleted,
		// and the bitmaps are read before the triggers, which run at its end, change
		// them.
		err = tx.NewRaw(`
			WITH gone AS (
				DELETE FROM memberships m WHERE `+orphaned+`
				RETURNING m.workspace_id, m.segment_id, m.contact_id
			), compensated AS (
				UPDATE segments s SET contact_count = s.contact_count + g.n
				FROM (SELECT workspace_id, segment_id, count(*) AS n FROM gone GROUP BY 1, 2) g
				WHERE s.workspace_id = g.workspace_id AND s.id = g.segment_id
			), bits AS (
				-- Of segments that exist: those of a segment deleted with the
				-- triggers off are left to the bitmaps' trigger (they could not be set
				-- again, for the bitmaps' reference to their segment).
				SELECT g.workspace_id, g.segment_id, g.contact_id, b.chunk,
				       get_bit(b.bits, (g.contact_id & 32767)::int) = 1 AS set, bit_count(b.bits) = 0 AS empty
				FROM gone g
				JOIN segment_bitmaps b ON b.workspace_id = g.workspace_id AND b.segment_id = g.segment_id
				                      AND b.chunk = g.contact_id >> 15
				WHERE EXISTS (SELECT 1 FROM segments s WHERE s.workspace_id = g.workspace_id AND s.id = g.segment_id)
			)
			SELECT o.workspace_id, coalesce(w.name, '') AS workspace_name, o.memberships,
			       coalesce(b.set_segments, '{}') AS set_segments, coalesce(b.set_contacts, '{}') AS set_contacts,
			       coalesce(b.empty_segments, '{}') AS empty_segments, coalesce(b.empty_chunks, '{}') AS empty_chunks
			FROM (SELECT workspace_id, count(*) AS memberships FROM gone GROUP BY 1) o
			LEFT JOIN workspaces w ON w.id = o.workspace_id
			LEFT JOIN (SELECT workspace_id,
			                  array_agg(segment_id) FILTER (WHERE set) AS set_segments,
			                  array_agg(contact_id) FILTER (WHERE set) AS set_contacts,
			                  array_agg(segment_id) FILTER (WHERE empty) AS empty_segments,
			                  array_agg(chunk) FILTER (WHERE empty) AS empty_chunks
			           FROM bits GROUP BY 1) b ON b.workspace_id = o.workspace_id
			ORDER BY 1`).Scan(ctx, &gone)
		if err != nil || len(gone) == 0 {
			return err
		}
		// The triggers have run: undo what they did beyond the compensation.
		var wss, ids []int64
		var times []time.Time
		for _, l := range locked {
			wss, ids, times = append(wss, l.WorkspaceID), append(ids, l.ID), append(times, l.UpdatedAt)
		}
		if len(ids) > 0 {
			_, err := tx.NewRaw(`UPDATE segments s SET updated_at = k.updated_at
				FROM unnest(?::bigint[], ?::bigint[], ?::timestamptz[]) AS k(workspace_id, id, updated_at)
				WHERE s.workspace_id = k.workspace_id AND s.id = k.id`,
				pgdialect.Array(wss), pgdialect.Array(ids), pgdialect.Array(times)).Exec(ctx)
			if err != nil {
				return err
			}
		}
		var setWs, setSegs, setContacts, emptyWs, emptySegs, emptyChunks []int64
		for _, g := range gone {
			deleted = append(deleted, g.Orphans)
			for i := range g.SetSegments {
				setWs, setSegs, setContacts = append(setWs, g.WorkspaceID), append(setSegs, g.SetSegments[i]), append(setContacts, g.SetContacts[i])
			}
			for i := range g.EmptySegments {
				emptyWs, emptySegs, emptyChunks = append(emptyWs, g.WorkspaceID), append(emptySegs, g.EmptySegments[i]), append(emptyChunks, g.EmptyChunks[i])
			}
		}
		if len(setWs) > 0 {
			_, err := tx.NewRaw(`
				INSERT INTO segment_bitmaps AS b (workspace_id, segment_id, chunk, bits)
				SELECT o.workspace_id, c.segment_id, c.chunk, c.bits
				FROM (SELECT workspace_id, array_agg(segment_id) AS s, array_agg(contact_id) AS c
				      FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) AS o(workspace_id, segment_id, contact_id)
				      GROUP BY 1) o,
				     segment_bitmap_chunks(o.s, o.c) c
				ON CONFLICT (workspace_id, segment_id, chunk) DO UPDATE SET bits = b.bits | excluded.bits`,
				pgdialect.Array(setWs), pgdialect.Array(setSegs), pgdialect.Array(setContacts)).Exec(ctx)
			if err != nil {
				return err
			}
		}
		if len(emptyWs) > 0 {
			// An empty chunk may be listed once per orphan in it: DO NOTHING keeps one.
			_, err := tx.NewRaw(`
				INSERT INTO segment_bitmaps (workspace_id, segment_id, chunk, bits)
				SELECT workspace_id, segment_id, chunk, B'0'::bit(32768)
				FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) AS e(workspace_id, segment_id, chunk)
				ON CONFLICT (workspace_id, segment_id, chunk) DO NOTHING`,
				pgdialect.Array(emptyWs), pgdialect.Array(emptySegs), pgdialect.Array(emptyChunks)).Exec(ctx)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: repair orphaned memberships: %w", err)
	}
	return deleted, nil
}
