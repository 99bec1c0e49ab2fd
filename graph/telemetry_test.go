package graph

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	gqlast "github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/segments/segments/internal/crm"
)

// TestTracedMethods: every method of graph/model that takes the context (and may
// thus send statements) is a field the tracing middleware gives a span, and every
// field it lists is such a method.
func TestTracedMethods(t *testing.T) {
	files, err := filepath.Glob("model/*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := map[fieldKey]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || !fn.Name.IsExported() || len(fn.Type.Params.List) == 0 {
				continue
			}
			if sel, ok := fn.Type.Params.List[0].Type.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Context" {
				continue
			}
			recv := fn.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			r, size := utf8.DecodeRuneInString(fn.Name.Name)
			found[fieldKey{recv.(*ast.Ident).Name, string(unicode.ToLower(r)) + fn.Name.Name[size:]}] = true
		}
	}
	for k := range found {
		if !tracedMethods[k] {
			t.Errorf("%s.%s takes the context, and is not in tracedMethods", k.object, k.field)
		}
	}
	for k := range tracedMethods {
		if !found[k] {
			t.Errorf("tracedMethods lists %s.%s, which is no method of graph/model taking the context", k.object, k.field)
		}
	}
	if len(found) == 0 {
		t.Error("no method of graph/model takes the context: is the test reading the right files?")
	}
}

// fieldMiddleware captures the field middleware useTelemetry installs.
type fieldMiddleware struct{ fields graphql.FieldMiddleware }

func (*fieldMiddleware) AroundResponses(graphql.ResponseMiddleware) {}
func (m *fieldMiddleware) AroundFields(f graphql.FieldMiddleware)   { m.fields = f }

// TestFieldSpanErrors: a field's span has its error's code and never the error's
// message (a refused input's quotes the input); it is an error for a failure of the
// server's, a panic included, and not for a refusal of the client's input. The span
// of a field refused for its phone was an error, with the phone in an exception
// event.
func TestFieldSpanErrors(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	m := &fieldMiddleware{}
	useTelemetry(m, Options{Tracing: tp})
	const secret = "+91 98765 4321"
	for _, c := range []struct {
		name   string
		err    error
		panics bool
		code   string
		failed bool
	}{
		{"refused", crm.Errorf(crm.CodeInvalid, crm.Path("phone"), "phone %q is not a valid phone number", secret), false, codeBadUserInput, false},
		{"failed", errors.New("store: phone " + secret + ": boom"), false, codeInternal, true},
		{"timed out", context.DeadlineExceeded, false, codeTimeout, true},
		{"panicked", nil, true, "", true},
	} {
		ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
		parent.End() // a field below the first level runs after its parent's span ended
		ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{
			Object: "Query", IsResolver: true,
			Field: graphql.CollectedField{Field: &gqlast.Field{Name: "contactByPhone", Alias: "contactByPhone"}},
		})
		func() {
			defer func() {
				if p := recover(); (p != nil) != c.panics {
					t.Errorf("%s: recovered %v", c.name, p)
				}
			}()
			m.fields(ctx, func(context.Context) (any, error) {
				if c.panics {
					panic(secret)
				}
				return nil, c.err
			})
		}()
		ended := rec.Ended()
		span := ended[len(ended)-1]
		if span.Name() != "Query.contactByPhone" || span.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Fatalf("%s: span %s under %s, want Query.contactByPhone under the request's", c.name, span.Name(), span.Parent().SpanID())
		}
		code := ""
		for _, a := range span.Attributes() {
			if a.Key == "segments.error_code" {
				code = a.Value.AsString()
			}
			if strings.Contains(a.Value.Emit(), "98765") {
				t.Errorf("%s: attribute %s = %q", c.name, a.Key, a.Value.Emit())
			}
		}
		if code != c.code || (span.Status().Code == codes.Error) != c.failed {
			t.Errorf("%s: code %q, status %v; want %q, failed %v", c.name, code, span.Status(), c.code, c.failed)
		}
		if len(span.Events()) > 0 || strings.Contains(span.Status().Description, "98765") {
			t.Errorf("%s: events %v, status %v", c.name, span.Events(), span.Status())
		}
	}
}
