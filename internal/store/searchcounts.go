package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/segments/segments/internal/crm"
)

// A count of a search's matches in a membership filter's audience.
//
// Written as a search's count and a filter's conditions (contactQuery), PostgreSQL
// finds the matches (the trigram index) and tests each for the filter's segments in
// their memberships: where it expects many matches, by hashing every membership of
// the listed segments, one row each (a segment of 100,000 members: 100,000 rows,
// and the hash of ten spills to disk), else by a lookup per match and segment. At 1M
// contacts, "sharma" (39,749 matches) in none of the 10 segments of 100,000 hashed
// 1M memberships; in any of 3 of them, 300,000.
//
// The segments' bitmaps (audienceChunksSQL) hold the same answer in a few dozen rows:
// the audience, one bit a contact, one row per chunk of 32,768 contact IDs (31
// chunks at 1M contacts, however many segments are listed). So the count reads them
// once, hashes the audience's chunks, and tests each match's bit (a hash probe and
// get_bit: well under a microsecond), whatever the segments hold.
//
// Where the filter's candidates are few against the matches (any of a small
// segment, all of one), reading the matches costs more than reading the candidates:
// those (the Any segments' members, or the smallest All segment's, whichever are
// fewer by the segments' counters) are then read first, by primary key, and each is
// tested for the search and for its bit, as a page reads its members first
// (membersPerMatch, a member costs four matches). The statement chooses by the
// search's estimated share (searchShare), once, and runs only the way chosen.
// Without an Any or All list (None alone), there are no candidates: the matches
// come first. Where the estimate says the matches are fewer than the chunks to read
// (chunkLookups), each is looked up in the memberships instead, as PostgreSQL plans
// the plain statement, which the statement then runs; and a term that no entry of
// the search histogram holds is sent the plain statement alone (contactsPageSelect's
// reason), spared the larger one's planning.

// countSearchedAudience returns the number of contacts that cq, a search with a
// membership filter, selects, counted up to limit+1 when limit > 0.
func (s *Store) countSearchedAudience(ctx context.Context, ws workspaceArg, cq crm.ContactQuery, limit int) (int, error) {
	var n int
	err := s.searchedAudienceCount(ws, cq, limit).Scan(ctx, &n)
	return n, err
}

// audienceBit is the condition that the contact c is in the audience whose chunks the
// CTE audience holds (audienceChunksSQL), joined on c's chunk (audienceJoin): a
// contact of a chunk without a row is in it only when the filter has neither an Any
// nor an All list. Its placeholder takes that.
const (
	audienceJoin = "LEFT JOIN audience ON audience.chunk = c.id >> 15"
	audienceBit  = "coalesce(get_bit(audience.bits, (c.id & 32767)::int) = 1, ?)"
)

// searchedAudienceCount returns the statement of countSearchedAudience: one row,
// the count.
//
//	WITH audience AS MATERIALIZED (the filter's audience: its chunks' bits),
//	     count_plan AS (SELECT looked_up: the matches are fewer than the chunks
//	                    (audienceLookedUp); members_first: the candidates are
//	                    fewer than the matches by membersPerMatch)
//	SELECT count(*) FROM (the matches in the audience, unless either
//	                      UNION ALL
//	                      the candidates that match, in the audience, if
//	                      members_first and not looked_up
//	                      UNION ALL
//	                      the plain statement's rows, if looked_up) AS counted
//
// The audience is joined on the left (audienceJoin), so that PostgreSQL hashes its
// chunks or looks them up per contact, and never reads the contacts again per chunk.
func (s *Store) searchedAudienceCount(ws workspaceArg, cq crm.ContactQuery, limit int) *bun.SelectQuery {
	f := cq.Segments
	all := unique(f.All)
	missingIn := f.Any == nil && len(all) == 0
	branch := func() *bun.SelectQuery {
		var rows []contactRow
		q := s.contactQuery(&rows, ws, crm.ContactQuery{Search: cq.Search}).ColumnExpr("1").
			Join(audienceJoin).Where(audienceBit, missingIn)
		if limit > 0 {
			q = q.Limit(int64(limit) + 1)
		}
		return q
	}
	q := s.db.NewSelect().
		WithQuery(bun.NewWithQuery("audience", s.db.NewRaw(audienceChunksSQL, audienceArgs(ws, f)...)).Materialized()).
		ColumnExpr("count(*)")
	share, shareArgs := searchShare(cq.Search)
	matchesRead := matchesRead(cq.Search, "share", "n", 1)
	// The lookups of the plain statement: one per match and condition (an All list
	// tests each of its segments).
	conditions := len(all)
	if f.Any != nil {
		conditions++
	}
	if len(f.None) > 0 {
		conditions++
	}
	lookedUpSQL, lookedUpArgs := audienceLookedUp("share", "n", conditions, ws, slices.Concat(f.Any, all, f.None))
	sizes := func(k string, kArgs []any) *bun.SelectQuery {
		return s.db.NewSelect().
			TableExpr("(SELECT "+k+"::float8 AS k, (SELECT coalesce("+share+", 1)) AS share, ("+allContactsSQL+")::float8 AS n OFFSET 0) AS sizes",
				slices.Concat(kArgs, shareArgs, []any{ws})...).
			ColumnExpr(lookedUpSQL+" AS looked_up", lookedUpArgs...)
	}
	const lookedUp = "(SELECT looked_up FROM count_plan)"
	var unused []contactRow
	plain := s.contactQuery(&unused, ws, cq).ColumnExpr("1").Where(lookedUp)
	if limit > 0 {
		plain = plain.Limit(int64(limit) + 1)
	}
	if missingIn { // no candidates: the matches come first
		return q.With("count_plan", sizes("'Infinity'", nil)).
			TableExpr("((?) UNION ALL (?)) AS counted", branch().Where("NOT "+lookedUp), plain)
	}
	// The candidates: the members of the Any segments, or of the smallest All
	// segment, whichever are fewer (anyListFirst).
	smallestAll := "ARRAY(SELECT s.id FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?) ORDER BY s.contact_count, s.id LIMIT 1)"
	var k, segments string
	var kArgs, segmentArgs []any
	anyIDs, allIDs := pgdialect.Array(f.Any), pgdialect.Array(all)
	const sum, least = "(SELECT coalesce(sum(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?))",
		"(SELECT coalesce(min(s.contact_count), 0) FROM segments s WHERE s.workspace_id = ? AND s.id = ANY(?))"
	switch {
	case len(all) == 0:
		k, kArgs = sum, []any{ws, anyIDs}
		segments, segmentArgs = "?::bigint[]", []any{anyIDs}
	case f.Any == nil:
		k, kArgs = least, []any{ws, allIDs}
		segments, segmentArgs = smallestAll, []any{ws, allIDs}
	default:
		anyFirst, anyFirstArgs := anyListFirst(ws, f.Any, all)
		k, kArgs = "least("+sum+", "+least+")", []any{ws, anyIDs, ws, allIDs}
		segments = "(CASE WHEN " + anyFirst + " THEN ?::bigint[] ELSE " + smallestAll + " END)"
		segmentArgs = slices.Concat(anyFirstArgs, []any{anyIDs, ws, allIDs})
	}
	plan := sizes(k, kArgs).ColumnExpr(fmt.Sprintf("k * %d <= %s AS members_first", membersPerMatch, matchesRead))
	const membersFirst = "(SELECT members_first FROM count_plan)"
	matches := branch().Where("NOT " + lookedUp + " AND NOT " + membersFirst)
	members := branch()
	members = contactsIn(members, ws, "ARRAY(SELECT m.contact_id FROM memberships m WHERE m.workspace_id = ? AND m.segment_id = ANY("+segments+"))",
		append([]any{ws}, segmentArgs...)).Where("NOT " + lookedUp + " AND " + membersFirst)
	return q.With("count_plan", plan).TableExpr("((?) UNION ALL (?) UNION ALL (?)) AS counted", matches, members, plain)
}

// audienceLookedUp is the SQL of whether looking a search's matches up in the
// memberships, one lookup per match and condition (conditions), costs less than
// reading the audience's chunks, those of the segments listed (audienceChunksSQL):
// share and n are the SQL of the search's share and of the workspace's contacts. Its
// placeholders take its arguments, returned with it.
func audienceLookedUp(share, n string, conditions int, ws workspaceArg, listed []int64) (string, []any) {
	return fmt.Sprintf("%s * %s * %d <= (SELECT count(*) FROM segment_bitmaps b WHERE b.workspace_id = ? AND b.segment_id = ANY(?)) * %d",
		share, n, conditions, chunkLookups), []any{ws, pgdialect.Array(listed)}
}

// chunkLookups is what reading a chunk of a segment's bitmap for an audience costs
// (decompressed and aggregated, about 5 µs at 1M contacts), in lookups of a
// contact's memberships (about 2.6 µs).
const chunkLookups = 2
