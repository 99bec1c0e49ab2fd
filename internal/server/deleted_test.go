package server_test

import (
	"slices"
	"testing"
	"time"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store/storetest"
)

// deletedPage is a page of Query.deletedContacts as the tests read it.
type deletedPage struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			ID        string `json:"id"`
			DeletedAt string `json:"deletedAt"`
		} `json:"node"`
	} `json:"edges"`
	PageInfo struct {
		HasNextPage bool    `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	} `json:"pageInfo"`
}

// deleted reads one page of the workspace's deleted contacts.
func (a *api) deleted(since string, first *int, after *string) deletedPage {
	a.t.Helper()
	var out struct {
		DeletedContacts deletedPage `json:"deletedContacts"`
	}
	a.do(`query($since: DateTime!, $first: Int, $after: String) {
		deletedContacts(since: $since, first: $first, after: $after) {
			edges { cursor node { id deletedAt } } pageInfo { hasNextPage endCursor } } }`,
		map[string]any{"since": since, "first": first, "after": after}, &out)
	return out.DeletedContacts
}

// deletedIDs reads every page of the workspace's deleted contacts since since, size
// at a time, and returns their IDs in the order listed.
func (a *api) deletedIDs(since string, size int) []string {
	a.t.Helper()
	var ids []string
	var after *string
	for {
		p := a.deleted(since, &size, after)
		for _, e := range p.Edges {
			ids = append(ids, e.Node.ID)
		}
		if !p.PageInfo.HasNextPage {
			return ids
		}
		after = p.PageInfo.EndCursor
	}
}

// TestDeletedContactsListed proves Query.deletedContacts: each contact deleteContacts
// deleted is listed by its former ID and the deleting transaction's time, oldest
// first, paged, from since on; another workspace's deletions are invisible, a refused
// deleteContacts lists nothing, and no personal data of a deleted contact is kept.
func TestDeletedContactsListed(t *testing.T) {
	c := mutClient{newAPI(t)}
	epoch := "2000-01-01T00:00:00Z"
	ids := c.addContacts(phones(600_000, 7)...)
	other := mutClient{c.as(t)}
	foreign := other.addContacts(phones(600_000, 2)...)

	if p := c.deleted(epoch, nil, nil); len(p.Edges) != 0 || p.PageInfo.HasNextPage {
		t.Fatalf("before any deletion: %+v", p)
	}
	// Refused (all or nothing): nothing is deleted, so nothing is listed.
	if p := c.deleteContacts(ids[0], absentID(globalid.Contact, 1)); len(p.UserErrors) == 0 {
		t.Fatalf("deleting an unknown ID was not refused: %+v", p)
	}
	if got := c.deletedIDs(epoch, 100); len(got) != 0 {
		t.Fatalf("a refused deleteContacts listed %v", got)
	}

	first := []string{ids[2], ids[0], ids[4]}
	if p := c.deleteContacts(first...); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	time.Sleep(10 * time.Millisecond) // a later transaction, a later deletedAt
	second := []string{ids[5], ids[1]}
	if p := c.deleteContacts(second...); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	if p := other.deleteContacts(foreign[0]); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}

	// Oldest deletion first; within a transaction, by ID.
	byID := func(ids []string) []string {
		out := slices.Clone(ids)
		slices.SortFunc(out, func(a, b string) int {
			return int(mustDecode(t, globalid.Contact, a) - mustDecode(t, globalid.Contact, b))
		})
		return out
	}
	want := append(byID(first), byID(second)...)
	for _, size := range []int{1, 2, 100} {
		if got := c.deletedIDs(epoch, size); !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", size, got, want)
		}
	}
	if got := other.deletedIDs(epoch, 100); !slices.Equal(got, foreign[:1]) {
		t.Errorf("the other workspace lists %v, want %v", got, foreign[:1])
	}

	// Backward, as the other lists: the newest two.
	var last struct {
		DeletedContacts struct {
			Nodes []struct{ ID string } `json:"nodes"`
		} `json:"deletedContacts"`
	}
	c.do(`{ deletedContacts(since: "2000-01-01T00:00:00Z", last: 2) { nodes { id } } }`, nil, &last)
	if got := last.DeletedContacts.Nodes; len(got) != 2 || got[0].ID != want[3] || got[1].ID != want[4] {
		t.Errorf("last: 2 gave %v, want %v", got, want[3:])
	}

	// since: the deletions at or after it, the second transaction's here.
	all := c.deleted(epoch, nil, nil)
	if len(all.Edges) != len(want) {
		t.Fatalf("%d deletions listed, want %d", len(all.Edges), len(want))
	}
	at := all.Edges[len(first)].Node.DeletedAt
	if all.Edges[0].Node.DeletedAt == at {
		t.Fatalf("two transactions deleted at the same time %s", at)
	}
	if got := c.deletedIDs(at, 100); !slices.Equal(got, byID(second)) {
		t.Errorf("since %s: %v, want %v", at, got, byID(second))
	}
	if got := c.deletedIDs("0000-01-01T00:00:00Z", 100); !slices.Equal(got, want) { // no year 0 in PostgreSQL
		t.Errorf("since year 0: %v, want %v", got, want)
	}
	if got := c.deletedIDs(time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 100); len(got) != 0 {
		t.Errorf("since an hour ahead: %v", got)
	}

	// No personal data: the table holds the workspace, the id, the time and the
	// deleting transaction's ID (change_xid, for Query.contactChanges) only.
	cols := storetest.Column[string](t, c.api.store.DB(),
		`SELECT attname FROM pg_attribute WHERE attrelid = 'deleted_contacts'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY 1`)
	if !slices.Equal(cols, []string{"change_xid", "deleted_at", "id", "workspace_id"}) {
		t.Errorf("deleted_contacts has columns %v", cols)
	}

	// A cursor of another list is refused as such.
	c.fails("BAD_USER_INPUT", `query($after: String) { deletedContacts(since: "2000-01-01T00:00:00Z", after: $after) { nodes { id } } }`,
		map[string]any{"after": "eyJsIjoiYyIsImsiOiJjcmVhdGVkX2F0IiwidiI6IjIwMjYtMTEtMjhUMDk6MzA6MDBaIiwiaSI6MX0"})
	c.fails("BAD_USER_INPUT", `{ deletedContacts(since: "2000-01-01T00:00:00Z", first: 101) { nodes { id } } }`, nil)
}

// TestDeletedContactsRetainedSince: a page of Query.deletedContacts says from when
// it holds every deletion, 30 days (store.DeletedContactsRetention) before it was
// read, whatever its since and its page (empty here), costing no statement of its
// own; and a client can tell a since older than that, whose list may lack
// deletions (it was silently partial), from one it can trust.
func TestDeletedContactsRetainedSince(t *testing.T) {
	c := newAPI(t)
	read := func(since time.Time) (time.Time, time.Time, time.Time) {
		t.Helper()
		var out struct {
			DeletedContacts struct {
				RetainedSince time.Time `json:"retainedSince"`
			} `json:"deletedContacts"`
		}
		before := time.Now()
		c.do(`query($since: DateTime!) { deletedContacts(since: $since) { retainedSince nodes { id } } }`,
			map[string]any{"since": since.UTC().Format(time.RFC3339Nano)}, &out)
		return out.DeletedContacts.RetainedSince, before, time.Now()
	}
	for _, since := range []time.Time{time.Now().Add(-31 * 24 * time.Hour), time.Now().Add(-29 * 24 * time.Hour), time.Now().Add(time.Hour)} {
		retained, before, after := read(since)
		lo, hi := before.Add(-30*24*time.Hour-time.Microsecond), after.Add(-30*24*time.Hour+time.Microsecond)
		if retained.Before(lo) || retained.After(hi) {
			t.Errorf("since %s: retainedSince %s, want 30 days before the request: %s to %s", since, retained, lo, hi)
		}
		if old := since.Before(retained); old != since.Before(time.Now().Add(-30*24*time.Hour)) {
			t.Errorf("since %s, retainedSince %s: since before it %v", since, retained, old)
		}
	}
	base := c.baseline()
	c.query(`{ deletedContacts(since: "2000-01-01T00:00:00Z") { nodes { id } } }`, nil)
	without := c.statements()
	c.query(`{ deletedContacts(since: "2000-01-01T00:00:00Z") { retainedSince nodes { id } } }`, nil)
	if with := c.statements(); with != without || without != base+1 {
		t.Errorf("%d statements with retainedSince, %d without, %d for none: want one statement, the page's", with, without, base)
	}
}

// TestDeleteContactsStatements: recording the deletions costs deleteContacts no
// statement: the contacts' DELETE records them (its trigger, which records any
// writer's).
func TestDeleteContactsStatements(t *testing.T) {
	c := mutClient{newAPI(t)}
	ids := c.addContacts(phones(610_000, 30)...)
	c.addSegment("Some", ids[:5]...)
	base := c.baseline()
	if p := c.deleteContacts(ids[:20]...); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	if n := c.statements() - base; n != deleteContactsStatements {
		t.Errorf("deleteContacts of 20 contacts sent %d statements beyond the request's %d, want %d", n, base, deleteContactsStatements)
	}
}

// deleteContactsStatements is what deleteContacts sent before it recorded deletions.
const deleteContactsStatements = 7
