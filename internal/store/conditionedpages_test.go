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

// TestConditionedSegmentPagesWeighTheirConditions: in the workspace of
// batchWorkspace (4,000 contacts), a page and a count of the members of segments
// that field conditions narrow read the members first where they are few, as
// without conditions, and a walk is weighed by the share of contacts the
// conditions keep. Before, both were PostgreSQL's plan of the plain statement,
// which read every contact of the workspace for the 40 members of small. Every
// page forward and backward, and each count, is what filtering the members in SQL
// gives.
func TestConditionedSegmentPagesWeighTheirConditions(t *testing.T) {
	ctx := context.Background()
	owner, app, ws, segs := batchWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	t0, small, half := segs[0], segs[3], segs[4]
	yes, no := true, false
	withEmail := crm.ContactConditions{HasEmail: &yes}
	withName := crm.ContactConditions{HasName: &yes}
	withoutName := crm.ContactConditions{HasName: &no}
	member := func(seg int64) string {
		return fmt.Sprintf("EXISTS (SELECT 1 FROM memberships m WHERE m.contact_id = c.id AND m.segment_id = %d)", seg)
	}
	for _, c := range []struct {
		name       string
		f          crm.MembershipFilter
		conds      crm.ContactConditions
		sql        string  // the filter on c
		maxRead    float64 // contacts the first page reads
		maxCounted float64 // contacts the count reads
	}{
		// 40 members, read first (no sample: the sizes alone choose).
		{"small with a name", crm.MembershipFilter{Any: []int64{small}}, withName, member(small) + " AND c.name IS NOT NULL", 80, 80},
		{"all of small with an email", crm.MembershipFilter{All: []int64{small}}, withEmail, member(small) + " AND c.email IS NOT NULL", 80, 80},
		// 1,333 members, 95 with an email: a walk hashing them (about 2,100
		// contacts, and the sample's 500).
		{"T0 with an email", crm.MembershipFilter{Any: []int64{t0}}, withEmail, member(t0) + " AND c.email IS NOT NULL", 3000, 4000},
		{"all of T0 and half with an email", crm.MembershipFilter{All: []int64{t0, half}}, withEmail, member(t0) + " AND " + member(half) + " AND c.email IS NOT NULL", 3000, 4000},
		// 2,000 members, every contact with an email among them: the walk; 21
		// without a name, fewer than a page: the 42 contacts without a name
		// sorted (the walk read every contact).
		{"half with an email", crm.MembershipFilter{Any: []int64{half}}, withEmail, member(half) + " AND c.email IS NOT NULL", 1500, 4000},
		{"half without a name", crm.MembershipFilter{Any: []int64{half}}, withoutName, member(half) + " AND c.name IS NULL", 1000, 4000},
	} {
		q := crm.ContactQuery{Segments: c.f, Conditions: c.conds, Order: crm.DefaultContactOrder}
		first := 50
		query, err := store.ContactsPageSQL(app, ws.ID, q, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		plan, _ := explainAnalyze(t, ctx, db, query)
		if read := contactsRead(plan); read > c.maxRead {
			t.Errorf("%s: the first page read %.0f contacts, want at most %.0f", c.name, read, c.maxRead)
		}
		plan, _ = explainAnalyze(t, ctx, db, store.CountContactsSQL(app, ws.ID, q, 0))
		if read := contactsRead(plan); read > c.maxCounted {
			t.Errorf("%s: the count read %.0f contacts, want at most %.0f", c.name, read, c.maxCounted)
		}
		want := storetest.Column[int64](t, db, `SELECT c.id FROM contacts c WHERE c.workspace_id = $1 AND `+c.sql+` ORDER BY c.created_at DESC, c.id DESC`, ws.ID)
		for _, backward := range []bool{false, true} {
			if got := allPages(t, wctx, app, ws.ID, q, 50, backward); !slices.Equal(got, want) {
				t.Errorf("%s, backward %v: %d contacts %v..., want %d %v...", c.name, backward, len(got), head(got), len(want), head(want))
			}
		}
		n, err := app.CountContacts(wctx, ws.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(want) {
			t.Errorf("%s: counted %d, want %d", c.name, n, len(want))
		}
		for _, limit := range []int{10, 10_000} {
			n, err := app.CountContactsUpTo(wctx, ws.ID, q, limit)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(want) && !(n > limit && len(want) > limit) {
				t.Errorf("%s: counted %d up to %d, want %d", c.name, n, limit, len(want))
			}
		}
	}
}

// TestConditionedSegmentCountsLookTheirContactsUp: in the workspace of
// batchWorkspace, the counts of the five segments' contacts (6,040 memberships)
// with an email (286 contacts, every 14th) look up the memberships of those
// contacts, where the statement hashed every membership of the five and joined
// them to the contacts. With a name (3,959 contacts), they join as before. Each
// count is what counting in SQL gives.
func TestConditionedSegmentCountsLookTheirContactsUp(t *testing.T) {
	ctx := context.Background()
	owner, app, ws, segs := batchWorkspace(t)
	db := owner.DB()
	wctx := store.WithWorkspace(ctx, ws.ID)
	yes := true
	for _, c := range []struct {
		name  string
		conds crm.ContactConditions
		sql   string
		max   float64 // memberships read
	}{
		{"with an email", crm.ContactConditions{HasEmail: &yes}, "c.email IS NOT NULL", 1000},
		{"with a name", crm.ContactConditions{HasName: &yes}, "c.name IS NOT NULL", 6100},
	} {
		q := crm.ContactQuery{Conditions: c.conds}
		plan, _ := explainAnalyze(t, ctx, db, store.SegmentCountsSQL(app, ws.ID, segs, q))
		if read := rowsRead(plan, "memberships"); read > c.max {
			t.Errorf("%s: the counts read %.0f memberships, want at most %.0f", c.name, read, c.max)
		}
		counts, err := app.CountContactsOfSegments(wctx, ws.ID, segs, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, seg := range segs {
			want := storetest.Column[int64](t, db, `SELECT count(*) FROM contacts c JOIN memberships m ON m.contact_id = c.id
				WHERE m.segment_id = $1 AND `+c.sql, seg)
			if int64(counts[seg]) != want[0] {
				t.Errorf("%s: segment %d: %d, want %d", c.name, seg, counts[seg], want[0])
			}
		}
	}
}
