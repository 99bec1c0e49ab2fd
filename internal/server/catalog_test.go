package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store/storetest"
)

// TestContactSegmentsFollowEveryCatalogChange proves that the segments of a page of
// contacts, read from the server's copy of the workspace's segment catalog when the
// query asks only for what the catalog holds (store.CatalogSegmentsOfContacts), show
// every change at the next request: a rename that changes their order, a new
// description, a new segment, a deleted one, and a rename by SQL that no server
// made. The page's statement reads the memberships, and a second read of an
// unchanged catalog sends no statement for it. A query that
// asks for contactCount or updatedAt reads the segments whole, current after every
// assignment.
func TestContactSegmentsFollowEveryCatalogChange(t *testing.T) {
	a := newAPI(t)
	ids := a.addContacts(phones(14_000, 3)...) // read back newest first: ids[2], ids[1], ids[0]
	alpha := a.addSegment("Alpha", ids...)
	bravo := a.addSegment("bravo", ids[:2]...)

	const page = `{ contacts(first: 10) { nodes { id segments { id name description createdAt } } } }`
	// read returns each contact's segments as "name (description)", in ids' order.
	read := func() [][]string {
		t.Helper()
		var out struct {
			Contacts struct {
				Nodes []struct {
					ID       string `json:"id"`
					Segments []struct {
						ID, Name, CreatedAt string
						Description         *string
					} `json:"segments"`
				} `json:"nodes"`
			} `json:"contacts"`
		}
		a.do(page, nil, &out)
		got := make([][]string, len(ids))
		for _, n := range out.Contacts.Nodes {
			names := []string{}
			for _, s := range n.Segments {
				if s.ID == "" || s.CreatedAt == "" {
					t.Fatalf("a segment without its ID or creation time: %+v", s)
				}
				if s.Description != nil {
					s.Name += " (" + *s.Description + ")"
				}
				names = append(names, s.Name)
			}
			got[slices.Index(ids, n.ID)] = names
		}
		return got
	}
	check := func(step string, want ...[]string) {
		t.Helper()
		if got := read(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: segments of the contacts\n got %q\nwant %q", step, got, want)
		}
	}

	a.do(`{ contacts(first: 10) { nodes { id } } }`, nil, nil)
	bare := a.statements()
	check("first read", []string{"Alpha", "bravo"}, []string{"Alpha", "bravo"}, []string{"Alpha"})
	first := a.statements() - bare
	check("second read", []string{"Alpha", "bravo"}, []string{"Alpha", "bravo"}, []string{"Alpha"})
	// The page's statement reads the memberships too: the segments cost a
	// statement only when the catalog is read.
	if again := a.statements() - bare; first != 1 || again != 0 {
		t.Errorf("the segments of the page took %d statements more than the bare page at the first read, %d at the second; want 1 (the catalog), then 0", first, again)
	}

	update := func(id string, fields string) {
		t.Helper()
		var out struct {
			UpdateSegment struct{ UserErrors []userError } `json:"updateSegment"`
		}
		a.do(`mutation { updateSegment(input: {id: "`+id+`", `+fields+`}) { userErrors { field message code } } }`, nil, &out)
		if len(out.UpdateSegment.UserErrors) > 0 {
			t.Fatalf("update segment: %v", out.UpdateSegment.UserErrors)
		}
	}
	update(bravo, `name: "Aardvark"`)
	check("renamed before the other", []string{"Aardvark", "Alpha"}, []string{"Aardvark", "Alpha"}, []string{"Alpha"})
	update(alpha, `description: "VIP"`)
	check("described", []string{"Aardvark", "Alpha (VIP)"}, []string{"Aardvark", "Alpha (VIP)"}, []string{"Alpha (VIP)"})
	charlie := a.addSegment("Charlie", ids[2])
	check("created", []string{"Aardvark", "Alpha (VIP)"}, []string{"Aardvark", "Alpha (VIP)"}, []string{"Alpha (VIP)", "Charlie"})
	a.do(`mutation { deleteSegment(input: {id: "`+alpha+`"}) { deletedSegmentId } }`, nil, nil)
	check("deleted", []string{"Aardvark"}, []string{"Aardvark"}, []string{"Charlie"})

	// By SQL, as another program or a migration would: no server saw it.
	_, n, err := globalid.Decode(charlie)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, a.store.DB(), "UPDATE segments SET name = 'Zulu' WHERE workspace_id = $1 AND id = $2", a.ws.ID, n)
	check("renamed by SQL", []string{"Aardvark"}, []string{"Aardvark"}, []string{"Zulu"})

	// What the memberships change is read with the segments.
	counts := func() string {
		t.Helper()
		var out struct {
			Contacts struct {
				Nodes []struct {
					Segments []struct {
						Name         string
						ContactCount int
						UpdatedAt    string
					}
				}
			}
		}
		a.do(`{ contacts(first: 10) { nodes { segments { name contactCount updatedAt } } } }`, nil, &out)
		var b strings.Builder
		for _, n := range out.Contacts.Nodes {
			for _, s := range n.Segments {
				if s.UpdatedAt == "" {
					t.Fatalf("segment %s without its update time", s.Name)
				}
				fmt.Fprintf(&b, "%s:%d ", s.Name, s.ContactCount)
			}
		}
		return b.String()
	}
	if got, want := counts(), "Zulu:1 Aardvark:2 Aardvark:2 "; got != want {
		t.Errorf("counts before the assignment: %q, want %q", got, want)
	}
	a.do(`mutation($c: [ID!]!, $s: [ID!]!) { assignContactsToSegments(input: {contactIds: $c, segmentIds: $s}) { assignedCount } }`,
		map[string]any{"c": ids, "s": []string{charlie}}, nil)
	if got, want := counts(), "Zulu:3 Aardvark:2 Zulu:3 Aardvark:2 Zulu:3 "; got != want {
		t.Errorf("counts after the assignment: %q, want %q", got, want)
	}

	// Both kinds in one operation, each with its own fields.
	var both struct {
		Contacts struct {
			Nodes []struct {
				Names  []struct{ Name string } `json:"names"`
				Counts []struct {
					Name         string
					ContactCount int
				} `json:"counts"`
			}
		}
	}
	a.do(`{ contacts(first: 10) { nodes { names: segments { name } counts: segments { name contactCount } } } }`, nil, &both)
	for i, n := range both.Contacts.Nodes {
		if len(n.Names) != len(n.Counts) || len(n.Counts) == 0 || n.Counts[0].ContactCount == 0 {
			t.Errorf("contact %d: names %+v, counts %+v", i, n.Names, n.Counts)
		}
	}
}

// TestCatalogsAreTheWorkspaces proves that the segment catalogs the server holds are
// each workspace's own: two workspaces with segments of the same names, read in
// turns, each see their own segments and IDs.
func TestCatalogsAreTheWorkspaces(t *testing.T) {
	a := newAPI(t)
	b := a.as(t)
	for _, c := range []*api{a, b} {
		ids := c.addContacts(phones(14_100, 2)...)
		c.addSegment("VIP Users", ids...)
		c.addSegment(fmt.Sprintf("Only %d", c.ws.ID), ids[0])
	}
	for range 2 {
		for _, c := range []*api{a, b} {
			var out struct {
				Contacts struct {
					Nodes []struct {
						Segments []struct{ ID, Name string }
					}
				}
				Segments struct {
					Nodes []struct{ ID string }
				}
			}
			c.do(`{ contacts(first: 10) { nodes { segments { id name } } } segments(first: 10) { nodes { id } } }`, nil, &out)
			own := map[string]bool{}
			for _, s := range out.Segments.Nodes {
				own[s.ID] = true
			}
			var names []string
			for _, n := range out.Contacts.Nodes {
				for _, s := range n.Segments {
					if !own[s.ID] {
						t.Errorf("workspace %d: a contact in segment %s %q, not its own", c.ws.ID, s.ID, s.Name)
					}
					names = append(names, s.Name)
				}
			}
			want := []string{fmt.Sprintf("Only %d", c.ws.ID), "VIP Users", "VIP Users"}
			slices.Sort(names)
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Errorf("workspace %d: segments %q, want %q", c.ws.ID, names, want)
			}
		}
	}
}
