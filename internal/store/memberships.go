package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/segments/segments/internal/crm"
)

// MembershipChange is the outcome of adding or removing contacts in segments.
type MembershipChange struct {
	// Segments are the segments named in the request, in request order without
	// repeats, with their counts after the change (none unless WithSegments).
	Segments []crm.Segment
	// Changed counts the memberships created (or removed); ones that already existed
	// (or did not exist) are not counted.
	Changed int
	// Matched counts the distinct contacts the change applied to: the given IDs
	// without repeats, or the contacts a selection matched.
	Matched int
}

// SegmentsBack says whether a change of memberships reads its segments back, with
// their counts after the change, into MembershipChange.Segments.
//
// Reading them is a statement of its own, after the change, in its transaction:
// 0.3-0.8 ms of PostgreSQL for ten segments beside the 15-20 ms of W6's insert
// (measured statement by statement, one connection, 1M contacts), and a round trip.
// A caller that wants only the number changed (a partner's sync asks for
// assignedCount and userErrors) goes without.
type SegmentsBack bool

const (
	// WithSegments reads the segments back.
	WithSegments SegmentsBack = true
	// WithoutSegments leaves MembershipChange.Segments empty.
	WithoutSegments SegmentsBack = false
)

// AssignContactsToSegments puts every contact in every segment. It is all or nothing:
// when any ID names nothing in the workspace, nothing changes and the error names each
// one. Memberships that already exist are left alone.
func (s *Store) AssignContactsToSegments(ctx context.Context, ws int64, contactIDs, segmentIDs []int64, back SegmentsBack) (MembershipChange, error) {
	if err := crm.CheckBulk(len(contactIDs), len(segmentIDs)); err != nil {
		return MembershipChange{}, err
	}
	return s.assign(ctx, ws, givenContacts(contactIDs), segmentIDs, back)
}

// AssignContactsMatching puts every contact that cq selects (its Search and
// Segments, as Contacts reads them) in every segment, as AssignContactsToSegments
// does. The selection is read in the change's transaction, in one statement that
// also locks what it selects, and may hold at most crm.MaxMatchedContacts contacts
// and crm.MaxMatchedMemberships contacts times segments: a larger one is TOO_MANY
// at contactsMatching, and nothing changes. A selection of nobody changes nothing.
func (s *Store) AssignContactsMatching(ctx context.Context, ws int64, cq crm.ContactQuery, segmentIDs []int64, back SegmentsBack) (MembershipChange, error) {
	if err := crm.CheckBulk(0, len(segmentIDs)); err != nil {
		return MembershipChange{}, err
	}
	return s.assign(ctx, ws, s.matchingContacts(cq), segmentIDs, back)
}

func (s *Store) assign(ctx context.Context, ws int64, contacts contactsToChange, segmentIDs []int64, back SegmentsBack) (MembershipChange, error) {
	insert := insertMemberships
	out, err := s.changeMemberships(ctx, ws, contacts, segmentIDs, back, addingToSegments,
		func(ctx context.Context, tx bun.Tx, w workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
			n, err := insert(ctx, tx, w, segmentIDs, contactIDs)
			if errors.Is(err, errConcurrentChange) {
				// A concurrent assignment added one of the pairs: the next attempt
				// skips those that others add meanwhile, rather than run until its
				// attempts are spent where many assign the same contacts at once.
				// (State kept across inTx's attempts on purpose.)
				insert = insertMembershipsSkippingConflicts
			}
			return n, err
		})
	if err == nil {
		s.noteWritten("memberships", ws, out.Changed)
	}
	return out, err
}

// RemoveContactsFromSegments takes every contact out of every segment, with the same
// all-or-nothing rule as AssignContactsToSegments.
func (s *Store) RemoveContactsFromSegments(ctx context.Context, ws int64, contactIDs, segmentIDs []int64, back SegmentsBack) (MembershipChange, error) {
	if err := crm.CheckBulk(len(contactIDs), len(segmentIDs)); err != nil {
		return MembershipChange{}, err
	}
	return s.remove(ctx, ws, givenContacts(contactIDs), segmentIDs, back)
}

// RemoveContactsMatching takes every contact that cq selects out of every segment,
// with the selection and caps of AssignContactsMatching.
func (s *Store) RemoveContactsMatching(ctx context.Context, ws int64, cq crm.ContactQuery, segmentIDs []int64, back SegmentsBack) (MembershipChange, error) {
	if err := crm.CheckBulk(0, len(segmentIDs)); err != nil {
		return MembershipChange{}, err
	}
	return s.remove(ctx, ws, s.matchingContacts(cq), segmentIDs, back)
}

// remove takes the contacts out of the segments (changeMemberships), and offsets the
// memberships it removed against those the analyzer counts as gained (noteRemoved).
func (s *Store) remove(ctx context.Context, ws int64, contacts contactsToChange, segmentIDs []int64, back SegmentsBack) (MembershipChange, error) {
	out, err := s.changeMemberships(ctx, ws, contacts, segmentIDs, back, removingFromSegments, deleteMemberships)
	if err == nil {
		s.noteRemoved("memberships", ws, out.Changed)
	}
	return out, err
}

// contactsToChange locks the contacts of a membership change, the first of its locks
// (lockContacts says why), and returns their IDs sorted without repeats. segments is
// the number of distinct segments the change names. An error of crm.UserErrors
// refuses the change.
type contactsToChange func(ctx context.Context, tx bun.Tx, w workspaceArg, segments int) ([]int64, error)

// givenContacts are the contacts of a change by their IDs: each must name a contact
// of the workspace (NOT_FOUND at contactIds).
func givenContacts(ids []int64) contactsToChange {
	return func(ctx context.Context, tx bun.Tx, w workspaceArg, _ int) ([]int64, error) {
		return sortedUnique(ids), lockContacts(ctx, tx, w, "contactIds", ids, keepContacts)
	}
}

func (s *Store) changeMemberships(ctx context.Context, ws int64, contacts contactsToChange, segmentIDs []int64, back SegmentsBack, segmentLock string,
	change func(context.Context, bun.Tx, workspaceArg, []int64, []int64) (int, error),
) (MembershipChange, error) {
	var out MembershipChange
	w := s.workspaceArg(ws)
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		contactIDs, conErr := contacts(ctx, tx, w, len(unique(segmentIDs)))
		segErr := lockSegments(ctx, tx, w, "segmentIds", segmentIDs, segmentLock)
		if errs := append(crm.UserErrors(conErr), crm.UserErrors(segErr)...); len(errs) > 0 {
			return crm.Errors(errs)
		}
		// The contacts' error first: when their lock failed (a deadlock, a timeout),
		// the segments' lock ran in the aborted transaction, and its error (25P02)
		// would hide the cause, and keep a deadlock from being run again.
		if err := firstErr(conErr, segErr); err != nil {
			return err
		}
		n, err := change(ctx, tx, w, sortedUnique(segmentIDs), contactIDs)
		if err != nil {
			return err
		}
		out = MembershipChange{Changed: n, Matched: len(contactIDs)}
		if back {
			out.Segments, err = segmentsInOrder(ctx, tx, w, unique(segmentIDs))
		}
		return err
	})
	return out, err
}

// Segment lock strengths for lockSegments.
const (
	// addingToSegments is the lock of an assignment: it keeps the segments from being
	// deleted, and from losing members, until the transaction ends, and lets other
	// assignments to them run at once. What concurrent assignments share after it,
	// they lock in one order (migration 20261205000003): the bitmaps' chunks, then the
	// segments' counters, each in key order. Two that add the same pair meet at the
	// primary key, and the later one runs again (insertMemberships).
	//
	// With FOR UPDATE, as before, every assignment to a segment waited for the one
	// before it to commit, insert included. A lab of W6's statements (100 contacts
	// to 10 segments) from 8 connections at full speed, drawing the segments from 100
	// so that concurrent requests share some (2026-12-05): 47-56 transactions a
	// second with FOR UPDATE, p50 76-95 ms of each waiting for the segments' lock;
	// 59-69 a second with this lock, 1.4-2.0 ms waiting. Requests that share all
	// their segments gain nothing: they meet at the bitmaps' chunks instead, which
	// they hold to their commit (1,000 random contacts into one segment from 8
	// connections: 14.6-18.8 requests a second, 16.7-16.9 before).
	addingToSegments = "KEY SHARE"
	// removingFromSegments is the lock of a removal: no other writer of the segments'
	// memberships runs beside it. The bitmaps' removal trigger decides between
	// clearing a chunk's bits and deleting the chunk on the chunk as its statement
	// found it, and would do neither to a chunk that an assignment had changed
	// meanwhile: it must not meet one.
	removingFromSegments = "UPDATE"
)

// lockSegments locks the segments in id order with the given strength and reports
// each ID that names no segment of the workspace. Callers lock the contacts first
// (lockContacts).
func lockSegments(ctx context.Context, tx bun.Tx, ws workspaceArg, field string, ids []int64, strength string) error {
	found, err := segmentsFound(ctx, tx, ws, ids, strength)
	if err != nil {
		return err
	}
	return missing(field, "segment", ids, found)
}

// segmentsFound returns the IDs among ids of the workspace's segments, ascending,
// having locked them in that order with the given strength ("": no lock).
func segmentsFound(ctx context.Context, db bun.IDB, ws workspaceArg, ids []int64, strength string) ([]int64, error) {
	var found []int64
	q := db.NewSelect().Table("segments").Column("id").
		Where("workspace_id = ? AND id = ANY(?)", ws, pgdialect.Array(sortedUnique(ids))).
		OrderExpr("id")
	if strength != "" {
		q = q.For(strength)
	}
	err := q.Scan(ctx, &found)
	return found, err
}

// Contact lock strengths for lockContacts.
const (
	// keepContacts keeps the contacts from being deleted (or their IDs changed) until
	// the transaction ends, and lets them be updated: what adding and removing
	// memberships needs. It is the lock the memberships' reference check takes
	// (migration 20261201000001_membership_references).
	keepContacts = "KEY SHARE"
	// updatingContacts is the lock of a transaction that changes their details
	// (UpsertContacts), which conflicts with a deletion but not with keepContacts.
	// A change of a phone, a key, locks the row as a deletion does, and takes the
	// contact turn as one (UpdateContact).
	updatingContacts = "NO KEY UPDATE"
	// deletingContacts is the lock of a transaction that deletes them. lockContacts
	// takes the workspace's contact turn with it (contactTurnHeld).
	deletingContacts = "UPDATE"
)

// contactTurnsKey is the first key of the advisory locks by which transactions that
// lock contacts exclusively take their turn among select-all changes (matchingContacts),
// one lock per workspace; the second key is the workspace's ID (contactTurnKey).
// Advisory locks of two int4 keys are apart from those of one bigint
// (migrationLockKey, roleDefaultsLockKey, InTurn's), whatever their values.
//
// A select-all locks up to 100,000 contacts FOR KEY SHARE for the seconds of its
// change. PostgreSQL queues a transaction that needs one of those rows exclusively
// (a deletion; an update of the contact's phone, a key) behind the row's lockers, but
// queues no later FOR KEY SHARE locker behind it: that one shares the row at once.
// While select-alls of the same contacts followed one another, each starting before
// the one before it ended, a deletion waited for each in turn, past the request's
// deadline (TIMEOUT for 2 of 8 deleteContacts beside four clients looping
// select-alls of 100,000 contacts). So they take turns at the workspace's lock, where
// PostgreSQL queues first come, first served:
//   - A transaction that locks contacts exclusively holds it shared, from its first
//     statement, before any row lock, until it ends (contactTurnHeld). Those do not
//     wait for one another there.
//   - A select-all passes it, exclusively and for an instant, in its first statement
//     before it locks any contact (contactTurnPassed). Select-alls do not wait for one
//     another there either, nor for a deletion that started after them; one that
//     comes while a deletion holds or waits for the lock waits until that deletion
//     ends, so the contacts the deletion waits for gain no new lockers. The deletion
//     itself waits only for the select-alls before it that lock its contacts, at
//     their rows, as before.
//
// A transaction waits at the lock only in its first statement, holding nothing, so
// the lock adds no deadlock. Changes of contacts by their IDs (contactIds, up to
// 1,000; W6's 100) do not pass it: they hold their row locks for milliseconds, not
// seconds, and passing it would make them wait for a deletion that waits for a
// select-all. Taken in a statement the transaction sends anyway, the lock costs no
// round trip.
const contactTurnsKey = 7264003

// contactTurnKey is the second key of workspace ws's contact turn: its ID, wrapped
// into an int4 (workspaces whose IDs differ by a multiple of 2^32 share a lock, and
// only wait for each other more).
func contactTurnKey(ws int64) int32 { return int32(ws) }

// contactTurnHeld is a condition that takes workspace ws's contact turn shared for
// the rest of the transaction (contactTurnsKey). Uncorrelated, it is evaluated once,
// before the statement locks any row: a one-time filter, or else at the first row
// its scan reads, below the row locks.
func contactTurnHeld(ws int64) string {
	return fmt.Sprintf("(SELECT true FROM pg_advisory_xact_lock_shared(%d, %d))", contactTurnsKey, contactTurnKey(ws))
}

// contactTurnPassed is a condition that waits until workspace ws's contact turn is
// free of deletions, and keeps nothing (contactTurnsKey; the function's migration,
// 20261213000002, says how). Evaluated once, as contactTurnHeld is.
func contactTurnPassed(ws int64) string {
	return fmt.Sprintf("(SELECT segments_pass_advisory_lock(%d, %d))", contactTurnsKey, contactTurnKey(ws))
}

// lockContacts locks the contacts in id order with the given strength and reports
// each ID that names no contact of the workspace (also one deleted by a transaction
// it waited for).
//
// Every writer of memberships locks what it changes in one order, so that none waits
// for another that waits for it (a deadlock, which PostgreSQL detects only after
// deadlock_timeout, a second, and the store then retries): first the contacts, then
// the segments whose counters change (lockSegments), each in id order. Assignments,
// which lock their segments in a shared mode (addingToSegments), then lock what they
// still share in one order too: the bitmaps' chunks, then the segments' rows for
// their counters. The memberships' reference check locks the contacts again after the
// insert, which changes nothing by then; the foreign keys it replaced locked them row by row, after the segments and in
// the order of insertion, and left to them, assignments deadlocked with deletions of
// the same contacts.
// UpsertContacts, which finds its contacts by phone, locks them in id order as well
// (lockContactsByPhone), before it writes any.
func lockContacts(ctx context.Context, tx bun.Tx, ws workspaceArg, field string, ids []int64, strength string) error {
	if len(ids) == 0 {
		return nil
	}
	var found []int64
	q := tx.NewSelect().Table("contacts").Column("id").
		Where("workspace_id = ? AND id = ANY(?)", ws, pgdialect.Array(sortedUnique(ids)))
	if strength == deletingContacts {
		q = q.Where(contactTurnHeld(ws.id))
	}
	err := q.OrderExpr("id").For(strength).Scan(ctx, &found)
	if err != nil {
		return err
	}
	return missing(field, "contact", ids, found)
}

// existingMemberships returns the memberships that already exist among the pairs of
// a request as a WITH list ending in "existing", which holds the given columns of
// memberships (segment_id among them), for the statements below that add and remove
// memberships. Their arguments: ?0 the workspace, ?1 the segments' IDs and ?2 the
// contacts', both sorted (sortedUnique).
//
// Each contact's memberships are read from memberships_contact, a few index entries per
// contact, where a condition on both lists (segment_id = ANY(?1) AND contact_id =
// ANY(?2)) is probed once per pair, or planned as a scan of every workspace's
// memberships once the pairs outnumber what the planner expects to read by scanning
// (deleteMemberships has the measurements). Only the entries in the range
// of the segments' IDs are read (new segments, the usual target of a bulk assignment,
// have the highest). The range is written as a row comparison, which only that index
// can use: written on segment_id, it let PostgreSQL scan the primary key's range of
// the segments (which it has no statistics for when they are new) once per contact,
// 4.2 s instead of 8 ms for the second 1,000 contacts of W7. The equality keeps the
// estimate of rows per contact right; OFFSET 0 keeps the list of segments out of the
// index condition, where it would be probed once per segment and contact.
func existingMemberships(columns string) string {
	return `
	span AS (SELECT min(s) AS lowest, max(s) AS highest FROM unnest(?1::bigint[]) AS s),
	existing AS MATERIALIZED (
		SELECT m.*
		  FROM span, unnest(?2::bigint[]) AS c(id)
		 CROSS JOIN LATERAL (SELECT ` + columns + ` FROM memberships
		                      WHERE workspace_id = ?0 AND contact_id = c.id
		                        AND (contact_id, segment_id) BETWEEN (c.id, span.lowest) AND (c.id, span.highest)
		                     OFFSET 0) AS m
		 WHERE m.segment_id = ANY(?1::bigint[]))`
}

// The statements that add and remove memberships (insertMemberships,
// deleteMemberships), with the arguments of existingMemberships. The insert reads the
// index alone; the delete needs the rows' addresses (ctid), which the table holds.
var (
	insertMembershipsSQL = `WITH` + existingMemberships("segment_id, contact_id") + `
	INSERT INTO memberships (workspace_id, segment_id, contact_id)
	SELECT ?0, s, c FROM unnest(?1::bigint[]) AS s
	 CROSS JOIN LATERAL (SELECT c FROM unnest(?2::bigint[]) AS c WHERE s IS NOT NULL OFFSET 0) AS contacts
	 WHERE NOT EXISTS (SELECT FROM existing e WHERE e.segment_id = s AND e.contact_id = c)`

	insertMembershipsSkippingConflictsSQL = insertMembershipsSQL + `
	ON CONFLICT DO NOTHING`

	// insertPairsSQL adds the pairs of ?3 (segments) and ?4 (contacts), two lists of
	// the same length sorted by segment then contact, where ?1 and ?2 are their
	// segments and contacts (sortedUnique).
	insertPairsSQL = `WITH` + existingMemberships("segment_id, contact_id") + `
	INSERT INTO memberships (workspace_id, segment_id, contact_id)
	SELECT ?0, p.s, p.c FROM unnest(?3::bigint[], ?4::bigint[]) WITH ORDINALITY AS p(s, c, n)
	 WHERE NOT EXISTS (SELECT FROM existing e WHERE e.segment_id = p.s AND e.contact_id = p.c)
	 ORDER BY p.n`

	insertPairsSkippingConflictsSQL = insertPairsSQL + `
	ON CONFLICT DO NOTHING`

	deleteMembershipsSQL = `WITH` + existingMemberships("ctid AS address, segment_id") + `
	DELETE FROM memberships m USING existing e
	 WHERE m.workspace_id = ?0 AND m.ctid = e.address`
)

// membershipsQuery is one of the statements above for the pairs of segmentIDs and
// contactIDs (sorted).
func membershipsQuery(db bun.IDB, statement string, ws workspaceArg, segmentIDs, contactIDs []int64) *bun.RawQuery {
	return db.NewRaw(statement, ws, pgdialect.Array(segmentIDs), pgdialect.Array(contactIDs))
}

// insertMemberships adds every contact to every segment in one statement; existing
// memberships are skipped and not counted. The callers hold the contacts' and the
// segments' locks, so the statement's reference check finds every row it checks
// locked by its own transaction already.
//
// It is the costliest statement of the API (a 1,000 × 100 request writes 100,000 rows
// and two index entries each), and two things make it ~25% cheaper than the plain
// INSERT ... ON CONFLICT DO NOTHING of the same pairs (measured on the benchmark's
// 1M-contact database; docs/performance.md):
//   - The pairs are inserted in index order, segment by segment with the contacts
//     ascending (the callers pass both sorted), so that consecutive index insertions
//     land on the same pages instead of on a random one each. The order is also what
//     keeps two assignments that insert the same pairs from a deadlock: one waits at
//     the first pair the other holds, holding none the other needs. The contacts are
//     a lateral subquery of each segment, so that the planner cannot put them outer:
//     with a plain cross join it did whenever a request had fewer contacts than
//     segments, inserting contact by contact, and two such assignments met in
//     opposite orders (PostgreSQL's deadlock, once in a run of the tests).
//   - Memberships that exist already are found first (existingMemberships), a few
//     index entries per contact where ON CONFLICT probes the index once per pair, and
//     left out, so the rows are inserted without ON CONFLICT's speculative insertion.
//     A concurrent assignment to the same segments (addingToSegments lets them run
//     at once), or a writer that takes no lock (SQL by hand), can add one of the pairs
//     in between: the insert waits for it to commit, fails on the primary key, and
//     the transaction runs again (errConcurrentChange), with ON CONFLICT DO NOTHING
//     (insertMembershipsSkippingConflicts). Rare enough to be cheaper than ON CONFLICT
//     every time: 3% of the requests in the lab of addingToSegments (100 contacts to
//     10 of 100 segments, 8 connections at full speed), each paying its insert again.
func insertMemberships(ctx context.Context, tx bun.Tx, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	return insertMembershipsWith(ctx, tx, insertMembershipsSQL, ws, segmentIDs, contactIDs)
}

// insertMembershipsSkippingConflicts is insertMemberships with ON CONFLICT DO
// NOTHING: it waits for a concurrent writer of one of the pairs to commit, and skips
// the pair, rather than fail. The assignment's attempt after a conflict uses it.
func insertMembershipsSkippingConflicts(ctx context.Context, tx bun.Tx, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	return insertMembershipsWith(ctx, tx, insertMembershipsSkippingConflictsSQL, ws, segmentIDs, contactIDs)
}

func insertMembershipsWith(ctx context.Context, tx bun.Tx, statement string, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	if len(segmentIDs) == 0 || len(contactIDs) == 0 {
		return 0, nil
	}
	return execInsert(ctx, membershipsQuery(tx, statement, ws, segmentIDs, contactIDs))
}

// execInsert runs a statement that inserts memberships and returns how many it
// inserted, or errConcurrentChange when a concurrent writer inserted one of them
// first.
func execInsert(ctx context.Context, q *bun.RawQuery) (int, error) {
	res, err := q.Exec(ctx)
	if violates(err, "memberships_pkey") {
		return 0, errConcurrentChange
	}
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// insertPairs adds the memberships of pairs, given as segmentIDs[i] and contactIDs[i]
// sorted by segment then contact (an upsert's, each contact to its own segments), in
// one statement, as insertMemberships adds every contact to every segment: existing
// ones skipped and not counted, the rest inserted in that order (the index's, and
// every assignment's, so that two writers of the same pairs meet at the first and do
// not deadlock), a conflict with a concurrent writer answered errConcurrentChange. The
// callers hold the contacts' and the segments' locks.
func insertPairs(ctx context.Context, tx bun.Tx, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	return insertPairsWith(ctx, tx, insertPairsSQL, ws, segmentIDs, contactIDs)
}

// insertPairsSkippingConflicts is insertPairs with ON CONFLICT DO NOTHING, for the
// attempt after a conflict (insertMembershipsSkippingConflicts).
func insertPairsSkippingConflicts(ctx context.Context, tx bun.Tx, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	return insertPairsWith(ctx, tx, insertPairsSkippingConflictsSQL, ws, segmentIDs, contactIDs)
}

func insertPairsWith(ctx context.Context, tx bun.Tx, statement string, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	if len(segmentIDs) == 0 {
		return 0, nil
	}
	return execInsert(ctx, tx.NewRaw(statement, ws, pgdialect.Array(sortedUnique(segmentIDs)), pgdialect.Array(sortedUnique(contactIDs)),
		pgdialect.Array(segmentIDs), pgdialect.Array(contactIDs)))
}

// deleteMemberships takes every contact out of every segment in one statement and
// counts the memberships it deleted. It finds them as insertMemberships does
// (existingMemberships) and deletes them by the row addresses it read (ctid), which
// PostgreSQL fetches directly: a join back on the keys probed the primary key once
// more per row and, being planned by cost, could turn into a scan of the table.
// 1,000 contacts out of 100 segments on the benchmark's database: 0.65-0.74 s instead
// of 1.2-1.3 s when all 100,000 memberships exist, 42-53 ms instead of 0.6-0.9 s when
// none do (psql, alternating). The addresses stay valid through the statement, whose
// snapshot keeps VACUUM from reusing them.
//
// The addresses are joined (m.ctid = e.address), not listed (ctid = ANY(ARRAY(...))):
// a list's length is unknown when the statement is planned, and PostgreSQL takes it
// for 10. Where the statistics take the workspace for fewer rows than that, as they
// take any workspace that grew since the last ANALYZE in a database of many small
// ones, it read the workspace by its index and tested every row against the whole
// list: 100,000 rows × 100,000 addresses, 53-57 s for a removal of 1,000 × 100
// (TestRemovalFromAWorkspaceTheStatisticsDoNotKnow). Joined, the addresses are looked
// up one by one (a Tid Scan for each, as the list was: 0.48-0.58 s listed and
// 0.50-0.54 s joined on the benchmark's database) or hashed against the workspace's
// rows when it is taken for a few (0.51 s instead of 53-57).
//
// The callers hold the segments' locks, so only SQL by hand can change these rows in
// between: a row it deleted is skipped, and so is one it updated (the API never
// updates memberships), which a delete by key would have followed to its new version.
func deleteMemberships(ctx context.Context, tx bun.Tx, ws workspaceArg, segmentIDs, contactIDs []int64) (int, error) {
	if len(segmentIDs) == 0 || len(contactIDs) == 0 {
		return 0, nil
	}
	res, err := membershipsQuery(tx, deleteMembershipsSQL, ws, segmentIDs, contactIDs).Exec(ctx)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// segmentsInOrder reads segments and returns them in the order of ids.
func segmentsInOrder(ctx context.Context, tx bun.IDB, ws workspaceArg, ids []int64) ([]crm.Segment, error) {
	var rows []segmentRow
	err := tx.NewSelect().Model(&rows).
		Where("s.workspace_id = ? AND s.id = ANY(?)", ws, pgdialect.Array(sortedUnique(ids))).
		Scan(ctx)
	byID := make(map[int64]crm.Segment, len(rows))
	for _, r := range rows {
		byID[r.ID] = r.Segment
	}
	out := make([]crm.Segment, 0, len(ids))
	for _, id := range ids {
		if seg, ok := byID[id]; ok {
			out = append(out, seg)
		}
	}
	return out, err
}

// missing returns a NOT_FOUND error for each element of ids not in found, naming its
// index in the request.
func missing(field, what string, ids, found []int64) error {
	have := make(map[int64]bool, len(found))
	for _, id := range found {
		have[id] = true
	}
	var errs crm.Errors
	for i, id := range ids {
		if !have[id] {
			errs = append(errs, crm.Errorf(crm.CodeNotFound, crm.Path(field, i), "no %s with this ID", what))
		}
	}
	return errs.Err()
}

// unique returns ids without repeats, in first-seen order.
func unique(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// sortedUnique returns ids in ascending order without repeats, in a new slice: the
// order in which the store locks and writes rows.
func sortedUnique(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
