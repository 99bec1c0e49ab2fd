package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// userErrorsAt returns the codes and fields of err's user errors, as "CODE at
// field.path".
func userErrorsAt(err error) []string {
	var out []string
	for _, e := range crm.UserErrors(err) {
		out = append(out, fmt.Sprintf("%s at %s", e.Code, strings.Join(e.Field, ".")))
	}
	return out
}

// membershipsOf returns every membership of workspace ws, as "segment:contact" in
// key order: two equal answers prove that no membership changed in between.
func membershipsOf(t *testing.T, s *store.Store, ws int64) []string {
	t.Helper()
	return storetest.Column[string](t, s.DB(), "SELECT segment_id || ':' || contact_id FROM memberships WHERE workspace_id = $1 ORDER BY segment_id, contact_id", ws)
}

// TestCreateSegmentMatching creates a segment of the contacts that a search, a filter
// (any, all, none) or both select, in one call: its members are exactly the
// contacts a query written here in SQL finds, its contactCount counts them at once,
// and the counters and bitmaps are right. The selection stays in the workspace (its
// search finds none of another workspace's contacts of the same names, and that
// workspace's segment is an empty one); a taken name, or contacts given both ways,
// is refused and creates nothing.
func TestCreateSegmentMatching(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	f := newMatchingFixture(t, s, 10_300)
	otherBefore, otherMembers := segmentRows(t, s, f.otherWS), membershipsOf(t, s, f.otherWS)
	in := func(name string) crm.NewSegment { return crm.NewSegment{Name: name} }
	for _, tc := range []struct {
		name string
		q    crm.ContactQuery
		sql  string // the members' condition on contacts c of workspace $1
	}{
		{"search", crm.ContactQuery{Search: "asha"}, "c.name LIKE 'Asha %'"},
		{"any", crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{f.even}}},
			fmt.Sprintf("c.id IN (SELECT contact_id FROM memberships WHERE segment_id = %d)", f.even)},
		{"all", crm.ContactQuery{Segments: crm.MembershipFilter{All: []int64{f.even, f.low}}},
			fmt.Sprintf("c.id IN (SELECT contact_id FROM memberships WHERE segment_id = %d INTERSECT SELECT contact_id FROM memberships WHERE segment_id = %d)", f.even, f.low)},
		{"none", crm.ContactQuery{Segments: crm.MembershipFilter{None: []int64{f.low}}},
			fmt.Sprintf("c.id NOT IN (SELECT contact_id FROM memberships WHERE segment_id = %d)", f.low)},
		{"search and filter", crm.ContactQuery{Search: "ravi", Segments: crm.MembershipFilter{Any: []int64{f.low}, None: []int64{f.even}}},
			fmt.Sprintf("c.name LIKE 'Ravi %%' AND c.id IN (SELECT contact_id FROM memberships WHERE segment_id = %d EXCEPT SELECT contact_id FROM memberships WHERE segment_id = %d)", f.low, f.even)},
		{"nobody", crm.ContactQuery{Search: "nobody"}, "false"},
		{"everybody", crm.ContactQuery{}, "true"},
		{"another workspace's names", crm.ContactQuery{Search: "Asha 1"}, "c.name = 'Asha 1'"},
		{"another workspace's segment, any", crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{f.otherEven}}}, "false"},
		{"another workspace's segment, none", crm.ContactQuery{Segments: crm.MembershipFilter{None: []int64{f.otherEven}}}, "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := storetest.Column[int64](t, s.DB(), "SELECT c.id FROM contacts c WHERE c.workspace_id = $1 AND ("+tc.sql+") ORDER BY c.id", f.ws)
			seg, err := s.CreateSegmentMatching(ctx, f.ws, in("Saved "+tc.name), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if seg.ContactCount != int64(len(want)) || seg.Name != "Saved "+tc.name {
				t.Errorf("created %+v, want %q with %d contacts", seg, "Saved "+tc.name, len(want))
			}
			if m := members(t, s.DB(), f.ws, seg.ID); !slices.Equal(m, want) {
				t.Errorf("members %v, want %v", m, want)
			}
			checkDerived(t, s, f.ws)
		})
	}
	if after, m := segmentRows(t, s, f.otherWS), membershipsOf(t, s, f.otherWS); after != otherBefore || !slices.Equal(m, otherMembers) {
		t.Errorf("the other workspace changed:\n%s\n%s", otherBefore, after)
	}

	before, beforeMembers := segmentRows(t, s, f.ws), membershipsOf(t, s, f.ws)
	for _, tc := range []struct {
		name string
		in   crm.NewSegment
		want []string
	}{
		{"a taken name", in(" even "), []string{"TAKEN at name"}},
		{"contacts given both ways", crm.NewSegment{Name: "Both", ContactIDs: []int64{}}, []string{"INVALID at contactsMatching"}},
		{"contacts given both ways, blank name", crm.NewSegment{Name: " ", ContactIDs: f.contacts[:1]}, []string{"BLANK at name", "INVALID at contactsMatching"}},
	} {
		_, err := s.CreateSegmentMatching(ctx, f.ws, tc.in, crm.ContactQuery{})
		if got := userErrorsAt(err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
		}
	}
	if after, m := segmentRows(t, s, f.ws), membershipsOf(t, s, f.ws); after != before || !slices.Equal(m, beforeMembers) {
		t.Errorf("a refused creation changed the workspace:\n%s\n%s", before, after)
	}
}

// TestCreateSegmentMatchingOverTheCap selects one contact more than a change may
// take (crm.MaxMatchedContacts): TOO_MANY at contactsMatching with the number
// selected and the cap, with a taken name's TAKEN, and no segment is created. One
// contact fewer is within the cap: the segment holds them all, counted at once.
// On a database of its own: its 100,001 contacts would change the plans of other
// tests' workspaces.
func TestCreateSegmentMatchingOverTheCap(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 4, AppName: "createcap"})
	ws, _ := storetest.Workspace(t, s)
	over := crm.MaxMatchedContacts + 1
	storetest.Exec(t, s.DB(), fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone, name) SELECT %[1]d, '+9192' || lpad(g::text, 8, '0'), 'Cap ' || g FROM generate_series(1, %[2]d) g`, ws.ID, over))
	if _, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Taken"}); err != nil {
		t.Fatal(err)
	}
	before := segmentRows(t, s, ws.ID)
	message := fmt.Sprintf("contactsMatching selects %d contacts, the maximum is %d", over, over-1)
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"Over", []string{"TOO_MANY at contactsMatching"}},
		{"taken", []string{"TAKEN at name", "TOO_MANY at contactsMatching"}},
	} {
		_, err := s.CreateSegmentMatching(ctx, ws.ID, crm.NewSegment{Name: tc.name}, crm.ContactQuery{Search: "cap"})
		errs := crm.UserErrors(err)
		if got := userErrorsAt(err); !slices.Equal(got, tc.want) || !strings.Contains(errs[len(errs)-1].Message, message) {
			t.Errorf("%q over the cap: %v; want %v, %q", tc.name, err, tc.want, message)
		}
	}
	if after := segmentRows(t, s, ws.ID); after != before {
		t.Fatalf("a refused creation changed the segments:\n%s\n%s", before, after)
	}
	storetest.Exec(t, s.DB(), "DELETE FROM contacts WHERE workspace_id = $1 AND name = 'Cap 1'", ws.ID)
	seg, err := s.CreateSegmentMatching(ctx, ws.ID, crm.NewSegment{Name: "Over"}, crm.ContactQuery{Search: "cap"})
	if err != nil || seg.ContactCount != int64(over-1) {
		t.Fatalf("at the cap: %+v (%v); want %d contacts", seg, err, over-1)
	}
	checkDerived(t, s, ws.ID)
}

// TestCreateSegmentMatchingStoppedMidway stops a creation by a selection while it adds
// the contacts, after it inserted the segment (a transaction of the test holds the
// memberships table, where the insert waits), as a request's deadline or its client
// going away does: nothing of it stays, neither the segment nor a member, so that the
// same creation, run again, is not TAKEN. In two calls, an assignment stopped so left
// the segment the first call created, empty.
func TestCreateSegmentMatchingStoppedMidway(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 4, AppName: "createstopped"})
	ws, _ := storetest.Workspace(t, s)
	storetest.Exec(t, s.DB(), fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone, name) SELECT %d, '+9194' || lpad(g::text, 8, '0'), 'Stop ' || g FROM generate_series(1, 50) g`, ws.ID))
	hold, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	if _, err := hold.ExecContext(ctx, "LOCK TABLE memberships IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}

	stopped, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateSegmentMatching(stopped, ws.ID, crm.NewSegment{Name: "Stopped"}, crm.ContactQuery{Search: "stop"})
		done <- err
	}()
	// Waiting at the memberships' insert, in this test's database: the segment has
	// been inserted (in the transaction), the contacts selected and locked.
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		select {
		case err := <-done:
			t.Fatalf("the creation finished without waiting for the memberships' lock: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the creation did not wait at the memberships' insert")
		}
		if err := s.DB().QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO memberships%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	// Stopped by a cancel request where the store reaches PostgreSQL itself (57014),
	// by closing the connection through PgBouncer (context.Canceled).
	if err := <-done; !errors.Is(err, context.Canceled) && !store.Canceled(err) {
		t.Errorf("the stopped creation: %v, want it cancelled", err)
	}
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := storetest.Column[int64](t, s.DB(), "SELECT count(*) FROM segments WHERE workspace_id = $1", ws.ID); n[0] != 0 {
		t.Errorf("%d segments after the stopped creation, want none", n[0])
	}
	if m := membershipsOf(t, s, ws.ID); len(m) != 0 {
		t.Errorf("memberships %v after the stopped creation, want none", m)
	}
	seg, err := s.CreateSegmentMatching(ctx, ws.ID, crm.NewSegment{Name: "Stopped"}, crm.ContactQuery{Search: "stop"})
	if err != nil || seg.ContactCount != 50 {
		t.Errorf("run again: %+v (%v); want the segment with its 50 contacts", seg, err)
	}
	checkDerived(t, s, ws.ID)
}
