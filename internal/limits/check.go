package limits

import (
	"strings"
	"unicode/utf8"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
)

// ceiling is where counts saturate when a cap is off, so that no sum overflows
// (a fragment spreading another twice, 60 times over, selects 2^60 fields).
const ceiling = 1 << 40

func add(a, b int) int {
	if a+b > ceiling {
		return ceiling
	}
	return a + b
}

func mul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > ceiling/b {
		return ceiling
	}
	return a * b
}

// exceeds reports whether n is over cap max (a negative max is no cap).
func exceeds(n, max int) bool { return max >= 0 && n > max }

// CountTokens counts the lexical tokens of query, stopping at the first one over
// max (a negative max counts them all). Comments do not count, as graphql-js's
// maxTokens counts none: a playground document explained line by line was refused.
// The body cap bounds them, and BlankComments keeps them from the parser. A query
// that does not lex is not refused here: the parser reports it.
func CountTokens(query string, max int) (int, *Error) {
	lx := lexer.New(&ast.Source{Input: query})
	n := 0
	for {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			return n, nil
		}
		if tok.Kind == lexer.Comment {
			continue
		}
		n++
		if exceeds(n, max) {
			return n, over(CodeMaxTokens, max, "the document has more than %s tokens, the maximum", thousands(max))
		}
	}
}

// BlankComments returns query with each character of its comments made a space,
// so that the lines and columns of errors stay those of the query sent (gqlparser
// counts columns in characters: a space per byte moved an error after "# é" one
// column on). The parser makes an AST node of each comment: a 160 KB body of "#"
// lines, no tokens, cost 31 ms of CPU to parse twice (once here, once by gqlgen)
// against 0.5 ms for as many commas, and its AST would be kept in the query cache.
// A query without "#" is returned as it is, without being lexed.
func BlankComments(query string) string {
	if strings.IndexByte(query, '#') < 0 {
		return query
	}
	lx := lexer.New(&ast.Source{Input: query})
	var b strings.Builder
	at, atRune := 0, 0 // a byte of query and its rune (tokens say where they are in runes)
	copied := 0        // the bytes of query before it are in b
	for {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			break
		}
		if tok.Kind != lexer.Comment {
			continue
		}
		for ; atRune < tok.Pos.Start; atRune++ {
			_, w := utf8.DecodeRuneInString(query[at:])
			at += w
		}
		if b.Cap() == 0 {
			b.Grow(len(query))
		}
		b.WriteString(query[copied:at])
		for range tok.Pos.End - tok.Pos.Start {
			b.WriteByte(' ')
		}
		at, atRune = at+len(tok.Value), tok.Pos.End
		copied = at
	}
	if b.Cap() == 0 {
		return query
	}
	b.WriteString(query[copied:])
	return b.String()
}

// CheckVariables refuses variables holding a list longer than max items, at any depth.
func CheckVariables(vars map[string]any, max int) *Error {
	if max < 0 {
		return nil
	}
	var check func(v any) bool
	check = func(v any) bool {
		switch v := v.(type) {
		case []any:
			if len(v) > max {
				return false
			}
			for _, e := range v {
				if !check(e) {
					return false
				}
			}
		case map[string]any:
			for _, e := range v {
				if !check(e) {
					return false
				}
			}
		}
		return true
	}
	for _, v := range vars {
		if !check(v) {
			return listTooLong(max)
		}
	}
	return nil
}

func listTooLong(max int) *Error {
	return over(CodeMaxListItems, max, "a list holds more than %s items, the maximum", thousands(max))
}

// tally is what a selection set adds up to, its fragments expanded.
type tally struct {
	selections, aliases, directives int
	// depth is how deep fields nest in it: 1 for fields without sub-selections.
	depth int
	// fields is the number of fields at its top (through fragments).
	fields int
}

func (t *tally) add(u tally) {
	t.selections = add(t.selections, u.selections)
	t.aliases = add(t.aliases, u.aliases)
	t.directives = add(t.directives, u.directives)
	t.fields = add(t.fields, u.fields)
	t.depth = max(t.depth, u.depth)
}

type fragment struct {
	def   *ast.FragmentDefinition
	state int // 0: not walked, 1: being walked, 2: walked
	tally tally
	// tops counts the response names at the top of the fragment (its own fields, its
	// inline fragments' and the tops of the fragments it spreads there).
	tops []nameCount
}

type nameCount struct {
	name string
	n    int
}

type pathKey struct {
	parent int
	name   string
}

// checker walks a document once. Named fragments are walked once, the first time a
// spread (or the document's list of fragments) reaches them, and their tallies
// reused at every other spread.
type checker struct {
	l         Limits
	fragments map[string]*fragment
	// paths numbers the places of the document: the chains of response names from the
	// top of an operation or fragment; counts counts the fields selected at each.
	paths  map[pathKey]int
	counts []int
	// kids lists the places directly under each place.
	kids  [][]int
	names []string
}

// Check refuses a parsed (not yet validated) document that exceeds one of the caps of
// l (other than MaxBodyBytes, MaxTokens and MaxCost), or whose fragments spread
// themselves. It visits each selection and value once (and at each fragment spread
// the fragment's top fields, which MaxSelections bounds), so it is linear in the size
// of the document, and it stops at the first cap exceeded.
func Check(doc *ast.QueryDocument, l Limits) *Error {
	if exceeds(len(doc.Fragments), l.MaxFragments) {
		return over(CodeMaxFragments, l.MaxFragments, "the document defines more than %s fragments, the maximum", thousands(l.MaxFragments))
	}
	c := &checker{l: l, fragments: make(map[string]*fragment, len(doc.Fragments)), paths: map[pathKey]int{}}
	var duplicates []*ast.FragmentDefinition
	for _, f := range doc.Fragments {
		if _, ok := c.fragments[f.Name]; ok {
			duplicates = append(duplicates, f) // invalid, but validation walks it too
			continue
		}
		c.fragments[f.Name] = &fragment{def: f}
	}
	var total tally
	for _, op := range doc.Operations {
		t, err := c.selectionSet(op.SelectionSet, 1, c.newPath())
		if err != nil {
			return err
		}
		if exceeds(t.fields, l.MaxRootFields) {
			return over(CodeMaxRootFields, l.MaxRootFields, "an operation selects more than %s fields at its top, the maximum", thousands(l.MaxRootFields))
		}
		t.directives = add(t.directives, len(op.Directives))
		for _, v := range op.VariableDefinitions {
			t.directives = add(t.directives, len(v.Directives))
			if err := c.value(v.DefaultValue); err != nil {
				return err
			}
			if err := c.directives(v.Directives); err != nil {
				return err
			}
		}
		if err := c.directives(op.Directives); err != nil {
			return err
		}
		total.add(t)
		if err := c.check(total); err != nil {
			return err
		}
	}
	// Fragments that no operation spreads are validated all the same.
	for _, f := range doc.Fragments {
		if fr := c.fragments[f.Name]; fr.def == f && fr.state == 0 {
			t, err := c.fragment(fr, nil)
			if err != nil {
				return err
			}
			total.add(t)
		}
	}
	for _, f := range duplicates {
		t, _, err := c.walkFragment(f)
		if err != nil {
			return err
		}
		total.add(t)
	}
	return c.check(total)
}

func (c *checker) newPath() int {
	c.counts = append(c.counts, 0)
	c.kids = append(c.kids, nil)
	c.names = append(c.names, "")
	return len(c.counts) - 1
}

// selected counts n more fields of response name at place parent, and returns the
// place under them.
func (c *checker) selected(parent int, name string, n int) (int, *Error) {
	key := pathKey{parent, name}
	p, ok := c.paths[key]
	if !ok {
		p = c.newPath()
		c.paths[key] = p
		c.kids[parent] = append(c.kids[parent], p)
		c.names[p] = name
	}
	c.counts[p] = add(c.counts[p], n)
	if exceeds(c.counts[p], c.l.MaxRepeatedFields) {
		return p, over(CodeMaxRepeatedFields, c.l.MaxRepeatedFields,
			"%q is selected more than %s times at one place, the maximum (counting the fields of the fragments spread there)",
			name, thousands(c.l.MaxRepeatedFields))
	}
	return p, nil
}

// check refuses a tally over the caps that add up over the document.
func (c *checker) check(t tally) *Error {
	l := c.l
	switch {
	case exceeds(t.selections, l.MaxSelections):
		return over(CodeMaxSelections, l.MaxSelections,
			"the document has more than %s selections, the maximum (each fragment counts at every spread)", thousands(l.MaxSelections))
	case exceeds(t.aliases, l.MaxAliases):
		return over(CodeMaxAliases, l.MaxAliases, "the document has more than %s aliases, the maximum", thousands(l.MaxAliases))
	case exceeds(t.directives, l.MaxDirectives):
		return over(CodeMaxDirectives, l.MaxDirectives, "the document uses more than %s directives, the maximum", thousands(l.MaxDirectives))
	}
	return nil
}

func (c *checker) tooDeep() *Error {
	return over(CodeMaxDepth, c.l.MaxDepth, "fields nest more than %s levels deep, the maximum", thousands(c.l.MaxDepth))
}

// selectionSet tallies ss, whose fields are at depth (1 for the top of an operation
// or fragment) and at place path.
func (c *checker) selectionSet(ss ast.SelectionSet, depth, path int) (tally, *Error) {
	var t tally
	for _, sel := range ss {
		var u tally
		switch s := sel.(type) {
		case *ast.Field:
			if exceeds(depth, c.l.MaxDepth) {
				return t, c.tooDeep()
			}
			u = tally{selections: 1, directives: len(s.Directives), depth: 1, fields: 1}
			if s.Alias != s.Name {
				u.aliases = 1
			}
			p, err := c.selected(path, s.Alias, 1)
			if err != nil {
				return t, err
			}
			for _, a := range s.Arguments {
				if err := c.value(a.Value); err != nil {
					return t, err
				}
			}
			if err := c.directives(s.Directives); err != nil {
				return t, err
			}
			if len(s.SelectionSet) > 0 {
				sub, err := c.selectionSet(s.SelectionSet, depth+1, p)
				if err != nil {
					return t, err
				}
				u.selections = add(u.selections, sub.selections)
				u.aliases = add(u.aliases, sub.aliases)
				u.directives = add(u.directives, sub.directives)
				u.depth = add(sub.depth, 1)
			}
		case *ast.InlineFragment:
			if err := c.directives(s.Directives); err != nil {
				return t, err
			}
			sub, err := c.selectionSet(s.SelectionSet, depth, path)
			if err != nil {
				return t, err
			}
			u = sub
			u.selections = add(u.selections, 1)
			u.directives = add(u.directives, len(s.Directives))
		case *ast.FragmentSpread:
			if err := c.directives(s.Directives); err != nil {
				return t, err
			}
			u = tally{selections: 1, directives: len(s.Directives)}
			if f := c.fragments[s.Name]; f != nil { // an unknown one is for validation to report
				ft, err := c.fragment(f, s.Position)
				if err != nil {
					return t, err
				}
				if exceeds(depth-1+ft.depth, c.l.MaxDepth) {
					return t, c.tooDeep()
				}
				// Validation compares the fragment's fields with those beside the spread.
				for _, top := range f.tops {
					if _, err := c.selected(path, top.name, top.n); err != nil {
						return t, err
					}
				}
				u.add(ft)
			}
		}
		t.add(u)
		if err := c.check(t); err != nil {
			return t, err
		}
	}
	return t, nil
}

// fragment returns the tally of a named fragment, walking it the first time; at is
// where it is spread (nil for a fragment no operation spreads), which a cycle's
// error points at, as validation's would.
func (c *checker) fragment(f *fragment, at *ast.Position) (tally, *Error) {
	switch f.state {
	case 2:
		return f.tally, nil
	case 1:
		return tally{}, &Error{Code: CodeValidationFailed, Message: "Cannot spread fragment \"" + f.def.Name + "\" within itself.", At: at}
	}
	f.state = 1
	t, root, err := c.walkFragment(f.def)
	if err != nil {
		return t, err
	}
	f.state, f.tally = 2, t
	for _, p := range c.kids[root] {
		f.tops = append(f.tops, nameCount{c.names[p], c.counts[p]})
	}
	return t, nil
}

// walkFragment tallies a fragment definition, at a new place root.
func (c *checker) walkFragment(def *ast.FragmentDefinition) (t tally, root int, err *Error) {
	if err := c.directives(def.Directives); err != nil {
		return tally{}, 0, err
	}
	root = c.newPath()
	t, err = c.selectionSet(def.SelectionSet, 1, root)
	if err != nil {
		return t, root, err
	}
	t.directives = add(t.directives, len(def.Directives))
	return t, root, c.check(t)
}

func (c *checker) directives(ds ast.DirectiveList) *Error {
	for _, d := range ds {
		for _, a := range d.Arguments {
			if err := c.value(a.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// value refuses list values longer than MaxListItems.
func (c *checker) value(v *ast.Value) *Error {
	if v == nil {
		return nil
	}
	if v.Kind == ast.ListValue && exceeds(len(v.Children), c.l.MaxListItems) {
		return listTooLong(c.l.MaxListItems)
	}
	for _, ch := range v.Children {
		if err := c.value(ch.Value); err != nil {
			return err
		}
	}
	return nil
}
