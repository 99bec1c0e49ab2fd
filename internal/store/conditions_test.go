package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// conditionsData is a workspace whose contacts differ in every field a
// ContactConditions tests, with their stored values, for the brute-force tests.
type conditionsData struct {
	ws       int64
	contacts map[int64]crm.Contact
	members  map[int64]map[int64]bool // segment → contacts
	segs     []int64
	created  []time.Time // the distinct creation times, ascending
	updated  []time.Time
}

// conditionAttributes are the attributes the contacts get in turn: values of every
// JSON type, numbers written differently, a number and the string of it, arrays
// and objects that contain others.
var conditionAttributes = []string{
	`{}`,
	`{"city": "Pune", "orders": 12, "language": "mr"}`,
	`{"city": "Mumbai", "orders": 3.5}`,
	`{"city": "Pune", "orders": "12"}`,
	`{"city": "pune", "orders": 12.0, "vip": true}`,
	`{"orders": 5, "tags": ["gold", "silver"]}`,
	`{"orders": -2, "tags": ["gold"], "vip": false}`,
	`{"orders": 1e3, "address": {"zip": "411001", "street": "MG Road"}}`,
	`{"address": {"zip": "411001"}, "city": null}`, // a key set to null is not stored
	`{"city": "Delhi", "orders": 10, "tags": []}`,
	`{"city": ["Pune"], "orders": [12]}`,
	`{"language": "hi", "orders": 0}`,
}

// conditionValues are the JSON values the random conditions compare with.
var conditionValues = []string{`"Pune"`, `"pune"`, `"Mumbai"`, `"12"`, `12`, `12.0`, `3.5`, `5`, `true`, `false`,
	`["gold"]`, `["gold", "silver"]`, `["silver", "gold"]`, `[]`, `{"zip": "411001"}`, `{"zip": "411001", "street": "MG Road"}`,
	`"mr"`, `null`, `0`, `["Pune"]`, `1000`}

var conditionKeys = []string{"city", "orders", "language", "tags", "vip", "address", "missing"}

func newConditionsData(t *testing.T, s *store.Store, ws int64, phoneBase int) *conditionsData {
	t.Helper()
	ctx := context.Background()
	d := &conditionsData{ws: ws, contacts: map[int64]crm.Contact{}, members: map[int64]map[int64]bool{}}
	// Six batches, each its own transaction: six creation times.
	n := 0
	for batch := range 6 {
		var in []crm.ContactInput
		for range 9 {
			i := n
			n++
			c := crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", phoneBase+i)}
			if i%4 != 3 {
				name := fmt.Sprintf("even %d", i)
				if i%2 == 1 {
					name = fmt.Sprintf("Odd %d", i)
				}
				c.Name = crm.Some(&name)
			}
			if i%3 != 0 {
				email := fmt.Sprintf("c%d@example.com", i)
				c.Email = crm.Some(&email)
			}
			var attrs map[string]any
			dec := json.NewDecoder(strings.NewReader(conditionAttributes[(i+batch)%len(conditionAttributes)]))
			dec.UseNumber()
			if err := dec.Decode(&attrs); err != nil {
				t.Fatal(err)
			}
			c.Attributes = crm.Some(attrs)
			in = append(in, c)
		}
		up, err := s.UpsertContacts(ctx, ws, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range up.Contacts {
			d.contacts[c.ID] = c
		}
		time.Sleep(3 * time.Millisecond)
	}
	// Some contacts change later: their own update times.
	ids := slices.Sorted(mapsKeys(d.contacts))
	for k, id := range ids {
		if k%5 != 2 {
			continue
		}
		name := fmt.Sprintf("renamed odd %d", k)
		c, err := s.UpdateContact(ctx, ws, id, crm.ContactPatch{ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}})
		if err != nil {
			t.Fatal(err)
		}
		d.contacts[id] = c
		time.Sleep(2 * time.Millisecond)
	}
	// Three segments; every seventh contact is in none.
	rng := rand.New(rand.NewPCG(7, uint64(phoneBase)))
	for k := range 3 {
		var in []int64
		for j, id := range ids {
			if j%7 != 0 && rng.IntN(3) > 0 {
				in = append(in, id)
			}
		}
		seg, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: fmt.Sprintf("C%d", k), ContactIDs: in})
		if err != nil {
			t.Fatal(err)
		}
		d.segs = append(d.segs, seg.ID)
		d.members[seg.ID] = map[int64]bool{}
		for _, id := range in {
			d.members[seg.ID][id] = true
		}
	}
	// The stored values, as PostgreSQL keeps them.
	got, err := s.ContactsByID(ctx, ws, ids)
	if err != nil {
		t.Fatal(err)
	}
	created, updated := map[time.Time]bool{}, map[time.Time]bool{}
	for id, c := range got {
		d.contacts[id] = c
		created[c.CreatedAt], updated[c.UpdatedAt] = true, true
	}
	d.created = slices.SortedFunc(mapsKeys(created), time.Time.Compare)
	d.updated = slices.SortedFunc(mapsKeys(updated), time.Time.Compare)
	return d
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// randomConditions returns conditions drawn at random, each field given at times.
func (d *conditionsData) randomConditions(rng *rand.Rand) crm.ContactConditions {
	var c crm.ContactConditions
	timeRange := func(times []time.Time) crm.TimeRange {
		pick := func() *time.Time {
			t := times[rng.IntN(len(times))]
			switch rng.IntN(3) {
			case 0:
				t = t.Add(-time.Microsecond)
			case 1:
				t = t.Add(time.Microsecond)
			}
			return &t
		}
		var r crm.TimeRange
		if rng.IntN(3) > 0 {
			r.From = pick()
		}
		if rng.IntN(3) > 0 {
			r.To = pick()
		}
		return r
	}
	flag := func() *bool {
		v := rng.IntN(2) == 0
		return &v
	}
	if rng.IntN(4) == 0 {
		c.CreatedAt = timeRange(d.created)
	}
	if rng.IntN(5) == 0 {
		c.UpdatedAt = timeRange(d.updated)
	}
	if rng.IntN(4) == 0 {
		c.HasEmail = flag()
	}
	if rng.IntN(5) == 0 {
		c.HasName = flag()
	}
	if rng.IntN(4) == 0 {
		c.InAnySegment = flag()
	}
	for range rng.IntN(3) {
		a := crm.AttributeCondition{Key: conditionKeys[rng.IntN(len(conditionKeys))]}
		value := func() json.RawMessage {
			for {
				if v := conditionValues[rng.IntN(len(conditionValues))]; v != "null" {
					return json.RawMessage(v)
				}
			}
		}
		number := func() *float64 {
			v := []float64{-2, 0, 3.5, 5, 10, 12, 1000}[rng.IntN(7)]
			return &v
		}
		switch rng.IntN(5) {
		case 0:
			a.Equals = value()
		case 1:
			a.In = []json.RawMessage{}
			for range rng.IntN(4) {
				a.In = append(a.In, value())
			}
		case 2:
			a.Exists = flag()
		case 3:
			a.AtLeast = number()
			if rng.IntN(2) == 0 {
				a.AtMost = number()
			}
		case 4:
			a.AtMost = number()
		}
		c.Attributes = append(c.Attributes, a)
	}
	return c
}

// keeps reports whether the conditions c keep contact id, computed here from its
// stored values.
func (d *conditionsData) keeps(c crm.ContactConditions, id int64) bool {
	ct := d.contacts[id]
	if !c.CreatedAt.Holds(ct.CreatedAt) || !c.UpdatedAt.Holds(ct.UpdatedAt) {
		return false
	}
	if c.HasEmail != nil && *c.HasEmail != (ct.Email != nil) || c.HasName != nil && *c.HasName != (ct.Name != nil) {
		return false
	}
	if c.InAnySegment != nil {
		in := false
		for _, m := range d.members {
			in = in || m[id]
		}
		if in != *c.InAnySegment {
			return false
		}
	}
	attrs := decodeJSON(ct.Attributes).(map[string]any)
	for _, a := range c.Attributes {
		v, ok := attrs[a.Key]
		switch {
		case a.Equals != nil:
			if !ok || !jsonEqual(v, decodeJSON(a.Equals)) {
				return false
			}
		case a.In != nil:
			if !ok || !slices.ContainsFunc(a.In, func(w json.RawMessage) bool { return jsonEqual(v, decodeJSON(w)) }) {
				return false
			}
		case a.Exists != nil:
			if ok != *a.Exists {
				return false
			}
		default:
			n, isNumber := v.(json.Number)
			if !ok || !isNumber {
				return false
			}
			r, _ := new(big.Rat).SetString(string(n))
			bound := func(f float64) *big.Rat {
				b, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
				return b
			}
			if a.AtLeast != nil && r.Cmp(bound(*a.AtLeast)) < 0 || a.AtMost != nil && r.Cmp(bound(*a.AtMost)) > 0 {
				return false
			}
		}
	}
	return true
}

func decodeJSON(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return v
}

// jsonEqual is JSON's equality as jsonb's: numbers by value, arrays in order,
// objects key by key.
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, _ := new(big.Rat).SetString(string(a))
		y, _ := new(big.Rat).SetString(string(b))
		return x.Cmp(y) == 0
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, jsonEqual)
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}

func (d *conditionsData) describe(cq crm.ContactQuery) string {
	c := cq.Conditions
	var b strings.Builder
	fmt.Fprintf(&b, "search %q segments %+v", cq.Search, cq.Segments)
	r := func(name string, r crm.TimeRange) {
		if r.From != nil {
			fmt.Fprintf(&b, " %s>=%s", name, r.From.Format(time.RFC3339Nano))
		}
		if r.To != nil {
			fmt.Fprintf(&b, " %s<%s", name, r.To.Format(time.RFC3339Nano))
		}
	}
	r("created", c.CreatedAt)
	r("updated", c.UpdatedAt)
	for name, v := range map[string]*bool{"hasEmail": c.HasEmail, "hasName": c.HasName, "inAnySegment": c.InAnySegment} {
		if v != nil {
			fmt.Fprintf(&b, " %s=%t", name, *v)
		}
	}
	for _, a := range c.Attributes {
		fmt.Fprintf(&b, " [%s", a.Key)
		switch {
		case a.Equals != nil:
			fmt.Fprintf(&b, " = %s", a.Equals)
		case a.In != nil:
			fmt.Fprintf(&b, " in %s", a.In)
		case a.Exists != nil:
			fmt.Fprintf(&b, " exists %t", *a.Exists)
		}
		if a.AtLeast != nil {
			fmt.Fprintf(&b, " >= %g", *a.AtLeast)
		}
		if a.AtMost != nil {
			fmt.Fprintf(&b, " <= %g", *a.AtMost)
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, " order %s %s", cq.Order.Field, cq.Order.Direction)
	return b.String()
}

// countedComplement matches a count by countComplement: the workspace's counters
// less the opposite condition's count.
var countedComplement = regexp.MustCompile(`FROM contact_counts WHERE workspace_id = (\d+|\(SELECT \d+::bigint\))\) - \(`)

// TestContactConditionsMatchBruteForce is the proof of ContactQuery.Conditions: for
// hundreds of random filters of every field (dates, email, name, being in any
// segment, attribute conditions of each operator), alone and with segment lists and
// a search, every path that reads contacts returns exactly the contacts the same
// filter keeps computed here in Go from their stored values: pages of each order,
// forward and backward from cursors, with the catalog's segments, the count, counts
// up to a limit, and a contactsMatching assignment and removal. Another workspace
// holds contacts with the same attributes, phones and segments, which never appear;
// a hundred of the filters run again as the server's role, which row-level security
// holds to the workspace.
func TestContactConditionsMatchBruteForce(t *testing.T) {
	ctx := context.Background()
	s, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	d := newConditionsData(t, s, ws.ID, 84_000)
	newConditionsData(t, s, other.ID, 84_000) // the same contacts elsewhere
	scratch, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "scratch"})
	if err != nil {
		t.Fatal(err)
	}

	// The list in each order, unfiltered, as the store reads it: the expected
	// pages are it, filtered.
	orders := []crm.ContactOrder{}
	for _, f := range []crm.ContactOrderField{crm.ContactsByCreatedAt, crm.ContactsByUpdatedAt, crm.ContactsByName, crm.ContactsByPhone, crm.ContactsByEmail} {
		for _, dir := range []crm.Direction{crm.Asc, crm.Desc} {
			orders = append(orders, crm.ContactOrder{Field: f, Direction: dir})
		}
	}
	inOrder := map[crm.ContactOrder][]int64{}
	for _, o := range orders {
		inOrder[o] = pageAll(t, ctx, s, ws.ID, crm.ContactQuery{Order: o}, 100)
		if len(inOrder[o]) != len(d.contacts) {
			t.Fatalf("%v: %d contacts, want %d", o, len(inOrder[o]), len(d.contacts))
		}
	}

	rng := rand.New(rand.NewPCG(11, 12))
	memberships := []crm.MembershipFilter{
		{},
		{Any: []int64{d.segs[0]}},
		{Any: []int64{d.segs[0], d.segs[1]}},
		{All: []int64{d.segs[1]}},
		{All: []int64{d.segs[0], d.segs[2]}},
		{None: []int64{d.segs[2]}},
		{Any: []int64{d.segs[1]}, None: []int64{d.segs[0]}},
	}
	inSegments := func(f crm.MembershipFilter, id int64) bool {
		in := func(list []int64) bool {
			return slices.ContainsFunc(list, func(seg int64) bool { return d.members[seg][id] })
		}
		return (f.Any == nil || in(f.Any)) && !slices.ContainsFunc(f.All, func(seg int64) bool { return !d.members[seg][id] }) && !in(f.None)
	}
	// The conditions whose counts alone take their own way (the partial indexes of
	// the contacts without an email or a name; the workspace's contacts less the
	// opposite condition's: countComplement): one of them, in turn, at every seventh
	// run, which the lists and the search join at times as they join the others.
	yes, no := true, false
	alone := []struct {
		c          crm.ContactConditions
		complement bool
	}{
		{crm.ContactConditions{HasEmail: &yes}, true},
		{crm.ContactConditions{HasEmail: &no}, false},
		{crm.ContactConditions{HasName: &yes}, true},
		{crm.ContactConditions{HasName: &no}, false},
		{crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "vip", Exists: &no}}}, true},
		{crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "city", Exists: &no}}}, true},
		{crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "missing", Exists: &no}}}, true},
	}
	complements := 0
	kept := 0
	check := func(s *store.Store, ctx context.Context, runs int) {
		for run := range runs {
			cq := crm.ContactQuery{Conditions: d.randomConditions(rng), Order: orders[rng.IntN(len(orders))]}
			if run%7 == 3 { // being in a segment alone: counted from the bitmaps
				in := run%2 == 0
				cq.Conditions = crm.ContactConditions{InAnySegment: &in}
			}
			oneAlone := run%7 == 5
			if oneAlone {
				cq.Conditions = alone[(run/7)%len(alone)].c
			}
			if rng.IntN(3) == 0 || run%7 == 3 {
				cq.Segments = memberships[rng.IntN(len(memberships))]
			}
			if rng.IntN(4) == 0 {
				cq.Search = "odd"
			}
			what := fmt.Sprintf("run %d: %s", run, d.describe(cq))
			want := []int64{}
			for _, id := range inOrder[cq.Order] {
				if d.keeps(cq.Conditions, id) && inSegments(cq.Segments, id) &&
					(cq.Search == "" || d.contacts[id].Name != nil && strings.Contains(strings.ToLower(*d.contacts[id].Name), "odd")) {
					want = append(want, id)
				}
			}
			kept += len(want)
			size := 1 + rng.IntN(9)
			if got := pageAll(t, ctx, s, ws.ID, cq, size); !slices.Equal(got, want) {
				t.Errorf("%s: pages of %d forward %v, want %v", what, size, got, want)
			}
			if got := pageAllBackward(t, ctx, s, ws.ID, cq, size); !slices.Equal(got, want) {
				t.Errorf("%s: pages of %d backward %v, want %v", what, size, got, want)
			}
			first := 100
			p, _, err := s.ContactsWithCatalogSegments(ctx, ws.ID, cq, crm.PageArgs{First: &first})
			if err != nil {
				t.Fatalf("%s: with the catalog: %v", what, err)
			}
			if got := ids(p.Items); !slices.Equal(got, want) {
				t.Errorf("%s: page with the catalog %v, want %v", what, got, want)
			}
			if n, known := p.Total(); known && n != len(want) {
				t.Errorf("%s: page's total %d, want %d", what, n, len(want))
			}
			capture, sent := store.CaptureStatements(ctx)
			n, err := s.CountContacts(capture, ws.ID, cq)
			if err != nil {
				t.Fatalf("%s: count: %v", what, err)
			}
			if n != len(want) {
				t.Errorf("%s: count %d, want %d", what, n, len(want))
			}
			if oneAlone {
				// Alone, the complements are counted with the workspace's counters
				// less the opposite's; with a list or a search, as every other
				// filter (whose count may read the counters to choose its way).
				complement := alone[(run/7)%len(alone)].complement && cq.Search == "" && cq.Segments.IsZero()
				if got := countedComplement.MatchString(strings.Join(sent(), "\n")); got != complement {
					t.Errorf("%s: the count read the counters: %t, want %t", what, got, complement)
				}
				if complement {
					complements++
				}
			}
			limit := 1 + rng.IntN(len(want)+2)
			n, err = s.CountContactsUpTo(ctx, ws.ID, cq, limit)
			switch {
			case err != nil:
				t.Fatalf("%s: count up to %d: %v", what, limit, err)
			case len(want) <= limit && n != len(want), len(want) > limit && n <= limit:
				t.Errorf("%s: count up to %d: %d, want %d", what, limit, n, len(want))
			}
			if run%10 == 0 && cq.Conditions.InAnySegment == nil {
				// A select-all into the empty scratch segment holds exactly them; then
				// out again. (Not with inAnySegment: the assignment changes it.)
				ch, err := s.AssignContactsMatching(ctx, ws.ID, cq, []int64{scratch.ID}, store.WithoutSegments)
				if err != nil {
					t.Fatalf("%s: assign: %v", what, err)
				}
				members := pageAll(t, ctx, s, ws.ID, crm.ContactQuery{Segments: crm.MembershipFilter{Any: []int64{scratch.ID}}, Order: cq.Order}, 100)
				if ch.Matched != len(want) || !slices.Equal(members, want) {
					t.Errorf("%s: assigned %d, members %v, want %v", what, ch.Matched, members, want)
				}
				ch, err = s.RemoveContactsMatching(ctx, ws.ID, cq, []int64{scratch.ID}, store.WithoutSegments)
				if err != nil || ch.Changed != len(want) {
					t.Fatalf("%s: remove: %d removed, %v; want %d", what, ch.Changed, err, len(want))
				}
			}
		}
	}
	check(s, ctx, 300)
	check(app, store.WithWorkspace(ctx, ws.ID), 100)
	if kept < 400*len(d.contacts)/20 {
		t.Errorf("the filters kept %d contacts in all: too few to prove much", kept)
	}
	if complements < 10 {
		t.Errorf("%d counts were complements: too few to prove much", complements)
	}
}

// TestCountsOfUnindexedConditionsTakeIndexes proves that, as the server's role, a
// count of hasEmail or hasName alone, or of an attribute's exists: false alone,
// reads an index, where each read every contact of the workspace (0.2-1.1 s at 1M
// contacts): those without an email or a name index-only from their partial indexes
// (contacts_without_email, contacts_without_name), the others as the workspace's
// counters less those of the opposite condition, which the indexes find (the key's
// in contacts_attributes). And the counts are exact.
func TestCountsOfUnindexedConditionsTakeIndexes(t *testing.T) {
	ctx := context.Background()
	// A database of its own: its ANALYZE changes no other test's statistics.
	owner, app := storetest.NewStores(t, store.Options{})
	ws, _ := storetest.Workspace(t, owner)
	// Enough contacts that an index is worth more than reading the workspace: every
	// 7th without an email, every 25th without a name, every 50th with the key vip.
	const contacts = 5000
	storetest.Exec(t, owner.DB(), fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone, name, email, attributes)
		SELECT %d, '+9196' || lpad(g::text, 8, '0'),
		       CASE WHEN g %% 25 <> 0 THEN 'Name ' || g END,
		       CASE WHEN g %% 7 <> 0 THEN 'c' || g || '@example.com' END,
		       CASE WHEN g %% 50 = 0 THEN '{"vip": true, "city": "Pune"}' ELSE '{"city": "Pune"}' END::jsonb
		  FROM generate_series(1, %d) g;
		ANALYZE contacts`, ws.ID, contacts))
	withoutEmail, withoutName, vip := contacts/7, contacts/25, contacts/50
	yes, no := true, false
	for _, c := range []struct {
		name       string
		c          crm.ContactConditions
		want       int
		complement bool   // counted as the workspace's contacts less the opposite's
		index      string // that the count, or the opposite's, reads
	}{
		{"hasEmail: false", crm.ContactConditions{HasEmail: &no}, withoutEmail, false, "contacts_without_email"},
		{"hasEmail: true", crm.ContactConditions{HasEmail: &yes}, contacts - withoutEmail, true, "contacts_without_email"},
		{"hasName: false", crm.ContactConditions{HasName: &no}, withoutName, false, "contacts_without_name"},
		{"hasName: true", crm.ContactConditions{HasName: &yes}, contacts - withoutName, true, "contacts_without_name"},
		{"exists: false", crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "vip", Exists: &no}}}, contacts - vip, true, "contacts_attributes"},
	} {
		capture, sent := store.CaptureStatements(store.WithWorkspace(ctx, ws.ID))
		n, err := app.CountContacts(capture, ws.ID, crm.ContactQuery{Conditions: c.c})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n != c.want {
			t.Errorf("%s: %d contacts, want %d", c.name, n, c.want)
		}
		stmts := sent()
		if len(stmts) != 1 {
			t.Fatalf("%s: %d statements, want 1: %q", c.name, len(stmts), stmts)
		}
		if got := strings.Contains(stmts[0], "contact_counts"); got != c.complement {
			t.Errorf("%s: the count reads the counters: %t, want %t:\n%s", c.name, got, c.complement, stmts[0])
		}
		// Small tables are read whole when allowed: forbid that, and make filtering
		// rows dear, so that the plan shows which conditions an index can take.
		cond, plan := indexCond(t, store.WithWorkspace(ctx, ws.ID), app.DB(),
			"SET LOCAL enable_seqscan = off; SET LOCAL cpu_operator_cost = 1", stmts[0], c.index)
		switch {
		case c.index == "contacts_attributes" && !strings.Contains(cond, "?"):
			t.Errorf("%s: as the app role the key is not looked up in %s:\n%s", c.name, c.index, plan)
		case c.index != "contacts_attributes" && !strings.Contains(plan, "Index Only Scan using "+c.index+" "):
			t.Errorf("%s: as the app role the count reads more than %s:\n%s", c.name, c.index, plan)
		}
	}
}

func ids(cs []crm.Contact) []int64 {
	out := []int64{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// pageAll reads every page of cq, of size contacts, forward, and returns the IDs.
func pageAll(t *testing.T, ctx context.Context, s *store.Store, ws int64, cq crm.ContactQuery, size int) []int64 {
	t.Helper()
	out := []int64{}
	for after := (*string)(nil); ; {
		p, err := s.Contacts(ctx, ws, cq, crm.PageArgs{First: &size, After: after})
		if err != nil {
			t.Fatalf("page after %d: %v", len(out), err)
		}
		out = append(out, ids(p.Items)...)
		if !p.HasNextPage || len(p.Items) == 0 {
			return out
		}
		if len(out) > 1000 {
			t.Fatal("pages do not end")
		}
		end := p.Cursor(len(p.Items) - 1)
		after = &end
	}
}

// pageAllBackward reads every page of cq, of size contacts, from the end, and
// returns the IDs in the list's order.
func pageAllBackward(t *testing.T, ctx context.Context, s *store.Store, ws int64, cq crm.ContactQuery, size int) []int64 {
	t.Helper()
	var pages [][]int64
	n := 0
	for before := (*string)(nil); ; {
		p, err := s.Contacts(ctx, ws, cq, crm.PageArgs{Last: &size, Before: before})
		if err != nil {
			t.Fatalf("page before %d: %v", n, err)
		}
		pages = append(pages, ids(p.Items))
		n += len(p.Items)
		if !p.HasPreviousPage || len(p.Items) == 0 {
			break
		}
		if n > 1000 {
			t.Fatal("pages do not end")
		}
		start := p.Cursor(0)
		before = &start
	}
	out := []int64{}
	for _, p := range slices.Backward(pages) {
		out = append(out, p...)
	}
	return out
}
