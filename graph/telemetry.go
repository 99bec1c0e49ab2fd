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
// every field that has a resolver of its own, or whose method takes the context
// (tracedMethods), gets a span; fields read from a struct get none, and with tracing
// off no field middleware is installed at all. (The executor does not pass a leaf
// read from its object through field middleware at all: internal/codegen's
// rewriteLeaves.)
//
// A field's span covers its resolver. gqlgen resolves the field's children with the
// context its resolver ran in, once the resolver returned: their spans, and those of
// their statements, are children of the field's span, started after it ended, which
// OpenTelemetry allows. So a field's span is started whenever the span of its context
// is sampled, ended or not (it was started only under a span still recording, which
// left every field below the first level, and its SQL, out of the trace).
//
// A field that failed has its error's code (segments.error_code), never its message:
// the message of an input's refusal quotes the input (a phone number), and the
// values of a request must not reach a trace backend. Its span is an error only for
// a failure of the server's (serverFailure), as the request's span is one only on a
// 5xx: a refused input is the client's.
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
	srv.AroundFields(func(ctx context.Context, next graphql.Resolver) (res any, err error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || !fc.IsResolver && !tracedMethods[fieldKey{fc.Object, fc.Field.Name}] ||
			!trace.SpanFromContext(ctx).SpanContext().IsSampled() {
			return next(ctx)
		}
		ctx, span := tracer.Start(ctx, fc.Object+"."+fc.Field.Name, trace.WithAttributes(
			attribute.String("graphql.field.path", fc.Path().String())))
		returned := false
		defer func() {
			if !returned { // panicking: the executor recovers it, as an internal error
				span.SetStatus(codes.Error, codeInternal)
			}
			span.End()
		}()
		res, err = next(ctx)
		returned = true
		if err != nil {
			code := errorCode(ctx, err)
			span.SetAttributes(attribute.String("segments.error_code", code))
			if serverFailure(code) {
				span.SetStatus(codes.Error, code)
			}
		}
		return res, err
	})
}

// fieldKey names a field of an object type.
type fieldKey struct{ object, field string }

// tracedMethods are the fields without a resolver of their own whose method takes
// the context, to send statements (the connections' counts): they get a span, as
// resolvers do. TestTracedMethods keeps the list whole.
var tracedMethods = map[fieldKey]bool{
	{"SegmentConnection", "totalCount"}: true,
	{"SegmentConnection", "count"}:      true,
	{"ContactConnection", "totalCount"}: true,
	{"ContactConnection", "count"}:      true,
}

// serverFailure reports whether a field's error code is a failure of the server's
// (what GraphQL over HTTP would answer with a 5xx), rather than a refusal of what
// the client asked or the client's leaving.
func serverFailure(code string) bool {
	switch code {
	case codeInternal, codeUnavailable, codeTimeout:
		return true
	}
	return false
}

// report writes the operation of ctx and the first error of res in rec.
func report(ctx context.Context, rec *telemetry.Request, res *graphql.Response) {
	// An operation is there only once its document parsed and validated.
	if graphql.HasOperationContext(ctx) {
		if op := graphql.GetOperationContext(ctx).Operation; op != nil {
			rec.SetOperation(string(op.Operation), op.Name)
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
