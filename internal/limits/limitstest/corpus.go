// Package limitstest holds a corpus of adversarial GraphQL requests against the
// segments schema, for the tests that prove every request within the body cap is
// accepted or refused quickly.
package limitstest

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/segments/segments/internal/limits"
)

// Budget is the size each document of the corpus grows to, as a JSON string: about
// the most that fits in a request body under the default cap of 256 KB, with room
// for the JSON around it.
const Budget = 240 << 10

// A Doc is one request of the corpus.
type Doc struct {
	Name      string
	Query     string
	Variables map[string]any
	// Code is the extensions.code the request must be refused with under the default
	// limits; "" means it must pass the limits (it may still fail validation, Valid
	// says).
	Code string
	// Valid is whether the document passes validation (when Code is "").
	Valid bool
}

// jsonLen is the length of s in a JSON string: what it takes of a request body.
func jsonLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b) - 2
}

// repeat returns unit repeated as often as fits in size bytes of a request body
// (at least once).
func repeat(unit string, size int) string {
	return strings.Repeat(unit, max(size/jsonLen(unit), 1))
}

// numbered joins format(i) for i = 0, 1, ... while the result fits in size bytes of
// a request body.
func numbered(format string, size int) string {
	var b strings.Builder
	n := 0
	for i := 0; ; i++ {
		s := fmt.Sprintf(format, i)
		if n += jsonLen(s); n > size {
			return b.String()
		}
		b.WriteString(s)
	}
}

// nest wraps inner in n levels of open ... close.
func nest(open, inner, close string, n int) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// chain is a path of fields of the schema that nests as deep as asked: a contact's
// segments' contacts' segments' ...
func chain(levels int) string {
	path := []string{"segments", "contacts", "nodes"}
	var b strings.Builder
	for i := range levels {
		b.WriteString(path[i%3] + " { ")
	}
	b.WriteString("id")
	b.WriteString(strings.Repeat(" }", levels))
	return b.String()
}

// tree selects the same field reps times at every level, levels deep: validation
// compares the copies pairwise, and their sub-selections pairwise again.
func tree(levels, reps int) string {
	path := []string{"segments", "contacts", "nodes"}
	var build func(i int) string
	build = func(i int) string {
		if i == levels {
			return "id"
		}
		one := path[i%3] + " { " + build(i+1) + " }"
		return strings.TrimSpace(strings.Repeat(one+" ", reps))
	}
	return `{ contact(id: "C_AQ") { ` + build(0) + ` } }`
}

// contactScalars are the leaf fields of a contact.
const contactScalars = "id phone name email attributes createdAt updatedAt __typename "

// deepChain is 12 levels of a contact's segments' contacts' ... with a contact's
// scalars at the bottom: 15 levels under contact(id:), the default depth cap.
const deepChain = "segments { contacts { nodes { segments { contacts { nodes { segments { contacts { nodes { segments { contacts { nodes { " +
	contactScalars + "} } } } } } } } } } } } "

// Adversarial returns the corpus for limits l (limits.Defaults with its zero fields
// filled): documents built to be slow to lex, parse, validate or cost, each as large
// as the body cap allows, and the largest documents l accepts of the shapes
// validation is slowest on.
func Adversarial(l limits.Limits) []Doc {
	var docs []Doc
	add := func(name, code string, valid bool, query string) {
		docs = append(docs, Doc{Name: name, Query: query, Code: code, Valid: valid})
	}
	r := l.MaxRepeatedFields

	// Nesting.
	add("deep fields (900 levels)", limits.CodeMaxDepth, false, `{ contact(id: "C_AQ") { `+chain(900)+` } }`)
	add("deep fields (3000 braces, past the parser's nesting limit)", "", false, nest("{ a ", "b", " }", 3000))
	add("deep fields (5000 braces)", limits.CodeMaxTokens, false, nest("{ a ", "b", " }", 5000))
	add("deep inline fragments (999 levels)", "", true, "{ "+nest("... { ", "__typename", " }", 998)+" }")
	add("deep list literal (999 levels)", "", false, `{ nodes(ids: `+nest("[", `"S_AQ"`, "]", 998)+`) { id } }`)
	add("deep input object (999 levels)", "", false, `{ contacts(filter: `+nest("{segments: ", "null", "}", 998)+`) { totalCount } }`)
	add("deep variable type (999 levels)", "", false, `query($v: `+nest("[", "ID", "]", 998)+`) { __typename }`)
	add("15 levels of fields (valid, over the cost)", limits.CodeMaxCost, true, `{ contact(id: "C_AQ") { `+deepChain+`} }`)

	// Fragments.
	var bomb strings.Builder
	bomb.WriteString("{ ...F0 } ")
	for i := range 40 {
		fmt.Fprintf(&bomb, "fragment F%d on Query { ...F%d ...F%d } ", i, i+1, i+1)
	}
	bomb.WriteString("fragment F40 on Query { workspace { id } }")
	add("fragment bomb (40 levels, 2 spreads each)", limits.CodeMaxRepeatedFields, false, bomb.String())
	var wide strings.Builder
	wide.WriteString("{ ...W0 } ")
	for i := range 60 {
		fmt.Fprintf(&wide, "fragment W%d on Query { %s} ", i, strings.Repeat(fmt.Sprintf("...W%d ", i+1), 50))
	}
	wide.WriteString("fragment W60 on Query { __typename }")
	add("fragment bomb (60 levels, 50 spreads each)", limits.CodeMaxRepeatedFields, false, wide.String())
	add("fragment spreading itself", limits.CodeValidationFailed, false, `{ ...A } fragment A on Query { __typename ...A }`)
	add("fragment cycle of 2", limits.CodeValidationFailed, false, `{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }`)
	var cycle strings.Builder
	cycle.WriteString("{ ...C0 } ")
	for i := range l.MaxFragments - 1 {
		fmt.Fprintf(&cycle, "fragment C%d on Query { ...C%d ...C%d } ", i, i+1, (i+1)%(l.MaxFragments-1))
	}
	add("fragment cycle through all fragments, with double spreads", limits.CodeValidationFailed, false, cycle.String())
	add("unused cyclic fragments", limits.CodeValidationFailed, false, `{ __typename } fragment A on Query { ...B } fragment B on Query { ...A }`)
	add("fragment chain (8,000 fragments)", limits.CodeMaxTokens, false, "{ ...F0 } "+numbered("fragment F%[1]d on Query { ...F%[1]d } ", Budget))
	var chainMax strings.Builder
	chainMax.WriteString("{ ...F0 } ")
	for i := range l.MaxFragments + 1 {
		fmt.Fprintf(&chainMax, "fragment F%d on Query { ...F%d } ", i, i+1)
	}
	add("fragment chain (one fragment too many)", limits.CodeMaxFragments, false, chainMax.String())
	var chainOK strings.Builder
	chainOK.WriteString("{ ...F0 } ")
	for i := range l.MaxFragments - 1 {
		fmt.Fprintf(&chainOK, "fragment F%d on Query { ...F%d } ", i, i+1)
	}
	fmt.Fprintf(&chainOK, "fragment F%d on Query { workspace { id } }", l.MaxFragments-1)
	add("fragment chain (as many fragments as allowed, accepted)", "", true, chainOK.String())
	sideBySide := func(n int, body string) string {
		var b strings.Builder
		b.WriteString(`{ contact(id: "C_AQ") { `)
		for i := range n {
			fmt.Fprintf(&b, "...F%d ", i)
		}
		b.WriteString("} } ")
		for i := range n {
			fmt.Fprintf(&b, "fragment F%d on Contact { %s} ", i, body)
		}
		return b.String()
	}
	add("fragments side by side, each a contact's scalars (accepted)", "", true, sideBySide(r, contactScalars))
	add("fragments side by side, one too many", limits.CodeMaxRepeatedFields, false, sideBySide(r+1, contactScalars))
	add("fragments side by side, each 15 levels deep (valid, over the cost)", limits.CodeMaxCost, true, sideBySide(min(r, l.MaxFragments, l.MaxSelections/50), deepChain))
	add("fragments side by side, each a contact's scalars twice", limits.CodeMaxRepeatedFields, false, sideBySide(l.MaxFragments, contactScalars+contactScalars))
	var unused strings.Builder
	unused.WriteString("{ __typename } fragment U on Workspace { ")
	unused.WriteString(repeat("id ", 200_000))
	unused.WriteString("}")
	add("unused fragment of 66,000 fields", limits.CodeMaxTokens, false, unused.String())
	// Distinct places (aliases) each selecting every field of a workspace as often as
	// allowed: more selections than allowed, without repeating a field too often.
	places := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "w%d: workspace { %s} ", i, strings.Repeat("id name createdAt __typename ", r))
		}
		return b.String()
	}
	overSelections := l.MaxSelections/(4*r+1) + 1
	add("unused fragment of too many fields", limits.CodeMaxSelections, false, "{ __typename } fragment U on Query { "+places(overSelections)+"}")
	add("too many fields", limits.CodeMaxSelections, false, "{ "+places(overSelections)+"}")
	add("as many fields as allowed (accepted)", "", true, "{ "+places(overSelections-1)+"}")
	// Each __typename is given a field definition of its own by validation, which the
	// parsed document keeps: the most heap per token of the accepted shapes.
	add("__typename as often as allowed (accepted)", "", true, func() string {
		var b strings.Builder
		b.WriteString("{ ")
		typenames := strings.Repeat("__typename ", r)
		for i := range min(l.MaxSelections/(2*r+2), l.MaxRootFields, l.MaxAliases) {
			fmt.Fprintf(&b, "s%d: segments(first: 1) { %snodes { %s} } ", i, typenames, typenames)
		}
		b.WriteString("}")
		return b.String()
	}())

	// Repeated fields and aliases.
	add("10,000 repeated fields", limits.CodeMaxTokens, false, "{ workspace { "+strings.Repeat("id ", 10_000)+"} }")
	add("2,000 repeated fields", limits.CodeMaxRepeatedFields, false, "{ workspace { "+strings.Repeat("id ", 2_000)+"} }")
	add("contact's scalars repeated at 5 places (accepted)", "", true, func() string {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range max(l.MaxSelections/(8*r+1), 1) {
			fmt.Fprintf(&b, "c%d: contact(id: \"C_AQ\") { %s} ", i, strings.Repeat(contactScalars, r))
		}
		b.WriteString("}")
		return b.String()
	}())
	add("15-level chains side by side (valid, over the cost)", limits.CodeMaxCost, true,
		`{ contact(id: "C_AQ") { `+strings.Repeat(deepChain, min(r, l.MaxSelections/21))+`} }`)
	add("repeated tree (2 copies, 10 levels)", limits.CodeMaxRepeatedFields, false, tree(10, 2))
	add("repeated tree (3 copies, 6 levels)", limits.CodeMaxRepeatedFields, false, tree(6, 3))
	// Each copy of a contact's segments' contacts is a page per segment: over the cost.
	add("repeated tree (3 copies, 3 levels, valid, over the cost)", limits.CodeMaxCost, true, tree(3, 3))
	add("conflicting fields", limits.CodeMaxRepeatedFields, false, `{ segment(id: "S_AQ") { `+numbered("contacts(first: %d) { totalCount } ", 20_000)+`} }`)
	add("conflicting fields (as many as allowed)", "", false, `{ segment(id: "S_AQ") { `+numbered("contacts(first: %d) { totalCount } ", r*len("contacts(first: 10) { totalCount } "))+`} }`)
	add("10,000 aliases", limits.CodeMaxTokens, false, "{ workspace { "+numbered("a%d: id ", 100_000)+"} }")
	add("1,000 aliases", limits.CodeMaxAliases, false, "{ workspace { "+numbered("a%d: id ", 8_000)+"} }")
	var pages strings.Builder
	for i := range 20 {
		fmt.Fprintf(&pages, "a%d: contacts(first: 100) { nodes { id } } ", i)
	}
	add("20 aliased pages of 100 (valid, over the cost)", limits.CodeMaxCost, true, "{ "+pages.String()+"}")
	add("25 root fields through inline fragments", limits.CodeMaxRootFields, false, "{ "+numbered("... { w%d: workspace { id } } ", 25*len("... { w10: workspace { id } } "))+"}")

	// Directives, arguments and variables.
	add("huge directive list", limits.CodeMaxTokens, false, "{ __typename "+repeat("@skip(if: false) ", Budget)+"}")
	add("1,000 directives", limits.CodeMaxDirectives, false, "{ __typename "+strings.Repeat("@skip(if: false) ", 1_000)+"}")
	add("unknown directives", limits.CodeMaxTokens, false, "{ __typename "+numbered("@d%d ", Budget)+"}")
	add("3,000 arguments", "", false, `{ contacts(`+strings.Repeat("first: 1 ", 3_000)+`) { totalCount } }`)
	add("1,600 unused variables", "", false, "query("+numbered("$v%d: Int ", 18_000)+") { __typename }")
	add("1,500 variables, one used", "", false, "query("+numbered("$v%d: Boolean ", 20_000)+") { __typename @skip(if: $v1) }")
	add("1,200 variables used 1,200 times", "", false, "query("+numbered("$v%d: ID ", 12_000)+") { node("+numbered("id: $v%d ", 12_000)+") { id } }")
	add("an input object of 3,000 fields", "", false, `{ contacts(orderBy: {`+strings.Repeat("field: NAME ", 3_000)+`}) { totalCount } }`)
	add("an input object of 2,000 distinct fields", "", false, `{ contacts(orderBy: {`+numbered("f%d: 1 ", 16_000)+`}) { totalCount } }`)
	add("9,000 list items (over the cost: each ID is an object read)", limits.CodeMaxCost, true, `{ nodes(ids: [`+strings.Repeat(`"S_AQ" `, 9_000)+`]) { id } }`)
	docs = append(docs, Doc{Name: "variables: a list of 20,000 items", Code: limits.CodeMaxListItems,
		Query:     `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
		Variables: map[string]any{"ids": anys(20_000, "S_AQ")}})
	docs = append(docs, Doc{Name: "variables: lists nested 5,000 deep",
		Query:     `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
		Variables: map[string]any{"ids": nestedList(5_000)}})
	docs = append(docs, Doc{Name: "variables: 10,000 unused", Valid: true,
		Query:     `{ __typename }`,
		Variables: manyVars(10_000)})

	// Values.
	add("long string", "", true, `{ contactByPhone(phone: "`+repeat("9", Budget)+`") { id } }`)
	add("long block string", "", true, `{ contactByPhone(phone: """`+repeat("9 \n", Budget)+`""") { id } }`)
	add("unicode escapes", "", true, `{ contactByPhone(phone: "`+repeat(`\u00e9`, Budget)+`") { id } }`)
	add("unicode text", "", true, `{ contactByPhone(phone: "`+repeat("नमस्ते😀", Budget)+`") { id } }`)
	add("huge integer", "", false, `{ contacts(first: `+repeat("9", Budget)+`) { totalCount } }`)
	add("huge float", "", false, `{ contacts(first: 1.`+repeat("9", Budget)+`e999999) { totalCount } }`)
	add("huge page size (refused by the connection)", "", true, `{ contacts(first: 2147483647) { nodes { id } } }`)

	// Documents.
	add("many operations", limits.CodeMaxTokens, false, numbered("query Q%d { __typename } ", Budget))
	add("1,000 operations", "", false, numbered("query Q%d { __typename } ", 24_000))
	add("many anonymous operations", limits.CodeMaxTokens, false, repeat("{ __typename } ", Budget))
	add("comments", "", true, repeat("# a comment\n", Budget)+"{ __typename }")
	add("short comments", "", true, repeat("#\n", Budget)+"{ __typename }")
	add("whitespace and commas", "", true, "{"+repeat(" ,\t\r\n", Budget)+"__typename }")
	add("byte order marks", "", true, "{"+repeat("\ufeff", Budget)+"__typename }")
	add("long name", "", false, "{ "+repeat("a", Budget)+" }")
	add("syntax error at the end", "", false, "{ workspace { "+strings.Repeat("id ", 9_000)+"} ")
	add("invalid UTF-8", "", false, "{ __typename \xff\xfe }")
	add("unterminated string", "", false, `{ contactByPhone(phone: "`+repeat("9", Budget))
	add("NUL bytes", "", false, "{ __typename "+repeat("\x00", 1000)+"}")
	add("empty", "", false, "")
	return docs
}

func anys(n int, v any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func nestedList(depth int) any {
	var v any = "S_AQ"
	for range depth {
		v = []any{v}
	}
	return v
}

func manyVars(n int) map[string]any {
	out := make(map[string]any, n)
	for i := range n {
		out[fmt.Sprintf("v%d", i)] = i
	}
	return out
}
