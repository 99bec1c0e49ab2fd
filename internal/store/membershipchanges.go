package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// The feed of memberships (Query.membershipChanges).
//
// Every statement that inserts or deletes memberships (assignments and removals, by
// IDs or by a selection, createSegment with contacts, the cascades of deleteSegment
// and deleteContacts, SQL by hand) records them in membership_changes, by trigger
// (migration 20261217000001): a row per segment and up to 1,024 contacts, added or
// removed, stamped with the transaction's ID (change_xid). The feed lists the rows as
// contactChanges lists contacts (changes.go): by (change_xid, id), and only below its
// statement's xmin horizon, so that a change that commits late is listed by a later
// poll, never skipped. Unlike contacts, whose latest state the feed lists, a row is a
// change, applied as one: ADDED adds the contacts to the mirror's set of the segment's
// members, REMOVED takes them out.
//
// Why applying them in order leaves a mirror exact. Take one membership, a pair
// (segment, contact); pairs are independent, and the mirror's value of a pair is
// whatever the last entry naming it said, or its value as first listed.
//
//  1. For each pair, transaction ID order is commit order. Two changes of one pair
//     meet at its primary key or its row: the later statement waits until the
//     earlier one's transaction has committed, and its trigger runs after that. When
//     a committed row of a younger transaction names one of its pairs, the trigger
//     records the change at the youngest such row's place rather than at its own ID
//     (after it, by id): so each pair's entries are in commit order. (IDs alone are
//     not commit order: a transaction gets its ID at its first lock, and an
//     assignment can then wait at its segment's lock for a younger removal of the
//     same contact, and commit after it.) A place is never below the transaction's
//     own ID, so the horizon rule below holds for places as for IDs.
//  2. A sync from the start (after: null) records, with its first page, the
//     workspace's last change below that statement's horizon H (its place, L: the
//     cursor carries L rather than H, which would tell the server's transaction rate
//     to a tenant; every row after L is at or above H). Every transaction below H had
//     ended by then. It then lists the current members, segment by segment, by the
//     memberships' primary key, over as many pages (statements) as it takes, and
//     then the changes after L. Each pair is read once, by one of those statements,
//     which sees every change of the pair below H (ended before the first page) and
//     some of those at or above H: by 1., a prefix of the pair's changes in ID order.
//  3. Every change at or above H is listed after the members (it is after L), in ID
//     order, none skipped (the horizon). So the mirror applies, to the pair's value
//     after a prefix of its changes, all its changes at or above H in order: the last
//     one decides, and it is the pair's last change (or, when it has none at or above
//     H, the value listed, which no change after H altered). The mirror is exact at
//     each poll's end, for the changes below that poll's horizon.
//
// A segment deleted mid-sync: its deletion's cascade records REMOVED for every member
// it had then, after L, so whatever of it the listing showed is taken out again. A
// contact deleted mid-sync likewise (the cascade of deleteContacts records its
// memberships REMOVED). A workspace being deleted records nothing (no one reads its
// feed). TRUNCATE of memberships (the owner's) empties the feed: cursors are then
// ahead of the workspace's last change, refused.
//
// A workspace keeps at most its budget of changes (DefaultMembershipChangesBudget,
// migration 20261218000003): past it, the triggers prune its oldest rows early and
// record the last one's place (membership_changes_budgets), and a cursor before it
// is refused, as an expired one is: the changes after it are no longer all there.

// membershipChangeList names the feed of memberships in its cursors.
const membershipChangeList listKind = "m"

// membershipChangesByXid is the feed's one ordering, over membership_changes' primary
// key (workspace_id, change_xid, id), as changesByXid is the contacts' feed's.
var membershipChangesByXid = sortKey{list: membershipChangeList, name: "change_xid", column: "change_xid", cast: "xid8", parts: []string{"%[1]s"}}

// MembershipChangesRetention is how long membership changes are kept: the triggers
// that record them prune up to 1,000 older rows of the workspace with each statement
// (migrations 20261217000001 and 20261218000003, which write it in seconds), and
// younger ones past its budget (DefaultMembershipChangesBudget). A cursor resumes the feed
// for ChangeCursorLifetime, a day less, as for deletions.
const MembershipChangesRetention = DeletedContactsRetention

// MembershipChanges is one page of the feed of memberships.
type MembershipChanges struct {
	Page[crm.MembershipChange]
	// EndCursor is where the next poll starts, never empty (ContactChanges.EndCursor).
	EndCursor string
}

// membershipChangeRow is a row of the feed's statements: a change, a segment's
// members (listing), or (horizonRow) the horizon, the next transaction ID, the feed's
// epoch, the workspace's last change and its last change below the horizon.
type membershipChangeRow struct {
	ID pgtype.Int8
	feedColumns
	SegmentID  pgtype.Int8
	Added      pgtype.Bool
	ContactIDs []int64
	ChangedAt  pgtype.Timestamptz
	BelowXid   pgtype.Text
	BelowID    pgtype.Int8
	PrunedXid  pgtype.Text
	PrunedID   pgtype.Int8
}

func (r *membershipChangeRow) dest(col string) any {
	switch col {
	case "id":
		return &r.ID
	case "segment_id":
		return &r.SegmentID
	case "added":
		return &r.Added
	case "contact_ids":
		return &r.ContactIDs
	case "changed_at":
		return &r.ChangedAt
	case "below_xid":
		return &r.BelowXid
	case "below_id":
		return &r.BelowID
	case "pruned_xid":
		return &r.PrunedXid
	case "pruned_id":
		return &r.PrunedID
	}
	return r.feedColumns.dest(col)
}

// membershipHorizonSQL is the row every statement of the feed ends with: feedHorizon's
// and the workspace's last change, by the primary key backwards, its last change
// below the horizon (the place a sync from the start lists changes after), and the
// place of the last of its rows pruned early for its budget (membership_changes_budgets,
// migration 20261218000003).
const membershipHorizonSQL = `
SELECT NULL::bigint AS id, horizon::text AS change_xid, NULL::bigint AS segment_id, NULL::boolean AS added,
       NULL::bigint[] AS contact_ids, NULL::timestamptz AS changed_at, next::text AS next, epoch,
       l.change_xid::text AS last_xid, l.id AS last_id, b.change_xid::text AS below_xid, b.id AS below_id,
       p.pruned_xid::text AS pruned_xid, p.pruned_id, true AS horizon_row
  FROM h
  LEFT JOIN membership_changes_budgets p ON p.workspace_id = ?0
  LEFT JOIN LATERAL (SELECT m.change_xid, m.id FROM membership_changes m WHERE m.workspace_id = ?0
                      ORDER BY m.change_xid DESC, m.id DESC LIMIT 1) l ON true
  LEFT JOIN LATERAL (SELECT m.change_xid, m.id FROM membership_changes m WHERE m.workspace_id = ?0 AND m.change_xid < h.horizon
                      ORDER BY m.change_xid DESC, m.id DESC LIMIT 1) b ON true`

// membershipChangesSQL reads changes after (?1, ?2) below the horizon, ?3 at most.
const membershipChangesSQL = `
WITH ` + feedHorizon + `
SELECT * FROM (
    SELECT m.id, m.change_xid::text AS change_xid, m.segment_id, m.added, m.contact_ids, m.changed_at,
           NULL::text AS next, NULL::bigint AS epoch, NULL::text AS last_xid, NULL::bigint AS last_id,
           NULL::text AS below_xid, NULL::bigint AS below_id, NULL::text AS pruned_xid, NULL::bigint AS pruned_id,
           false AS horizon_row
      FROM membership_changes m
     WHERE m.workspace_id = ?0 AND (m.change_xid, m.id) > (?1::xid8, ?2)
       AND m.change_xid < (SELECT horizon FROM h)
     ORDER BY m.change_xid, m.id LIMIT ?3
) AS c
UNION ALL` + membershipHorizonSQL

// membersSQL reads, for a sync from the start, the current members after (?1, ?2) in
// the memberships' primary key order, ?3 at most, a row per segment (their contacts
// in key order; the store sorts them all the same).
const membersSQL = `
WITH ` + feedHorizon + `
SELECT NULL::bigint AS id, NULL::text AS change_xid, m.segment_id, true AS added, array_agg(m.contact_id) AS contact_ids,
       NULL::timestamptz AS changed_at, NULL::text AS next, NULL::bigint AS epoch, NULL::text AS last_xid, NULL::bigint AS last_id,
       NULL::text AS below_xid, NULL::bigint AS below_id, NULL::text AS pruned_xid, NULL::bigint AS pruned_id,
       false AS horizon_row
  FROM (SELECT segment_id, contact_id FROM memberships
         WHERE workspace_id = ?0 AND (segment_id, contact_id) > (?1, ?2)
         ORDER BY segment_id, contact_id LIMIT ?3) AS m
 GROUP BY m.segment_id
UNION ALL` + membershipHorizonSQL

// less reports whether place p comes before q in the feed's order.
func (p feedPlace) less(q feedPlace) bool {
	return p.xid < q.xid || p.xid == q.xid && p.id < q.id
}

// membershipHorizon is what a statement's horizon row says: the feeds' status, and
// the workspace's last change below the horizon.
type membershipHorizon struct {
	feedStatus
	below  feedPlace // zero: none
	pruned feedPlace // the last row pruned early for the budget (zero: none)
}

// readMembershipRows runs one of the feed's statements and splits its rows from its
// horizon row.
func (s *Store) readMembershipRows(ctx context.Context, query string, ws int64, args ...any) ([]membershipChangeRow, membershipHorizon, error) {
	var h membershipHorizon
	rows, err := scanRowsOn[membershipChangeRow](ctx, nil, s.db.NewRaw(query, append([]any{s.workspaceArg(ws)}, args...)...), 16)
	if err != nil {
		return nil, h, err
	}
	changes, hr, st, err := splitFeedRows(rows)
	if err != nil {
		return nil, h, err
	}
	h.feedStatus = st
	if h.below.xid, err = parseXid(hr.BelowXid); err != nil {
		return nil, h, err
	}
	if h.pruned.xid, err = parseXid(hr.PrunedXid); err != nil {
		return nil, h, err
	}
	h.below.id, h.pruned.id = hr.BelowID.Int64, hr.PrunedID.Int64
	return changes, h, nil
}

// membershipItem is an entry of a page with what its cursor needs.
type membershipItem struct {
	change crm.MembershipChange
	at     feedPlace // the change's place; in a listing, the place the changes start after
	member [2]int64  // in a listing, the last membership listed (segment, contact)
}

// MembershipChanges returns one page of the feed of memberships of workspace ws: the
// memberships added and removed after the cursor args.After, oldest change first; or,
// from the start (nil), first the current members of every segment, as additions
// with no changedAt, then every change made since. Only args.First and args.After are
// read. A cursor is refused with a *ResyncError as ContactChanges refuses one: older
// than ChangeCursorLifetime, of another epoch of the feed, or ahead of the
// workspace's last change or of the database's transactions; and one before the
// last change pruned early for the workspace's budget.
func (s *Store) MembershipChanges(ctx context.Context, ws int64, args crm.PageArgs) (MembershipChanges, error) {
	if err := args.Validate(); err != nil {
		return MembershipChanges{}, err
	}
	start := time.Now().UTC().Truncate(time.Microsecond)
	since := start
	listing := args.After == nil // the current members are being listed
	var from feedPlace           // where the changes start after
	var member [2]int64          // the last member listed
	var fromEpoch int64
	if args.After != nil {
		c, err := decodeCursor("after", *args.After, membershipChangesByXid)
		if err != nil {
			return MembershipChanges{}, err
		}
		if err := cursorAgeError(start, c.since, "membership changes"); err != nil {
			return MembershipChanges{}, err
		}
		from, since, fromEpoch = feedPlace{uint64(c.Value.(int64)), c.ID}, c.since, c.Epoch
		if c.Segment != 0 {
			listing, member = true, [2]int64{c.Segment, c.Contact}
		}
	}
	size := args.Size()
	var items []membershipItem
	var first *membershipHorizon  // the page's first statement's
	var latest *membershipHorizon // its last statement's
	more := false
	if listing {
		// Enough memberships for size entries of up to 1,024 contacts, and one more:
		// with it, the members are not all listed yet.
		limit := size*crm.MaxMembershipChangeContacts + 1
		rows, h, err := s.readMembershipRows(ctx, membersSQL, ws, member[0], member[1], limit)
		if err != nil {
			return MembershipChanges{}, err
		}
		first, latest = &h, &h
		if args.After == nil {
			// The sync's start: the changes are listed after the workspace's last one
			// below this statement's horizon (see the file's comment), or after the
			// last one pruned early for the budget when that is later (every row up
			// to it was below the horizon of the statement that counted it, so its
			// change is in the listing), and a cursor holds no ID 0.
			from = h.below
			if from.less(h.pruned) {
				from = h.pruned
			}
			if from.id == 0 {
				from = feedPlace{0, math.MaxInt64}
			}
		}
		slices.SortFunc(rows, func(a, b membershipChangeRow) int { return cmp.Compare(a.SegmentID.Int64, b.SegmentID.Int64) })
		for _, r := range rows {
			ids := r.ContactIDs
			slices.Sort(ids)
			for len(ids) > 0 {
				k := min(len(ids), crm.MaxMembershipChangeContacts)
				chunk := ids[:k:k]
				ids = ids[k:]
				items = append(items, membershipItem{
					change: crm.MembershipChange{SegmentID: r.SegmentID.Int64, Added: true, ContactIDs: chunk},
					at:     from, member: [2]int64{r.SegmentID.Int64, chunk[k-1]},
				})
			}
		}
		// More entries than the page holds (always so when it read limit
		// memberships): the listing goes on in the next page. Else the members are
		// all listed, and the changes follow.
		if len(items) > size {
			more = true
			items = items[:size]
		} else {
			listing = false
		}
	}
	readChanges := !listing && len(items) < size
	if readChanges {
		room := size - len(items)
		rows, h, err := s.readMembershipRows(ctx, membershipChangesSQL, ws, strconv.FormatUint(from.xid, 10), from.id, room+1)
		if err != nil {
			return MembershipChanges{}, err
		}
		if first == nil {
			first = &h
		}
		latest = &h
		more = len(rows) > room
		if more {
			rows = rows[:room]
		}
		for _, r := range rows {
			at := r.ChangedAt.Time
			ids := r.ContactIDs
			slices.Sort(ids) // recorded in the statement's order
			items = append(items, membershipItem{
				change: crm.MembershipChange{SegmentID: r.SegmentID.Int64, Added: r.Added.Bool, ContactIDs: ids, ChangedAt: &at},
				at:     feedPlace{r.xid, r.ID.Int64},
			})
		}
	}
	h := *first
	if args.After != nil {
		if err := epochError(fromEpoch, h.epoch); err != nil {
			return MembershipChanges{}, err
		}
		if err := aheadError(from.xid, h.last.xid, h.next); err != nil {
			return MembershipChanges{}, err
		}
	}
	// Rows after the place the page read from were pruned early (the budget): some
	// may be changes the cursor has not seen, and what is left would be a partial
	// feed. Checked against the page's last statement, whose snapshot showed the
	// rows it read: a place at or after the pruned one has all its rows after it.
	// (A sync from the start meets it only when pruning passed its start between
	// its two statements.)
	if from.less(latest.pruned) {
		return MembershipChanges{}, &ResyncError{Reason: "membership changes after the cursor were pruned early, as the workspace kept more of them than its budget"}
	}
	out := MembershipChanges{Page: Page[crm.MembershipChange]{
		Items:           make([]crm.MembershipChange, len(items)),
		HasNextPage:     more,
		HasPreviousPage: args.After != nil,
		cursor: func(i int) string {
			return encodeMembershipCursor(items[i].at, items[i].member, since, h.epoch)
		},
	}}
	for i := range items {
		out.Items[i] = items[i].change
	}
	switch {
	case more:
		out.EndCursor = out.Cursor(len(items) - 1)
		return out, nil
	case !readChanges:
		// The listing ended with the page full: the changes after it may follow,
		// from the place it started them after.
		out.HasNextPage = true
		out.EndCursor = encodeMembershipCursor(from, [2]int64{}, since, h.epoch)
		return out, nil
	}
	// At the last change listed, or where the page started (ContactChanges says why
	// that is past every change below the horizon, and why the time is refreshed).
	at := from
	if n := len(items); n > 0 && items[n-1].member[0] == 0 {
		at = items[n-1].at
	}
	out.EndCursor = encodeMembershipCursor(at, [2]int64{}, start, h.epoch)
	return out, nil
}

// encodeMembershipCursor writes the cursor of the feed of memberships at place at (in
// a listing of the members, the place the changes start after), after the member
// (segment, contact) when listing, in the feed's epoch, whose rows from since on are
// all kept.
func encodeMembershipCursor(at feedPlace, member [2]int64, since time.Time, epoch int64) string {
	return cursor{List: membershipChangeList, Key: membershipChangesByXid.name, Value: int64(at.xid), ID: at.id,
		Since: since.UTC().Format(time.RFC3339Nano), Epoch: epoch, Segment: member[0], Contact: member[1]}.encode()
}

// DefaultMembershipChangesBudget is the bytes of membership changes each workspace
// keeps (counted as migration 20261218000003 counts them) when no budget is set
// (SetMembershipChangesBudget): 1 GiB. Past it, the triggers prune the workspace's
// oldest changes early, and the feed refuses a cursor before them (ResyncError).
// The migration's function holds the same number.
const DefaultMembershipChangesBudget int64 = 1 << 30

// SetMembershipChangesBudget sets the bytes of membership changes each workspace
// keeps, for every writer of the database (the triggers read it as they record a
// change): 0 for DefaultMembershipChangesBudget, -1 for no budget (the 30 days'
// retention alone). serve sets its --membership-changes-budget as it starts; the
// last server to start decides. A database that takes no writes refuses it (an
// error ReadOnly reports).
func (s *Store) SetMembershipChangesBudget(ctx context.Context, bytes int64) error {
	if bytes == 0 {
		bytes = DefaultMembershipChangesBudget
	}
	if bytes < 0 {
		bytes = -1
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO membership_changes_settings (one, budget) VALUES (true, ?)
		ON CONFLICT (one) DO UPDATE SET budget = EXCLUDED.budget WHERE membership_changes_settings.budget <> EXCLUDED.budget`, bytes)
	if err != nil {
		return fmt.Errorf("store: set the membership changes' budget: %w", err)
	}
	return nil
}

// GoneWorkspaceChanges is a workspace that no longer exists whose membership changes
// are left (an older server deleted it: the feed's rows have no foreign key).
type GoneWorkspaceChanges struct {
	WorkspaceID int64 `bun:"workspace_id"`
	// Rows are its rows left (CheckGoneWorkspaceChanges), or deleted
	// (PruneGoneWorkspaceChanges).
	Rows int64 `bun:"rows"`
}

// goneWorkspacesSQL finds the workspaces of membership_changes that have no row in
// workspaces: its distinct workspace IDs read by a probe of its primary key each (a
// loose index scan, recursive), not by reading its rows.
const goneWorkspacesSQL = `
WITH RECURSIVE ws AS (
    (SELECT m.workspace_id FROM membership_changes m ORDER BY m.workspace_id LIMIT 1)
    UNION ALL
    SELECT (SELECT m.workspace_id FROM membership_changes m WHERE m.workspace_id > ws.workspace_id
             ORDER BY m.workspace_id LIMIT 1)
      FROM ws WHERE ws.workspace_id IS NOT NULL
)
SELECT ws.workspace_id FROM ws
 WHERE ws.workspace_id IS NOT NULL AND NOT EXISTS (SELECT FROM workspaces w WHERE w.id = ws.workspace_id)
 ORDER BY 1`

// CheckGoneWorkspaceChanges returns each workspace that no longer exists with
// membership changes left, and how many. It only reads, as the owner.
func (s *Store) CheckGoneWorkspaceChanges(ctx context.Context) ([]GoneWorkspaceChanges, error) {
	var out []GoneWorkspaceChanges
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw(`SELECT g.workspace_id, (SELECT count(*) FROM membership_changes m WHERE m.workspace_id = g.workspace_id) AS rows
			FROM (`+goneWorkspacesSQL+`) g ORDER BY 1`).Scan(ctx, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("store: check the membership changes of deleted workspaces: %w", err)
	}
	return out, nil
}

// goneWorkspaceBatch is how many rows of a workspace that no longer exists one
// statement of PruneGoneWorkspaceChanges deletes: each up to 1,024 IDs, 8 KB, as a
// workspace deletion's batch (workspaceBatches).
var goneWorkspaceBatch = 5000

// PruneGoneWorkspaceChanges deletes the membership changes of workspaces that no
// longer exist (CheckGoneWorkspaceChanges), goneWorkspaceBatch rows a statement, each
// in a transaction of its own, in the feed's order from where the last one ended; at
// most batches statements in all (0: until none are left). It returns what it
// deleted by workspace, and whether rows are left. Migrate runs it with a bound as
// every command opens the database; segments check --repair to the end.
func (s *Store) PruneGoneWorkspaceChanges(ctx context.Context, batches int) (deleted []GoneWorkspaceChanges, left bool, err error) {
	var gone []int64
	if err := s.db.NewRaw(goneWorkspacesSQL).Scan(ctx, &gone); err != nil {
		return nil, false, fmt.Errorf("store: find the membership changes of deleted workspaces: %w", err)
	}
	statements := 0
	for _, ws := range gone {
		d := GoneWorkspaceChanges{WorkspaceID: ws}
		after := feedPlace{0, 0}
		for {
			if batches > 0 && statements == batches {
				if d.Rows > 0 {
					deleted = append(deleted, d)
				}
				return deleted, true, nil
			}
			statements++
			var n int64
			var lastXid sql.NullString
			var lastID sql.NullInt64
			err := s.db.QueryRowContext(ctx, `
				WITH gone AS (
					DELETE FROM membership_changes x WHERE x.workspace_id = ? AND (x.change_xid, x.id) IN (
						SELECT m.change_xid, m.id FROM membership_changes m
						 WHERE m.workspace_id = ? AND (m.change_xid, m.id) > (?::xid8, ?)
						 ORDER BY m.change_xid, m.id LIMIT ?)
					RETURNING x.change_xid, x.id
				), l AS (SELECT g.change_xid, g.id FROM gone g ORDER BY g.change_xid DESC, g.id DESC LIMIT 1)
				SELECT (SELECT count(*) FROM gone), (SELECT change_xid::text FROM l), (SELECT id FROM l)`,
				ws, ws, strconv.FormatUint(after.xid, 10), after.id, goneWorkspaceBatch).Scan(&n, &lastXid, &lastID)
			if err != nil {
				return deleted, true, fmt.Errorf("store: delete the membership changes of deleted workspace %d: %w", ws, err)
			}
			d.Rows += n
			if n < int64(goneWorkspaceBatch) {
				break
			}
			if after.xid, err = parseXid(pgtype.Text{String: lastXid.String, Valid: lastXid.Valid}); err != nil {
				return deleted, true, err
			}
			after.id = lastID.Int64
		}
		if d.Rows > 0 {
			deleted = append(deleted, d)
		}
	}
	return deleted, false, nil
}
