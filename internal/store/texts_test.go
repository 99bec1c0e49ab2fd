package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCheckAndRepairTexts writes segments and contacts whose texts are not composed
// (NFC) straight into the tables, as a server older than migration
// 20261206000003_compose_texts does during a rolling upgrade, and checks that
// CheckTexts reports exactly those and changes nothing, that searches with composed
// terms find them (they fold both), before and after RepairTexts composes them,
// moving their updated_at, that a
// name whose composed form another segment has is left as it is and still reported,
// and that everything else stays as it was. On a database of its own: the check reads
// every workspace.
func TestCheckAndRepairTexts(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	mine, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	cafe, err := s.CreateSegment(ctx, mine.ID, crm.NewSegment{Name: "Café"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertContacts(ctx, other.ID, []crm.ContactInput{{Phone: "+919700000001"}}); err != nil {
		t.Fatal(err)
	}
	if segs, contacts, err := s.CheckTexts(ctx); err != nil || len(segs) != 0 || len(contacts) != 0 {
		t.Fatalf("before any uncomposed text: %+v, %+v, %v", segs, contacts, err)
	}
	otherBefore := segmentRows(t, s, other.ID)

	// What an old server writes: the same as the API's texts but decomposed.
	db := s.DB()
	insertSegment := func(ws int64, name string, description any) int64 {
		t.Helper()
		var id int64
		if err := db.QueryRowContext(ctx, `INSERT INTO segments (workspace_id, name, description) VALUES ($1, $2, $3) RETURNING id`,
			ws, name, description).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	cafe2 := insertSegment(mine.ID, "Cafe\u0301", "Nin\u0303o")          // taken by "Café"; its description is composed all the same
	creme := insertSegment(mine.ID, "Cre\u0300me", "Cre\u0300me brûlée") // name and description
	hau := insertSegment(mine.ID, "Ha\u0323\u0302u", nil)                // the oldest of two that compose to one name: composed
	hau2 := insertSegment(mine.ID, "HA\u0302\u0323U", nil)               // its marks in another order, ignoring case: taken by hau
	tea := insertSegment(mine.ID, "Tea", "The\u0301")                    // description only
	for _, c := range []struct {
		ws          int64
		phone       string
		name, email any
	}{
		{mine.ID, "+919700000002", "Jose\u0301 Garci\u0301a", nil},
		{mine.ID, "+919700000003", "Ana", "ana.garci\u0301a@example.com"},
		{mine.ID, "+919700000004", "Zoë", "zoe@example.com"}, // composed already
		{other.ID, "+919700000005", "Rene\u0301e", "rene\u0301e@example.com"},
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO contacts (workspace_id, phone, name, email) VALUES ($1, $2, $3, $4)`,
			c.ws, c.phone, c.name, c.email); err != nil {
			t.Fatal(err)
		}
	}
	mineBefore := segmentRows(t, s, mine.ID)

	// Searches with composed terms, as the API composes them.
	contactsFound := func(term string) int {
		t.Helper()
		n, err := s.CountContacts(ctx, mine.ID, crm.ContactQuery{Search: term})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	segmentsFound := func(term string) int {
		t.Helper()
		n, err := s.CountSegments(ctx, mine.ID, crm.SegmentQuery{Search: term})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Searches fold the texts, composed or not (migration
	// 20261216000005_search_folds_text): they find them before the repair too.
	if n := contactsFound("José García"); n != 1 {
		t.Errorf("the search José García found %d contacts before the repair, want 1", n)
	}

	name, desc := store.SegmentTexts{WorkspaceID: mine.ID, WorkspaceName: mine.Name, Name: true}, store.SegmentTexts{WorkspaceID: mine.ID, WorkspaceName: mine.Name, Description: true}
	want := []store.SegmentTexts{
		uncomposedTexts(name, cafe2, "Cafe\u0301", true, cafe.ID, "Café"),
		uncomposedTexts(name, creme, "Cre\u0300me", true, 0, ""),
		uncomposedTexts(name, hau, "Ha\u0323\u0302u", false, 0, ""),
		uncomposedTexts(name, hau2, "HA\u0302\u0323U", false, hau, "Ha\u0323\u0302u"),
		uncomposedTexts(desc, tea, "Tea", false, 0, ""),
	}
	wantContacts := []store.ContactTexts{{WorkspaceID: mine.ID, WorkspaceName: mine.Name, Contacts: 2}, {WorkspaceID: other.ID, WorkspaceName: other.Name, Contacts: 1}}
	for range 2 {
		segs, contacts, err := s.CheckTexts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(segs, want) || !slices.Equal(contacts, wantContacts) {
			t.Fatalf("check:\n got  %+v\n      %+v\n want %+v\n      %+v", segs, contacts, want, wantContacts)
		}
	}
	if after := segmentRows(t, s, mine.ID); after != mineBefore {
		t.Fatalf("the check changed segments:\nbefore %s\nafter  %s", mineBefore, after)
	}

	started := time.Now()
	time.Sleep(10 * time.Millisecond) // updated_at is the transaction's start
	segs, contacts, err := s.RepairTexts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(segs, want) || !slices.Equal(contacts, wantContacts) {
		t.Fatalf("repair:\n got  %+v\n      %+v\n want %+v\n      %+v", segs, contacts, want, wantContacts)
	}

	// Composed, but for the two names taken; their descriptions composed too.
	got, err := s.SegmentsByID(ctx, mine.ID, []int64{cafe.ID, cafe2, creme, hau, hau2, tea})
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range map[int64][2]string{
		cafe.ID: {"Café", ""}, cafe2: {"Cafe\u0301", "Niño"}, creme: {"Crème", "Crème brûlée"},
		hau: {"Hậu", ""}, hau2: {"HA\u0302\u0323U", ""}, tea: {"Tea", "Thé"},
	} {
		g := got[id]
		if g.Name != w[0] || deref(g.Description) != w[1] {
			t.Errorf("segment %d after the repair: %+q, %+q; want %+q, %+q", id, g.Name, deref(g.Description), w[0], w[1])
		}
		if moved := g.UpdatedAt.After(started); moved != (id != cafe.ID) {
			t.Errorf("segment %d %q: updated_at %v moved %v by the repair started at %v", id, g.Name, g.UpdatedAt, moved, started)
		}
	}
	if n := contactsFound("José García"); n != 1 {
		t.Errorf("the search José García found %d contacts after the repair, want 1", n)
	}
	if n := contactsFound("ana.garcía"); n != 1 {
		t.Errorf("the search ana.garcía found %d contacts after the repair, want 1", n)
	}
	if n := segmentsFound("Crème"); n != 1 {
		t.Errorf("the search Crème found %d segments after the repair, want 1", n)
	}
	page, err := s.Contacts(ctx, mine.ID, crm.ContactQuery{Search: "José", Order: crm.DefaultContactOrder}, crm.PageArgs{First: ptr(10)})
	if err != nil || len(page.Items) != 1 || *page.Items[0].Name != "José García" || !page.Items[0].UpdatedAt.After(started) {
		t.Errorf("the contact after the repair: %+v, %v", page.Items, err)
	}
	if after := segmentRows(t, s, other.ID); after != otherBefore {
		t.Errorf("the repair changed another workspace's segments:\nbefore %s\nafter  %s", otherBefore, after)
	}

	// What is left: the two names taken, as they were; a repair finds nothing else.
	left := []store.SegmentTexts{want[0], want[3]}
	left[0].Description = false
	left[1].TakenByName = "Hậu"
	for _, f := range []func(context.Context) ([]store.SegmentTexts, []store.ContactTexts, error){s.CheckTexts, s.RepairTexts} {
		segs, contacts, err := f(ctx)
		if err != nil || !slices.Equal(segs, left) || len(contacts) != 0 {
			t.Fatalf("after the repair:\n got  %+v, %+v, %v\n want %+v", segs, contacts, err, left)
		}
	}
}

// uncomposedTexts is t for the segment id, with its stored name, whether its other text is not
// composed either, and the segment that has its composed name.
func uncomposedTexts(t store.SegmentTexts, id int64, name string, other bool, takenBy int64, takenByName string) store.SegmentTexts {
	t.SegmentID, t.SegmentName, t.TakenBy, t.TakenByName = id, name, takenBy, takenByName
	if t.Name {
		t.Description = other
	} else {
		t.Name = other
	}
	return t
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
