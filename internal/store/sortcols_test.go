package store_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// sortContact is a contact of TestContactsByPhoneAndEmail, as the test made it.
type sortContact struct {
	id          int64 // in the order of creation, which breaks EMAIL's ties
	phone       string
	name, email *string
	segments    map[string]bool
}

// TestContactsByPhoneAndEmail: the PHONE and EMAIL orders give, on every way a page
// of contacts is read, the order a Go sort gives of the same contacts: phones as
// text, emails lowercased with the emailless last ascending, ties (an email equal
// ignoring case, or equal) by ID. Forward and backward to the end, pages of 9 (25
// for lists of more than 60) and 100, both directions; the whole workspace, searches (a common term, a rare one, one
// without a trigram), None lists (a walk testing each row), Any and All lists of
// segments small (members first) and large (a walk, hashed or looked up), a segment
// whose members come last in the order (a walk that falls short, then members
// first), audiences the statement counts (its Total), and a batch of segments
// (ContactsOfSegments, ascending), with and without a search.
func TestContactsByPhoneAndEmail(t *testing.T) {
	ctx := context.Background()
	// A database of its own, as the other tests that learn the statistics: its
	// statistics are of this workspace, and LearnStatistics, which waits for the
	// store's background work, would wait for ever on the shared stores, where a
	// rate limiter's loop runs (TestRateLimiterUnderRowLevelSecurity).
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, owner)
	other, _ := storetest.Workspace(t, owner) // another workspace's contacts never show
	actx := store.WithWorkspace(ctx, ws.ID)

	rng := rand.New(rand.NewPCG(7, 11))
	text := func(s string) *string { return &s }
	// Phones: prefixes of one another, country codes of 1 to 3 digits, 7 to 15
	// digits in all, never in creation order.
	seen := map[string]bool{}
	var phones []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			phones = append(phones, p)
		}
	}
	add("+9198765432")
	add("+919876543210")
	add("+91987654321")
	add("+1415555")
	for len(phones) < 240 {
		cc := []string{"1", "44", "91", "919", "971", "7", "2"}[rng.IntN(7)]
		n := 7 + rng.IntN(9) - len(cc)
		var b strings.Builder
		b.WriteString("+" + cc)
		for range n {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		add(b.String())
	}
	firsts := []string{"Asha", "Ravi", "Zoe", "anil", "Priya", "Zqx"}
	lasts := []string{"Mehta", "Kumar", "Shah", "rao"}
	locals := []string{"asha", "Asha", "ASHA", "ravi", "zoe", "Zoe", "anil.k", "priya_s", "a", "z"}
	domains := []string{"x.in", "Gmail.com", "mehta.co", "X.IN"}
	cs := make([]sortContact, len(phones))
	for i := range cs {
		c := &cs[i]
		c.phone = phones[i]
		if rng.IntN(6) > 0 {
			first := firsts[rng.IntN(len(firsts))]
			if first == "Zqx" && i%40 != 0 { // rare: a few contacts
				first = "Anil"
			}
			c.name = text(first + " " + lasts[rng.IntN(len(lasts))])
		}
		if rng.IntN(4) > 0 {
			c.email = text(locals[rng.IntN(len(locals))] + "@" + domains[rng.IntN(len(domains))])
		}
		c.segments = map[string]bool{}
	}
	// Exact ties of the email too, apart in creation order.
	cs[10].email, cs[200].email, cs[100].email = text("same@x.in"), text("same@x.in"), text("SAME@x.in")

	// Insert them in the order of cs, one at a time: their IDs are that order.
	for i := range cs {
		c := &cs[i]
		if err := owner.DB().QueryRowContext(ctx, `INSERT INTO contacts (workspace_id, phone, name, email) VALUES ($1, $2, $3, $4) RETURNING id`,
			ws.ID, c.phone, c.name, c.email).Scan(&c.id); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Exec(t, owner.DB(), `INSERT INTO contacts (workspace_id, phone, name, email) VALUES ($1, '+100000000', 'Asha Mehta', 'aaa@x.in')`, other.ID)

	// Segments: 8 and 20 members (members first; an Any list of 20 hashed), 60 and
	// 180 (walks), the 60 last by phone and the emailless (last by email, ascending):
	// for pages of 9 of these 240 contacts, a walk reads at most 4 × 10 × 240 / 60 =
	// 160 rows, and then reads the members first (store.walkLimitFactor).
	byPhone := slices.Clone(cs)
	slices.SortFunc(byPhone, func(a, b sortContact) int { return strings.Compare(a.phone, b.phone) })
	segSize := map[string]int{"tiny": 8, "small": 20, "mid": 60, "big": 180}
	perm := rng.Perm(len(cs))
	for name, n := range segSize {
		for _, i := range perm[:n] {
			cs[i].segments[name] = true
		}
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	}
	lastByPhone := map[int64]bool{}
	for _, c := range byPhone[len(byPhone)-60:] {
		lastByPhone[c.id] = true
	}
	for i := range cs {
		if lastByPhone[cs[i].id] {
			cs[i].segments["late"] = true
		}
		if cs[i].email == nil {
			cs[i].segments["emailless"] = true
		}
	}
	segs := map[string]int64{}
	for _, name := range []string{"tiny", "small", "mid", "big", "late", "emailless"} {
		var id int64
		if err := owner.DB().QueryRowContext(ctx, `INSERT INTO segments (workspace_id, name) VALUES ($1, $2) RETURNING id`, ws.ID, name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		segs[name] = id
		for _, c := range cs {
			if c.segments[name] {
				storetest.Exec(t, owner.DB(), `INSERT INTO memberships (workspace_id, segment_id, contact_id) VALUES ($1, $2, $3)`, ws.ID, id, c.id)
			}
		}
	}
	storetest.Exec(t, owner.DB(), "VACUUM ANALYZE contacts, memberships")
	store.LearnStatistics(app)

	// The oracle, in Go.
	lower := func(s *string) *string {
		if s == nil {
			return nil
		}
		l := strings.ToLower(*s)
		return &l
	}
	compare := map[crm.ContactOrderField]func(a, b sortContact) int{
		crm.ContactsByPhone: func(a, b sortContact) int { return strings.Compare(a.phone, b.phone) },
		crm.ContactsByEmail: func(a, b sortContact) int {
			x, y := lower(a.email), lower(b.email)
			switch {
			case x == nil && y == nil:
				return cmp.Compare(a.id, b.id)
			case x == nil:
				return 1
			case y == nil:
				return -1
			}
			return cmp.Or(strings.Compare(*x, *y), cmp.Compare(a.id, b.id))
		},
	}
	matches := func(c sortContact, term string) bool {
		if term == "" {
			return true
		}
		for _, s := range []*string{lower(c.name), &c.phone, lower(c.email)} {
			if s != nil && strings.Contains(*s, term) {
				return true
			}
		}
		return false
	}
	inAudience := func(c sortContact, f map[string][]string) bool {
		if anyOf, listed := f["any"]; listed && !slices.ContainsFunc(anyOf, func(s string) bool { return c.segments[s] }) {
			return false
		}
		for _, s := range f["all"] {
			if !c.segments[s] {
				return false
			}
		}
		return !slices.ContainsFunc(f["none"], func(s string) bool { return c.segments[s] })
	}
	ids := func(names []string) []int64 {
		if names == nil {
			return nil
		}
		out := []int64{}
		for _, n := range names {
			out = append(out, segs[n])
		}
		return out
	}
	want := func(term string, f map[string][]string, o crm.ContactOrder) []int64 {
		var kept []sortContact
		for _, c := range cs {
			if matches(c, term) && inAudience(c, f) {
				kept = append(kept, c)
			}
		}
		slices.SortFunc(kept, compare[o.Field])
		out := make([]int64, len(kept))
		for i, c := range kept {
			out[i] = c.id
		}
		if o.Direction == crm.Desc {
			slices.Reverse(out)
		}
		return out
	}

	type filter = map[string][]string
	queries := []struct {
		term string
		f    filter
	}{
		{"", nil},
		{"", filter{"none": {"mid"}}},
		{"", filter{"any": {"tiny"}}},
		{"", filter{"any": {"small"}}},
		{"", filter{"any": {"big"}}},
		{"", filter{"any": {"late"}}},
		{"", filter{"any": {"emailless"}}},
		{"", filter{"any": {"tiny", "mid"}}},
		{"", filter{"all": {"big"}}},
		{"", filter{"all": {"late"}}},
		{"", filter{"all": {"big", "mid"}}},
		{"", filter{"any": {"big"}, "all": {"mid"}}},
		{"", filter{"any": {"mid"}, "none": {"tiny"}}},
		{"mehta", nil},
		{"mehta", filter{"none": {"mid"}}},
		{"mehta", filter{"any": {"big"}}},
		{"mehta", filter{"any": {"small"}}},
		{"mehta", filter{"all": {"big", "mid"}}},
		{"zqx", nil},
		{"zqx", filter{"any": {"big"}}},
		{"98", nil},
		{"98", filter{"any": {"late"}}},
	}
	for _, field := range []crm.ContactOrderField{crm.ContactsByPhone, crm.ContactsByEmail} {
		for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
			o := crm.ContactOrder{Field: field, Direction: dir}
			ways := map[string]bool{}
			for _, q := range queries {
				cq := crm.ContactQuery{Search: q.term, Order: o,
					Segments: crm.MembershipFilter{Any: ids(q.f["any"]), All: ids(q.f["all"]), None: ids(q.f["none"])}}
				w := want(q.term, q.f, o)
				if len(w) == 0 {
					t.Fatalf("%q %v keeps no contact: the test proves nothing", q.term, q.f)
				}
				name := fmt.Sprintf("%s %s %q %v", field, dir, q.term, q.f)
				if q.term == "" && (q.f["any"] != nil || q.f["all"] != nil) {
					first := 9
					sql, err := store.ContactsPageSQL(app, ws.ID, cq, crm.PageArgs{First: &first})
					if err != nil {
						t.Fatal(err)
					}
					ways[wayRun(t, actx, app, sql)] = true
				}
				// Pages of 9 (cheaper ways are chosen for small pages: see the ways below),
				// of 25 for the long lists, whose pages of 9 took the test minutes under
				// -race, and of 100.
				small := 9
				if len(w) > 60 {
					small = 25
				}
				for _, size := range []int{small, 100} {
					if got := allPages(t, actx, app, ws.ID, cq, size, false); !slices.Equal(got, w) {
						t.Errorf("%s, pages of %d forward: %d contacts %v..., want %d %v...", name, size, len(got), head(got), len(w), head(w))
					}
					if got := allPages(t, actx, app, ws.ID, cq, size, true); !slices.Equal(got, w) {
						t.Errorf("%s, pages of %d backward: %d contacts %v..., want %d %v...", name, size, len(got), head(got), len(w), head(w))
					}
				}
				// totalCount: the page's own count where its statement has one, else
				// a count of its own.
				first := 9
				p, err := app.Contacts(actx, ws.ID, cq, crm.PageArgs{First: &first})
				if err != nil {
					t.Fatal(err)
				}
				if n, known := p.Total(); known && n != len(w) {
					t.Errorf("%s: the page's total %d, want %d", name, n, len(w))
				}
				if n, err := app.CountContacts(actx, ws.ID, cq); err != nil || n != len(w) {
					t.Errorf("%s: counted %d (%v), want %d", name, n, err, len(w))
				}
			}
			// Every way of reading a page of members was taken.
			for _, way := range []string{"members first", "walk", "hashed walk"} {
				if !ways[way] {
					t.Errorf("%s %s: no page read by %s (%v): the test proves less than it says", field, dir, way, ways)
				}
			}
			if dir == crm.Asc && !ways["walk, then members first"] && !ways["hashed walk, then members first"] {
				t.Errorf("%s %s: no walk fell short (%v): the test proves less than it says", field, dir, ways)
			}
			// A batch of segments, each page read its own way (ascending: the batch
			// shares the walks' code with the pages above).
			if dir == crm.Desc {
				continue
			}
			batch := ids([]string{"tiny", "small", "mid", "big", "late", "emailless"})
			for _, term := range []string{"", "mehta"} {
				for _, seg := range []string{"tiny", "small", "mid", "big", "late", "emailless"} {
					w := want(term, filter{"any": {seg}}, o)
					for _, backward := range []bool{false, true} {
						if got := allBatchPages(t, actx, app, ws.ID, batch, segs[seg], crm.ContactQuery{Search: term, Order: o}, 9, backward); !slices.Equal(got, w) {
							t.Errorf("%s %s, batch %q, %s (backward %v): %d contacts %v..., want %d %v...",
								field, dir, term, seg, backward, len(got), head(got), len(w), head(w))
						}
					}
				}
			}
		}
	}
}

// TestPhoneCursorAfterThePhoneMoved: a PHONE cursor is still a position once its
// contact's phone has moved to a newer contact: that contact lies after it
// ascending (before it descending), by its ID, and is listed once, as with any
// order's ties; the pages order by the phone alone (unique in the workspace).
func TestPhoneCursorAfterThePhoneMoved(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	actx := store.WithWorkspace(ctx, ws.ID)
	ids := map[string]int64{}
	for _, p := range []string{"+91980000001", "+91980000002", "+91980000003", "+91980000004"} {
		var id int64
		if err := owner.DB().QueryRowContext(ctx, `INSERT INTO contacts (workspace_id, phone) VALUES ($1, $2) RETURNING id`, ws.ID, p).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[p] = id
	}
	two := 2
	for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
		cq := crm.ContactQuery{Order: crm.ContactOrder{Field: crm.ContactsByPhone, Direction: dir}}
		first, err := app.Contacts(actx, ws.ID, cq, crm.PageArgs{First: &two})
		if err != nil {
			t.Fatal(err)
		}
		cursor := first.Cursor(1) // ...02 ascending, ...03 descending
		moved := first.Items[1].Phone
		// Its phone moves to a new contact; it takes another.
		storetest.Exec(t, owner.DB(), `UPDATE contacts SET phone = '+91980000009' WHERE workspace_id = $1 AND phone = $2`, ws.ID, moved)
		var newer int64
		if err := owner.DB().QueryRowContext(ctx, `INSERT INTO contacts (workspace_id, phone) VALUES ($1, $2) RETURNING id`, ws.ID, moved).Scan(&newer); err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, args := range []crm.PageArgs{{First: ptrTo(10), After: &cursor}, {Last: ptrTo(10), Before: &cursor}} {
			p, err := app.Contacts(actx, ws.ID, cq, args)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Items {
				got = append(got, c.ID)
			}
		}
		if n := len(slices.DeleteFunc(got, func(id int64) bool { return id != newer })); n != 1 {
			t.Errorf("%s: the contact given the cursor's phone is listed %d times on the pages after and before it, want once", dir, n)
		}
		// After the cursor ascending (its ID is larger), before it descending.
		p, err := app.Contacts(actx, ws.ID, cq, crm.PageArgs{First: ptrTo(10), After: &cursor})
		if err != nil {
			t.Fatal(err)
		}
		after := slices.ContainsFunc(p.Items, func(c crm.Contact) bool { return c.ID == newer })
		if after != (dir == crm.Asc) {
			t.Errorf("%s: the contact given the cursor's phone is after it: %v", dir, after)
		}
		// Put things back for the other direction.
		storetest.Exec(t, owner.DB(), `DELETE FROM contacts WHERE workspace_id = $1 AND id = $2`, ws.ID, newer)
		storetest.Exec(t, owner.DB(), `UPDATE contacts SET phone = $2 WHERE workspace_id = $1 AND phone = '+91980000009'`, ws.ID, moved)
	}
}

func ptrTo(n int) *int { return &n }
