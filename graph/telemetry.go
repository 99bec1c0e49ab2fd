package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/segments/segments/internal/telemetry"
)

// tracerName is the instrumentation scope of the resolver spans.
const tracerName = "github.com/segments/segments/graph"

// telemetryServer is what useTelemetry configures: a *handler.Server.
type telemetryServer interface {
	AroundResponses(graphql.ResponseMiddleware)
	AroundFields(graphql.FieldMiddleware)
}

// useTelemetry reports each response's operation and the code of its first error to
// the request's telemetry record, which the HTTP middleware turns into the log line,
// the metrics and the request span; also for requests refused before execution
// (limits, throttle, validation), whose responses pass here too. With opts.Tracing,
// every field that has a resolver of its own gets a span; fields read from a struct
// get none, and with tracing off no field middleware is installed at all. (The
// executor does not pass a leaf read from its object through field middleware at
// all: internal/codegen's rewriteLeaves.)
func useTelemetry(srv telemetryServer, opts Options) {
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		res := next(ctx)
		if rec := telemetry.From(ctx); rec != nil {
			report(ctx, rec, res)
		}
		return res
	})
	if opts.Tracing == nil {
		return
	}
	tracer := opts.Tracing.Tracer(tracerName)
	srv.AroundFields(func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || !fc.IsResolver || !trace.SpanFromContext(ctx).IsRecording() {
			return next(ctx)
		}
		ctx, span := tracer.Start(ctx, fc.Object+"."+fc.Field.Name, trace.WithAttributes(
			attribute.String("graphql.field.path", fc.Path().String())))
		defer span.End()
		res, err := next(ctx)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "resolver failed")
		}
		return res, err
	})
}

// report writes the operation of ctx and the first error of res in rec.
func report(ctx context.Context, rec *telemetry.Request, res *graphql.Response) {
	// An operation is there only once its document parsed and validated.
	if graphql.HasOperationContext(ctx) {
		if op := graphql.GetOperationContext(ctx).Operation; op != nil {
			rec.OperationType, rec.Operation = string(op.Operation), op.Name
		}
	}
	if res != nil && res.Data != nil {
		rec.Executed = true
	}
	if res != nil && len(res.Errors) > 0 && rec.Code == "" {
		if code, ok := res.Errors[0].Extensions["code"].(string); ok {
			rec.Code = code
		} else {
			rec.Code = telemetry.CodeUncoded
		}
	}
}
