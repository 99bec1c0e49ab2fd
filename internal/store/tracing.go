package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the SQL spans.
const tracerName = "github.com/segments/segments/internal/store"

// tracingHook is the Bun query hook that gives each statement a span, as a child of
// the span of its context, and only when that span is sampled: with tracing off (no
// span, or a no-op one) a statement costs one context lookup and nothing else. The
// parent may have ended already (the span of a field whose children run after its
// resolver returned), which OpenTelemetry allows: what counts is that the trace is
// recorded. The spans come from the parent span's TracerProvider, so the store needs
// no tracing setting of its own.
//
// The statement's span is kept in its event, not in the context the hook returns:
// Bun runs a transaction's COMMIT or ROLLBACK with the context BeginTx returned, and
// a BEGIN span there became the parent of the COMMIT's, long ended. The statements
// of a transaction are thus siblings under the span that ran it, BEGIN and COMMIT
// included.
//
// A span names the statement's operation (SELECT, INSERT, BEGIN...). Its text is
// recorded only when it came with separate arguments, that is as a template with
// placeholders: Bun writes the values of its query builder into the text, and the
// values (phones, names, attributes) must not reach a trace backend. For the same
// reason a failed statement's span has its SQLSTATE, never its error's message,
// which PostgreSQL writes with values in it (a unique violation's "Key
// (phone)=(...)").
type tracingHook struct{}

// dbSystem is the db.system.name attribute of every SQL span.
var dbSystem = attribute.String("db.system.name", "postgresql")

// spanKey is the key of a statement's span in its event's Stash.
type spanKey struct{}

func (tracingHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsSampled() {
		return ctx
	}
	op := e.Operation()
	attrs := []attribute.KeyValue{dbSystem, attribute.String("db.operation.name", op)}
	if len(e.QueryArgs) > 0 {
		attrs = append(attrs, attribute.String("db.query.text", truncate(e.QueryTemplate, 2048)))
	}
	_, span := parent.TracerProvider().Tracer(tracerName).Start(ctx, op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	if e.Stash == nil {
		e.Stash = make(map[any]any, 1)
	}
	e.Stash[spanKey{}] = span
	return ctx
}

func (tracingHook) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	span, ok := e.Stash[spanKey{}].(trace.Span)
	if !ok {
		return
	}
	if e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows) {
		span.SetAttributes(attribute.String("error.type", errorType(e.Err)))
		if pgErr := pgError(e.Err); pgErr != nil {
			span.SetAttributes(attribute.String("db.response.status_code", pgErr.Code))
		}
		span.SetStatus(codes.Error, "statement failed")
	}
	span.End()
}

// errorType names the kind of a statement's error for its span's error.type, without
// its message: the SQLSTATE of an error PostgreSQL sent, the end of the statement's
// context, or the Go type of anything else.
func errorType(err error) string {
	if pgErr := pgError(err); pgErr != nil {
		return pgErr.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	}
	return fmt.Sprintf("%T", err)
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
