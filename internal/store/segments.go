package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/segments/segments/internal/crm"
)

type segmentRow struct {
	bun.BaseModel `bun:"table:segments,alias:s"`
	crm.Segment
	Probe bool `bun:"probe,scanonly"`
}

func (r segmentRow) probe() bool { return r.Probe }

func (r *segmentRow) dest(col string) any {
	switch col {
	case "workspace_id":
		return &r.WorkspaceID
	case "id":
		return &r.ID
	case "name":
		return &r.Name
	case "description":
		return &r.Description
	case "contact_count":
		return &r.ContactCount
	case "created_at":
		return &r.CreatedAt
	case "updated_at":
		return &r.UpdatedAt
	case "probe":
		return &r.Probe
	}
	return nil
}

// segmentSearch is the text searched by SegmentQuery.Search, indexed by
// segments_search: the name and description, joined by a newline (which keeps a term
// from matching across them) and folded as contacts' search_text is, kept by
// PostgreSQL with the row (migration 20261216000005_search_folds_text). A column, not
// an index on the expression: under row-level security a condition reaches an index
// only when its functions are leakproof (migration 20261129000001_rls), and the
// folding's are not.
const segmentSearch = `s.search_text`

var segmentKeys = map[crm.SegmentOrderField]sortKey{
	crm.SegmentsByCreatedAt:    segmentsByCreatedAt,
	crm.SegmentsByUpdatedAt:    segmentsByUpdatedAt,
	crm.SegmentsByName:         segmentsByName,
	crm.SegmentsByContactCount: segmentsByContactCount,
}

func segmentKeyValue(s *crm.Segment, key sortKey) any {
	switch key.name {
	case segmentsByUpdatedAt.name:
		return s.UpdatedAt
	case segmentsByName.name:
		return s.Name
	case segmentsByContactCount.name:
		return s.ContactCount
	}
	return s.CreatedAt
}

// Segments returns one page of the workspace's segments.
func (s *Store) Segments(ctx context.Context, ws int64, sq crm.SegmentQuery, args crm.PageArgs) (Page[crm.Segment], error) {
	key, ok := segmentKeys[sq.Order.Field]
	if !ok {
		return Page[crm.Segment]{}, fmt.Errorf("store: unknown segment order %q", sq.Order.Field)
	}
	ctx = forSearch(ctx, sq.Search)
	rows, nav, err := fetchPage(ctx, func(dst *[]segmentRow) *bun.SelectQuery {
		return s.segmentQuery(dst, ws, sq)
	}, pageQuery{alias: "s", key: key, dir: sq.Order.Direction, args: args})
	if err != nil {
		return Page[crm.Segment]{}, err
	}
	return toPage(rows, nav, key, func(r *segmentRow) crm.Segment { return r.Segment },
		func(s *crm.Segment) (any, int64) { return segmentKeyValue(s, key), s.ID }), nil
}

// CountSegments returns the number of segments sq selects.
func (s *Store) CountSegments(ctx context.Context, ws int64, sq crm.SegmentQuery) (int, error) {
	ctx = forSearch(ctx, sq.Search)
	var rows []segmentRow
	n, err := s.segmentQuery(&rows, ws, sq).Count(ctx)
	return int(n), err
}

// CountSegmentsUpTo returns the number of segments sq selects if it is at most
// limit, else a number above limit, reading no more than limit+1 of them.
func (s *Store) CountSegmentsUpTo(ctx context.Context, ws int64, sq crm.SegmentQuery, limit int) (int, error) {
	var rows []segmentRow
	return s.countUpTo(forSearch(ctx, sq.Search), s.segmentQuery(&rows, ws, sq), limit)
}

func (s *Store) segmentQuery(dst *[]segmentRow, ws int64, sq crm.SegmentQuery) *bun.SelectQuery {
	q := s.db.NewSelect().Model(dst)
	w := s.workspaceArg(ws)
	if sq.Search == "" {
		q = q.Where("s.workspace_id = ?", w)
	} else {
		cond, arg := s.searchWorkspace("segments", "s", w, sq.Search)
		q = q.Where(cond, arg).Where(segmentSearch+" LIKE "+searchPattern, sq.Search)
	}
	return q
}

// SegmentsByID returns the segments with the given IDs that exist in the workspace.
func (s *Store) SegmentsByID(ctx context.Context, ws int64, ids []int64) (map[int64]crm.Segment, error) {
	var rows []segmentRow
	err := s.db.NewSelect().Model(&rows).
		Where("s.workspace_id = ? AND s.id = ANY(?)", ws, pgdialect.Array(ids)).
		Scan(ctx)
	out := make(map[int64]crm.Segment, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Segment
	}
	return out, err
}

// Segment returns one segment, or a NOT_FOUND error.
func (s *Store) Segment(ctx context.Context, ws, id int64) (crm.Segment, error) {
	found, err := s.SegmentsByID(ctx, ws, []int64{id})
	if err != nil {
		return crm.Segment{}, err
	}
	seg, ok := found[id]
	if !ok {
		return crm.Segment{}, crm.Errorf(crm.CodeNotFound, crm.Path("id"), "no segment with this ID")
	}
	return seg, nil
}

// SegmentByName returns the workspace's segment whose name is name as it would be
// stored (crm.NormalizeSegmentName), ignoring case as names are unique (the index
// segments_name), or a NOT_FOUND error; a name no segment could have is that
// input error.
func (s *Store) SegmentByName(ctx context.Context, ws int64, name string) (crm.Segment, error) {
	name, err := crm.NormalizeSegmentName(name)
	if err != nil {
		return crm.Segment{}, err
	}
	var row segmentRow
	err = segmentNamed(s.db, &row, s.workspaceArg(ws), name).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.Segment{}, crm.Errorf(crm.CodeNotFound, crm.Path("name"), "no segment with this name")
	}
	return row.Segment, err
}

// segmentNamed selects on db, into model, the segment of workspace w named name
// ignoring case, as names are unique (the index segments_name): SegmentByName's
// lookup, and takenName's.
func segmentNamed(db bun.IDB, model any, w workspaceArg, name string) *bun.SelectQuery {
	return db.NewSelect().Model(model).Where("s.workspace_id = ? AND lower(s.name) = lower(?)", w, name)
}

// SegmentsOfContacts returns, for each of the given contacts, the segments it is in,
// ordered by name. A segment is shared by the contacts in it: read, never change.
func (s *Store) SegmentsOfContacts(ctx context.Context, ws int64, contactIDs []int64) (map[int64][]*crm.Segment, error) {
	// One row per segment, with its contacts of the page; each contact's segments
	// then come out in the segments' order. A page of 50 contacts of the
	// benchmark's dataset is in about 260 memberships of 170 segments: a row per
	// membership sent each segment's columns once per member and sorted 260 rows by
	// lower(name) rather than 170, 10-20% more of PostgreSQL's time for the
	// statement (pgbench). The contacts come as the array's text ("{1,2,3}"), which
	// pgx would otherwise decode element by element, an allocation each; string_agg
	// instead of array_agg took PostgreSQL half as long again. The query is the
	// function segments_of_contacts (migration 20261130000003), whose plan PostgreSQL
	// keeps for the session rather than planning each page's contacts again.
	// Scanned by hand through pgx (queryDirect), not through a Bun model: this is the
	// contacts table's hot path, where Bun's reflection per column took about a tenth
	// of the CPU of the handler's benchmark (W3), and database/sql's boxing of each
	// value an eighth of its allocations.
	query := s.db.QueryGen().FormatQuery(`SELECT contacts, id, name, description, contact_count, created_at, updated_at FROM segments_of_contacts(?::bigint, ?::bigint[])`, ws, pgdialect.Array(contactIDs))
	type membership struct {
		segment int // index in segs
		contact int64
	}
	var segs []crm.Segment
	memberships := make([]membership, 0, 8*len(contactIDs)) // in the segments' order
	counts := make(map[int64]int, len(contactIDs))          // memberships per contact
	// One row's values, scanned into and copied out, rather than new destinations
	// on the heap for each row.
	var seg crm.Segment
	var contacts string
	dests := []any{&contacts, &seg.ID, &seg.Name, &seg.Description, &seg.ContactCount, &seg.CreatedAt, &seg.UpdatedAt}
	err := queryDirect(ctx, s.db, nil, query, func(row pgx.Rows) error {
		seg = crm.Segment{WorkspaceID: ws}
		if err := row.Scan(dests...); err != nil {
			return err
		}
		segs = append(segs, seg)
		for field := range strings.SplitSeq(strings.Trim(contacts, "{}"), ",") {
			c, err := strconv.ParseInt(field, 10, 64)
			if err != nil {
				return fmt.Errorf("store: the contacts of segment %d: %w", seg.ID, err)
			}
			memberships = append(memberships, membership{len(segs) - 1, c})
			counts[c]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Each contact's segments are a window of one array of pointers to segs, filled
	// in the segments' order; full (len = cap), so that an append copies. Pointers,
	// not copies: a page's 260 memberships copied its 170 segments' structs once
	// each, 40 KB a page.
	all := make([]*crm.Segment, len(memberships))
	out := make(map[int64][]*crm.Segment, len(counts))
	for c, n := range counts {
		out[c], all = all[:0:n], all[n:]
	}
	for _, m := range memberships {
		out[m.contact] = append(out[m.contact], &segs[m.segment])
	}
	return out, nil
}

// CreateSegment creates a segment with its first members, all or nothing.
func (s *Store) CreateSegment(ctx context.Context, ws int64, in crm.NewSegment) (crm.Segment, error) {
	inputErr := in.Normalize()
	if len(in.ContactIDs) > crm.MaxBulkContacts {
		return crm.Segment{}, withTakenName(ctx, s.db, s.workspaceArg(ws), in.Name, 0, crm.UserErrors(inputErr))
	}
	return s.createSegment(ctx, ws, in, inputErr, givenContacts(in.ContactIDs))
}

// CreateSegmentMatching creates a segment whose first members are the contacts cq
// selects (its Search and Segments, as Contacts reads them), all or nothing: the
// selection is AssignContactsMatching's, the same statement with the same locks and
// contact turn, run in the transaction that inserts the segment, so that the segment
// is committed with all of its members or not at all. A selection of more than
// crm.MaxMatchedContacts contacts is TOO_MANY at contactsMatching, a taken name
// TAKEN, and neither creates anything; a selection of nobody makes an empty segment.
// in.ContactIDs must be nil: the members come by IDs or by a selection, and both is
// INVALID at contactsMatching.
//
// Made in two calls, CreateSegment and then AssignContactsMatching, a selection
// whose assignment failed (TOO_MANY, TIMEOUT) left an empty segment, and its retry
// was TAKEN.
func (s *Store) CreateSegmentMatching(ctx context.Context, ws int64, in crm.NewSegment, cq crm.ContactQuery) (crm.Segment, error) {
	inputErr := in.Normalize()
	if in.ContactIDs != nil {
		return crm.Segment{}, s.RefuseNewSegment(ctx, ws, in.Name, append(crm.Errors(crm.UserErrors(inputErr)), crm.ContactsGivenTwice()))
	}
	return s.createSegment(ctx, ws, in, inputErr, s.matchingContacts(cq))
}

// createSegment creates a segment of in, normalized with the problems inputErr, and
// puts the contacts of contacts in it, in one transaction.
func (s *Store) createSegment(ctx context.Context, ws int64, in crm.NewSegment, inputErr error, contacts contactsToChange) (crm.Segment, error) {
	var (
		created crm.Segment
		added   int
	)
	w := s.workspaceArg(ws)
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// The contacts first, so that a refusal names every problem at once: a bad
		// name or description, a taken name and every
		// unknown contact, or a selection over its cap. First of the transaction's
		// locks, as in every change of memberships (lockContacts).
		contactIDs, conErr := contacts(ctx, tx, w, 1)
		if conErr != nil && crm.UserErrors(conErr) == nil {
			return conErr
		}
		if inputErr != nil {
			return withTakenName(ctx, tx, w, in.Name, 0, append(crm.Errors(crm.UserErrors(inputErr)), crm.UserErrors(conErr)...))
		}
		row := segmentRow{Segment: crm.Segment{WorkspaceID: ws, Name: in.Name, Description: in.Description}}
		// A taken name inserts nothing, and leaves the transaction usable to read
		// the segment that has it: the message names that one (takenName).
		_, err := tx.NewInsert().Model(&row).
			Column("workspace_id", "name", "description").
			On("CONFLICT (workspace_id, lower(name)) DO NOTHING"). // segments_name
			Returning(columnsOf[segmentRow](s.db, "")).            // not *, which holds search_text, no field of the row
			Exec(ctx)
		if errors.Is(err, sql.ErrNoRows) || err == nil && row.ID == 0 {
			taken, err := takenName(ctx, tx, w, in.Name)
			if err != nil {
				return err
			}
			return append(crm.Errors{taken}, crm.UserErrors(conErr)...)
		}
		if err != nil {
			return err
		}
		if conErr != nil {
			return conErr
		}
		// Nobody else sees the new segment before the commit, so no concurrent
		// assignment can add one of these pairs first (insertMemberships' retry).
		if added, err = insertMemberships(ctx, tx, w, []int64{row.ID}, contactIDs); err != nil {
			return err
		}
		err = tx.NewSelect().Model(&row).Where("s.workspace_id = ? AND s.id = ?", ws, row.ID).Scan(ctx)
		created = row.Segment
		return err
	})
	if err == nil {
		s.noteWritten("memberships", ws, added)
	}
	return created, err
}

// UpdateSegment changes the fields of a segment that the patch sets. UpdatedAt moves
// only when a value actually changes.
func (s *Store) UpdateSegment(ctx context.Context, ws, id int64, p crm.SegmentPatch) (crm.Segment, error) {
	if err := p.Normalize(); err != nil {
		if !p.Name.Set || p.Name.Value == nil || crm.UserErrors(err) == nil {
			return crm.Segment{}, err
		}
		// The new name's TAKEN too, as a rename that reaches the update learns it.
		return crm.Segment{}, withTakenName(ctx, s.db, s.workspaceArg(ws), *p.Name.Value, id, crm.UserErrors(err))
	}
	name, desc := bun.Safe("s.name"), bun.Safe("s.description")
	var newName, newDesc any = name, desc
	if p.Name.Set {
		newName = *p.Name.Value
	}
	if p.Description.Set {
		newDesc = p.Description.Value
	}
	var row segmentRow
	// Retried (retryTx) when it deadlocks: two renames that swap two names wait for
	// each other's name in the unique index, and one of them is then TAKEN.
	err := retryTx(ctx, func() error {
		return s.db.NewUpdate().Model(&row).
			Set("name = ?", newName).
			Set("description = ?", newDesc).
			Set("updated_at = CASE WHEN (s.name, s.description) IS DISTINCT FROM (?::text, ?::text) THEN now() ELSE s.updated_at END", newName, newDesc).
			Where("s.workspace_id = ? AND s.id = ?", ws, id).
			Returning(columnsOf[segmentRow](s.db, "s")).
			Scan(ctx)
	})
	switch {
	case violates(err, "segments_name"):
		taken, err := takenName(ctx, s.db, s.workspaceArg(ws), *p.Name.Value)
		if err != nil {
			return crm.Segment{}, err
		}
		return crm.Segment{}, taken
	case errors.Is(err, sql.ErrNoRows):
		return crm.Segment{}, crm.Errorf(crm.CodeNotFound, crm.Path("id"), "no segment with this ID")
	}
	return row.Segment, err
}

// DeleteSegment deletes a segment; its contacts stay.
//
// It runs in inTx, to be retried: the cascade to the segment's memberships can
// deadlock with a DeleteContacts whose own cascade reaches this segment's counter out
// of lock order (a membership assigned after it locked its segments).
func (s *Store) DeleteSegment(ctx context.Context, ws, id int64) error {
	var members []int // the segment's, which the deletion cascades to
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		members = members[:0]
		err := tx.NewDelete().Model((*segmentRow)(nil)).
			Where("s.workspace_id = ? AND s.id = ?", ws, id).
			Returning("s.contact_count").
			Scan(ctx, &members)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			return crm.Errorf(crm.CodeNotFound, crm.Path("id"), "no segment with this ID")
		}
		return nil
	})
	if err == nil {
		s.noteRemoved("memberships", ws, members[0])
	}
	return err
}

// takenName is the TAKEN refusal of the segment name name in workspace w: it names
// the segment that has it as that one is written ("Dup Test" for "dup test",
// segments_name ignoring case), so that a user sees which one clashes; name itself
// if that segment was renamed or deleted since. db is the transaction the refusal
// happened in, when it is still usable. It reads the segment as SegmentByName does
// (segmentNamed), the workspace named as all statements name it (workspaceArg).
func takenName(ctx context.Context, db bun.IDB, w workspaceArg, name string) (*crm.Error, error) {
	existing, found, err := nameHolder(ctx, db, w, name, 0)
	if err != nil {
		return nil, err
	}
	if !found {
		existing = name
	}
	return takenError(existing), nil
}

// nameHolder returns the name, as written, of the segment of workspace w other than
// except (0: any) that has name ignoring case, if one has.
func nameHolder(ctx context.Context, db bun.IDB, w workspaceArg, name string, except int64) (existing string, found bool, err error) {
	q := segmentNamed(db, (*segmentRow)(nil), w, name).Column("s.name")
	if except != 0 {
		q = q.Where("s.id <> ?", except)
	}
	switch err := q.Scan(ctx, &existing); {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return existing, true, nil
}

// takenError is the TAKEN refusal of a name that the segment named existing has.
func takenError(existing string) *crm.Error {
	return crm.Errorf(crm.CodeTaken, crm.Path("name"), "a segment named %q already exists", existing)
}

// RefuseNewSegment completes refusal, the problems of a new segment named name (as
// normalized) that a caller found before the store ran, with TAKEN when the name is
// taken in workspace ws: a refusal names every problem at once.
func (s *Store) RefuseNewSegment(ctx context.Context, ws int64, name string, refusal crm.Errors) error {
	return withTakenName(ctx, s.db, s.workspaceArg(ws), name, 0, refusal)
}

// withTakenName is the refusal refusal of a segment named name (normalized), led by
// TAKEN when a segment of workspace w other than except (0 for a new segment) has
// that name. A change that succeeds finds a taken name by its insert or update
// failing; one refused for other problems never gets there, so this one look-up is
// made on the way to a refusal only. A name with problems of its own is not looked
// up: they are what is wrong with it. The segment is read as takenName reads it
// (nameHolder).
func withTakenName(ctx context.Context, db bun.IDB, w workspaceArg, name string, except int64, refusal []*crm.Error) error {
	if len(refusal) == 0 { // nothing to complete: never turn a refusal into a success
		return errors.New("store: a refusal without problems")
	}
	for _, e := range refusal {
		if len(e.Field) > 0 && e.Field[0] == "name" {
			return crm.Errors(refusal).Err()
		}
	}
	existing, found, err := nameHolder(ctx, db, w, name, except)
	switch {
	case err != nil:
		return err
	case !found:
		return crm.Errors(refusal).Err()
	}
	return append(crm.Errors{takenError(existing)}, refusal...)
}
