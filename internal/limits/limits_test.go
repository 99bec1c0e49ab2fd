package limits_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/limits/limitstest"
)

var schema = sync.OnceValue(func() *ast.Schema {
	b, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		panic(err)
	}
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(b)})
	if err != nil {
		panic(err)
	}
	return s
})

var defaults = limits.Defaults.WithDefaults()

// with returns the default limits changed by f.
func with(f func(*limits.Limits)) limits.Limits {
	l := defaults
	f(&l)
	return l
}

// check runs what the handler runs before validation: the tokens, then Check.
func check(t *testing.T, q string, l limits.Limits) *limits.Error {
	t.Helper()
	if _, err := limits.CountTokens(q, l.MaxTokens); err != nil {
		return err
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		t.Fatalf("parse %q: %v", q, err)
	}
	return limits.Check(doc, l)
}

func TestWithDefaults(t *testing.T) {
	if got := (limits.Limits{}).WithDefaults(); got != limits.Defaults {
		t.Errorf("zero limits: %+v, want the defaults %+v", got, limits.Defaults)
	}
	l := limits.Limits{MaxDepth: 3, MaxCost: -1}.WithDefaults()
	if l.MaxDepth != 3 || l.MaxCost != -1 || l.MaxTokens != limits.Defaults.MaxTokens {
		t.Errorf("set fields must stay: %+v", l)
	}
}

// TestCheckRefusesEachCap proves that each cap refuses a document one over it, with
// its code and its limit, and accepts the document at it.
func TestCheckRefusesEachCap(t *testing.T) {
	depth := func(n int) string { // n levels of fields: contact, n-2 more, id
		path := []string{"segments", "contacts", "nodes"}
		var b strings.Builder
		for i := range n - 2 {
			b.WriteString(path[i%3] + " { ")
		}
		return `{ contact(id: "C_AQ") { ` + b.String() + "id" + strings.Repeat(" }", n-2) + " } }"
	}
	for _, tc := range []struct {
		name     string
		l        limits.Limits
		over, at string
		code     string
	}{
		{"tokens", with(func(l *limits.Limits) { l.MaxTokens = 6 }),
			"{ workspace { id } } { a }", "{ workspace { id } } # comments, commas: no tokens\n,,,", limits.CodeMaxTokens},
		{"selections", with(func(l *limits.Limits) { l.MaxSelections = 3 }),
			"{ workspace { id name createdAt } }", "{ workspace { id name } }", limits.CodeMaxSelections},
		{"selections, a fragment counting at each spread", with(func(l *limits.Limits) { l.MaxSelections = 7 }),
			"{ a: workspace { ...W } b: workspace { ...W } } fragment W on Workspace { id name }",
			"{ a: workspace { ...W } b: workspace { id } } fragment W on Workspace { id name }", limits.CodeMaxSelections},
		{"selections, over the operations of a document", with(func(l *limits.Limits) { l.MaxSelections = 3 }),
			"query A { workspace { id } } query B { workspace { id } }", "query A { workspace { id } } query B { __typename }", limits.CodeMaxSelections},
		{"selections, of an unused fragment", with(func(l *limits.Limits) { l.MaxSelections = 3 }),
			"{ __typename } fragment W on Workspace { id name createdAt }", "{ __typename } fragment W on Workspace { id name }", limits.CodeMaxSelections},
		{"depth", defaults, depth(16), depth(15), limits.CodeMaxDepth},
		{"depth through fragments", with(func(l *limits.Limits) { l.MaxDepth = 3 }),
			`{ contact(id: "C_AQ") { ...C } } fragment C on Contact { segments { contacts { totalCount } } }`,
			`{ contact(id: "C_AQ") { ...C } } fragment C on Contact { segments { id } }`, limits.CodeMaxDepth},
		{"aliases", with(func(l *limits.Limits) { l.MaxAliases = 2 }),
			"{ workspace { a: id b: name c: createdAt id: id } }", "{ workspace { a: id b: name id: id } }", limits.CodeMaxAliases},
		{"directives", with(func(l *limits.Limits) { l.MaxDirectives = 2 }),
			"query @a { workspace @b { id @c } }", "query { workspace @b { id @c } }", limits.CodeMaxDirectives},
		{"root fields", with(func(l *limits.Limits) { l.MaxRootFields = 2 }),
			"{ workspace { id } ... { a: workspace { id } } ...Q } fragment Q on Query { __typename }",
			"{ workspace { id } ...Q } fragment Q on Query { __typename }", limits.CodeMaxRootFields},
		{"fragments", with(func(l *limits.Limits) { l.MaxFragments = 1 }),
			"{ ...A } fragment A on Query { ...B } fragment B on Query { __typename }",
			"{ ...A } fragment A on Query { __typename }", limits.CodeMaxFragments},
		{"repeated fields", with(func(l *limits.Limits) { l.MaxRepeatedFields = 2 }),
			"{ workspace { id id ... { id } } }", "{ workspace { id ... { id } } }", limits.CodeMaxRepeatedFields},
		{"repeated fields at one path", with(func(l *limits.Limits) { l.MaxRepeatedFields = 2 }),
			"{ workspace { id } workspace { id } ... { workspace { id } } }", "{ workspace { id } workspace { id } }", limits.CodeMaxRepeatedFields},
		{"repeated fields through fragments", with(func(l *limits.Limits) { l.MaxRepeatedFields = 2 }),
			"{ workspace { id ...A ...B } } fragment A on Workspace { id } fragment B on Workspace { id name }",
			"{ workspace { ...A ...B } } fragment A on Workspace { id } fragment B on Workspace { id name }", limits.CodeMaxRepeatedFields},
		{"list items", with(func(l *limits.Limits) { l.MaxListItems = 2 }),
			`{ nodes(ids: ["a", "b", "c"]) { id } }`, `{ nodes(ids: ["a", "b"]) { id } }`, limits.CodeMaxListItems},
		{"list items, nested", with(func(l *limits.Limits) { l.MaxListItems = 2 }),
			`{ contacts(filter: {segments: {any: ["a", "b", "c"]}}) { totalCount } }`, `{ contacts(filter: {segments: {any: ["a", "b"]}}) { totalCount } }`, limits.CodeMaxListItems},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(t, tc.over, tc.l)
			if err == nil || err.Code != tc.code {
				t.Fatalf("over: %v, want %s", err, tc.code)
			}
			if err.Limit <= 0 || !strings.Contains(err.Message, "maximum") {
				t.Errorf("over: limit %d, message %q", err.Limit, err.Message)
			}
			if err := check(t, tc.at, tc.l); err != nil {
				t.Errorf("at the cap: %v", err)
			}
		})
	}
}

// TestCheckRefusesFragmentCycles proves that a cycle of fragments, which would make
// a naive walker loop forever, is refused as invalid.
func TestCheckRefusesFragmentCycles(t *testing.T) {
	for _, q := range []string{
		`{ ...A } fragment A on Query { ...A }`,
		`{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ... { ...A } }`,
		`{ __typename } fragment A on Query { ...B } fragment B on Query { ...A }`, // unused
		`{ workspace { ...W } } fragment W on Workspace { id ...X } fragment X on Workspace { ...W }`,
	} {
		if err := check(t, q, defaults); err == nil || err.Code != limits.CodeValidationFailed {
			t.Errorf("%s: %v", q, err)
		}
	}
	// The error points at the spread that closes the cycle, as validation's would
	// (the spec's locations): it had none.
	q := "{ segments { nodes { ...A } } }\nfragment A on Segment { ...B }\nfragment B on Segment { id ...A }"
	if err := check(t, q, defaults); err == nil || err.At == nil || err.At.Line != 3 || err.At.Column != 31 {
		t.Errorf("%s: %v at %+v, want the error at line 3, column 31 (where gqlparser places a spread)", q, err, err.At)
	}
}

// TestCheckIgnoresWhatValidationReports: unknown fragments and duplicate names are
// left to validation, which names them better; they must not crash the walk.
func TestCheckIgnoresWhatValidationReports(t *testing.T) {
	for _, q := range []string{
		`{ ...Nowhere }`,
		`{ ...A } fragment A on Query { __typename } fragment A on Query { workspace { id } }`,
		`{ a } { b }`,
		`query A { __typename } query A { __typename }`,
	} {
		if err := check(t, q, defaults); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestCheckIsLinear proves that with every cap off, a fragment bomb (each fragment
// spreading the next twice, 2^60 fields once expanded) is tallied in microseconds
// and saturates instead of overflowing.
func TestCheckIsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("{ ...F0 } ")
	for i := range 60 {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d } ", i, i+1, i+1)
	}
	b.WriteString("fragment F60 on Query { workspace { id } }")
	off := limits.Limits{MaxTokens: -1, MaxSelections: -1, MaxDepth: -1, MaxAliases: -1, MaxDirectives: -1,
		MaxRootFields: -1, MaxFragments: -1, MaxRepeatedFields: -1, MaxListItems: -1}
	start := time.Now()
	if err := check(t, b.String(), off); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a 61-fragment bomb took %v", d)
	}
	// With the caps on, it stops at the first one exceeded.
	if err := check(t, b.String(), defaults); err == nil {
		t.Error("the bomb passed the default limits")
	}
}

// TestBlankComments: comments become spaces, a space for each character (gqlparser
// counts columns in characters), and nothing else changes (a "#" in a string or a
// block string is no comment), whatever the characters before them.
func TestBlankComments(t *testing.T) {
	for q, want := range map[string]string{
		"{ a }":                                "{ a }",
		"# é\n{ a } #x":                        "   \n{ a }   ",
		"{ a(b: \"#é😀\") } # c😀\r\n# d":        "{ a(b: \"#é😀\") }     \r\n   ",
		"{ a(b: \"\"\"x\n#y\"\"\") }#\n":       "{ a(b: \"\"\"x\n#y\"\"\") } \n",
		"\ufeff{ a } # ü\n{ b }":               "\ufeff{ a }    \n{ b }",
		"{ a(b: \"\"\"\\\"\"\"#\"\"\") } # 😀😀": "{ a(b: \"\"\"\\\"\"\"#\"\"\") }     ",
		"{ a(b: \"# unterminated":              "{ a(b: \"# unterminated",
	} {
		if got := limits.BlankComments(q); got != want {
			t.Errorf("BlankComments(%q) = %q, want %q", q, got, want)
		}
	}
}

func TestCountTokens(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want int
	}{
		{"", 0},
		{"{ a }", 3},
		{"# comment\n{ a }", 3},
		{"{ a, b } # comment", 4},
		{`{ a(b: "c", d: [1, 2]) }`, 14},
		{"{ a } \"unterminated", 3},
	} {
		if n, err := limits.CountTokens(tc.q, -1); n != tc.want || err != nil {
			t.Errorf("CountTokens(%q) = %d, %v; want %d", tc.q, n, err, tc.want)
		}
	}
	if n, err := limits.CountTokens(strings.Repeat("a ", 1_000_000), 10); err == nil || err.Code != limits.CodeMaxTokens || n != 11 {
		t.Errorf("stops at the first token over the cap: %d, %v", n, err)
	}
}

func TestCheckVariables(t *testing.T) {
	list := func(n int) []any { return make([]any, n) }
	for _, tc := range []struct {
		vars map[string]any
		ok   bool
	}{
		{map[string]any{"ids": list(3)}, true},
		{map[string]any{"ids": list(4)}, false},
		{map[string]any{"in": map[string]any{"contacts": []any{map[string]any{"tags": list(4)}}}}, false},
		{map[string]any{"in": []any{list(3), list(3)}}, true},
		{map[string]any{"s": strings.Repeat("x", 10_000)}, true},
	} {
		if err := limits.CheckVariables(tc.vars, 3); (err == nil) != tc.ok || (err != nil && err.Code != limits.CodeMaxListItems) {
			t.Errorf("%v: %v", tc.vars, err)
		}
	}
}

// cost validates q against the schema and costs its operation.
func cost(t *testing.T, q string, vars map[string]any) int {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(schema(), q)
	if errs != nil {
		t.Fatalf("%s: %v", q, errs)
	}
	op := doc.Operations[0]
	vals, err := validator.VariableValues(schema(), op, vars)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return limits.Cost(schema(), op, vals, defaults)
}

// TestCost proves the cost rules on examples (see limits.Cost).
func TestCost(t *testing.T) {
	for _, tc := range []struct {
		q    string
		vars map[string]any
		want int
	}{
		{`{ __typename }`, nil, 0},
		{`{ workspace { id name } }`, nil, 1},
		{`{ contacts(first: 50) { nodes { id } } }`, nil, 51},
		{`{ contacts(first: 50) { edges { cursor node { id } } } }`, nil, 101},
		{`{ contacts(last: 3) { nodes { id segments { id } } } }`, nil, 7},
		{`{ contacts { nodes { id } } }`, nil, 21}, // the default page size, 20
		{`{ contacts(first: 100) { totalCount pageInfo { hasNextPage } } }`, nil, 2},
		// Query.deletedContacts is a connection as the others: by its page's size
		// (pageInfo is an object, 1).
		{`{ deletedContacts(since: "2026-01-01T00:00:00Z", first: 50) { nodes { id deletedAt } } }`, nil, 51},
		{`{ deletedContacts(since: "2026-01-01T00:00:00Z") { edges { cursor node { id } } pageInfo { endCursor } } }`, nil, 1 + 20*2 + 1},
		// Query.contactChanges too: each change an object, its contact another.
		{`{ contactChanges(first: 50) { nodes { contactId deletedAt contact { id name } } } }`, nil, 1 + 50*2},
		{`{ contactChanges { edges { cursor node { contactId } } pageInfo { endCursor } } }`, nil, 1 + 20*2 + 1},
		// Query.membershipChanges: each entry an object, its segment another, and its up
		// to 1,024 contactIds (@maxItems) 10 more, as 1,024 input IDs of a mutation.
		{`{ membershipChanges(first: 50) { nodes { segmentId action contactIds changedAt segment { id name } } } }`, nil, 1 + 50*(1+10+1)},
		{`{ membershipChanges { edges { cursor node { segmentId action } } pageInfo { endCursor } } }`, nil, 1 + 20*2 + 1},
		{`{ membershipChanges(first: 100) { nodes { contactIds } } }`, nil, 1 + 100*11},
		{`{ contacts(first: 1000) { nodes { id } } }`, nil, 101}, // refused by the connection; costs at most a full page
		{`query($n: Int) { contacts(first: $n) { nodes { id } } }`, map[string]any{"n": 5}, 6},
		{`query($n: Int) { contacts(first: $n) { nodes { id } } }`, nil, 21},
		{`{ segments(first: 10) { nodes { contacts(first: 10) { nodes { id segments { id } } } } } }`, nil, 1 + 10*(1+1+10*(1+1))},
		// A contact's segments: the segments once, what each selects as for a full page of them.
		{`{ contacts(first: 9) { nodes { segments { contacts(first: 100) { nodes { id } } } } } }`, nil, 1 + 9*(1+1+100*(1+100))},
		{`{ contacts(first: 50) { nodes { segments { id name contactCount } } } }`, nil, 1 + 50*(1+1)},
		{`mutation { assignContactsToSegments(input: {contactIds: [], segmentIds: []}) { segments { contacts { totalCount } } } }`, nil, 10 + 1},
		// nodes(ids:): a page of as many objects as IDs, duplicates too (it cost 1 for
		// any number of them).
		{`{ nodes(ids: ["a", "b", "c"]) { id } }`, nil, 1 + 3},
		{`{ nodes(ids: ["a", "a", "a"]) { id } }`, nil, 1 + 3},
		{`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids(100)}, 101},
		{`{ nodes(ids: ["a", "b", "c"]) { ... on Contact { segments { id } } } }`, nil, 1 + 3*(1+1)},
		// contactsByPhone(phones:) as nodes(ids:): one contact read per phone.
		{`{ contactsByPhone(phones: ["+91", "+91", "+44"]) { id } }`, nil, 1 + 3},
		{`query($p: [String!]!) { contactsByPhone(phones: $p) { id segments { id } } }`, map[string]any{"p": ids(100)}, 1 + 100*(1+1)},
		{`query($ids: [ID!]!) { nodes(ids: $ids) { ... on Segment { contacts(first: 10) { nodes { id } } } } }`, map[string]any{"ids": []any{"a", "b"}}, 1 + 2*(1+11)},
		// One object by its ID or phone: 1, plus its selection.
		{`{ node(id: "a") { id } contact(id: "a") { id } segment(id: "a") { id } contactByPhone(phone: "+91") { id } }`, nil, 4},
		{`{ contact(id: "a") { segments { id } } }`, nil, 1 + 1},
		{`query($s: Boolean!) { workspace @skip(if: $s) { id } contacts @include(if: false) { nodes { id } } }`, map[string]any{"s": true}, 0},
		{`query($s: Boolean!) { workspace @skip(if: $s) { id } }`, map[string]any{"s": false}, 1},
		{`{ a: contacts(first: 2) { ...C } b: contacts(first: 30) { ...C } } fragment C on ContactConnection { nodes { id } }`, nil, 3 + 31},
		{`mutation { deleteSegment(input: {id: "S_AQ"}) { deletedSegmentId } }`, nil, 10},
		{`mutation { createSegment(input: {name: "x"}) { segment { id } userErrors { code } } }`, nil, 12},
		{`mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount } }`,
			map[string]any{"in": map[string]any{"contactIds": ids(1000), "segmentIds": ids(100)}}, 10 + 11},
		// contactsMatching counts as 5,000 items (@costsAs), besides its filter's lists:
		// it may change 500,000 memberships, five times what 1,000 contact IDs may.
		{`mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount } }`,
			map[string]any{"in": map[string]any{"contactsMatching": map[string]any{"search": "x"}, "segmentIds": ids(100)}}, 10 + (5000+100)/100},
		{`mutation { removeContactsFromSegments(input: {contactsMatching: {filter: {segments: {any: ["S_AQ"], none: ["S_Ag"]}}}, segmentIds: ["S_Aw"]}) { matchedCount } }`, nil, 10 + 5003/100},
		{`mutation { assignContactsToSegments(input: {contactsMatching: {}, segmentIds: ["S_Aw"]}) { segments { id } } }`, nil, 10 + 5001/100 + 1 + 1},
		{`mutation { assignContactsToSegments(input: {contactsMatching: null, contactIds: ["C_AQ"], segmentIds: ["S_Aw"]}) { matchedCount } }`, nil, 10},
		// createSegment's contactsMatching is the same selection, under the same cap.
		{`mutation { createSegment(input: {name: "x", contactsMatching: {search: "x"}}) { segment { id } userErrors { code } } }`, nil, 10 + 5000/100 + 2},
		{`mutation { createSegment(input: {name: "x", contactsMatching: null}) { segment { id } } }`, nil, 11},
	} {
		if got := cost(t, tc.q, tc.vars); got != tc.want {
			t.Errorf("%s %v: cost %d, want %d", tc.q, tc.vars, got, tc.want)
		}
	}
}

// TestCostOfPayloadLists proves that a mutation payload's list costs what its input
// lets it hold (@sizedBy): an upsert's contacts and an assignment's segments and
// contacts one object per input element, a deletion's segments a full page per
// deleted contact.
// Each was costed as 100 elements of nothing (an upsert answering 1,000 contacts of
// 16 KB of attributes cost 21).
func TestCostOfPayloadLists(t *testing.T) {
	upsert := func(sel string) string {
		return `mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { createdCount ` + sel + ` } }`
	}
	entries := func(n int) map[string]any {
		cs := make([]any, n)
		for i := range cs {
			cs[i] = map[string]any{"phone": "+919876543210"}
		}
		return map[string]any{"in": map[string]any{"contacts": cs}}
	}
	assign := func(mutation, sel string, segments int) (string, map[string]any) {
		input := strings.ToUpper(mutation[:1]) + mutation[1:] + "Input"
		return `mutation($in: ` + input + `!) { ` + mutation + `(input: $in) { ` + sel + ` } }`,
			map[string]any{"in": map[string]any{"contactIds": ids(1000), "segmentIds": ids(segments)}}
	}
	assignQ, assignVars := assign("assignContactsToSegments", "segments { id contactCount }", 100)
	assignContacts := func(sel string) string {
		return `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount ` + sel + ` } }`
	}
	assignContactsVars := func(contacts int) map[string]any {
		return map[string]any{"in": map[string]any{"contactIds": ids(contacts), "segmentIds": ids(2)}}
	}
	removeQ, removeVars := assign("removeContactsFromSegments", "segments { contacts(first: 5) { nodes { id } } }", 2)
	for _, tc := range []struct {
		q    string
		vars map[string]any
		want int
	}{
		// 10 for the mutation, 10 for its 1,000 entries, 1 for the list; the contacts
		// themselves are the rows the upsert wrote or matched (elementCost 0), but
		// what is read under each counts once per entry.
		{upsert(`contacts { id }`), entries(1000), 10 + 10 + 1},
		{upsert(`contacts { attributes }`), entries(1000), 10 + 10 + 1},
		{upsert(`contacts { id segments { id } }`), entries(1000), 10 + 10 + 1 + 1000*1},
		{upsert(`contacts { segments { id } }`), entries(3), 10 + 1 + 3},
		{upsert(`userErrors { code }`), entries(1000), 10 + 10 + 1},
		{`mutation { upsertContacts(input: {contacts: [{phone: "+91"}, {phone: "+92"}]}) { contacts { segments { id } } } }`, nil, 10 + 1 + 2},
		{assignQ, assignVars, 10 + 11 + 1 + 100},
		{removeQ, removeVars, 10 + 10 + 1 + 2*(1+1+5)},
		// The contacts of a membership change are read back, one per contact ID, as
		// its segments are one per segment ID; each one's segments cost 1, as a
		// contact's segments do anywhere.
		{assignContacts(`contacts { id }`), assignContactsVars(1000), 10 + 10 + 1 + 1000},
		{assignContacts(`contacts { id segments { id name } }`), assignContactsVars(100), 10 + 1 + 1 + 100*(1+1)}, // docs/security.md
		{assignContacts(`contacts { id segments { id name } }`), assignContactsVars(492), 999},
		{assignContacts(`contacts { id segments { id name } }`), assignContactsVars(493), 1001},
		{`mutation { removeContactsFromSegments(input: {contactIds: ["C_AQ", "C_Ag", "C_AQ"], segmentIds: ["S_AQ"]}) { contacts { segments { contactCount } } } }`, nil, 10 + 1 + 3*(1+1)},
		{`mutation { createSegment(input: {name: "New", contactIds: ["C_AQ", "C_Ag"]}) { segment { id } contacts { id phone } } }`, nil, 10 + 1 + 1 + 2},
		{`mutation { createSegment(input: {name: "New"}) { contacts { segments { id } } } }`, nil, 10 + 1},
		// A selection names no contact: none come back.
		{`mutation { assignContactsToSegments(input: {contactsMatching: {}, segmentIds: ["S_AQ"]}) { contacts { segments { id } } } }`, nil, 10 + 5001/100 + 1},
		// The segments of the deleted contacts: as many as 100 per contact, read in
		// one statement, as a contact's own segments are costed.
		{`mutation { deleteContacts(input: {ids: ["C_AQ"]}) { segments { id contacts(first: 5) { nodes { id name phone } } } } }`, nil, 10 + 1 + 100*(1+5)},
		{`mutation { deleteContacts(input: {ids: ["C_AQ", "C_Ag", "C_Aw"]}) { segments { contacts(first: 5) { nodes { id } } } } }`, nil, 10 + 1 + 300*(1+5)},
		{`mutation($in: DeleteContactsInput!) { deleteContacts(input: $in) { deletedContactIds segments { id contactCount } } }`,
			map[string]any{"in": map[string]any{"ids": ids(1000)}}, 10 + 10 + 1},
		// A single value where a list is expected is a list of one (it cost nothing).
		{`mutation { assignContactsToSegments(input: {contactIds: "C_AQ", segmentIds: "S_AQ"}) { segments { contacts(first: 100) { nodes { id } } } } }`, nil, 10 + 1 + 1*(1+1+100)},
		{`mutation($s: [ID!]!) { assignContactsToSegments(input: {contactIds: ["C_AQ"], segmentIds: $s}) { segments { contacts(first: 100) { nodes { id } } } } }`,
			map[string]any{"s": "S_AQ"}, 10 + 1 + 1*(1+1+100)},
		{`mutation { deleteContacts(input: {ids: "C_AQ"}) { segments { contacts(first: 5) { nodes { id } } } } }`, nil, 10 + 1 + 100*(1+5)},
		{`mutation { upsertContacts(input: {contacts: {phone: "+91"}}) { contacts { segments { id } } } }`, nil, 10 + 1 + 1},
		{`{ nodes(ids: "C_AQ") { id } }`, nil, 1 + 1},
		// A fragment spread in two payloads is costed by each one's input.
		{`mutation { a: upsertContacts(input: {contacts: [{phone: "+91"}]}) { ...P } b: upsertContacts(input: {contacts: [{phone: "+91"}, {phone: "+92"}]}) { ...P } }
		  fragment P on UpsertContactsPayload { contacts { segments { id } } }`, nil, (10 + 1 + 1) + (10 + 1 + 2)},
		{`mutation { ...M } fragment M on Mutation { upsertContacts(input: {contacts: [{phone: "+91"}, {phone: "+92"}]}) { contacts { segments { id } } } }`, nil, 10 + 1 + 2},
		// An upsert's segments are one per distinct ID of its entries' addToSegmentIds,
		// each of which is an input item as an assignment's IDs are: 1,000 contacts in
		// the same 3 segments, 10 + 4,000 items + the list and 3 segments.
		{upsert(`segments { id contactCount }`), entriesIn(1000, "S_AQ", "S_Ag", "S_Aw"), 10 + 40 + 1 + 3},
		{upsert(`assignedCount segments { id }`), entries(1000), 10 + 10 + 1},
		{`mutation { upsertContacts(input: {contacts: [{phone: "+91", addToSegmentIds: ["S_AQ", "S_Ag"]}, {phone: "+92", addToSegmentIds: "S_Aw"}, {phone: "+93", addToSegmentIds: ["S_Ag"]}]}) { segments { contacts(first: 5) { nodes { id } } } } }`,
			nil, 10 + 1 + 3*(1+1+5)},
	} {
		if got := cost(t, tc.q, tc.vars); got != tc.want {
			t.Errorf("%s: cost %d, want %d", tc.q, got, tc.want)
		}
	}
}

// entriesIn is the variables of an upsert of n entries, each adding its contact to
// the segments.
func entriesIn(n int, segments ...string) map[string]any {
	cs := make([]any, n)
	for i := range cs {
		ids := make([]any, len(segments))
		for j, s := range segments {
			ids[j] = s
		}
		cs[i] = map[string]any{"phone": "+919876543210", "addToSegmentIds": ids}
	}
	return map[string]any{"in": map[string]any{"contacts": cs}}
}

func ids(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = "C_AQ"
	}
	return out
}

// TestCostIsLinear proves that a fragment bomb that passes validation (validation
// remembers fragment pairs) is costed at once, and saturates.
func TestCostIsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("{ ...F0 } ")
	for i := range 50 {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d } ", i, i+1, i+1)
	}
	b.WriteString("fragment F50 on Query { contacts(first: 100) { nodes { id } } }")
	start := time.Now()
	got := cost(t, b.String(), nil)
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if got != 1<<40 {
		t.Errorf("cost %d, want it saturated at 2^40", got)
	}
}

// noSuggestions are the validation rules of the server (graph.rulesWithoutSuggestions).
func noSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for name, rule := range map[string]core.Rule{
		"FieldsOnCorrectType": rules.FieldsOnCorrectTypeRuleWithoutSuggestions,
		"KnownArgumentNames":  rules.KnownArgumentNamesRuleWithoutSuggestions,
		"KnownTypeNames":      rules.KnownTypeNamesRuleWithoutSuggestions,
		"ScalarLeafs":         rules.ScalarLeafsRuleWithoutSuggestions,
		"ValuesOfCorrectType": rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
	} {
		r.RemoveRule(name)
		r.AddRule(rule.Name, rule.RuleFunc)
	}
	return r
}

// FuzzCheck proves that the walkers neither panic nor hang on any document: the
// token count, Check, and, for documents that pass Check and validation, Cost. Its
// seeds are the adversarial corpus, replayed by every go test.
func FuzzCheck(f *testing.F) {
	for _, doc := range limitstest.Adversarial(defaults) {
		f.Add(doc.Query)
	}
	for _, q := range []string{
		`{ workspace { id } }`,
		`query($n: Int = 3) { contacts(first: $n) { edges { node { ...C } } } } fragment C on Contact { id segments { id } }`,
		`mutation { upsertContacts(input: {contacts: [{phone: "+919800000000"}]}) { contacts { id } } }`,
		`{ node(id: "C_AQ") { ... on Contact { id } ... on Segment { contacts @skip(if: true) { totalCount } } } }`,
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		}()
		if _, err := limits.CountTokens(q, defaults.MaxTokens); err != nil {
			return
		}
		doc, perr := parser.ParseQuery(&ast.Source{Input: q})
		if perr != nil {
			return
		}
		if err := limits.Check(doc, defaults); err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatalf("refusal without code or message: %+v", err)
			}
			return
		}
		// Validated as the server validates: without suggestions, which compute edit
		// distances to every name of the schema.
		if errs := validator.ValidateWithRules(schema(), doc, noSuggestions()); errs != nil {
			return
		}
		for _, op := range doc.Operations {
			if c := limits.Cost(schema(), op, nil, defaults); c < 0 {
				t.Fatalf("negative cost %d", c)
			}
		}
	})
}
