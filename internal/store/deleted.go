package store

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// DeletedContactsRetention is how long the deletions of contacts are listed
// (Query.deletedContacts): the list shows no older one, and the trigger that records
// deletions (migration 20261211000001, which writes it in seconds) prunes up to
// 1,000 older rows of the workspace with each DELETE of its contacts.
const DeletedContactsRetention = 30 * 24 * time.Hour

// deletedContactList names the deletions' list in its cursors.
const deletedContactList listKind = "d"

// deletedContactsByDeletedAt is the deletions' one ordering, over the table's primary
// key (workspace_id, deleted_at, id).
var deletedContactsByDeletedAt = sortKey{list: deletedContactList, name: "deleted_at", column: "deleted_at", cast: "timestamptz", parts: []string{"%[1]s"}, inPrimaryKey: true}

// deletedContactRow is a row of deleted_contacts as a page reads it.
type deletedContactRow struct {
	bun.BaseModel `bun:"table:deleted_contacts,alias:d"`
	ID            int64     `bun:"id"`
	DeletedAt     time.Time `bun:"deleted_at"`
	Probe         bool      `bun:"probe,scanonly"`
}

func (r deletedContactRow) probe() bool { return r.Probe }

// DeletedContactsPage is a page of deleted contacts, with the instant from which
// the list holds every deletion.
type DeletedContactsPage struct {
	Page[crm.DeletedContact]
	// RetainedSince is where the retention cuts the list: DeletedContactsRetention
	// before the page was read. Every deletion at or after it is kept and listed;
	// older ones are not listed, and may have been pruned.
	RetainedSince time.Time
}

// DeletedContacts returns one page of the contacts of workspace ws deleted at or
// after since, oldest first (by deletion time, then id), within the retention: an
// older since lists what the retention kept, from the page's RetainedSince. since is
// compared as PostgreSQL's microseconds: the API rounds a finer one up
// (scalar.UnmarshalDateTime), which keeps "at or after" exact.
//
// The list's cut is the pruning's rule, the recording trigger's (migration
// 20261216000004): each DELETE of the workspace's contacts prunes deletions older
// than the retention before its transaction's start, now() - retention, and the
// statement cuts at its own now() - retention. A prune the statement sees committed
// before the statement began, so its transaction began earlier and its cut is no
// later than the statement's: every deletion at or after the statement's cut is kept
// and listed. RetainedSince is the server's clock read after the statement, less the
// retention: no earlier than the statement's cut (the clocks of the server and the
// database agree, as ContactChanges' cursors assume), later by the statement's
// length at most, and known whatever the page holds (an empty page too).
func (s *Store) DeletedContacts(ctx context.Context, ws int64, since time.Time, args crm.PageArgs) (DeletedContactsPage, error) {
	key := deletedContactsByDeletedAt
	// Year 0, which RFC 3339 writes and PostgreSQL lacks, lists what year 1 does:
	// everything kept.
	if since.Before(minCursorTime) {
		since = minCursorTime
	}
	w := s.workspaceArg(ws)
	rows, nav, err := fetchPage(ctx, func(dst *[]deletedContactRow) *bun.SelectQuery {
		return s.db.NewSelect().Model(dst).
			Where("d.workspace_id = ?", w).
			Where("d.deleted_at >= ?", since).
			Where("d.deleted_at >= now() - ? * interval '1 second'", retentionSeconds())
	}, pageQuery{alias: "d", key: key, dir: crm.Asc, args: args, columns: "d.id, d.deleted_at"})
	if err != nil {
		return DeletedContactsPage{}, err
	}
	// Rounded up to PostgreSQL's microsecond, so that it stays no earlier than the cut.
	retained := time.Now().UTC().Add(-DeletedContactsRetention + time.Microsecond - 1).Truncate(time.Microsecond)
	page := toPage(rows, nav, key, func(r *deletedContactRow) crm.DeletedContact {
		return crm.DeletedContact{ID: r.ID, DeletedAt: r.DeletedAt}
	}, func(c *crm.DeletedContact) (any, int64) { return c.DeletedAt, c.ID })
	return DeletedContactsPage{Page: page, RetainedSince: retained}, nil
}

// retentionSeconds is DeletedContactsRetention in seconds, for "now() - ? * interval
// '1 second'".
func retentionSeconds() int64 { return int64(DeletedContactsRetention / time.Second) }
