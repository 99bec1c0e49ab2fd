package store

import (
	"context"
	"io/fs"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// The indexed expressions, for the test that proves row-level security leaves them
// on their indexes (tenant_test.go).
const (
	ContactSearchExpr = contactSearch
	SegmentSearchExpr = segmentSearch
)

// ContactNameOrderExpr is the expression of the contacts' NAME order past its
// null-first part.
var ContactNameOrderExpr = contactsByName.parts[1]

// ForSearch marks a context's statements as searches for term, for the test of the
// setting that goes with them (tenant_test.go).
var ForSearch = forSearch

// LearnStatistics has s bring its statistics up to date now (the large workspaces,
// and the copy of the search histogram), for the tests of how searches name their
// workspace (large_test.go) and choose their way (searchpages_test.go).
func LearnStatistics(s *Store) {
	s.loadStatistics(s.stats.known.Load())
	// Polled, not a wait for the store's background goroutines: those include the
	// rate limiter's loop, which runs until Close.
	for s.stats.loading.Load() {
		time.Sleep(time.Millisecond)
	}
}

// StatisticsKnown reports whether s has learned the database's statistics, and no
// learning of them is under way in the background (migrate_test.go).
func StatisticsKnown(s *Store) bool {
	return s.stats.known.Load() != nil && !s.stats.loading.Load()
}

// MigrateFrom has s apply the migrations of fsys that the database lacks, each
// attempt of one waiting at most wait for its locks, up to attempts times, pause
// apart (migrate_test.go).
func MigrateFrom(ctx context.Context, s *Store, fsys fs.FS, wait time.Duration, attempts int, pause time.Duration) ([]string, error) {
	t := turns{pause: pause}
	for range attempts {
		t.waits = append(t.waits, wait)
	}
	return s.migrate(ctx, fsys, t, appPrivileges)
}

// OldestTransactions has a transaction of s describe the oldest other transaction
// open, as a migration's error does, before and after between runs
// (migrate_test.go).
func OldestTransactions(ctx context.Context, s *Store, between func()) (before, after string, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback()
	before = oldestTransaction(ctx, tx)
	between()
	// An autovacuum worker that began in between (an ANALYZE of a shared catalog, which
	// runs in any database: "autovacuum: ANALYZE pg_catalog.pg_database", in a make
	// test) is older than what between began until it ends, milliseconds later.
	for range 100 {
		if after = oldestTransaction(ctx, tx); !strings.Contains(after, `"autovacuum: `) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return before, after, nil
}

// SearchesPastIndex reports whether s leaves workspace ws out of the trigram index in
// a search of table for term (large.go).
func SearchesPastIndex(s *Store, table string, ws int64, term string) bool {
	return s.searchesPastIndex(table, ws, term)
}

// SearchSQL returns the statements of a contact search and a segment search for term
// in workspace ws, as s writes them.
func SearchSQL(s *Store, ws int64, term string) (contacts, segments string) {
	var c []contactRow
	var sg []segmentRow
	return s.contactQuery(&c, s.workspaceArg(ws), crm.ContactQuery{Search: term}).String(),
		s.segmentQuery(&sg, ws, crm.SegmentQuery{Search: term}).String()
}

// ContactsPageSQL returns the statement of a page of contacts, as s writes it, for
// the test of how a page of members is read (membersfirst_test.go).
func ContactsPageSQL(s *Store, ws int64, cq crm.ContactQuery, args crm.PageArgs) (string, error) {
	q, err := contactsPageQuery(s, ws, cq, args)
	if err != nil {
		return "", err
	}
	return q.String(), nil
}

// contactsPageQuery is the query of ContactsPageSQL.
func contactsPageQuery(s *Store, ws int64, cq crm.ContactQuery, args crm.PageArgs) (*bun.SelectQuery, error) {
	key, ok := contactKeys[cq.Order.Field]
	if !ok {
		key = contactsByCreatedAt
	}
	var dst []contactRow
	return s.contactsPageSelect(&dst, s.workspaceArg(ws), cq, pageQuery{alias: "c", key: key, dir: cq.Order.Direction, args: args})
}

// MembershipsOfContactsSQL returns the statement that reads the memberships of a
// page of contacts for their segments from the catalog (catalog.go), as s writes it.
func MembershipsOfContactsSQL(s *Store, ws int64, contactIDs []int64) string {
	return s.membershipsOfContactsSQL(ws, contactIDs)
}

// ContactsWithSegmentsSQL returns the statement of a page of contacts with each
// contact's segment IDs (ContactsWithCatalogSegments), as s writes it.
func ContactsWithSegmentsSQL(s *Store, ws int64, cq crm.ContactQuery, args crm.PageArgs) (string, error) {
	q, err := contactsPageQuery(s, ws, cq, args)
	if err != nil {
		return "", err
	}
	return s.withSegmentIDs(ws)(q).String(), nil
}

// CatalogMaxSegments is the most segments a catalog holds.
const CatalogMaxSegments = catalogMaxSegments

// CatalogHeld says what s holds of workspace ws's segment catalog: its version,
// its segments, and whether it had too many to hold; held is false when s holds none.
func CatalogHeld(s *Store, ws int64) (version int64, segments int, large, held bool) {
	cat := s.catalogs.get(ws)
	if cat == nil {
		return 0, 0, false, false
	}
	return cat.version, len(cat.segments), cat.large, true
}

// MembershipsSQL returns the statements that add and remove the memberships of
// contacts in segments, as s writes them, for the test of their plans
// (memberships_test.go).
func MembershipsSQL(s *Store, ws int64, contacts, segments []int64) (insert, remove string) {
	segs, cons, w := sortedUnique(segments), sortedUnique(contacts), s.workspaceArg(ws)
	return membershipsQuery(s.db, insertMembershipsSQL, w, segs, cons).String(),
		membershipsQuery(s.db, deleteMembershipsSQL, w, segs, cons).String()
}

// ContactsOfSegmentsSQL returns the statement of ContactsOfSegments, as s writes it.
func ContactsOfSegmentsSQL(s *Store, ws int64, segmentIDs []int64, search string, order crm.ContactOrder, args crm.PageArgs) (string, error) {
	q, _, err := s.contactsOfSegmentsSelect(s.workspaceArg(ws), segmentIDs, crm.ContactQuery{Search: search, Order: order}, args)
	if err != nil {
		return "", err
	}
	return q.String(), nil
}

// ContactsOfSegmentsQuerySQL is ContactsOfSegmentsSQL of a whole ContactQuery (its
// filter too).
func ContactsOfSegmentsQuerySQL(s *Store, ws int64, segmentIDs []int64, cq crm.ContactQuery, args crm.PageArgs) (string, error) {
	q, _, err := s.contactsOfSegmentsSelect(s.workspaceArg(ws), segmentIDs, cq, args)
	if err != nil {
		return "", err
	}
	return q.String(), nil
}

// WaitAnalyzed waits until s has no analysis of new workspaces to run, nor
// statistics to learn (analyze.go).
func WaitAnalyzed(s *Store) { s.background.running.Wait() }

// InTx runs fn in a transaction of s as the store's writes do (inTx), for the test of
// a transaction whose connection turns out broken (tenant_test.go).
func InTx(s *Store, ctx context.Context, fn func(bun.Tx) error) error {
	return s.inTx(ctx, func(_ context.Context, tx bun.Tx) error { return fn(tx) })
}

// CountContactsSQL returns the statement that CountContacts (limit 0) or
// CountContactsUpTo (limit) sends for cq, a search or field conditions, as s
// writes it.
func CountContactsSQL(s *Store, ws int64, cq crm.ContactQuery, limit int) string {
	w := s.workspaceArg(ws)
	if s.searchesAudience(cq) {
		return s.searchedAudienceCount(w, cq, limit).String()
	}
	return s.conditionedCount(w, cq, limit).String()
}

// SegmentCountsSQL returns the statement of CountContactsOfSegments with a search or
// field conditions, as s writes it.
func SegmentCountsSQL(s *Store, ws int64, segmentIDs []int64, cq crm.ContactQuery) string {
	q, err := s.segmentCountsSelect(s.workspaceArg(ws), segmentIDs, cq)
	if err != nil {
		panic(err)
	}
	return q.String()
}
