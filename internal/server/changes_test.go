package server_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
)

// changesPage is a page of Query.contactChanges as the tests read it.
type changesPage struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			ContactID string  `json:"contactId"`
			DeletedAt *string `json:"deletedAt"`
			Contact   *struct {
				ID       string                `json:"id"`
				Name     *string               `json:"name"`
				Segments []struct{ ID string } `json:"segments"`
			} `json:"contact"`
		} `json:"node"`
	} `json:"edges"`
	PageInfo struct {
		HasNextPage bool    `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	} `json:"pageInfo"`
}

const changesDoc = `query($first: Int, $after: String) {
	contactChanges(first: $first, after: $after) {
		edges { cursor node { contactId deletedAt contact { id name segments { id } } } }
		pageInfo { hasNextPage endCursor } } }`

// changes reads one page of the workspace's change feed.
func (a *api) changes(first *int, after *string) changesPage {
	a.t.Helper()
	var out struct {
		ContactChanges changesPage `json:"contactChanges"`
	}
	a.do(changesDoc, map[string]any{"first": first, "after": after}, &out)
	if out.ContactChanges.PageInfo.EndCursor == nil {
		a.t.Fatalf("contactChanges answered no endCursor: %+v", out.ContactChanges)
	}
	return out.ContactChanges
}

// changed reads the feed from after to its end, size at a time, until it lists
// want (contact IDs, a deletion as "-" and its ID), for up to 10 s: the horizon is
// the whole database's, which another test's transaction holds back for a moment.
// It returns the last page's endCursor.
func (a *api) changed(after *string, size int, want []string) string {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []string
		from := after
		for {
			p := a.changes(&size, from)
			for _, e := range p.Edges {
				n := e.Node
				switch {
				case n.Contact == nil && n.DeletedAt != nil:
					got = append(got, "-"+n.ContactID)
				case n.Contact != nil && n.DeletedAt == nil && n.Contact.ID == n.ContactID:
					got = append(got, n.ContactID)
				default:
					a.t.Fatalf("a change neither a contact nor a deletion: %+v", n)
				}
			}
			from = p.PageInfo.EndCursor
			if !p.PageInfo.HasNextPage {
				break
			}
		}
		if slices.Equal(got, want) {
			return *from
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("pages of %d list %v, want %v", size, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContactChangesListed proves Query.contactChanges through the API: an empty
// feed answers an endCursor from which the next poll lists what follows; contacts
// are listed oldest change first, an updated one moved to the end, a deleted one
// with contact null and its deletedAt, each once, in pages of any size; another
// workspace's changes never; the page's statements are as many for 1 change as for
// 6 (the contacts come with the page, their segments in one batch); a cursor past
// its lifetime is RESYNC_REQUIRED, a tampered one BAD_USER_INPUT.
func TestContactChangesListed(t *testing.T) {
	c := mutClient{newAPI(t)}
	other := mutClient{c.as(t)}
	empty := c.changes(nil, nil)
	if len(empty.Edges) != 0 || empty.PageInfo.HasNextPage {
		t.Fatalf("an empty workspace's feed: %+v", empty)
	}
	ids := c.addContacts(phones(610_000, 6)...)
	foreign := other.addContacts(phones(610_000, 2)...)
	seg := c.createSegment(map[string]any{"name": "VIP", "contactIds": ids[:2]})
	if seg.Segment == nil {
		t.Fatal(seg.UserErrors)
	}
	if p := c.updateContact(map[string]any{"id": ids[1], "name": "Asha"}); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	if p := c.deleteContacts(ids[3]); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	want := []string{ids[0], ids[2], ids[4], ids[5], ids[1], "-" + ids[3]}
	end := ""
	for _, size := range []int{1, 2, 100} {
		end = c.changed(empty.PageInfo.EndCursor, size, want)
		c.changed(nil, size, want) // a full sync lists the same
	}
	other.changed(nil, 100, foreign)
	// Nothing since: an empty page, whose endCursor is usable again.
	c.changed(&end, 100, nil)

	// Statements: a page of 1 and a page of 6, contacts and their segments read.
	one := 1
	c.changes(&one, nil)
	n1 := c.statements()
	c.changes(nil, nil)
	if n6 := c.statements(); n6 != n1 {
		t.Errorf("a page of 1 sent %d statements, a page of 6 %d: want as many", n1, n6)
	}
	var all changesPage
	c.do(changesDoc, map[string]any{}, &struct {
		ContactChanges *changesPage `json:"contactChanges"`
	}{&all})
	if e := all.Edges[4].Node.Contact; e == nil || e.Name == nil || *e.Name != "Asha" || len(e.Segments) != 1 || e.Segments[0].ID != seg.Segment.ID {
		t.Errorf("the updated contact listed as %+v, want its name and segment", e)
	}

	cursor := func(since time.Time) string {
		return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"l":"x","k":"change_xid","v":5,"i":1,"t":%q}`,
			since.UTC().Truncate(time.Second).Format(time.RFC3339Nano))))
	}
	old := cursor(time.Now().Add(-store.ChangeCursorLifetime - time.Hour))
	res := c.post(changesDoc, map[string]any{"after": old})
	if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "RESYNC_REQUIRED" || res.Errors[0].Extensions["argument"] != "after" {
		t.Errorf("a cursor past its lifetime: %+v, want RESYNC_REQUIRED at after", res.Errors)
	}
	c.changes(nil, &[]string{cursor(time.Now().Add(-time.Hour))}[0])
	c.fails("BAD_USER_INPUT", changesDoc, map[string]any{"after": "x" + *empty.PageInfo.EndCursor})
}
