package server_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
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
// want (contact IDs, a deletion as "-" and its ID), for up to 10 s (feedUntil), and
// returns the last page's endCursor.
func (a *api) changed(after *string, size int, want []string) string {
	a.t.Helper()
	return a.feedUntil(after, size, want, func(from *string) ([]string, *string, bool) {
		p := a.changes(&size, from)
		var got []string
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
		return got, p.PageInfo.EndCursor, p.PageInfo.HasNextPage
	})
}

// feedUntil reads a feed from after to its end, a page at a time by page (which
// returns the page's entries as the test writes them, its endCursor and whether
// another page follows), until its entries are want, for up to 10 s: the horizon is
// the whole database's, which another test's transaction holds back for a moment.
// It returns the last page's endCursor.
func (a *api) feedUntil(after *string, size int, want []string, page func(from *string) (entries []string, end *string, more bool)) string {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []string
		from := after
		for more := true; more; {
			var entries []string
			entries, from, more = page(from)
			got = append(got, entries...)
		}
		if slices.Equal(got, want) {
			return *from
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("pages of %d list %q, want %q", size, got, want)
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

// mchangesPage is a page of Query.membershipChanges as the tests read it.
type mchangesPage struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			SegmentID string `json:"segmentId"`
			Segment   *struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"segment"`
			Action     string   `json:"action"`
			ContactIDs []string `json:"contactIds"`
			ChangedAt  *string  `json:"changedAt"`
		} `json:"node"`
	} `json:"edges"`
	PageInfo struct {
		HasNextPage bool    `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	} `json:"pageInfo"`
}

const mchangesDoc = `query($first: Int, $after: String) {
	membershipChanges(first: $first, after: $after) {
		edges { cursor node { segmentId segment { id name } action contactIds changedAt } }
		pageInfo { hasNextPage endCursor } } }`

// mchanges reads one page of the workspace's feed of memberships.
func (a *api) mchanges(first *int, after *string) mchangesPage {
	a.t.Helper()
	var out struct {
		MembershipChanges mchangesPage `json:"membershipChanges"`
	}
	a.do(mchangesDoc, map[string]any{"first": first, "after": after}, &out)
	if out.MembershipChanges.PageInfo.EndCursor == nil {
		a.t.Fatalf("membershipChanges answered no endCursor: %+v", out.MembershipChanges)
	}
	return out.MembershipChanges
}

// mchanged reads the feed of memberships from after to its end, size at a time,
// until it lists want (each entry as "+" or "-", the segment's ID, "@" when it has
// a changedAt, then its contacts' IDs), for up to 10 s (feedUntil), and returns the
// last page's endCursor. An entry's segment is its segmentId's, or null: the
// segments listed in deleted are null.
func (a *api) mchanged(after *string, size int, want []string, deleted ...string) string {
	a.t.Helper()
	return a.feedUntil(after, size, want, func(from *string) ([]string, *string, bool) {
		p := a.mchanges(&size, from)
		var got []string
		for _, e := range p.Edges {
			n := e.Node
			if gone := slices.Contains(deleted, n.SegmentID); (n.Segment == nil) != gone || (n.Segment != nil && n.Segment.ID != n.SegmentID) {
				a.t.Fatalf("an entry of segment %s (deleted: %v) with segment %+v", n.SegmentID, gone, n.Segment)
			}
			op := map[string]string{"ADDED": "+", "REMOVED": "-"}[n.Action]
			if n.ChangedAt != nil {
				op += "@"
			}
			got = append(got, op+n.SegmentID+" "+strings.Join(n.ContactIDs, " "))
		}
		return got, p.PageInfo.EndCursor, p.PageInfo.HasNextPage
	})
}

// TestMembershipChangesListed proves Query.membershipChanges through the API: an
// empty feed answers an endCursor from which the next poll lists what follows;
// createSegment with contacts, assignContactsToSegments, removeContactsFromSegments
// and deleteSegment are listed in order with their segment (null once deleted), action,
// contacts and changedAt, in pages of any size; a sync from the start lists the
// current members with no changedAt; another workspace's changes never; a page's
// statements are as many for 1 entry as for 4 (the segments in one statement); a
// cursor past its lifetime is RESYNC_REQUIRED, a tampered one or first: 101
// BAD_USER_INPUT; and the cost counts each entry's up to 1,024 contactIds.
func TestMembershipChangesListed(t *testing.T) {
	c := mutClient{newAPI(t)}
	other := mutClient{c.as(t)}
	empty := c.mchanges(nil, nil)
	if len(empty.Edges) != 0 || empty.PageInfo.HasNextPage {
		t.Fatalf("an empty workspace's feed: %+v", empty)
	}
	ids := c.addContacts(phones(620_000, 3)...)
	foreign := other.addContacts(phones(620_000, 1)...)
	vip := c.createSegment(map[string]any{"name": "VIP", "contactIds": ids[:2]}).Segment
	gone := c.createSegment(map[string]any{"name": "Gone"}).Segment
	theirs := other.createSegment(map[string]any{"name": "Theirs", "contactIds": foreign}).Segment
	if p := c.assign(ids[2:], []string{gone.ID}); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	if p := c.remove(ids[:1], []string{vip.ID}); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	if p := c.deleteSegment(gone.ID); len(p.UserErrors) != 0 {
		t.Fatal(p.UserErrors)
	}
	want := []string{"+@" + vip.ID + " " + ids[0] + " " + ids[1], "+@" + gone.ID + " " + ids[2], "-@" + vip.ID + " " + ids[0], "-@" + gone.ID + " " + ids[2]}
	end := ""
	for _, size := range []int{1, 2, 100} {
		end = c.mchanged(empty.PageInfo.EndCursor, size, want, gone.ID)
		c.mchanged(nil, size, []string{"+" + vip.ID + " " + ids[1]}) // a sync from the start
	}
	other.mchanged(nil, 100, []string{"+" + theirs.ID + " " + foreign[0]})
	c.mchanged(&end, 100, nil)

	one := 1
	c.mchanges(&one, empty.PageInfo.EndCursor)
	n1 := c.statements()
	c.mchanges(nil, empty.PageInfo.EndCursor)
	if n4 := c.statements(); n4 != n1 {
		t.Errorf("a page of 1 sent %d statements, a page of 4 %d: want as many", n1, n4)
	}

	cursor := func(since time.Time) string {
		return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"l":"m","k":"change_xid","v":0,"i":1,"t":%q}`,
			since.UTC().Truncate(time.Second).Format(time.RFC3339Nano))))
	}
	old := cursor(time.Now().Add(-store.ChangeCursorLifetime - time.Hour))
	res := c.post(mchangesDoc, map[string]any{"after": old})
	if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "RESYNC_REQUIRED" || res.Errors[0].Extensions["argument"] != "after" {
		t.Errorf("a cursor past its lifetime: %+v, want RESYNC_REQUIRED at after", res.Errors)
	}
	c.mchanges(nil, &[]string{cursor(time.Now().Add(-time.Hour))}[0])
	c.fails("BAD_USER_INPUT", mchangesDoc, map[string]any{"after": "x" + *empty.PageInfo.EndCursor})
	c.fails("BAD_USER_INPUT", mchangesDoc, map[string]any{"first": 101})
	c.fails("BAD_USER_INPUT", mchangesDoc, map[string]any{"after": end[:len(end)-1] + "A"})

	res = c.post(`{ membershipChanges(first: 50) { nodes { segmentId action contactIds changedAt segment { id name } } } }`, nil)
	if cost, _ := res.Extensions["cost"].(map[string]any); cost == nil || cost["requestedQueryCost"] != float64(1+50*(1+10+1)) {
		t.Errorf("cost %v, want %d", res.Extensions["cost"], 1+50*(1+10+1))
	}
}
