package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// The change feed (Query.contactChanges).
//
// Each contact, and each deletion of one (deleted_contacts), holds the ID of the
// transaction that last wrote it (change_xid, set by a trigger: migration
// 20261210000001_contact_changes). The feed lists them by (change_xid, id), and only
// below its statement's xmin horizon, pg_snapshot_xmin(pg_current_snapshot()): every
// transaction below it has ended, so its changes are all visible, and every
// transaction that commits later has an ID at or above it. A cursor at or below the
// horizon therefore has nothing committed behind it, ever: a poll from it misses
// nothing, where updated_at (when a change began) let a change that committed late
// land behind a reader that had passed its time. A contact changed again moves to
// the end (its row holds its latest transaction), so each contact is listed once, at
// its latest state; a deleted contact is listed by its deletion (its row is gone
// from contacts, its deletion is in deleted_contacts).
//
// A dump restored into a new cluster starts the transaction IDs again, below the
// rows' change_xid: the store stamps those rows again as it opens
// (RepairChangesAhead, from Migrate), and bumps the feed's epoch
// (change_feed_epoch, migration 20261212000001), which every cursor carries: a
// cursor of another epoch names a place in another cluster's order, and is refused.

// changeList names the change feed in its cursors.
const changeList listKind = "x"

// changesByXid is the feed's one ordering, over the indexes (workspace_id,
// change_xid, id) of contacts and deleted_contacts. The column is read as text and
// passed as text ('123'::xid8): PostgreSQL casts no integer to xid8.
var changesByXid = sortKey{list: changeList, name: "change_xid", column: "change_xid", cast: "xid8", parts: []string{"%[1]s"}}

// ChangeCursorLifetime is how long a cursor of the change feed resumes it: the
// retention of deletions (DeletedContactsRetention) less a day. A deletion the
// cursor has not seen began at most one transaction's length before the cursor was
// made (its transaction was running then, or began later), and a transaction lasts
// at most the request timeout and 5 s, far below the day; so until then none of the
// deletions after the cursor has been pruned. Older cursors are refused
// (ResyncError) rather than let the feed miss deletions silently.
const ChangeCursorLifetime = DeletedContactsRetention - 24*time.Hour

// ResyncError refuses a cursor of the change feed from which the feed can no longer
// resume without loss: the client must sync again from the start (after: null).
type ResyncError struct {
	// Reason says why, for the client.
	Reason string
}

func (e *ResyncError) Error() string {
	return "after: " + e.Reason + "; sync again from the start (after: null)"
}

// ContactChanges is one page of the change feed.
type ContactChanges struct {
	Page[crm.ContactChange]
	// EndCursor is where the next poll starts, never empty: the last item's cursor
	// while more changes follow (HasNextPage), else one at the workspace's last
	// change listed (an empty page's: where it started), with its time refreshed.
	EndCursor string
}

// changeRow is a row of the feed's statement: a contact changed, a deletion, or
// (horizonRow) the horizon, the next transaction ID, the feed's epoch and the
// workspace's last change, which every answer ends with.
type changeRow struct {
	ID pgtype.Int8
	feedColumns
	Phone      pgtype.Text // null: a deletion
	Name       *string
	Email      *string
	Attributes []byte
	CreatedAt  pgtype.Timestamptz
	UpdatedAt  pgtype.Timestamptz
	DeletedAt  pgtype.Timestamptz
}

func (r *changeRow) dest(col string) any {
	switch col {
	case "id":
		return &r.ID
	case "phone":
		return &r.Phone
	case "name":
		return &r.Name
	case "email":
		return &r.Email
	case "attributes":
		return &r.Attributes
	case "created_at":
		return &r.CreatedAt
	case "updated_at":
		return &r.UpdatedAt
	case "deleted_at":
		return &r.DeletedAt
	}
	return r.feedColumns.dest(col)
}

// feedColumns are the columns both feeds' statements (changesSQL,
// membershipChangesSQL, membersSQL) give every row alike: change_xid, a change's
// place or (horizon_row) the statement's horizon, and the horizon row's status,
// which splitFeedRows reads.
type feedColumns struct {
	Xid        pgtype.Text // change_xid
	Next       pgtype.Text // the next transaction ID
	Epoch      pgtype.Int8 // the feeds' epoch
	LastXid    pgtype.Text // the workspace's last change (null: none)
	LastID     pgtype.Int8
	HorizonRow bool
	xid        uint64 // Xid, parsed (0: null)
}

func (c *feedColumns) dest(col string) any {
	switch col {
	case "change_xid":
		return &c.Xid
	case "next":
		return &c.Next
	case "epoch":
		return &c.Epoch
	case "last_xid":
		return &c.LastXid
	case "last_id":
		return &c.LastID
	case "horizon_row":
		return &c.HorizonRow
	}
	return nil
}

// feedStatus is what a feed statement's horizon row says: the statement's horizon,
// the next transaction ID, the feeds' epoch and the workspace's last change.
type feedStatus struct {
	horizon, next uint64
	epoch         int64
	last          feedPlace // zero: none
}

// feedPlace is a place in a feed's order: (change_xid, id).
type feedPlace struct {
	xid uint64
	id  int64
}

// parseXid reads a transaction ID the feeds' statements give as text (xid8), 0 when
// it is null.
func parseXid(t pgtype.Text) (uint64, error) {
	if !t.Valid {
		return 0, nil
	}
	v, err := strconv.ParseUint(t.String, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: transaction ID %q: %w", t.String, err)
	}
	return v, nil
}

// splitFeedRows parses the change_xid of every row of a feed's statement (into its
// xid) and splits the changes from the horizon row, which every statement ends
// with: it returns the changes, in the statement's order, the horizon row (for what
// a feed's own horizon row says besides) and its status.
func splitFeedRows[R any, P interface {
	*R
	columns() *feedColumns
}](rows []R) (changes []R, horizon *R, st feedStatus, err error) {
	changes = rows[:0:0]
	for i := range rows {
		c := P(&rows[i]).columns()
		if c.xid, err = parseXid(c.Xid); err != nil {
			return nil, nil, st, err
		}
		if !c.HorizonRow {
			changes = append(changes, rows[i])
			continue
		}
		horizon = &rows[i]
		st.horizon, st.epoch, st.last.id = c.xid, c.Epoch.Int64, c.LastID.Int64
		if st.next, err = parseXid(c.Next); err != nil {
			return nil, nil, st, err
		}
		if st.last.xid, err = parseXid(c.LastXid); err != nil {
			return nil, nil, st, err
		}
	}
	if horizon == nil {
		return nil, nil, st, fmt.Errorf("store: the feed's statement returned no horizon")
	}
	return changes, horizon, st, nil
}

func (c *feedColumns) columns() *feedColumns { return c }

// feedHorizon is the CTE h of the feeds' statements (changesSQL,
// membershipChangesSQL): the statement's xmin horizon, below which every transaction
// has ended, the next transaction ID, and the feeds' epoch.
const feedHorizon = `h AS MATERIALIZED (
    SELECT pg_snapshot_xmin(s) AS horizon, pg_snapshot_xmax(s) AS next,
           coalesce((SELECT epoch FROM change_feed_epoch), 0) AS epoch
      FROM pg_current_snapshot() AS s
)`

// changesSQL reads a page of the feed in one statement: the contacts and the
// deletions after the cursor and below the horizon, each side by its index and cut to
// the page (and one more, to tell whether more follow), merged; then a row of the
// horizon, the next transaction ID, the feed's epoch and the workspace's last change
// (by the same indexes, backwards), against which the cursor is checked. The page's
// contacts are read whole here, not one statement per node.
const changesSQL = `
WITH ` + feedHorizon + `, last AS MATERIALIZED (
    SELECT * FROM (
        (SELECT c.change_xid, c.id FROM contacts c WHERE c.workspace_id = ?0
          ORDER BY c.change_xid DESC, c.id DESC LIMIT 1)
        UNION ALL
        (SELECT d.change_xid, d.id FROM deleted_contacts d WHERE d.workspace_id = ?0
          ORDER BY d.change_xid DESC, d.id DESC LIMIT 1)
    ) AS l
    ORDER BY change_xid DESC, id DESC LIMIT 1
), changed AS (
    SELECT * FROM (
        (SELECT c.id, c.change_xid, c.phone, c.name, c.email, c.attributes, c.created_at, c.updated_at,
                NULL::timestamptz AS deleted_at
           FROM contacts c
          WHERE c.workspace_id = ?0 AND (c.change_xid, c.id) > (?1::xid8, ?2)
            AND c.change_xid < (SELECT horizon FROM h)
          ORDER BY c.change_xid, c.id LIMIT ?3)
        UNION ALL
        (SELECT d.id, d.change_xid, NULL, NULL, NULL, NULL, NULL, NULL, d.deleted_at
           FROM deleted_contacts d
          WHERE d.workspace_id = ?0 AND (d.change_xid, d.id) > (?1::xid8, ?2)
            AND d.change_xid < (SELECT horizon FROM h)
          ORDER BY d.change_xid, d.id LIMIT ?3)
    ) AS u
    ORDER BY change_xid, id LIMIT ?3
)
SELECT id, change_xid::text AS change_xid, phone, name, email, attributes, created_at, updated_at, deleted_at,
       NULL::text AS next, NULL::bigint AS epoch, NULL::text AS last_xid, NULL::bigint AS last_id, false AS horizon_row
  FROM changed
UNION ALL
SELECT NULL, horizon::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, next::text, epoch,
       (SELECT change_xid::text FROM last), (SELECT id FROM last), true
  FROM h`

// ContactChanges returns one page of the change feed of workspace ws: the contacts
// created, updated or deleted after the cursor args.After (nil: from the start),
// oldest change first, each at its latest state. Only args.First and args.After are
// read. A cursor older than ChangeCursorLifetime, or of another epoch of the feed
// (made before a restore into another cluster), or ahead of the workspace's last
// change or of the database's transactions (made before a restore, or forged), is
// refused with a *ResyncError; but an end cursor of the servers whose end cursor was
// the horizon, which may be ahead of the workspace's last change, reads on from that
// change.
func (s *Store) ContactChanges(ctx context.Context, ws int64, args crm.PageArgs) (ContactChanges, error) {
	if err := args.Validate(); err != nil {
		return ContactChanges{}, err
	}
	// The time from which the page's cursors hold every deletion: a cursor's own, or
	// for a first page, now, which a fresh mirror needs none before. Taken before
	// the statement, so never later than the database's.
	start := time.Now().UTC().Truncate(time.Microsecond)
	since := start
	var from uint64
	var fromID, fromEpoch int64
	if args.After != nil {
		c, err := decodeCursor("after", *args.After, changesByXid)
		if err != nil {
			return ContactChanges{}, err
		}
		if err := cursorAgeError(start, c.since, "deletions"); err != nil {
			return ContactChanges{}, err
		}
		from, fromID, since, fromEpoch = uint64(c.Value.(int64)), c.ID, c.since, c.Epoch
	}
	size := args.Size()
	xid := strconv.FormatUint(from, 10)
	rows, err := scanRowsOn[changeRow](ctx, nil, s.db.NewRaw(changesSQL, s.workspaceArg(ws), xid, fromID, size+1), size+2)
	if err != nil {
		return ContactChanges{}, err
	}
	changes, _, st, err := splitFeedRows(rows)
	if err != nil {
		return ContactChanges{}, err
	}
	next, epoch, lastXid, lastID := st.next, st.epoch, st.last.xid, st.last.id
	if args.After != nil {
		if err := epochError(fromEpoch, epoch); err != nil {
			return ContactChanges{}, err
		}
	}
	// A cursor this server made is at or below the workspace's last change: an
	// item's place, or an end cursor, which stays at the last change listed. One
	// ahead of it was made before a restore that brought back older rows (a dump
	// taken before the cursor), and reading on from it would pass the changes the
	// restored database makes below it; or it was forged. It is refused by the
	// workspace's own rows alone. Compared with the next transaction ID instead, as
	// it was, a forged cursor told whether the server had run that transaction yet:
	// 40 requests of a read key found the server's next ID, and two such searches
	// every tenant's write rate. The end cursors of servers before the end cursor
	// stayed at the last change were the horizon - 1, past every ID (MaxInt64), so
	// usually ahead of it: such a cursor has seen every change up to the workspace's
	// last (their transactions had all ended when it was made), and reads on from
	// there, its page's end cursor at that change, whatever the server's
	// transactions. (Across a restore into a cluster already past the dump's
	// transaction IDs, which bumps no epoch, it passes the changes made between the
	// restore and its first poll, where the comparison refused it when the new
	// cluster had not reached its ID yet.) The next transaction ID is compared only
	// with a cursor at or below the last change, which is below it unless a restore
	// left the workspace's rows ahead (a database that takes no writes cannot stamp
	// them again): the answer then tells nothing the workspace's rows do not.
	legacyEnd := false
	if args.After != nil {
		if err := aheadError(from, lastXid, next); err != nil {
			if legacyEnd = from > lastXid && fromID == math.MaxInt64; !legacyEnd {
				return ContactChanges{}, err
			}
		}
	}
	slices.SortFunc(changes, func(a, b changeRow) int {
		return cmp.Or(cmp.Compare(a.xid, b.xid), cmp.Compare(a.ID.Int64, b.ID.Int64))
	})
	more := len(changes) > size
	if more {
		changes = changes[:size]
	}
	items := make([]crm.ContactChange, len(changes))
	xids := make([]uint64, len(changes))
	for i, r := range changes {
		xids[i] = r.xid
		items[i] = crm.ContactChange{ContactID: r.ID.Int64}
		if !r.Phone.Valid {
			items[i].DeletedAt = &r.DeletedAt.Time
			continue
		}
		items[i].Contact = &crm.Contact{WorkspaceID: ws, ID: r.ID.Int64, Phone: r.Phone.String, Name: r.Name, Email: r.Email,
			Attributes: r.Attributes, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time}
	}
	out := ContactChanges{Page: Page[crm.ContactChange]{
		Items:           items,
		HasNextPage:     more,
		HasPreviousPage: args.After != nil,
		cursor: func(i int) string {
			return encodeChangeCursor(xids[i], items[i].ContactID, since, epoch)
		},
	}}
	if more {
		out.EndCursor = out.Cursor(len(items) - 1)
	} else {
		// At the workspace's last change listed, or where the page started when it
		// listed none: every change of the workspace below the horizon is listed, so
		// its next one has a transaction ID at or above the horizon, after this
		// cursor. The horizon, the end cursor before, moves with every tenant's
		// writes, and let one workspace's key count the whole server's; the
		// workspace's own IDs still show how many transactions ran between its own
		// changes (a known limit). A page from the start that listed nothing starts past every ID of
		// transaction 0, which only rows older than the feed have, and none here.
		at, atID := from, fromID
		switch n := len(items); {
		case n > 0:
			at, atID = xids[n-1], items[n-1].ContactID
		case legacyEnd && lastID != 0:
			at, atID = lastXid, lastID
		case legacyEnd:
			at, atID = 0, math.MaxInt64 // no change at all: a first page's
		case atID == 0:
			atID = math.MaxInt64
		}
		// Its time is refreshed to start all the same: a deletion after the cursor
		// is one a transaction at or above the horizon made, running when the
		// statement began or later, so it began at most one transaction's length
		// before start (ChangeCursorLifetime).
		out.EndCursor = encodeChangeCursor(at, atID, start, epoch)
	}
	return out, nil
}

// encodeChangeCursor writes the cursor of the feed's position (xid, id) in the
// feed's epoch, whose feed holds every deletion from since on: a cursor of
// changesByXid with since as "t" and epoch as "e".
func encodeChangeCursor(xid uint64, id int64, since time.Time, epoch int64) string {
	return cursor{List: changeList, Key: changesByXid.name, Value: int64(xid), ID: id, Since: since.UTC().Format(time.RFC3339Nano), Epoch: epoch}.encode()
}

// cursorAgeError refuses a cursor of a feed made at since, read at start, once it is
// older than ChangeCursorLifetime: what it has not seen (kept, the feed's rows of
// kind, for DeletedContactsRetention) may have been pruned.
func cursorAgeError(start, since time.Time, kept string) error {
	if age := start.Sub(since); age > ChangeCursorLifetime {
		return &ResyncError{Reason: fmt.Sprintf(
			"the cursor is %d days old; %s are kept %d days, and a cursor resumes the feed for %d",
			int(age/(24*time.Hour)), kept, int(DeletedContactsRetention/(24*time.Hour)), int(ChangeCursorLifetime/(24*time.Hour)))}
	}
	return nil
}

// epochError refuses a cursor of a feed made in epoch fromEpoch when the feeds'
// epoch is now epoch: the store stamped the changes again since the cursor was made
// (a dump restored into a new cluster), and its place is in another order, also once
// the new transaction IDs pass it.
func epochError(fromEpoch, epoch int64) error {
	if fromEpoch == epoch {
		return nil
	}
	return &ResyncError{Reason: fmt.Sprintf(
		"the cursor was made before the database was restored into a new cluster (the feed's epoch is %d, the cursor's %d)", epoch, fromEpoch)}
}

// aheadError refuses a cursor at transaction ID from of a feed whose workspace's last
// change is at lastXid, on a database whose next transaction ID is next (the reasons
// are ContactChanges'): one ahead of the workspace's last change, or one at or below
// it but naming a transaction this database has not run, its IDs started again.
func aheadError(from, lastXid, next uint64) error {
	switch {
	case from > lastXid:
		return &ResyncError{Reason: "the cursor is ahead of the workspace's last change (made before a restore of the database, or not by this server)"}
	case from >= next:
		return &ResyncError{Reason: "the cursor is ahead of this database's transactions, which started again (a restore into a new cluster)"}
	}
	return nil
}

// ChangesAhead is a workspace whose contacts or deletions were stamped by
// transactions this database has not run yet (CheckChangesAhead).
type ChangesAhead struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"`
	// Contacts, Deletions and MembershipChanges are the rows RepairChangesAhead
	// stamped again (a check counts none).
	Contacts, Deletions, MembershipChanges int64 `bun:"-"`
}

// CheckChangesAhead returns every workspace holding a change_xid at or above the
// next transaction ID, in its contacts, deletions or membership changes: a dump
// restored into a new cluster, whose transaction IDs started again. Its change feeds
// list those changes only once the IDs catch up, and every cursor a mirror holds is
// meaningless: the mirrors must sync again from the start. One index probe per
// workspace and table (the latest change_xid).
func (s *Store) CheckChangesAhead(ctx context.Context) ([]ChangesAhead, error) {
	var out []ChangesAhead
	err := s.db.NewRaw(`
		SELECT w.id AS workspace_id, w.name AS workspace_name
		FROM workspaces w, pg_snapshot_xmax(pg_current_snapshot()) AS next
		WHERE (SELECT c.change_xid FROM contacts c WHERE c.workspace_id = w.id ORDER BY c.change_xid DESC LIMIT 1) >= next
		   OR (SELECT d.change_xid FROM deleted_contacts d WHERE d.workspace_id = w.id ORDER BY d.change_xid DESC LIMIT 1) >= next
		   OR (SELECT m.change_xid FROM membership_changes m WHERE m.workspace_id = w.id ORDER BY m.change_xid DESC LIMIT 1) >= next
		ORDER BY w.id`).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("store: check change IDs: %w", err)
	}
	return out, nil
}

// restampBatch is how many rows of a workspace RepairChangesAhead stamps again in one
// transaction: each holds its rows' locks until it commits, and a workspace of 1M
// contacts must not be one statement under the statement timeout.
const restampBatch = 5000

// RepairChangesAhead stamps again, with transaction IDs of this database, the
// contacts and deletions CheckChangesAhead finds stamped ahead of it (a dump restored
// into a new cluster), so that the feed lists them now rather than once the IDs catch
// up, which may be never; and it bumps the feed's epoch first, so that every cursor
// made before is refused (RESYNC_REQUIRED), even once the new IDs pass its own. It
// records the cluster's system identifier too: one that differs with nothing ahead
// (pg_upgrade, which keeps the IDs; or a restore into a cluster whose IDs are past the
// rows' already, which it cannot tell from it) changes nothing else. It returns the workspaces it stamped again, with their rows, and the
// feed's epoch. Migrate runs it as every command opens the database, and segments
// check --repair; processes that run it at once take turns. It writes nothing when
// there is nothing to do.
func (s *Store) RepairChangesAhead(ctx context.Context) (ahead []ChangesAhead, epoch int64, err error) {
	err = s.InTurn(ctx, "change feed epoch", func() error {
		var recorded, stored sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT e.system_identifier, e.epoch
			FROM (SELECT) AS one LEFT JOIN change_feed_epoch AS e ON true`).Scan(&recorded, &stored); err != nil {
			return fmt.Errorf("store: read the change feed's epoch: %w", err)
		}
		current, err := s.systemIdentifier(ctx, recorded)
		if err != nil {
			return err
		}
		epoch = stored.Int64
		if ahead, err = s.CheckChangesAhead(ctx); err != nil {
			return err
		}
		if len(ahead) == 0 && recorded.Valid && recorded.Int64 == current && stored.Valid {
			return nil
		}
		if len(ahead) > 0 {
			// Before the rows are stamped again, and committed apart: a process
			// stopped halfway leaves a new epoch and rows still ahead, which the next
			// open stamps again, bumping the epoch again, which refuses nothing a
			// mirror should keep. (A cursor of the new epoch made meanwhile is past
			// no row still ahead: those get IDs above it.) The new epoch is drawn at
			// random, not counted up from the stored one, which the dump carried:
			// the same dump restored twice would give both restores one epoch, and
			// a cursor of the first would pass everything made before the second.
			epoch = newEpoch(epoch)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO change_feed_epoch (one, system_identifier, epoch) VALUES (true, ?, ?)
			ON CONFLICT (one) DO UPDATE SET system_identifier = EXCLUDED.system_identifier, epoch = EXCLUDED.epoch`, current, epoch); err != nil {
			return fmt.Errorf("store: record the change feed's epoch: %w", err)
		}
		if len(ahead) == 0 {
			if recorded.Valid {
				s.log.Info("the database runs on another PostgreSQL cluster than before (pg_upgrade, or a restore), and no change is ahead of its transactions: the change feed's cursors stay valid",
					"system_identifier", current, "was", recorded.Int64)
			}
			return nil
		}
		for i := range ahead {
			a := &ahead[i]
			for _, t := range []struct {
				table string
				n     *int64
			}{{"contacts", &a.Contacts}, {"deleted_contacts", &a.Deletions}, {"membership_changes", &a.MembershipChanges}} {
				if err := s.restamp(ctx, t.table, a.WorkspaceID, t.n); err != nil {
					return err
				}
			}
			// Its budget's places (migration 20261218000003) are in the old order,
			// ahead of the rows now: counting starts again from the first row, and
			// no cursor of the new epoch is before a row pruned in the old one.
			if _, err := s.db.ExecContext(ctx, "DELETE FROM membership_changes_budgets WHERE workspace_id = ?", a.WorkspaceID); err != nil {
				return fmt.Errorf("store: reset the membership changes' budget of workspace %d: %w", a.WorkspaceID, err)
			}
			s.log.Warn("change feed: the workspace's changes were stamped by transactions this database has not run (a dump restored into a new cluster), and are stamped again; cursors made before are refused: every mirror syncs again from after: null",
				"workspace_id", a.WorkspaceID, "workspace", a.WorkspaceName, "contacts", a.Contacts, "deletions", a.Deletions,
				"membership_changes", a.MembershipChanges, "epoch", epoch)
		}
		return nil
	})
	return ahead, epoch, err
}

// newEpoch returns a change feed epoch other than old and 0 (the epoch of cursors
// made before epochs were), at random: no dump can hold it.
func newEpoch(old int64) int64 {
	for {
		if e := rand.Int64(); e != 0 && e != old {
			return e
		}
	}
}

// systemIdentifier returns the PostgreSQL cluster's system identifier
// (pg_control_system()), which tells a pg_upgrade or a restore from the cluster the
// epoch was recorded on. A managed PostgreSQL may not let the owner call it
// (insufficient_privilege): then the cluster counts as the one recorded (none:
// 0), and only rows stamped ahead tell a restore, which is what bumps the epoch.
func (s *Store) systemIdentifier(ctx context.Context, recorded sql.NullInt64) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&id)
	if pgErr := pgError(err); pgErr != nil && pgErr.Code == insufficientPrivilege {
		return recorded.Int64, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read the cluster's system identifier: %w", err)
	}
	return id, nil
}

// restamp stamps again the rows of table (contacts, deleted_contacts or
// membership_changes) in workspace ws whose change_xid is ahead of the database's
// next transaction ID, restampBatch at a time, adding their number to n: in contacts
// and deleted_contacts an update that changes nothing lets the trigger
// (set_change_xid) stamp the transaction's ID, and no other trigger fires;
// membership_changes has no trigger, and is stamped by the update. The rows are found
// by the feed's index, and updated by their ctid (a TID scan), in the feed's order:
// each batch's transaction is younger than the last, so the order between batches
// stays; within one, rows are listed by id. The order of restamped membership changes
// matters to no mirror: the restore voids every cursor (the epoch), and a sync from
// the start lists memberships as they are, then only changes younger than its start.
func (s *Store) restamp(ctx context.Context, table string, ws int64, n *int64) error {
	for {
		res, err := s.db.ExecContext(ctx, `UPDATE ? SET change_xid = pg_current_xact_id()
			WHERE ctid = ANY (ARRAY(SELECT ctid FROM ? WHERE workspace_id = ? AND change_xid >= pg_snapshot_xmax(pg_current_snapshot())
			                        ORDER BY change_xid, id LIMIT ?))`, bun.Ident(table), bun.Ident(table), ws, restampBatch)
		if err != nil {
			return fmt.Errorf("store: stamp the changes of workspace %d in %s again: %w", ws, table, err)
		}
		done, err := res.RowsAffected()
		if err != nil {
			return err
		}
		*n += done
		if done < restampBatch {
			return nil
		}
	}
}
