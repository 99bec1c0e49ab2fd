package store

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// matchingContacts are the contacts of a membership change that cq selects, by its
// Search, Segments and Conditions (its Order is not used): the conditions of contactQuery, the
// statement of the contacts table's pages and counts, so that the change applies to
// exactly the contacts the table shows.
//
// One statement reads them in id order and locks each with keepContacts as it reads
// it, as lockContacts locks given IDs: the same lock in the same order, first of the
// change's locks, so the change keeps the lock order of every writer of memberships.
// Before it locks any, it waits for the deletions of the workspace's contacts that
// came before it (contactTurnsKey).
// The statement is the selection's one snapshot; a contact deleted by a transaction
// it waited for is left out, not an error (it no longer matches), and one that starts
// or stops matching after the statement (a rename) is not seen. The IDs come back
// to the change, which passes them to insertMemberships or deleteMemberships as
// given IDs are: so those statements, their plans and their retry stay as they are.
// At the cap the IDs are 100,000 rows back and an array of 0.7 MB out, a few tens
// of milliseconds beside the seconds of the insert (crm.MaxMatchedMemberships).
//
// The statement reads at most one contact more than the cap (matchedCap): over it,
// the change is TOO_MANY at contactsMatching, and a second statement counts the
// selection for the message.
func (s *Store) matchingContacts(cq crm.ContactQuery) contactsToChange {
	sel := crm.ContactQuery{Search: cq.Search, Segments: cq.Segments, Conditions: cq.Conditions}
	return func(ctx context.Context, tx bun.Tx, w workspaceArg, segments int) ([]int64, error) {
		limit := matchedCap(segments)
		var rows []contactRow
		ids := []int64{}
		err := s.contactQuery(&rows, w, sel).Conn(tx).Where(contactTurnPassed(w.id)).
			ColumnExpr("c.id").OrderExpr("c.id").Limit(int64(limit)+1).For("KEY SHARE OF c").
			Scan(ctx, &ids)
		if err != nil || len(ids) <= limit {
			return ids, err
		}
		n, err := s.contactQuery(&rows, w, sel).Conn(tx).Count(ctx)
		if err != nil {
			return nil, err
		}
		if limit == crm.MaxMatchedContacts {
			return nil, crm.Errorf(crm.CodeTooMany, crm.Path("contactsMatching"),
				"contactsMatching selects %d contacts, the maximum is %d", n, crm.MaxMatchedContacts)
		}
		return nil, crm.Errorf(crm.CodeTooMany, crm.Path("contactsMatching"),
			"contactsMatching selects %d contacts, the maximum for %d segments is %d (%d memberships)",
			n, segments, limit, crm.MaxMatchedMemberships)
	}
}

// matchedCap is the most contacts a selection may hold in a change of segments
// segments: crm.MaxMatchedContacts, and crm.MaxMatchedMemberships in all.
func matchedCap(segments int) int {
	return min(crm.MaxMatchedContacts, crm.MaxMatchedMemberships/max(segments, 1))
}
