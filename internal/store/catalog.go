package store

import (
	"bytes"
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/segments/segments/internal/crm"
)

// Segment catalogs.
//
// A workspace's segment catalog is its segments as only segment CRUD changes them:
// their IDs, names, descriptions and creation times, in name order. Their counts and
// update times change with every membership; the catalog leaves them out. Each change
// to a catalog bumps the workspace's version in segment_catalog_versions, in the
// change's transaction (migration 20261203000010).
//
// The contacts table of the dashboard shows each contact's segments by name. Read
// with the segments, a page of 50 contacts looked up its 170 segments by key and
// sorted them: 1.14 ms of PostgreSQL's 1.6 ms for the page (pgbench, the benchmark's
// dataset). The store keeps each workspace's catalog in memory instead, and reads the
// page's memberships with the catalog's version, in the page's own statement
// (ContactsWithCatalogSegments) or in one of their own (CatalogSegmentsOfContacts,
// 0.35 ms): only a newer version than the one held, or a minute's age, reads the
// catalog again. The version comes from the database
// with every page, so a change made through another server, or by SQL, shows at the
// next page of every server.

const (
	// catalogMaxSegments is the most segments a workspace's catalog may hold. The
	// contacts of a workspace with more have their segments read with the segments
	// (SegmentsOfContacts).
	catalogMaxSegments = 10_000
	// catalogMaxAge is how long a catalog is used before it is read again, whatever
	// its version: what the versions cannot tell (the triggers disabled, a restore
	// that brought back older versions) lasts no longer. Reading the 1,000
	// segments of the benchmark's workspace takes 0.5 ms.
	catalogMaxAge = time.Minute
	// catalogCapacity is the number of segments the catalogs of all workspaces hold
	// together (some 200 bytes each); the least recently read is dropped first.
	catalogCapacity = 200_000
)

// segmentCatalog is one workspace's catalog at one version. Read, never changed,
// once made: requests share it without a lock.
type segmentCatalog struct {
	ws       int64
	version  int64
	segments map[int64]catalogEntry // by ID
	// large says the workspace had more than catalogMaxSegments segments (segments
	// is then nil).
	large   bool
	checked time.Time // when it was read
}

// catalogEntry is a segment of a catalog with its place in the name order.
type catalogEntry struct {
	segment *crm.Segment
	rank    int
}

// catalogs holds the segment catalogs of the workspaces read most recently.
type catalogs struct {
	mu          sync.Mutex
	capacity    int // segments
	held        int // segments, in all catalogs
	byWorkspace map[int64]*list.Element
	recent      list.List // of *segmentCatalog, the most recently read first
}

// get returns the catalog held for workspace ws, nil if none.
func (c *catalogs) get(ws int64) *segmentCatalog {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byWorkspace[ws]
	if !ok {
		return nil
	}
	c.recent.MoveToFront(e)
	return e.Value.(*segmentCatalog)
}

// put holds cat for its workspace, unless a catalog of a newer version is held
// already, read meanwhile by a concurrent request, and returns the one held. A newer
// version read before cat was (a restore brought back older versions) gives way:
// kept, it would be read again at every page and never replaced.
func (c *catalogs) put(cat *segmentCatalog) *segmentCatalog {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byWorkspace == nil {
		c.byWorkspace = map[int64]*list.Element{}
	}
	if e, ok := c.byWorkspace[cat.ws]; ok {
		held := e.Value.(*segmentCatalog)
		if held.version > cat.version && !held.checked.Before(cat.checked) {
			return held
		}
		c.held -= len(held.segments)
		c.recent.Remove(e)
	}
	c.byWorkspace[cat.ws] = c.recent.PushFront(cat)
	c.held += len(cat.segments)
	capacity := cmp.Or(c.capacity, catalogCapacity)
	for c.held > capacity && c.recent.Len() > 1 {
		oldest := c.recent.Back()
		dropped := c.recent.Remove(oldest).(*segmentCatalog)
		delete(c.byWorkspace, dropped.ws)
		c.held -= len(dropped.segments)
	}
	return cat
}

// CatalogSegmentsOfContacts returns, for each of the given contacts, the segments it
// is in, ordered by name, as SegmentsOfContacts does, but from the workspace's
// segment catalog: each segment's ID, name, description and creation time are as
// current as SegmentsOfContacts's, and its ContactCount and UpdatedAt are zero (only
// when the workspace has too many segments for a catalog are they filled in). A
// contact in no segment is left out. A segment is shared by the contacts in it, and
// by requests: read, never change.
func (s *Store) CatalogSegmentsOfContacts(ctx context.Context, ws int64, contactIDs []int64) (map[int64][]*crm.Segment, error) {
	cat := s.catalogs.get(ws)
	if cat.tooLarge() {
		return s.SegmentsOfContacts(ctx, ws, contactIDs)
	}
	version, memberships, err := s.membershipsOfContacts(ctx, ws, contactIDs)
	if err != nil {
		return nil, err
	}
	return s.catalogSegments(ctx, ws, cat, version, memberships, contactIDs)
}

// ContactsWithCatalogSegments returns one page of the contacts cq selects, as
// Contacts does, with the segments of each of its contacts, as
// CatalogSegmentsOfContacts does, in one statement where the two take two: the
// page's statement reads each contact's segment IDs and the catalog's version too.
// The contacts table of the dashboard, 50 contacts with their segments by name:
// 0.56 ms of PostgreSQL and pgbench per page, against 0.75 for the two statements
// (pgbench, 1M contacts).
func (s *Store) ContactsWithCatalogSegments(ctx context.Context, ws int64, cq crm.ContactQuery, args crm.PageArgs) (Page[crm.Contact], map[int64][]*crm.Segment, error) {
	cat := s.catalogs.get(ws)
	if cat.tooLarge() {
		page, err := s.Contacts(ctx, ws, cq, args)
		if err != nil {
			return page, nil, err
		}
		segments, err := s.SegmentsOfContacts(ctx, ws, crm.ContactIDs(page.Items))
		return page, segments, err
	}
	page, rows, err := s.contactRows(ctx, ws, cq, args, s.withSegmentIDs(ws))
	if err != nil || len(rows) == 0 {
		return page, nil, err
	}
	n := 0
	for _, r := range rows {
		n += len(r.SegmentIDs)
	}
	memberships := make([]membership, 0, n)
	for _, r := range rows {
		for _, seg := range r.SegmentIDs {
			memberships = append(memberships, membership{contact: r.ID, segment: seg})
		}
	}
	segments, err := s.catalogSegments(ctx, ws, cat, rows[0].CatalogVersion, memberships, crm.ContactIDs(page.Items))
	return page, segments, err
}

// withSegmentIDs returns the statement of a page of workspace ws's contacts with the
// segment IDs of each of its rows (segment_ids, an idList) and the version of the
// workspace's catalog (catalog_version, from an InitPlan: in the page's snapshot),
// given the statement of the page. Each contact's segments are a lookup by both
// columns of memberships_contact, made for the rows the page returns (and the row
// past its end, and the probe), never for the rows it reads on the way.
func (s *Store) withSegmentIDs(ws int64) func(page *bun.SelectQuery) *bun.SelectQuery {
	w := s.workspaceArg(ws)
	return func(page *bun.SelectQuery) *bun.SelectQuery {
		return s.db.NewSelect().TableExpr("(?) AS p", page).ColumnExpr("p.*").
			ColumnExpr("coalesce((SELECT version FROM segment_catalog_versions WHERE workspace_id = ?), 0) AS catalog_version", w).
			ColumnExpr("ARRAY(SELECT x.segment_id FROM memberships AS x WHERE x.workspace_id = ? AND x.contact_id = p.id)::text AS segment_ids", w)
	}
}

// idList is the text of a bigint[] ({1,2,3}), cast to text in the statement so that
// pgx hands it over unconverted (pgtype.BytesScanner): its own decoding of an array
// makes a string of every element, and a string of the whole through sql.Scanner,
// 1,150 allocations for the segment IDs of a page of 50 contacts.
type idList []int64

// ScanBytes implements pgtype.BytesScanner.
func (l *idList) ScanBytes(text []byte) error {
	if text == nil {
		*l = nil
		return nil
	}
	if len(text) < 2 || text[0] != '{' || text[len(text)-1] != '}' {
		return fmt.Errorf("store: %q is not the text of a bigint[]", text)
	}
	text = text[1 : len(text)-1]
	ids := make(idList, 0, bytes.Count(text, comma)+1)
	for len(text) > 0 {
		field, rest, _ := bytes.Cut(text, comma)
		id, err := parseID(field)
		if err != nil {
			return fmt.Errorf("store: the bigint[] {%s}: %w", text, err)
		}
		ids, text = append(ids, id), rest
	}
	*l = ids
	return nil
}

var comma = []byte{','}

// parseID parses a non-negative decimal int64, as strconv.ParseInt would without
// a string to make of it.
func parseID(digits []byte) (int64, error) {
	if len(digits) == 0 {
		return 0, errors.New("an empty ID")
	}
	var id int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%q is not an ID", digits)
		}
		if id > (math.MaxInt64-int64(d-'0'))/10 {
			return 0, fmt.Errorf("%q is out of an ID's range", digits)
		}
		id = id*10 + int64(d-'0')
	}
	return id, nil
}

// catalogSegments returns, for each of the given contacts, its segments among
// memberships (read at the catalog's version), from the catalog held (cat, nil if
// none), or from one read again when that one is older or too old.
func (s *Store) catalogSegments(ctx context.Context, ws int64, cat *segmentCatalog, version int64, memberships []membership, contactIDs []int64) (map[int64][]*crm.Segment, error) {
	if len(memberships) == 0 {
		return nil, nil
	}
	for reread := false; ; reread = true {
		// Another version than the memberships': one of the two is older, and a
		// catalog newer than its memberships is as good (it may lack a segment
		// deleted since, whose memberships are gone too).
		if reread || cat == nil || cat.version < version || cat.old() {
			var err error
			if cat, err = s.readCatalog(ctx, ws); err != nil {
				return nil, err
			}
		}
		if cat.large {
			return s.SegmentsOfContacts(ctx, ws, contactIDs)
		}
		// A segment the catalog lacks at the memberships' version cannot be: the
		// triggers bump the version with every new segment. Unless they were
		// bypassed, so the catalog is read once more, then the segment left out.
		out, complete := cat.segmentsOf(memberships)
		if complete || reread || cat.version > version {
			return out, nil
		}
	}
}

// tooLarge says whether cat, if held (not nil), says its workspace has too many
// segments for a catalog, and is recent enough to be believed.
func (cat *segmentCatalog) tooLarge() bool { return cat != nil && cat.large && !cat.old() }

// old says whether cat is older than catalogMaxAge.
func (cat *segmentCatalog) old() bool { return time.Since(cat.checked) > catalogMaxAge }

// membership is a contact's membership of a segment.
type membership struct {
	contact, segment int64
}

// membershipsOfContacts returns the memberships of the given contacts, and the version
// of the workspace's catalog in the same snapshot (0 when they have none).
func (s *Store) membershipsOfContacts(ctx context.Context, ws int64, contactIDs []int64) (int64, []membership, error) {
	query := s.membershipsOfContactsSQL(ws, contactIDs)
	var version int64
	memberships := make([]membership, 0, 8*len(contactIDs))
	var m membership
	dests := []any{&version, &m.contact, &m.segment}
	err := queryDirect(ctx, s.db, nil, query, func(row pgx.Rows) error {
		if err := row.Scan(dests...); err != nil {
			return err
		}
		memberships = append(memberships, m)
		return nil
	})
	return version, memberships, err
}

// membershipsOfContactsSQL is the statement of membershipsOfContacts. Each contact is
// a lookup of its own by both columns of memberships_contact (LATERAL, kept out of
// the join by OFFSET 0), as in segments_of_contacts. As one condition on the array,
// PostgreSQL read every membership of a workspace it took for a few rows (a new one
// beside many small ones, or one it never analyzed) and tested each against the
// array: 10,000 for a page of 50 in a workspace of 2,000 contacts. The lookups cost
// 0.05 ms more at 1M contacts (pgbench: 0.35 against 0.29 ms).
func (s *Store) membershipsOfContactsSQL(ws int64, contactIDs []int64) string {
	w := s.workspaceArg(ws)
	return s.db.QueryGen().FormatQuery(`SELECT coalesce((SELECT version FROM segment_catalog_versions WHERE workspace_id = ?), 0), c.id, x.segment_id
  FROM (SELECT DISTINCT unnest(?::bigint[])) AS c(id),
       LATERAL (SELECT x.segment_id FROM memberships AS x WHERE x.workspace_id = ? AND x.contact_id = c.id OFFSET 0) AS x`,
		w, pgdialect.Array(contactIDs), w)
}

// readCatalog reads workspace ws's catalog, holds it and returns it.
func (s *Store) readCatalog(ctx context.Context, ws int64) (*segmentCatalog, error) {
	w := s.workspaceArg(ws)
	// The version and the segments in one snapshot: the catalog is the one its
	// version names. The LEFT JOIN keeps the version of a workspace with none.
	query := s.db.QueryGen().FormatQuery(`SELECT v.version, coalesce(g.id, 0), coalesce(g.name, ''), g.description, coalesce(g.created_at, 'epoch')
  FROM (SELECT coalesce((SELECT version FROM segment_catalog_versions WHERE workspace_id = ?), 0) AS version) AS v
  LEFT JOIN LATERAL (SELECT id, name, description, created_at FROM segments WHERE workspace_id = ? ORDER BY lower(name), id LIMIT ?) AS g ON true`,
		w, w, catalogMaxSegments+1)
	cat := &segmentCatalog{ws: ws, segments: map[int64]catalogEntry{}, checked: time.Now()}
	var seg crm.Segment
	dests := []any{&cat.version, &seg.ID, &seg.Name, &seg.Description, &seg.CreatedAt}
	err := queryDirect(ctx, s.db, nil, query, func(row pgx.Rows) error {
		seg = crm.Segment{WorkspaceID: ws}
		if err := row.Scan(dests...); err != nil {
			return err
		}
		if seg.ID != 0 {
			held := seg
			cat.segments[seg.ID] = catalogEntry{segment: &held, rank: len(cat.segments)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(cat.segments) > catalogMaxSegments {
		cat.segments, cat.large = nil, true
	}
	return s.catalogs.put(cat), nil
}

// segmentsOf returns each contact's segments among memberships, in name order, and
// whether the catalog held all of them.
//
// The page's statements read each contact's memberships together, so each contact's
// are sorted on their own, an insertion sort of its five or so: one sort of the
// page's 250 by contact and rank cost 2.5% of a W3 request's CPU at saturation.
// Memberships not grouped by contact are grouped first.
func (cat *segmentCatalog) segmentsOf(memberships []membership) (map[int64][]*crm.Segment, bool) {
	type run struct {
		contact  int64
		from, to int // the contact's entries in found
	}
	found := make([]catalogEntry, 0, len(memberships))
	var runs []run
	for i := 0; i < len(memberships); {
		contact, from := memberships[i].contact, len(found)
		for ; i < len(memberships) && memberships[i].contact == contact; i++ {
			e, ok := cat.segments[memberships[i].segment]
			if !ok {
				continue
			}
			found = append(found, e)
			j := len(found) - 1
			for ; j > from && found[j-1].rank > e.rank; j-- {
				found[j] = found[j-1]
			}
			found[j] = e
		}
		if len(found) > from {
			runs = append(runs, run{contact, from, len(found)})
		}
	}
	// Each contact's segments are a window of one array, full (len = cap), so that
	// an append copies.
	all := make([]*crm.Segment, len(found))
	for i, e := range found {
		all[i] = e.segment
	}
	out := make(map[int64][]*crm.Segment, len(runs))
	for _, r := range runs {
		if _, twice := out[r.contact]; twice {
			grouped := slices.Clone(memberships)
			slices.SortStableFunc(grouped, func(a, b membership) int { return cmp.Compare(a.contact, b.contact) })
			return cat.segmentsOf(grouped)
		}
		out[r.contact] = all[r.from:r.to:r.to]
	}
	return out, len(found) == len(memberships)
}
