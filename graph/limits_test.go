package graph

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/limits/limitstest"
)

// cpuBound is where a corpus document fails the test: far above the ~50 ms of one
// core that any document takes without the race detector, so that a loaded machine
// does not make the test flaky, and far below the seconds the documents took before
// the limits. The race detector makes them about 9 times slower (the corpus's long
// block string: 20 ms, 180 ms with it, and 272 ms once while other packages' tests
// and a benchmark ran), so under it the bound is raceSlowdown times as long.
const cpuBound = 250 * time.Millisecond * raceSlowdown

// execAdapter lets useLimits configure a bare executor as it configures the handler.
type execAdapter struct{ *executor.Executor }

func (a execAdapter) SetValidationRulesFn(f func() *rules.Rules) { a.SetDefaultRulesFn(f) }

// newExecutor is the GraphQL executor of NewHandler, without a store or transports:
// CreateOperationContext on it is exactly what accepts or refuses a request before
// execution (limits, parsing, validation, cost).
func newExecutor(opts Options) *executor.Executor {
	exec := executor.New(generated.NewExecutableSchema(generated.Config{Resolvers: &Resolver{}}))
	useLimits(execAdapter{exec}, slog.New(slog.DiscardHandler), opts)
	return exec
}

// writerContext acts for a workspace with a read-write API key.
func writerContext() context.Context {
	return auth.WithPrincipal(graphql.StartOperationTrace(context.Background()), auth.Principal{
		Workspace: crm.Workspace{ID: 1}, Kind: auth.KindAPIKey, Scope: crm.ScopeReadWrite})
}

// decide runs the request up to execution and returns its errors.
func decide(exec *executor.Executor, doc limitstest.Doc) gqlerror.List {
	_, errs := exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: doc.Query, Variables: doc.Variables})
	return errs
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure returns the least CPU time of a few decisions on doc, each by a new
// executor (so that nothing is cached), and the errors of the last.
func measure(doc limitstest.Doc) (time.Duration, gqlerror.List) {
	best := time.Duration(1<<63 - 1)
	var errs gqlerror.List
	for range 3 {
		exec := newExecutor(Options{})
		runtime.GC()
		start := cpuTime()
		errs = decide(exec, doc)
		best = min(best, cpuTime()-start)
	}
	return best, errs
}

func code(errs gqlerror.List) string {
	if len(errs) == 0 {
		return ""
	}
	c, _ := errs[0].Extensions["code"].(string)
	return c
}

// TestAdversarialCorpusIsDecidedQuickly proves that every document of the corpus
// (each as large as the body cap allows, or the largest the limits accept of the
// shapes validation is slowest on) is accepted or refused, with the expected code,
// within cpuBound of CPU, and reports each one's time. Validation of the documents
// the limits refuse took up to seconds each: they must be refused before it.
func TestAdversarialCorpusIsDecidedQuickly(t *testing.T) {
	var worst time.Duration
	var worstName string
	for _, doc := range limitstest.Adversarial(limits.Defaults) {
		cpu, errs := measure(doc)
		got := code(errs)
		t.Logf("%7.2f ms  %7d B  %-28s %s", float64(cpu)/float64(time.Millisecond), len(doc.Query), got, doc.Name)
		if cpu > worst {
			worst, worstName = cpu, doc.Name
		}
		if cpu > cpuBound {
			t.Errorf("%s: %v of CPU, more than %v", doc.Name, cpu, cpuBound)
		}
		switch {
		case doc.Code != "" && got != doc.Code:
			t.Errorf("%s: code %q, want %q (%v)", doc.Name, got, doc.Code, first(errs))
		case doc.Code == "" && slices.Contains(limitsCodes(), got):
			t.Errorf("%s: refused by the limits with %q: %v", doc.Name, got, first(errs))
		case doc.Code == "" && doc.Valid && len(errs) > 0:
			t.Errorf("%s: want it valid, got %v", doc.Name, first(errs))
		case doc.Code == "" && !doc.Valid && len(errs) == 0:
			t.Errorf("%s: accepted, want a parse or validation error", doc.Name)
		}
	}
	t.Logf("worst: %.2f ms (%s)", float64(worst)/float64(time.Millisecond), worstName)
}

func limitsCodes() []string {
	return []string{"MAX_TOKENS_EXCEEDED", "MAX_SELECTIONS_EXCEEDED", "MAX_DEPTH_EXCEEDED", "MAX_ALIASES_EXCEEDED",
		"MAX_DIRECTIVES_EXCEEDED", "MAX_ROOT_FIELDS_EXCEEDED", "MAX_FRAGMENTS_EXCEEDED", "MAX_REPEATED_FIELDS_EXCEEDED",
		"MAX_LIST_ITEMS_EXCEEDED", "MAX_COST_EXCEEDED"}
}

// BenchmarkAdversarialCorpus reports the time of each corpus document's decision
// (ns/op) by an executor without a query cache.
func BenchmarkAdversarialCorpus(b *testing.B) {
	for i, doc := range limitstest.Adversarial(limits.Defaults) {
		b.Run(fmt.Sprintf("%02d %s", i, doc.Name), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				exec := newExecutor(Options{})
				b.StartTimer()
				decide(exec, doc)
			}
		})
	}
}

// first is the first of errs, for messages.
func first(errs gqlerror.List) *gqlerror.Error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// introspectionQuery is what GraphiQL (graphql-js 16's getIntrospectionQuery, every
// option on) sends to learn the schema, with nine levels of ofType.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives {
      name description isRepeatable locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description
  type { ...TypeRef }
  defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

// TestIntrospectionWithinLimits proves that the playground's introspection query
// passes the default limits, cheaply, and that its depth is 15, which docs/security.md
// gives as the lowest --max-depth the playground's schema tooling works with: its
// ofType chain under __schema { types { fields { args { type ... } } } } ends at
// depth 15.
func TestIntrospectionWithinLimits(t *testing.T) {
	exec := newExecutor(Options{})
	opCtx, errs := exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: introspectionQuery})
	if errs != nil {
		t.Fatal(errs)
	}
	r, _ := opCtx.Stats.GetExtension(costKey).(*limits.Report)
	if r == nil || r.RequestedQueryCost > 100 {
		t.Fatalf("cost %+v", r)
	}
	t.Logf("the introspection query costs %d", r.RequestedQueryCost)
	for depth, want := range map[int]string{15: "", 14: limits.CodeMaxDepth} {
		exec := newExecutor(Options{Limits: limits.Limits{MaxDepth: depth}})
		_, errs := exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: introspectionQuery})
		if code(errs) != want {
			t.Errorf("--max-depth %d: %v, want %q", depth, errs, want)
		}
	}
}

// TestIntrospectionSetting proves who may introspect under each setting: everyone
// (on, the default), nobody (off), dashboard sessions only (sessions); __typename is
// always allowed.
func TestIntrospectionSetting(t *testing.T) {
	as := func(kind auth.Kind) context.Context {
		return auth.WithPrincipal(graphql.StartOperationTrace(context.Background()), auth.Principal{
			Workspace: crm.Workspace{ID: 1}, Kind: kind, Scope: crm.ScopeRead})
	}
	for _, tc := range []struct {
		setting      Introspection
		apiKey, user bool
	}{
		{"", true, true},
		{IntrospectionOn, true, true},
		{IntrospectionOff, false, false},
		{IntrospectionSessions, false, true},
	} {
		exec := newExecutor(Options{Introspection: tc.setting})
		for kind, allowed := range map[auth.Kind]bool{auth.KindAPIKey: tc.apiKey, auth.KindUser: tc.user} {
			for _, q := range []string{`{ __schema { queryType { name } } }`, `{ __type(name: "Contact") { name } }`} {
				_, errs := exec.CreateOperationContext(as(kind), &graphql.RawParams{Query: q})
				if allowed != (errs == nil) || (errs != nil && code(errs) != limits.CodeIntrospectionDisabled) {
					t.Errorf("%q, %s, %s: %v", tc.setting, kind, q, errs)
				}
			}
			if _, errs := exec.CreateOperationContext(as(kind), &graphql.RawParams{Query: `{ __typename }`}); errs != nil {
				t.Errorf("%q, %s, __typename: %v", tc.setting, kind, errs)
			}
		}
	}
}

// TestValidationErrorsAreCapped holds a document's validation errors to 100, then one
// saying validation stopped, as graphql-js does: a document of 3,000 unknown
// arguments, within every cap, was answered 3,000 errors (464 KB for 23 KB sent).
func TestValidationErrorsAreCapped(t *testing.T) {
	args := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, " a%d: 1", i)
		}
		return "{ workspace { id(" + b.String() + ") } }"
	}
	exec := newExecutor(Options{})
	for _, tc := range []struct{ args, errors int }{{100, 100}, {101, 101}, {3000, 101}} {
		errs := decide(exec, limitstest.Doc{Query: args(tc.args)})
		if len(errs) != tc.errors {
			t.Fatalf("%d unknown arguments: %d errors, want %d", tc.args, len(errs), tc.errors)
		}
		for _, err := range errs {
			if code, _ := err.Extensions["code"].(string); code != limits.CodeValidationFailed {
				t.Errorf("%d unknown arguments: error %q has code %q, want %s", tc.args, err.Message, code, limits.CodeValidationFailed)
			}
		}
		last := errs[len(errs)-1].Message
		if capped := last == tooManyValidationErrors; capped != (tc.args > 100) {
			t.Errorf("%d unknown arguments: the last error is %q", tc.args, last)
		}
	}
}

// TestLiteralNumbersAreBounded: the numbers written in JSON arguments, which
// exactLiterals declares as variables in every operation of their document, are
// bounded by maxLiteralDeclarations: 400 operations beside 4,000 numbers made 1.6M
// declarations (4.9 s and 452 MB to validate) and are refused; one operation of
// 5,000 numbers is not.
func TestLiteralNumbersAreBounded(t *testing.T) {
	numbers := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, " %d.5", i)
		}
		return `contacts(filter: {attributes: [{key: "k", in: [` + b.String() + `]}]}) { totalCount }`
	}
	exec := newExecutor(Options{})
	many := new(strings.Builder)
	for i := range 400 {
		fmt.Fprintf(many, "query q%d { __typename }\n", i)
	}
	many.WriteString("query numbers { " + numbers(4000) + " }")
	errs := decide(exec, limitstest.Doc{Query: many.String()})
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "send them in variables") {
		t.Fatalf("400 operations beside 4,000 numbers: %v, want one error that says to send them in variables", errs)
	}
	if code, _ := errs[0].Extensions["code"].(string); code != limits.CodeValidationFailed {
		t.Errorf("its code is %q, want %s", code, limits.CodeValidationFailed)
	}
	if errs := decide(exec, limitstest.Doc{Query: "{ " + numbers(5000) + " }"}); errs != nil {
		t.Errorf("one operation of 5,000 numbers: %v", errs)
	}
}

// TestLiteralNumbersKeepTheirTextInErrors: a validation error that prints an input
// object holding a number exactLiterals made a variable prints the number as the
// client wrote it, not the variable's name (the probe: "found {key:\"n\",equals:$literal 1.10,…}").
func TestLiteralNumbersKeepTheirTextInErrors(t *testing.T) {
	errs := decide(newExecutor(Options{}), limitstest.Doc{Query: `{ contacts(filter: {attributes: [{key: "n", equals: 1.10, atLeast: 1e400}]}) { totalCount } }`})
	if len(errs) == 0 {
		t.Fatal("atLeast: 1e400 passed validation")
	}
	printed := false
	for _, err := range errs {
		if strings.Contains(err.Message, literalPrefix) {
			t.Errorf("%q names a variable the client did not declare", err.Message)
		}
		printed = printed || strings.Contains(err.Message, "equals:1.10")
	}
	if !printed {
		t.Errorf("no error prints equals:1.10 as written: %v", errs)
	}
}

// TestCommentsAreBlankedBeforeParsing: the document gqlgen parses (and keys its query
// cache by) holds no comment text, sent once or again (the second from the limits'
// cache), and still runs as sent.
func TestCommentsAreBlankedBeforeParsing(t *testing.T) {
	exec := newExecutor(Options{})
	query := "# explained\n{ __typename # why é😀\n}"
	for i := range 2 {
		opCtx, errs := exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: query})
		if errs != nil {
			t.Fatalf("request %d: %v", i+1, errs)
		}
		if strings.ContainsAny(opCtx.RawQuery, "#é😀") || strings.Contains(opCtx.RawQuery, "explained") || strings.Contains(opCtx.RawQuery, "why") {
			t.Errorf("request %d: gqlgen parsed %q, comments and all", i+1, opCtx.RawQuery)
		}
		if got := opCtx.Operation.SelectionSet[0].(*ast.Field).Name; got != "__typename" {
			t.Errorf("request %d: selects %q", i+1, got)
		}
	}
}

// TestErrorsAfterCommentsKeepTheirColumns: an error after a comment of multi-byte
// characters is where gqlparser puts it in the document as sent (it counts columns
// in characters), not one column on for each extra byte.
func TestErrorsAfterCommentsKeepTheirColumns(t *testing.T) {
	for _, query := range []string{"{ a # é", "{ __typename # é😀ü", "# ü\n{ a(b: 1) # 😀"} {
		_, parseErr := parser.ParseQuery(&ast.Source{Input: query})
		if parseErr == nil {
			t.Fatalf("%q parses", query)
		}
		want := parseErr.(*gqlerror.Error).Locations
		exec := newExecutor(Options{})
		for i := range 2 { // parsed, then (refused documents are not cached) again
			errs := decide(exec, limitstest.Doc{Query: query})
			if len(errs) == 0 {
				t.Fatalf("%q: no error", query)
			}
			if got := errs[0].Locations; !slices.Equal(got, want) {
				t.Errorf("%q (request %d): error at %v, gqlparser puts it at %v", query, i+1, got, want)
			}
		}
	}
}

// limitsCapture keeps the limits extension useLimits installs.
type limitsCapture struct {
	ext graphql.OperationParameterMutator
}

func (c *limitsCapture) Use(e graphql.HandlerExtension) {
	if m, ok := e.(graphql.OperationParameterMutator); ok {
		c.ext = m
	}
}
func (c *limitsCapture) SetDisableSuggestion(bool)                {}
func (c *limitsCapture) SetValidationRulesFn(func() *rules.Rules) {}

// TestCheckedDocumentsAreBoundedInBytes: the limits' cache of checked documents, which
// holds a commented document's text both as sent and blanked, keeps at most
// cacheBytes of them (bounded by count alone, 1,000 documents of 250 kB of comments
// kept 500 MB), and still answers with the blanked text.
func TestCheckedDocumentsAreBoundedInBytes(t *testing.T) {
	c := &limitsCapture{}
	useLimits(c, slog.New(slog.DiscardHandler), Options{})
	comments := strings.Repeat("#\n", 100_000)
	before := heapAlloc()
	for i := range 60 { // 24 MB of text as sent and blanked
		p := &graphql.RawParams{Query: fmt.Sprintf("{ __typename } # %d\n", i) + comments}
		if err := c.ext.MutateOperationParameters(writerContext(), p); err != nil {
			t.Fatal(err)
		}
	}
	if grown := heapAlloc() - before; grown > 2*cacheBytes {
		t.Errorf("60 documents of 200 kB of comments keep %d MB alive", grown>>20)
	}
	p := &graphql.RawParams{Query: "{ __typename } # 59\n" + comments}
	if err := c.ext.MutateOperationParameters(writerContext(), p); err != nil || strings.Contains(p.Query, "#") {
		t.Errorf("the last document, sent again: %v, %.20q", err, p.Query)
	}
	runtime.KeepAlive(c)
}
