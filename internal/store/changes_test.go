package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// feed reads the change feed of ws from after to its end (at most 20 pages of
// first), and returns the contacts it listed, in order, and the last endCursor.
func feed(t *testing.T, s *store.Store, ctx context.Context, ws int64, after *string, first int) ([]crm.ContactChange, string) {
	t.Helper()
	var all []crm.ContactChange
	for range 20 {
		p, err := s.ContactChanges(ctx, ws, crm.PageArgs{First: &first, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if p.EndCursor == "" {
			t.Fatal("an empty endCursor")
		}
		all = append(all, p.Items...)
		after = &p.EndCursor
		if !p.HasNextPage {
			return all, p.EndCursor
		}
	}
	t.Fatal("the feed did not end in 20 pages")
	return nil, ""
}

// feedIDs returns the IDs of the contacts changes lists, a deletion as its negative.
func feedIDs(changes []crm.ContactChange) []int64 {
	ids := make([]int64, len(changes))
	for i, c := range changes {
		ids[i] = c.ContactID
		if c.Contact == nil {
			ids[i] = -c.ContactID
		}
	}
	return ids
}

// pollUntil polls the feed of ws from after until it lists want (the horizon is
// the whole database's: another test's transaction, a background ANALYZE, may hold it
// back for a moment), and returns what it listed and its endCursor.
func pollUntil(t *testing.T, s *store.Store, ctx context.Context, ws int64, after *string, want []int64) ([]crm.ContactChange, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, end := feed(t, s, ctx, ws, after, 2)
		if slices.Equal(feedIDs(got), want) || time.Now().After(deadline) {
			if !slices.Equal(feedIDs(got), want) {
				t.Fatalf("the feed lists %v, want %v", feedIDs(got), want)
			}
			return got, end
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContactChangesNeverSkipLateCommits proves the feed's promise: a change whose
// transaction began before a reader's poll and committed after it is listed by the
// next poll, where paging contacts by updatedAt, the recipe before, passes it for
// good (its updatedAt is when it began, before a change that committed first). An
// update moves a contact to the end, each contact is listed once at its latest
// state, a deletion is listed with no contact, and another workspace's changes never.
func TestContactChangesNeverSkipLateCommits(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919700000001"}, {Phone: "+919700000002"}, {Phone: "+919700000003"}})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := up.Contacts[0].ID, up.Contacts[1].ID, up.Contacts[2].ID
	if _, err := s.UpsertContacts(ctx, other.ID, []crm.ContactInput{{Phone: "+919700000001"}}); err != nil {
		t.Fatal(err)
	}
	_, end := pollUntil(t, s, ctx, ws.ID, nil, []int64{a, b, c})
	byUpdated := crm.ContactQuery{Order: crm.ContactOrder{Field: crm.ContactsByUpdatedAt, Direction: crm.Asc}}
	first := 100
	all, err := s.Contacts(ctx, ws.ID, byUpdated, crm.PageArgs{First: &first})
	if err != nil {
		t.Fatal(err)
	}
	updatedEnd := all.Cursor(len(all.Items) - 1)

	// B's update begins, and holds its transaction open; C's begins later and
	// commits first.
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE contacts SET name = 'late' WHERE workspace_id = $1 AND id = $2", ws.ID, b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // C's updatedAt after B's
	name := "early"
	if _, err := s.UpdateContact(ctx, ws.ID, c, crm.ContactPatch{ContactDetails: crm.ContactDetails{Name: crm.Optional[*string]{Value: &name, Set: true}}}); err != nil {
		t.Fatal(err)
	}
	// The reader polls now: the feed holds C back behind the open transaction.
	if got, again := feed(t, s, ctx, ws.ID, &end, 2); len(got) != 0 {
		t.Errorf("with B's transaction open, the feed lists %v; want nothing yet", feedIDs(got))
	} else {
		end = again
	}
	// Paging by updatedAt lists C, and passes B's time.
	page, err := s.Contacts(ctx, ws.ID, byUpdated, crm.PageArgs{First: &first, After: &updatedEnd})
	if err != nil {
		t.Fatal(err)
	}
	if ids := crm.ContactIDs(page.Items); !slices.Equal(ids, []int64{c}) {
		t.Fatalf("by updatedAt, with B's transaction open: %v, want C", ids)
	}
	updatedEnd = page.Cursor(0)

	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got, end := pollUntil(t, s, ctx, ws.ID, &end, []int64{b, c})
	if n := got[0].Contact.Name; n == nil || *n != "late" {
		t.Errorf("B listed as %+v, want its committed name", got[0].Contact)
	}
	page, err = s.Contacts(ctx, ws.ID, byUpdated, crm.PageArgs{First: &first, After: &updatedEnd})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 {
		t.Errorf("by updatedAt after the commit: %v; the recipe before skipped B, which it no longer does?", crm.ContactIDs(page.Items))
	}

	// A updated twice and B deleted: A once, at the end, at its latest; B as a
	// deletion.
	for _, n := range []string{"one", "two"} {
		if _, err := s.UpdateContact(ctx, ws.ID, a, crm.ContactPatch{ContactDetails: crm.ContactDetails{Name: crm.Optional[*string]{Value: &n, Set: true}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteContacts(ctx, ws.ID, []int64{b}, store.WithSegments); err != nil {
		t.Fatal(err)
	}
	got, _ = pollUntil(t, s, ctx, ws.ID, &end, []int64{a, -b})
	if n := got[0].Contact.Name; n == nil || *n != "two" {
		t.Errorf("A listed as %+v, want its latest name", got[0].Contact)
	}
	if got[1].DeletedAt == nil {
		t.Errorf("B's deletion has no deletedAt")
	}
	// From the start: every contact once, in the order of its latest change.
	pollUntil(t, s, ctx, ws.ID, nil, []int64{c, a, -b})
}

// TestContactChangesEndCursor proves that an empty feed still answers a cursor
// (where it started) from which the next poll lists what follows, that the cursor of
// another list or a tampered one is an input error, and that a cursor older than
// store.ChangeCursorLifetime, or ahead of the database's transactions (a restore into
// a new cluster), is refused with a store.ResyncError.
func TestContactChangesEndCursor(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	first := 10
	p, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 0 || p.HasNextPage || p.EndCursor == "" {
		t.Fatalf("an empty workspace's feed: %d items, hasNextPage %v, endCursor %q", len(p.Items), p.HasNextPage, p.EndCursor)
	}
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919700000001"}})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, s, ctx, ws.ID, &p.EndCursor, []int64{up.Contacts[0].ID})

	segmentCursor := func() string {
		t.Helper()
		if _, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "VIP"}); err != nil {
			t.Fatal(err)
		}
		sp, err := s.Segments(ctx, ws.ID, crm.SegmentQuery{Order: crm.DefaultSegmentOrder}, crm.PageArgs{First: &first})
		if err != nil {
			t.Fatal(err)
		}
		return sp.Cursor(0)
	}()
	decoded, _ := base64.RawURLEncoding.DecodeString(p.EndCursor)
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, after := range map[string]string{
		"a segments cursor": segmentCursor,
		"no since":          raw(strings.Replace(string(decoded), `"t":`, `"x":`, 1)),
		"a negative xid":    raw(`{"l":"x","k":"change_xid","v":-1,"i":1,"t":"2026-12-01T00:00:00Z"}`),
		"not base64":        "!!!",
	} {
		_, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &after})
		if e, ok := err.(*crm.Error); !ok || e.Code != crm.CodeInvalid || e.Field[0] != "after" {
			t.Errorf("%s: %v, want INVALID at after", name, err)
		}
	}

	old := raw(fmt.Sprintf(`{"l":"x","k":"change_xid","v":5,"i":1,"t":%q}`,
		time.Now().Add(-store.ChangeCursorLifetime-time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339Nano)))
	fresh := raw(fmt.Sprintf(`{"l":"x","k":"change_xid","v":5,"i":1,"t":%q}`,
		time.Now().Add(-store.ChangeCursorLifetime+time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339Nano)))
	ahead := raw(fmt.Sprintf(`{"l":"x","k":"change_xid","v":%d,"i":1,"t":%q}`, int64(1)<<50,
		time.Now().UTC().Truncate(time.Second).Format(time.RFC3339Nano)))
	var resync *store.ResyncError
	if _, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &old}); !errors.As(err, &resync) || !strings.Contains(err.Error(), "days old") {
		t.Errorf("a cursor past its lifetime: %v, want a ResyncError", err)
	}
	if _, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &ahead}); !errors.As(err, &resync) || !strings.Contains(err.Error(), "restore") {
		t.Errorf("a cursor ahead of the database: %v, want a ResyncError", err)
	}
	if _, err := s.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &fresh}); err != nil {
		t.Errorf("a cursor within its lifetime: %v", err)
	}
}

// TestContactChangesUnderRLS proves the feed through the server's role, under
// row-level security: acting for A it lists A's changes and deletions, and never B's,
// also when its statement is asked for B's.
func TestContactChangesUnderRLS(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	ids := map[int64][]int64{}
	for _, ws := range []int64{a.ID, b.ID} {
		up, err := owner.UpsertContacts(ctx, ws, []crm.ContactInput{{Phone: "+919700000001"}, {Phone: "+919700000002"}})
		if err != nil {
			t.Fatal(err)
		}
		ids[ws] = crm.ContactIDs(up.Contacts)
		if _, err := owner.DeleteContacts(ctx, ws, ids[ws][1:], store.WithSegments); err != nil {
			t.Fatal(err)
		}
	}
	asA := store.WithWorkspace(ctx, a.ID)
	pollUntil(t, app, asA, a.ID, nil, []int64{ids[a.ID][0], -ids[a.ID][1]})
	// The store names B, the policies hold to A: nothing.
	if got, _ := feed(t, app, asA, b.ID, nil, 10); len(got) != 0 {
		t.Errorf("acting for A, B's feed lists %v", feedIDs(got))
	}
	// Raw SQL on the new column, as TestRLSHoldsStatementsToTheirWorkspace does.
	for _, table := range []string{"contacts", "deleted_contacts"} {
		if n := count(t, app.DB(), asA, fmt.Sprintf("SELECT count(*) FROM %s WHERE change_xid > '0' AND workspace_id <> %d", table, a.ID)); n != 0 {
			t.Errorf("acting for A, %s shows %d changes of other workspaces", table, n)
		}
	}
}

// TestCheckChangesAhead proves what segments check reports of the feed, on a
// database of its own: a contact stamped by a transaction the database has not run
// (as after a dump restored into a new cluster) names its workspace, and the
// stamping trigger disabled is a trigger problem.
func TestCheckChangesAhead(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	for _, w := range []int64{ws.ID, other.ID} {
		if _, err := s.UpsertContacts(ctx, w, []crm.ContactInput{{Phone: "+919700000001"}}); err != nil {
			t.Fatal(err)
		}
	}
	if ahead, err := s.CheckChangesAhead(ctx); err != nil || len(ahead) != 0 {
		t.Fatalf("a database as written: %+v, %v; want nothing ahead", ahead, err)
	}
	storetest.Exec(t, s.DB(), "ALTER TABLE contacts DISABLE TRIGGER contacts_change_xid")
	if got, err := s.TriggerProblems(ctx); err != nil || !slices.Equal(got, []string{"trigger contacts_change_xid on contacts is disabled"}) {
		t.Errorf("trigger problems %q, %v", got, err)
	}
	storetest.Exec(t, s.DB(), "UPDATE contacts SET change_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8 WHERE workspace_id = $1", ws.ID)
	storetest.Exec(t, s.DB(), "ALTER TABLE contacts ENABLE TRIGGER contacts_change_xid")
	if ahead, err := s.CheckChangesAhead(ctx); err != nil || len(ahead) != 1 || ahead[0].WorkspaceID != ws.ID {
		t.Errorf("a contact stamped ahead: %+v, %v; want its workspace alone", ahead, err)
	}
}

// changeCursor decodes a cursor of the feed into its JSON fields.
func changeCursor(t *testing.T, c string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestContactChangesEndCursorIsTheWorkspaces proves that the feed's end cursor
// tells a workspace nothing of the others' writes: it stays at the workspace's own
// last change, where it was at the horizon, which every tenant's transactions move
// (25 upserts in another workspace moved it by 25). Only its time moves on.
func TestContactChangesEndCursorIsTheWorkspaces(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	a, _ := storetest.Workspace(t, s)
	b, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, a.ID, []crm.ContactInput{{Phone: "+919700000001"}})
	if err != nil {
		t.Fatal(err)
	}
	_, end := pollUntil(t, s, ctx, a.ID, nil, []int64{up.Contacts[0].ID})
	first := 10
	p, err := s.ContactChanges(ctx, a.ID, crm.PageArgs{First: &first, After: &end})
	if err != nil || len(p.Items) != 0 {
		t.Fatalf("A's feed at its end: %v, %v", feedIDs(p.Items), err)
	}
	before := changeCursor(t, p.EndCursor)
	var bIDs []int64
	for i := range 25 {
		up, err := s.UpsertContacts(ctx, b.ID, []crm.ContactInput{{Phone: fmt.Sprintf("+9197000001%02d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		bIDs = append(bIDs, up.Contacts[0].ID)
	}
	pollUntil(t, s, ctx, b.ID, nil, bIDs) // the horizon is past B's writes
	p, err = s.ContactChanges(ctx, a.ID, crm.PageArgs{First: &first, After: &end})
	if err != nil || len(p.Items) != 0 {
		t.Fatalf("A's feed at its end, again: %v, %v", feedIDs(p.Items), err)
	}
	after := changeCursor(t, p.EndCursor)
	if after["v"] != before["v"] || after["i"] != before["i"] {
		t.Errorf("B's 25 writes moved A's end cursor from (%v, %v) to (%v, %v)", before["v"], before["i"], after["v"], after["i"])
	}
	// At A's one change: where its cursor is.
	all, err := s.ContactChanges(ctx, a.ID, crm.PageArgs{First: &first})
	if err != nil || len(all.Items) != 1 {
		t.Fatalf("A's feed: %v, %v", feedIDs(all.Items), err)
	}
	if last := changeCursor(t, all.Cursor(0)); last["v"] != after["v"] {
		t.Errorf("A's end cursor at %v, its last change at %v", after["v"], last["v"])
	}
}

// TestContactChangesAheadTellsNothingOfTheServer proves that a forged cursor ahead
// of the workspace's last change is answered alike below and above the server's next
// transaction ID: refused (RESYNC_REQUIRED) with a contact's ID, read on from the
// workspace's last change with the ID of an older server's end cursor, past every ID.
// Compared with the next ID, the answer was an empty page below it and
// RESYNC_REQUIRED above, and a read key found the server's next transaction ID in 40
// requests. An end cursor of such a server, at the horizon - 1, reads on from the
// workspace's last change, and lists what follows.
func TestContactChangesAheadTellsNothingOfTheServer(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	a, _ := storetest.Workspace(t, s)
	b, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, a.ID, []crm.ContactInput{{Phone: "+919700000001"}})
	if err != nil {
		t.Fatal(err)
	}
	id := up.Contacts[0].ID
	_, end := pollUntil(t, s, ctx, a.ID, nil, []int64{id})
	last := changeCursor(t, end)
	// Other workspaces' transactions: the server's next ID runs ahead of A's last.
	for i := range 3 {
		if _, err := s.UpsertContacts(ctx, b.ID, []crm.ContactInput{{Phone: fmt.Sprintf("+91970000010%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	next := int64(count(t, s.DB(), ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"))
	if lastXid := int64(last["v"].(float64)); next-1 <= lastXid {
		t.Fatalf("the next transaction ID %d is not ahead of A's last change %d", next, lastXid)
	}
	forge := func(xid, contact int64) string {
		c := changeCursor(t, end)
		c["v"], c["i"] = xid, contact
		j, _ := json.Marshal(c)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	answer := func(after string) string {
		first := 10
		p, err := s.ContactChanges(ctx, a.ID, crm.PageArgs{First: &first, After: &after})
		if err != nil {
			return err.Error()
		}
		c := changeCursor(t, p.EndCursor)
		return fmt.Sprintf("%v, end at (%v, %v)", feedIDs(p.Items), c["v"], c["i"])
	}
	var resync *store.ResyncError
	for _, contact := range []int64{id, math.MaxInt64} {
		below, above := answer(forge(next-1, contact)), answer(forge(next+1000, contact))
		if below != above {
			t.Errorf("a cursor with ID %d ahead of A's last change: %q below the next transaction ID, %q above", contact, below, above)
		}
		if contact == id {
			if _, err := s.ContactChanges(ctx, a.ID, crm.PageArgs{After: new(forge(next+1000, contact))}); !errors.As(err, &resync) {
				t.Errorf("a cursor with a contact's ID ahead of A's last change: %v, want a ResyncError", err)
			}
		} else if want := fmt.Sprintf("[], end at (%v, %v)", last["v"], last["i"]); above != want {
			t.Errorf("an older server's end cursor ahead of A's last change: %s, want %s", above, want)
		}
	}

	// An older server's end cursor: at the horizon - 1, past every ID.
	horizon := int64(count(t, s.DB(), ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
	older := forge(horizon-1, math.MaxInt64)
	got, olderEnd := feed(t, s, ctx, a.ID, &older, 10)
	if len(got) != 0 || changeCursor(t, olderEnd)["v"] != last["v"] {
		t.Errorf("from an older server's end cursor: %v, end cursor %v; want nothing, at A's last change", feedIDs(got), changeCursor(t, olderEnd))
	}
	up, err = s.UpsertContacts(ctx, a.ID, []crm.ContactInput{{Phone: "+919700000002"}})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, s, ctx, a.ID, &older, []int64{up.Contacts[0].ID})
	pollUntil(t, s, ctx, a.ID, &olderEnd, []int64{up.Contacts[0].ID})
}

// stampAhead does to the changes what a dump restored into a new cluster does: they
// keep the transaction IDs of the old cluster, above every one of the new, whose
// system identifier differs from the one the database recorded.
func stampAhead(t *testing.T, s *store.Store) {
	t.Helper()
	for _, table := range []string{"contacts", "deleted_contacts"} {
		storetest.Exec(t, s.DB(), fmt.Sprintf("ALTER TABLE %s DISABLE TRIGGER %[1]s_change_xid", table))
		storetest.Exec(t, s.DB(), fmt.Sprintf("UPDATE %s SET change_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000 + id)::text::xid8", table))
		storetest.Exec(t, s.DB(), fmt.Sprintf("ALTER TABLE %s ENABLE TRIGGER %[1]s_change_xid", table))
	}
	storetest.Exec(t, s.DB(), "UPDATE change_feed_epoch SET system_identifier = system_identifier + 1")
}

// TestContactChangesAfterRestore proves the recovery from a dump restored into a
// new cluster, on a database of its own: opening the store (as every command does)
// stamps the changes left ahead of the database's transactions again, so a full
// sync from the start lists them all (it listed none, and said it was complete),
// logging a warning with their number; a cursor made before is refused
// (RESYNC_REQUIRED), though the new transaction IDs have passed its own; one made
// after stays valid across another open, and across a change of cluster with
// nothing ahead (pg_upgrade).
func TestContactChangesAfterRestore(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 4})
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	up, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919700000001"}, {Phone: "+919700000002"}, {Phone: "+919700000003"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := crm.ContactIDs(up.Contacts)
	if _, err := s.DeleteContacts(ctx, ws.ID, ids[2:], store.WithSegments); err != nil {
		t.Fatal(err)
	}
	up, err = s.UpsertContacts(ctx, other.ID, []crm.ContactInput{{Phone: "+919700000001"}, {Phone: "+919700000002"}})
	if err != nil {
		t.Fatal(err)
	}
	otherIDs := crm.ContactIDs(up.Contacts)
	want := []int64{ids[0], ids[1], -ids[2]}
	_, old := pollUntil(t, s, ctx, ws.ID, nil, want)

	dumped := count(t, s.DB(), ctx, "SELECT epoch FROM change_feed_epoch") // as a dump taken now holds it
	stampAhead(t, s)
	var logs bytes.Buffer
	opened := storetest.MigratedStore(t, url, store.Options{MaxConns: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	_, end := pollUntil(t, opened, ctx, ws.ID, nil, want)
	pollUntil(t, opened, ctx, other.ID, nil, otherIDs)
	if !strings.Contains(logs.String(), fmt.Sprintf("workspace_id=%d", ws.ID)) || !strings.Contains(logs.String(), "contacts=2 deletions=1") {
		t.Errorf("opening the restored database logged:\n%s", logs.String())
	}
	if ahead, err := opened.CheckChangesAhead(ctx); err != nil || len(ahead) != 0 {
		t.Errorf("after the open, ahead: %+v, %v", ahead, err)
	}
	first := 10
	var resync *store.ResyncError
	if _, err := opened.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &old}); !errors.As(err, &resync) || !strings.Contains(err.Error(), "restored") {
		t.Errorf("a cursor made before the restore: %v, want a ResyncError", err)
	}

	// Opened again, with nothing ahead: the epoch stays. Then on another cluster
	// with nothing ahead (pg_upgrade keeps the transaction IDs): the same.
	storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	storetest.Exec(t, s.DB(), "UPDATE change_feed_epoch SET system_identifier = system_identifier + 1")
	upgraded := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	if got, _ := feed(t, upgraded, ctx, ws.ID, &end, 10); len(got) != 0 {
		t.Errorf("from the end cursor after the restore, opened twice: %v", feedIDs(got))
	}
	if n := count(t, s.DB(), ctx, "SELECT count(*) FROM change_feed_epoch e, pg_control_system() c WHERE e.system_identifier = c.system_identifier"); n != 1 {
		t.Errorf("the cluster's identifier is not recorded")
	}

	// The same dump restored again, with its epoch: a cursor made after the first
	// restore is refused too (with the epoch counted up from the dump's, both
	// restores had the same one, and that cursor was accepted, passing every change
	// made between them).
	storetest.Exec(t, s.DB(), fmt.Sprintf("UPDATE change_feed_epoch SET epoch = %d", dumped))
	stampAhead(t, s)
	again := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	if _, err := again.ContactChanges(ctx, ws.ID, crm.PageArgs{First: &first, After: &end}); !errors.As(err, &resync) {
		t.Errorf("after a second restore of the same dump, a cursor made after the first: %v, want a ResyncError", err)
	}
}

// TestContactChangesAheadOnReadOnlyDatabase proves that a database taking no writes
// (a standby) with changes ahead of its transactions still opens, and serves the
// feed: the rows are left for a store that opens it taking writes.
func TestContactChangesAheadOnReadOnlyDatabase(t *testing.T) {
	if storetest.ThroughPgBouncer() {
		t.Skip("PgBouncer keeps server sessions open, which ALTER DATABASE ... SET does not reach")
	}
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, s)
	if _, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{{Phone: "+919700000001"}}); err != nil {
		t.Fatal(err)
	}
	stampAhead(t, s)
	storetest.Exec(t, s.DB(), "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$")
	var logs bytes.Buffer
	ro := storetest.MigratedStore(t, url, store.Options{MaxConns: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "are not stamped again") {
		t.Errorf("opening the read-only database logged:\n%s", logs.String())
	}
	if got, _ := feed(t, ro, ctx, ws.ID, nil, 10); len(got) != 0 {
		t.Errorf("the read-only feed lists %v, stamped ahead", feedIDs(got))
	}
}
