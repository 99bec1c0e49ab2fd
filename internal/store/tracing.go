package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the SQL spans.
const tracerName = "github.com/segments/segments/internal/store"

// tracingHook is the Bun query hook that gives each statement a span, as a child of
// the span of its context, and only when that span is recording: with tracing off (no
// span, or a no-op one) a statement costs one context lookup and nothing else. The
// spans come from the parent span's TracerProvider, so the store needs no tracing
// setting of its own.
//
// A span names the statement's operation (SELECT, INSERT, BEGIN...). Its text is
// recorded only when it came with separate arguments, that is as a template with
// placeholders: Bun writes the values of its query builder into the text, and the
// values (phones, names, attributes) must not reach a trace backend.
type tracingHook struct{}

// dbSystem is the db.system.name attribute of every SQL span.
var dbSystem = attribute.String("db.system.name", "postgresql")

func (tracingHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx
	}
	op := e.Operation()
	attrs := []attribute.KeyValue{dbSystem, attribute.String("db.operation.name", op)}
	if len(e.QueryArgs) > 0 {
		attrs = append(attrs, attribute.String("db.query.text", truncate(e.QueryTemplate, 2048)))
	}
	ctx, _ = parent.TracerProvider().Tracer(tracerName).Start(ctx, op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

func (tracingHook) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows) {
		span.RecordError(e.Err)
		span.SetStatus(codes.Error, "statement failed")
	}
	span.End()
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
