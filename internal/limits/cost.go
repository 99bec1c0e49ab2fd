package limits

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Cost returns what running op costs, in the spirit of GitHub's and Shopify's cost
// models: an upper bound of the objects it reads, before it runs. op must belong to a
// validated document (its fields know their definitions) and vars are the request's
// coerced variables.
//
// The rules:
//
//   - A field of a scalar or enum type (id, name, totalCount, __typename) costs 0.
//   - A field of an object, interface or union type costs 1, plus its selection.
//   - A connection (a field with a first or last argument) costs 1 plus its
//     selection, in which the list fields (edges, nodes) count once per item of the
//     page: first or last, else l.DefaultPageSize, at most l.MaxPageSize (a larger
//     page is refused by the connection itself before it reads anything).
//     contacts(first: 50) { nodes { id } } costs 1 + 50 × 1 = 51; the same with
//     edges { node { id } } costs 1 + 50 × (1 + 1) = 101.
//   - Another list field with a list argument (nodes(ids:)) costs like a page of as
//     many items as the argument has elements (duplicates too: each is answered): 1,
//     plus 1 and its selection per element. nodes(ids: [100 IDs]) { id } costs 101,
//     as contacts(first: 100) { nodes { id } } does (it cost 1, and 20 aliases of it
//     read 2,000 contacts for 20 points).
//   - A mutation payload's list with the schema's @sizedBy(path:) holds one element
//     per element of the mutation's input list at path, and costs like nodes(ids:):
//     1, plus elementCost (1 unless the schema says) and its selection per input
//     element. An assignment's segments are read back, one per segment ID, and its
//     contacts (and a new segment's) one per contact ID: a statement after the
//     change reads them, up to 1,000 contacts of up to 16 KB of attributes each,
//     which a contactIds of 1,000 short IDs (10 points) does not pay for; so
//     contacts { id segments { id } } costs 2 a contact, as a page of them does. An
//     upsert's contacts are the rows its statements wrote or matched (elementCost
//     0), which its input's items pay for, but what is selected under them is read
//     for each: upsertContacts of 1,000 entries selecting contacts { id } costs
//     10 + 10 + 1 = 21, and contacts { segments { id } } 1,000 more (it cost 121, as
//     100 contacts, where 1,000 contacts' segments are read). With perElement (DeleteContactsPayload.segments, the segments the
//     deleted contacts were in, which no input bounds) each input element brings as
//     many as perElement (100), the assumption Contact.segments' cost makes below:
//     the list costs 1, being read in one statement, plus its selection as for
//     input elements × perElement elements. Like that assumption it is no bound for
//     a deleted contact in more segments (one in 302 gets 302 back, costed as 100),
//     but makes the cost grow with the contacts deleted.
//   - Other lists (Contact.segments) cost 1, as each is read in one batch for all its
//     parents, plus their selection as for l.MaxPageSize elements: a segment's
//     scalars cost nothing, but each segment's contacts(first: 100) is a page per
//     segment the contact is in (the cost of contacts(first: 9) { nodes { segments {
//     contacts(first: 100) ... } } } was 928 for 90,000 contacts read). This is no
//     bound for a contact in more than l.MaxPageSize segments, but no longer a
//     factor of them.
//   - A mutation field costs l.MutationCost, plus one per l.ItemsPerCostPoint items in
//     the lists of its input, plus its payload's selection. An input field with the
//     schema's @costsAs(items:) counts, when given, as that many items besides its
//     lists: a bulk change's contactsMatching as 5,000, the rate at which its
//     contactIds are charged for the memberships it may change at most (500,000,
//     five times 1,000 contacts × 100 segments).
//   - A list of scalars with the schema's @maxItems(count:) costs one point per
//     l.ItemsPerCostPoint of count (at least 1), as the same number of items in a
//     mutation's input does: MembershipChange.contactIds, up to 1,024 IDs, costs
//     10, so membershipChanges(first: 50) { nodes { contactIds } } costs
//     1 + 50 × (1 + 10) = 551.
//   - Fields left out by @skip or @include cost nothing. Selections on different
//     types (... on Contact, ... on Segment) all count: an upper bound.
//
// Named fragments are costed once per page size they are spread under, so Cost is
// linear in the size of the document. The result saturates at 2^40.
func Cost(schema *ast.Schema, op *ast.OperationDefinition, vars map[string]any, l Limits) int {
	c := &coster{schema: schema, vars: vars, l: l, memo: map[fragmentCost]int{}, busy: map[*ast.FragmentDefinition]bool{}}
	return c.selectionSet(op.SelectionSet, 0)
}

type fragmentCost struct {
	def      *ast.FragmentDefinition
	items    int
	mutation int // which mutation field's payload the fragment is in, 0 for none
}

type coster struct {
	schema *ast.Schema
	vars   map[string]any
	l      Limits
	memo   map[fragmentCost]int
	busy   map[*ast.FragmentDefinition]bool
	// args are the arguments of the mutation field whose payload is being costed,
	// where the paths of @sizedBy start; mutation numbers that field (mutations
	// counts them), since a fragment spread in two payloads costs each by its input.
	args      map[string]any
	mutation  int
	mutations int
}

// selectionSet costs ss, whose list fields count items times when ss is the
// selection of a connection, whose page holds items; items is 0 for any other.
func (c *coster) selectionSet(ss ast.SelectionSet, items int) int {
	total := 0
	for _, sel := range ss {
		switch s := sel.(type) {
		case *ast.Field:
			if c.skipped(s.Directives) {
				continue
			}
			total = add(total, c.field(s, items))
		case *ast.InlineFragment:
			if c.skipped(s.Directives) {
				continue
			}
			total = add(total, c.selectionSet(s.SelectionSet, items))
		case *ast.FragmentSpread:
			if c.skipped(s.Directives) || s.Definition == nil || c.skipped(s.Definition.Directives) {
				continue
			}
			key := fragmentCost{s.Definition, items, c.mutation}
			cost, ok := c.memo[key]
			if !ok {
				if c.busy[s.Definition] { // a cycle: validation refuses it first
					continue
				}
				c.busy[s.Definition] = true
				cost = c.selectionSet(s.Definition.SelectionSet, items)
				c.busy[s.Definition] = false
				c.memo[key] = cost
			}
			total = add(total, cost)
		}
	}
	return total
}

func (c *coster) field(f *ast.Field, items int) int {
	def := f.Definition
	if def == nil {
		return 0
	}
	t := c.schema.Types[def.Type.Name()]
	if d := def.Directives.ForName(maxItemsDirective); d != nil && def.Type.Elem != nil {
		// A list of scalars of known length (MembershipChange.contactIds): as many
		// items as a mutation's input lists count.
		n, _ := integer(d.ArgumentMap(nil)["count"])
		return max(n/max(c.l.ItemsPerCostPoint, 1), 1)
	}
	if t == nil || t.Kind == ast.Scalar || t.Kind == ast.Enum {
		return 0
	}
	var args map[string]any
	if len(f.Arguments) > 0 {
		args = f.ArgumentMap(c.vars)
	}
	cost := 1
	if m := c.schema.Mutation; m != nil && f.ObjectDefinition != nil && f.ObjectDefinition.Name == m.Name {
		cost = add(c.l.MutationCost, add(listItems(args), c.costedAs(def.Arguments, args))/max(c.l.ItemsPerCostPoint, 1))
		c.mutations++
		defer func(args map[string]any, n int) { c.args, c.mutation = args, n }(c.args, c.mutation)
		c.args, c.mutation = args, c.mutations
	}
	sub := 0 // f's selection is not a page
	each := 1
	perItem := 0 // what each element costs besides its selection
	switch {
	case def.Arguments.ForName("first") != nil || def.Arguments.ForName("last") != nil:
		sub = c.pageSize(args)
	case def.Type.Elem != nil && items == 0: // a list outside a page
		if n, elementCost, ok := c.sizedBy(def); ok { // a payload's, as long as its input allows
			each, perItem = n, elementCost
			break
		}
		sized := false
		for _, a := range def.Arguments {
			if a.Type.Elem != nil {
				sized = true
				each = max(each, length(args[a.Name]))
			}
		}
		switch {
		case sized: // nodes(ids:): each ID is an object read, as a page's item is
			perItem = 1
		case !introspection(def): // Contact.segments: as long as a full page
			each = max(c.l.MaxPageSize, 1)
		}
	}
	cost = add(cost, mul(each, add(perItem, c.selectionSet(f.SelectionSet, sub))))
	if def.Type.Elem != nil && items > 0 { // a page's edges or nodes
		cost = mul(cost, items)
	}
	return cost
}

// maxItemsDirective is the schema's directive that bounds a list of scalars.
const maxItemsDirective = "maxItems"

// costsAsDirective is the schema's directive that counts an input field given to a
// mutation as a number of list items.
const costsAsDirective = "costsAs"

// costedAs is the list items that the input fields with @costsAs(items:) count as,
// among the values of args (a mutation's arguments, defined by defs), at any depth of
// input objects: a bulk change's contactsMatching, which selects up to its caps
// (crm.MaxMatchedContacts, crm.MaxMatchedMemberships) where its lists of IDs hold a
// known number.
func (c *coster) costedAs(defs ast.ArgumentDefinitionList, args map[string]any) int {
	n := 0
	for _, d := range defs {
		n = add(n, c.inputCostedAs(d.Type, args[d.Name]))
	}
	return n
}

func (c *coster) inputCostedAs(t *ast.Type, v any) int {
	if t == nil || v == nil {
		return 0
	}
	if t.Elem != nil {
		n := 0
		if l, ok := v.([]any); ok {
			for _, e := range l {
				n = add(n, c.inputCostedAs(t.Elem, e))
			}
		}
		return n
	}
	def := c.schema.Types[t.Name()]
	obj, ok := v.(map[string]any)
	if def == nil || def.Kind != ast.InputObject || !ok {
		return 0
	}
	n := 0
	for _, f := range def.Fields {
		fv, given := obj[f.Name]
		if !given || fv == nil {
			continue
		}
		if d := f.Directives.ForName(costsAsDirective); d != nil {
			items, _ := integer(d.ArgumentMap(nil)["items"])
			n = add(n, max(items, 0))
			continue
		}
		n = add(n, c.inputCostedAs(f.Type, fv))
	}
	return n
}

// sizedByDirective is the schema's directive that sizes a mutation payload's list
// by the mutation's input.
const sizedByDirective = "sizedBy"

// sizedBy is the most elements def, a list of a mutation's payload, holds by its
// @sizedBy(path:, perElement:, elementCost:): the elements of the input list at path,
// times perElement if given; and what each element costs besides its selection: 0
// with perElement (the list is read in one statement with the others), else
// elementCost (the schema's default, 1: an object read back, as a page's item). ok is false
// when def has no such directive or is not in the payload of a mutation field.
func (c *coster) sizedBy(def *ast.FieldDefinition) (n, elementCost int, ok bool) {
	d := def.Directives.ForName(sizedByDirective)
	if d == nil || d.Definition == nil || c.mutation == 0 {
		return 0, 0, false
	}
	args := d.ArgumentMap(nil) // with the schema's defaults
	path, _ := args["path"].(string)
	if path == "" {
		return 0, 0, false
	}
	n = sizeAt(c.args, strings.Split(path, "."))
	if k, given := integer(args["perElement"]); given {
		return mul(n, max(k, 1)), 0, true
	}
	elementCost, _ = integer(args["elementCost"])
	return n, max(elementCost, 0), true
}

// sizeAt is the number of elements of the input list that path names from args: its
// length, or, where the path passes through a list of input objects
// (input.contacts.addToSegmentIds), the number of distinct values in the lists of all
// its elements, as a payload that answers each of them once holds at most (an
// upsert's segments: 1,000 contacts each naming the same 3 segments are 3 segments,
// not 3,000).
func sizeAt(args map[string]any, path []string) int {
	values, through := []any{args}, false
	for i, name := range path {
		var next []any
		for _, v := range values {
			if l, ok := v.([]any); ok && i > 0 {
				through = true
				for _, e := range l {
					m, _ := e.(map[string]any)
					next = append(next, m[name])
				}
				continue
			}
			m, _ := v.(map[string]any)
			next = append(next, m[name])
		}
		values = next
	}
	if !through {
		return length(values[0])
	}
	distinct := map[string]bool{}
	for _, v := range values {
		l, ok := v.([]any)
		if !ok && v != nil {
			l = []any{v} // a single value, as length counts it
		}
		for _, e := range l {
			distinct[fmt.Sprint(e)] = true
		}
	}
	return len(distinct)
}

// introspection reports whether f lists the schema's own types or fields: their
// lists (__Schema.types, __Type.fields) are short, read from memory, and a client's
// introspection query (GraphiQL's) nests them five deep.
func introspection(f *ast.FieldDefinition) bool {
	return strings.HasPrefix(f.Type.Name(), "__")
}

// pageSize is the number of items a connection's page holds at most.
func (c *coster) pageSize(args map[string]any) int {
	n := -1
	for _, name := range []string{"first", "last"} {
		if v, ok := integer(args[name]); ok {
			n = max(n, v)
		}
	}
	if n < 0 {
		n = c.l.DefaultPageSize
	}
	return min(max(n, 1), max(c.l.MaxPageSize, 1))
}

// skipped reports whether @skip or @include leave a selection out.
func (c *coster) skipped(ds ast.DirectiveList) bool {
	for _, d := range ds {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		a := d.Arguments.ForName("if")
		if a == nil {
			continue
		}
		v, err := a.Value.Value(c.vars)
		if b, ok := v.(bool); err == nil && ok && b == (d.Name == "skip") {
			return true
		}
	}
	return false
}

// length is the number of elements of a list value: 0 for null, and 1 for a single
// value, which GraphQL takes as a list of one where a list is expected (contactIds:
// "C_AQ"). Counted 0, a payload sized by such a list cost nothing: an assignment whose
// segments read 21,200 contacts back cost 12 points.
func length(v any) int {
	switch l := v.(type) {
	case nil:
		return 0
	case []any:
		return len(l)
	}
	return 1
}

// listItems counts the elements of every list in v, at any depth.
func listItems(v any) int {
	n := 0
	switch v := v.(type) {
	case []any:
		n = len(v)
		for _, e := range v {
			n = add(n, listItems(e))
		}
	case map[string]any:
		for _, e := range v {
			n = add(n, listItems(e))
		}
	}
	return n
}

// integer reads an Int argument, from a literal or a coerced variable.
func integer(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int32:
		return int(v), true
	case int64:
		return clamp(float64(v)), true
	case float64:
		return clamp(v), true
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		return clamp(f), err == nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return clamp(f), err == nil
	}
	return 0, false
}

func clamp(f float64) int {
	switch {
	case math.IsNaN(f):
		return 0
	case f > math.MaxInt32:
		return math.MaxInt32
	case f < math.MinInt32:
		return math.MinInt32
	}
	return int(f)
}
