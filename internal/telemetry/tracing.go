package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/segments/segments/internal/globalid"
)

// TracingOptions configure NewTracerProvider. The exporter also reads the standard
// OTEL_EXPORTER_OTLP_* variables it is not given here (headers, timeout,
// compression, certificates), and the SDK reads OTEL_TRACES_SAMPLER(_ARG),
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
type TracingOptions struct {
	// Endpoint is the base URL of an OTLP/HTTP receiver, such as
	// http://collector:4318, to which /v1/traces is appended, as to
	// OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string
	// TracesEndpoint is the full URL spans are sent to, as
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; it wins over Endpoint.
	TracesEndpoint string
	// Protocol is OTEL_EXPORTER_OTLP_PROTOCOL: "" or http/protobuf; anything else is
	// refused, since only the HTTP exporter is built in.
	Protocol string
}

// Enabled reports whether the options name an endpoint: tracing is off without one.
func (o TracingOptions) Enabled() bool { return o.Endpoint != "" || o.TracesEndpoint != "" }

// CheckProtocol returns the error NewTracerProvider returns for o's Protocol, if
// any, and CheckEndpoint the one for its endpoints: a command checks its settings
// with them before it starts anything.
func (o TracingOptions) CheckProtocol() error {
	if p := o.Protocol; p != "" && p != "http/protobuf" {
		return fmt.Errorf("tracing: OTLP protocol %q is not supported: use http/protobuf", p)
	}
	return nil
}

// CheckEndpoint: see CheckProtocol.
func (o TracingOptions) CheckEndpoint() error {
	_, err := o.target()
	return err
}

// target returns the URL spans are sent to. Its errors quote the URL with its
// password redacted, as they reach the log.
func (o TracingOptions) target() (string, error) {
	if o.TracesEndpoint != "" {
		u, err := httpURL(o.TracesEndpoint)
		if err != nil {
			return "", fmt.Errorf("tracing: the OTLP traces endpoint %w", err)
		}
		return u.String(), nil
	}
	u, err := httpURL(o.Endpoint)
	if err != nil {
		return "", fmt.Errorf("tracing: the OTLP endpoint %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String(), nil
}

// httpURL parses s as an http(s) URL with a host.
func httpURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// Not url's error, which quotes s whole, a password included.
		return nil, errors.New("is not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", u.Redacted())
	}
	return u, nil
}

// RedactURL returns s, a URL, with its password (user:password@) replaced by xxxxx,
// for the log; "" when s is no URL.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

// NewTracerProvider returns a tracer provider that sends its spans in batches to the
// OTLP/HTTP receiver of opts. Shut it down to flush the last spans.
func NewTracerProvider(ctx context.Context, opts TracingOptions) (*sdktrace.TracerProvider, error) {
	if err := opts.CheckProtocol(); err != nil {
		return nil, err
	}
	target, err := opts.target()
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(target))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "segments")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv()) // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// tracerName is the instrumentation scope of the request spans.
const tracerName = "github.com/segments/segments/internal/server"

// Tracer starts the span of each request. A nil *Tracer starts none.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewTracer returns a Tracer taking its spans from tp; nil for a nil tp (tracing off).
func NewTracer(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{
		tracer: tp.Tracer(tracerName),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// Start starts the server span of r, as a child of the trace its traceparent header
// names, if any. route names the span; it must come from a bounded set (the server's
// routes), never from the raw path.
func (t *Tracer) Start(ctx context.Context, r *http.Request, route string) (context.Context, trace.Span) {
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	// A client chooses the method, of any length (a 60 KB one named a span): as
	// OpenTelemetry's conventions say, a method HTTP does not define is _OTHER, the
	// span is named without it, and the method itself (cut) is its own attribute.
	method, name := r.Method, r.Method+" "+route
	attrs := []attribute.KeyValue{
		attribute.String("http.route", route),
		attribute.String("url.path", Cut(r.URL.Path)),
	}
	if !knownMethods[method] {
		method, name = "_OTHER", "HTTP "+route
		attrs = append(attrs, attribute.String("http.request.method_original", Cut(r.Method)))
	}
	attrs = append(attrs, attribute.String("http.request.method", method))
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// knownMethods are the methods HTTP defines (RFC 9110, and PATCH).
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// End ends the span of a request answered with status, with what its record says.
func End(span trace.Span, rec *Request, status int, requestID string) {
	if !span.IsRecording() { // not sampled
		span.End()
		return
	}
	attrs := []attribute.KeyValue{
		attribute.Int("http.response.status_code", status),
		attribute.String("segments.request_id", requestID),
		attribute.Int64("segments.sql_statements", rec.Statements()),
	}
	if rec.Operated() {
		attrs = append(attrs,
			attribute.String("graphql.operation.type", rec.OperationType),
			attribute.String("graphql.operation.name", rec.Operation))
	}
	if rec.Workspace != 0 {
		attrs = append(attrs, attribute.String("segments.workspace", globalid.Encode(globalid.Workspace, rec.Workspace)))
	}
	if rec.Code != "" {
		attrs = append(attrs, attribute.String("segments.error_code", rec.Code))
	}
	span.SetAttributes(attrs...)
	// A server span is an error on 5xx only: a 4xx is the client's.
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}
