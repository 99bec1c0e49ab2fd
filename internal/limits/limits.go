// Package limits makes every GraphQL request cheap to refuse: caps on what one request
// may ask for (Limits, checked by Check before the document is validated), a cost
// model (Cost, checked before execution), and the interface of a rate limiter that
// charges requests by their cost (Throttle).
//
// Everything here is linear in the size of the request: the walkers visit each
// selection of the document once, whatever its fragments (a named fragment is walked
// once and its totals reused at every spread), and stop as soon as a cap is exceeded.
// Together with the token cap, that bounds the work of the validation that follows,
// which is super-linear in the size of a document.
package limits

import (
	"fmt"
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/internal/crm"
)

// Limits are the caps on one request. A zero field takes its default (see Defaults);
// a negative one turns its cap off, which only tests and trusted deployments should
// do: without the caps, one request can keep a core busy for seconds.
type Limits struct {
	// MaxBodyBytes caps the HTTP request body (and a GET request's query string), in
	// bytes. Answered with HTTP 413 (414 for a query string) and REQUEST_TOO_LARGE.
	MaxBodyBytes int64
	// MaxTokens caps the lexical tokens of the document (names, punctuation, values;
	// not comments, nor commas, as graphql-js's maxTokens), counted before it is parsed.
	MaxTokens int
	// MaxSelections caps the selections (fields, inline fragments and fragment
	// spreads) of the document counted after fragment expansion: a fragment counts
	// again at every spread. The operations of a document add up, and a fragment that
	// no operation spreads counts once.
	MaxSelections int
	// MaxDepth caps how deep fields nest: { workspace { id } } has depth 2.
	MaxDepth int
	// MaxAliases caps the aliased fields (alias different from the field's name),
	// after fragment expansion.
	MaxAliases int
	// MaxDirectives caps the directives used (@skip, @include, ...), after fragment
	// expansion.
	MaxDirectives int
	// MaxRootFields caps the fields selected at the top of one operation, after
	// fragment expansion.
	MaxRootFields int
	// MaxFragments caps the named fragments a document defines. Validation compares
	// fragments pairwise and walks each fragment with all the fragments it reaches.
	MaxFragments int
	// MaxRepeatedFields caps how often one response name (a field's alias, or its
	// name) may be selected at one place: the same chain of response names from the
	// top of the operation (or of a named fragment), counting the fields of inline
	// fragments as their parent's, and the fields at the top of a named fragment at
	// every place it is spread (its deeper fields count in the fragment). Validation
	// compares such fields pairwise, and their sub-selections pairwise again:
	// { a { b } a { b } ... } nested a few levels is quadratic in its size, and so are
	// fragments spread side by side that select the same fields.
	MaxRepeatedFields int
	// MaxListItems caps the length of any list in the variables or in the document's
	// values.
	MaxListItems int
	// MaxCost caps the cost of the operation (see Cost), computed before it runs.
	MaxCost int

	// DefaultPageSize is the page size a connection without first or last costs.
	DefaultPageSize int
	// MaxPageSize is the largest page size a connection costs: a larger first or last
	// is refused with BAD_USER_INPUT by the connection itself, before it reads anything.
	MaxPageSize int
	// MutationCost is the cost of each mutation field, before its input's lists and
	// its payload.
	MutationCost int
	// ItemsPerCostPoint is how many input list items (contacts, segments, IDs) of a
	// mutation add one to its cost.
	ItemsPerCostPoint int
}

// Defaults are the caps that apply where a Limits field is zero: generous for any
// query a client writes by hand or generates (GitHub's and Shopify's APIs have
// comparable ones), and small enough that any request within them is parsed,
// validated and costed in a few tens of milliseconds of one core.
var Defaults = Limits{
	MaxBodyBytes:      256 << 10,
	MaxTokens:         10_000,
	MaxSelections:     2_000,
	MaxDepth:          15,
	MaxAliases:        50,
	MaxDirectives:     50,
	MaxRootFields:     20,
	MaxFragments:      100,
	MaxRepeatedFields: 50,
	MaxListItems:      10_000,
	MaxCost:           1_000,
	DefaultPageSize:   crm.DefaultPageSize,
	MaxPageSize:       crm.MaxPageSize,
	MutationCost:      10,
	ItemsPerCostPoint: 100,
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := Defaults
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	def(&l.MaxTokens, d.MaxTokens)
	def(&l.MaxSelections, d.MaxSelections)
	def(&l.MaxDepth, d.MaxDepth)
	def(&l.MaxAliases, d.MaxAliases)
	def(&l.MaxDirectives, d.MaxDirectives)
	def(&l.MaxRootFields, d.MaxRootFields)
	def(&l.MaxFragments, d.MaxFragments)
	def(&l.MaxRepeatedFields, d.MaxRepeatedFields)
	def(&l.MaxListItems, d.MaxListItems)
	def(&l.MaxCost, d.MaxCost)
	def(&l.DefaultPageSize, d.DefaultPageSize)
	def(&l.MaxPageSize, d.MaxPageSize)
	def(&l.MutationCost, d.MutationCost)
	def(&l.ItemsPerCostPoint, d.ItemsPerCostPoint)
	return l
}

// The codes (extensions.code) of refusals. Each is stable: clients may act on it.
const (
	CodeRequestTooLarge       = "REQUEST_TOO_LARGE"
	CodeMaxTokens             = "MAX_TOKENS_EXCEEDED"
	CodeMaxSelections         = "MAX_SELECTIONS_EXCEEDED"
	CodeMaxDepth              = "MAX_DEPTH_EXCEEDED"
	CodeMaxAliases            = "MAX_ALIASES_EXCEEDED"
	CodeMaxDirectives         = "MAX_DIRECTIVES_EXCEEDED"
	CodeMaxRootFields         = "MAX_ROOT_FIELDS_EXCEEDED"
	CodeMaxFragments          = "MAX_FRAGMENTS_EXCEEDED"
	CodeMaxRepeatedFields     = "MAX_REPEATED_FIELDS_EXCEEDED"
	CodeMaxListItems          = "MAX_LIST_ITEMS_EXCEEDED"
	CodeMaxCost               = "MAX_COST_EXCEEDED"
	CodeThrottled             = "THROTTLED"
	CodeIntrospectionDisabled = "INTROSPECTION_DISABLED"
	// CodeValidationFailed is gqlgen's code for invalid documents; Check uses it for
	// a fragment that spreads itself, which validation would refuse too.
	CodeValidationFailed = "GRAPHQL_VALIDATION_FAILED"
)

// Codes lists the codes of refusals made before execution, for registering them as
// protocol errors.
var Codes = []string{
	CodeRequestTooLarge, CodeMaxTokens, CodeMaxSelections, CodeMaxDepth, CodeMaxAliases,
	CodeMaxDirectives, CodeMaxRootFields, CodeMaxFragments, CodeMaxRepeatedFields,
	CodeMaxListItems, CodeMaxCost, CodeThrottled, CodeIntrospectionDisabled,
}

// An Error is a refusal: a request over one of the limits.
type Error struct {
	Code    string
	Message string
	// Limit is the cap that was exceeded (0 when there is none, as for a cycle).
	Limit int
	// At is the place in the document the error is about, if one is (a fragment
	// spread that closes a cycle).
	At *ast.Position
}

func (e *Error) Error() string { return e.Message }

func over(code string, limit int, format string, args ...any) *Error {
	return &Error{Code: code, Limit: limit, Message: fmt.Sprintf(format, args...)}
}

// thousands writes n with thousands separators, as the messages show limits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
