package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSearchCountsReadTheAudienceBits proves how a search's count in a membership
// filter's audience is read (searchcounts.go), in a workspace of 6,000 contacts
// whose IDs span three of the bitmaps' chunks: "sharma" is in 2,400 of them, and
// segments of 2,000, 1,500 and 2,572 members (big), 300 (mid) and 30 (small) split
// them every which way. Every count and count up to a limit, of common terms, rare
// ones, one without a trigram and digits, in any, all and none of those segments,
// alone and together, with repeated IDs, empty lists, IDs of no segment and of
// another workspace's, is what the plain SQL counts, before the contacts are
// analyzed and after. Once they are, "sharma" in a filter of the big segments reads
// no membership (the audience's bits instead: the statement before hashed or looked
// up the segments' memberships), and in the small segment reads its 30 members first,
// not the 2,400 matches.
//
// Pages of a search in none of some segments, which sort the matches when the walk
// falls short (searchPageSelect: by name, the 3,600 "Name"s come before the first
// "Ravi Sharma"), test None the same way: every page, forward and backward, in both
// directions by name and by creation, is what sorting the matches gives, and the
// first page of "sharma" by name in none of the big segments reads no membership
// (the statement before hashed theirs).
func TestSearchCountsReadTheAudienceBits(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 2})
	db := owner.DB()
	ws, _ := storetest.Workspace(t, owner)
	other, _ := storetest.Workspace(t, owner)
	// IDs 13 apart from the start of a chunk: 6,000 of them span 78,000, three chunks.
	const base = int64(1) << 35
	storetest.Exec(t, db, `INSERT INTO contacts (workspace_id, id, phone, name, email) OVERRIDING SYSTEM VALUE
		SELECT $1, $2::bigint + g * 13, '+9177' || lpad(g::text, 8, '0'),
		       CASE WHEN g % 5 < 2 THEN 'Ravi Sharma ' ELSE 'Name ' END || g,
		       CASE WHEN g IN (17, 2500, 5999) THEN 'qq7z.' ELSE '' END || 'c' || g || '@example.com'
		FROM generate_series(0, 5999) AS g`, ws.ID, base)
	segment := func(name, cond string) int64 {
		seg, _ := segmentWhere(t, owner, ws.ID, name, "("+cond+")")
		return seg.ID
	}
	g := fmt.Sprintf("((id - %d) / 13)", base)
	big1 := segment("big 1", g+" % 3 = 0")
	big2 := segment("big 2", g+" % 4 = 0")
	big3 := segment("big 3", g+" % 7 < 3")
	mid := segment("mid", g+" % 20 = 3")
	small := segment("small", g+" % 200 = 7")
	otherUp, err := owner.UpsertContacts(ctx, other.ID, []crm.ContactInput{{Phone: "+919800083999"}})
	if err != nil {
		t.Fatal(err)
	}
	otherSeg, err := owner.CreateSegment(ctx, other.ID, crm.NewSegment{Name: "other", ContactIDs: []int64{otherUp.Contacts[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	const unknown = int64(1) << 50
	wctx := store.WithWorkspace(ctx, ws.ID)

	filters := []crm.MembershipFilter{
		{Any: []int64{big1}},
		{Any: []int64{big1, big2, big3}},
		{All: []int64{big1, big2}},
		{All: []int64{big1, big2, big3, mid, big1}},
		{None: []int64{big1}},
		{None: []int64{big1, big2, big3}},
		{Any: []int64{small}},
		{Any: []int64{small, mid}},
		{Any: []int64{big1, big2}, None: []int64{big3}},
		{Any: []int64{big1}, All: []int64{mid}},
		{Any: []int64{mid}, All: []int64{big1, big2}},
		{Any: []int64{small, mid}, None: []int64{big1, big2, big3}},
		{All: []int64{big1, small}},
		{All: []int64{big2}, None: []int64{mid}},
		{Any: []int64{}},
		{Any: []int64{}, None: []int64{big1}},
		{Any: []int64{unknown}},
		{Any: []int64{big1, unknown}},
		{All: []int64{big1, unknown}},
		{None: []int64{unknown}},
		{Any: []int64{otherSeg.ID}},
		{None: []int64{otherSeg.ID, big2}},
	}
	terms := []string{"sharma", "ravi", "name", "qq7z", "i s", "0123", "example"}
	// What the plain SQL counts.
	truth := func(term string, f crm.MembershipFilter) int {
		t.Helper()
		return storetest.Column[int](t, db, `SELECT count(*) FROM contacts c
			WHERE c.workspace_id = $1 AND c.search_text LIKE '%' || $2 || '%'
			  AND (NOT $3 OR EXISTS (SELECT 1 FROM memberships m WHERE m.contact_id = c.id AND m.segment_id = ANY($4::bigint[])))
			  AND NOT EXISTS (SELECT 1 FROM unnest($5::bigint[]) AS s(id)
			                  WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.contact_id = c.id AND m.segment_id = s.id))
			  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.contact_id = c.id AND m.segment_id = ANY($6::bigint[]))`,
			ws.ID, term, f.Any != nil, pgArray(f.Any), pgArray(f.All), pgArray(f.None))[0]
	}
	check := func(stage string) {
		t.Helper()
		for _, term := range terms {
			for _, f := range filters {
				cq := crm.ContactQuery{Search: term, Segments: f}
				want := truth(term, f)
				if got, err := app.CountContacts(wctx, ws.ID, cq); err != nil || got != want {
					t.Errorf("%s: %q in %+v: %d, %v; want %d", stage, term, f, got, err, want)
				}
				for _, limit := range []int{1, want - 1, want, want + 1} {
					if limit < 1 {
						continue
					}
					got, err := app.CountContactsUpTo(wctx, ws.ID, cq, limit)
					if ok := (want <= limit && got == want) || (want > limit && got > limit); err != nil || !ok {
						t.Errorf("%s: %q in %+v up to %d: %d, %v; want %d", stage, term, f, limit, got, err, want)
					}
				}
			}
		}
	}
	orders := map[crm.ContactOrderField]string{
		crm.ContactsByName:      "(name IS NULL) %[1]s, " + fmt.Sprintf(store.ContactNameOrderExpr, "name") + " %[1]s, id %[1]s",
		crm.ContactsByCreatedAt: "created_at %[1]s, id %[1]s",
	}
	checkPages := func(stage string) {
		t.Helper()
		for _, term := range []string{"sharma", "i s"} {
			for _, none := range [][]int64{{big1, big2, big3}, {big1}, {unknown}} {
				for field, orderSQL := range orders {
					for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
						q := crm.ContactQuery{Search: term, Segments: crm.MembershipFilter{None: none}, Order: crm.ContactOrder{Field: field, Direction: dir}}
						want := storetest.Column[int64](t, db, `SELECT id FROM contacts c
							WHERE workspace_id = $1 AND search_text LIKE '%' || $2 || '%'
							  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.contact_id = c.id AND m.segment_id = ANY($3))
							ORDER BY `+fmt.Sprintf(orderSQL, dir), ws.ID, term, pgArray(none))
						for _, backward := range []bool{false, true} {
							if got := allPages(t, wctx, app, ws.ID, q, 50, backward); !slices.Equal(got, want) {
								t.Errorf("%s: %q none %v %s %s, backward %v: %d contacts %v..., want %d %v...",
									stage, term, none, field, dir, backward, len(got), head(got), len(want), head(want))
							}
						}
					}
				}
			}
		}
	}
	check("without statistics")
	checkPages("without statistics")
	storetest.Exec(t, db, "ANALYZE contacts, memberships")
	store.LearnStatistics(app)
	check("with statistics")
	checkPages("with statistics")

	first := 50
	byName := crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}
	query, err := store.ContactsPageSQL(app, ws.ID, crm.ContactQuery{Search: "sharma", Segments: crm.MembershipFilter{None: []int64{big1, big2, big3}}, Order: byName}, crm.PageArgs{First: &first})
	if err != nil {
		t.Fatal(err)
	}
	if plan, raw := explainAnalyze(t, ctx, db, query); rowsRead(plan, "memberships") > 0 {
		t.Errorf("the first page of \"sharma\" by name in none of the big segments read %.0f memberships, want none\n%s\n%s", rowsRead(plan, "memberships"), query, raw)
	}

	// How the counts of "sharma" (2,400 matches) are read, by EXPLAIN ANALYZE.
	for _, c := range []struct {
		f                 crm.MembershipFilter
		memberships, read float64 // at most, of each table
	}{
		// The matches: 2,400 of 6,000 contacts, which PostgreSQL reads by a scan.
		{crm.MembershipFilter{None: []int64{big1, big2, big3}}, 0, 6001},
		{crm.MembershipFilter{Any: []int64{big1, big2, big3}}, 0, 6001},
		{crm.MembershipFilter{All: []int64{big1, big2}}, 0, 6001},
		{crm.MembershipFilter{Any: []int64{big1, big2}, None: []int64{big3}}, 0, 6001},
		{crm.MembershipFilter{Any: []int64{small}}, 30, 30},
		{crm.MembershipFilter{Any: []int64{small, mid}, None: []int64{big1, big2, big3}}, 330, 330},
	} {
		for _, limit := range []int{0, 10_000} {
			query := store.CountContactsSQL(app, ws.ID, crm.ContactQuery{Search: "sharma", Segments: c.f}, limit)
			plan, raw := explainAnalyze(t, ctx, db, query)
			if m, read := rowsRead(plan, "memberships"), contactsRead(plan); m > c.memberships || read > c.read {
				t.Errorf("%+v up to %d: read %.0f memberships (want at most %.0f) and %.0f contacts (at most %.0f)\n%s\n%s",
					c.f, limit, m, c.memberships, read, c.read, query, raw)
			}
		}
	}
}
