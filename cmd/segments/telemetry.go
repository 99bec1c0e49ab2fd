package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// telemetryFlags registers the observability settings. The OTLP ones take the
// standard OpenTelemetry variables, so that a deployment configured for other
// services works unchanged.
func (c *config) telemetryFlags(fs *flag.FlagSet, getenv func(string) string, env func(name, def string) string) {
	c.setting(fs, getenv, "metrics-addr", "SEGMENTS_METRICS_ADDR", addrValue{p: &c.metricsAddr, unset: true, off: true})
	c.setting(fs, getenv, "debug-addr", "SEGMENTS_DEBUG_ADDR", addrValue{p: &c.debugAddr, unset: true, loopback: true})
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", ""), "")
	c.otlpTracesEndpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	c.otlpProtocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env("OTEL_EXPORTER_OTLP_PROTOCOL", ""))
	c.otlpProtocolName = "OTEL_EXPORTER_OTLP_PROTOCOL"
	if env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "") != "" {
		c.otlpProtocolName = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	}
	c.otelDisabled = strings.EqualFold(env("OTEL_SDK_DISABLED", ""), "true") ||
		strings.EqualFold(env("OTEL_TRACES_EXPORTER", ""), "none")
}

// tracingOptions are the settings of tracing, and whether it is on.
func (c *config) tracingOptions() (telemetry.TracingOptions, bool) {
	opts := telemetry.TracingOptions{Endpoint: c.otlpEndpoint, TracesEndpoint: c.otlpTracesEndpoint, Protocol: c.otlpProtocol}
	return opts, opts.Enabled() && !c.otelDisabled
}

// checkTracing refuses, naming it, a tracing setting that tracing would refuse: when
// the flags are parsed, not after the embedded PostgreSQL started (exit status 1).
func (c *config) checkTracing() error {
	opts, on := c.tracingOptions()
	if !on {
		return nil
	}
	if err := opts.CheckProtocol(); err != nil {
		return fmt.Errorf("%s: %w", c.otlpProtocolName, err)
	}
	if err := opts.CheckEndpoint(); err != nil {
		if c.otlpTracesEndpoint != "" { // it wins over the other
			return fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %w", err)
		}
		return fmt.Errorf("--otlp-endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): %w", err)
	}
	return nil
}

// tracing returns the tracer provider of the settings, nil when tracing is off, and
// the function that flushes its last spans.
func (c *config) tracing(ctx context.Context, log *slog.Logger) (trace.TracerProvider, func(), error) {
	opts, on := c.tracingOptions()
	if !on {
		return nil, func() {}, nil
	}
	tp, err := telemetry.NewTracerProvider(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	// The exporter's failures (collector down) reach the log, not stderr in another
	// format.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	// A password in the URL stays out of the log (the exporter does not send it:
	// OTEL_EXPORTER_OTLP_HEADERS carries credentials).
	log.Info("tracing on", "otlp_endpoint", telemetry.RedactURL(firstNonEmpty(opts.TracesEndpoint, opts.Endpoint)))
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: flush the last spans", "err", err)
		}
	}, nil
}

// metrics returns the server's metrics and, with --metrics-addr, starts the listener
// that serves them instead of the API's; its stop function closes it. With
// --metrics-addr=off, there are none.
func (c *config) metrics(s *store.Store, log *slog.Logger) (m *telemetry.Metrics, onAPI bool, stop func(), err error) {
	switch c.metricsAddr {
	case "off":
		return nil, false, func() {}, nil
	case "":
		return telemetry.NewMetrics(telemetry.MetricsOptions{DB: s.DB(), Cancels: s.CancelCounts}), true, func() {}, nil
	}
	m = telemetry.NewMetrics(telemetry.MetricsOptions{DB: s.DB(), Cancels: s.CancelCounts})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if stop, err = serveAside(c.metricsAddr, mux, "/metrics", log); err != nil {
		return nil, false, nil, err
	}
	return m, false, stop, nil
}

// profiling starts, with --debug-addr, the listener that serves Go's profiles
// (/debug/pprof/) on a loopback address; its stop function closes it. Without
// --debug-addr there is none.
func (c *config) profiling(log *slog.Logger) (stop func(), err error) {
	if c.debugAddr == "" {
		return func() {}, nil
	}
	// Its address was checked as loopback when parsed (addrValue).
	if stop, err = serveAside(c.debugAddr, telemetry.ProfilingHandler(), "/debug/pprof/", log); err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	return stop, nil
}

// serveAside serves h on a listener of its own at addr, beside the API's, until
// stop closes it; what names what it serves in the log.
func serveAside(addr string, h http.Handler, what string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("listener of "+what, "err", err)
		}
	}()
	log.Info("serving "+what, "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
