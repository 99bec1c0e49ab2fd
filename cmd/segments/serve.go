package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/demo"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	cfg, rest, err := parse("serve", args, getenv, stderr, true)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = inLogFormat{err, cfg.logFormat} // main's last line is in the log's format
		}
	}()
	if err := noArgs("serve", rest); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.logFormat)
	build := readBuild() // version.go
	build.log(log)
	// First, before any work: a refused --debug-addr opens nothing, and the start
	// itself can be profiled.
	stopProfiling, err := cfg.profiling(log) // telemetry.go: none without --debug-addr
	if err != nil {
		return err
	}
	defer stopProfiling()
	if cfg.goGC == "" {
		debug.SetGCPercent(server.GCPercent)
	}
	if cfg.goMemLimit == "" {
		if limit := server.SetMemoryLimit(); limit > 0 {
			log.Info("memory limit set from the container's", "gomemlimit_bytes", limit)
		}
	}
	sessions, err := cfg.jwtVerifier(log)
	if err != nil {
		return err
	}
	if err := cfg.checkRateLimit(); err != nil {
		return err
	}
	s, closeStore, err := openStore(ctx, cfg, log, "segments", true)
	if err != nil {
		return err
	}
	defer closeStore()
	// As the owner, for every writer of the database (the triggers read it).
	if err := s.SetMembershipChangesBudget(ctx, cfg.membershipChangesBudget); err != nil {
		if !store.ReadOnly(err) {
			return err
		}
		log.Warn("database is read-only: the membership changes' budget is not set; it is when a server starts on it taking writes", "err", err)
	}
	app, closeApp, err := openAppStore(ctx, cfg, log) // requests run as a role held back by row-level security
	if err != nil {
		return err
	}
	defer closeApp()
	warnSettings(ctx, app, log)        // as the requests' sessions see them
	throttle, err := cfg.throttle(app) // limits.go: PostgreSQL token buckets, or nil
	if err != nil {
		return err
	}
	metrics, metricsOnAPI, stopMetrics, err := cfg.metrics(app, log) // telemetry.go: the pool of the requests
	if err != nil {
		return err
	}
	defer stopMetrics()
	if metrics != nil {
		metrics.Registry().MustRegister(build.collector())
	}
	// As the owner, who sees more of the other sessions than the application's role
	// (a superuser, for the embedded PostgreSQL).
	watch := telemetry.NewTransactionWatch(s, log, telemetry.TransactionWatchOptions{WarnAfter: cfg.oldTransaction})
	if metrics != nil {
		metrics.Registry().MustRegister(watch)
	}
	watching, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go watch.Run(watching)
	tracing, flushTraces, err := cfg.tracing(ctx, log) // telemetry.go: nil when off
	if err != nil {
		return err
	}
	defer flushTraces()

	var playgroundKey string
	if cfg.demo {
		key, err := demo.Seed(ctx, s)
		if err != nil {
			return err
		}
		playgroundKey = string(key)
		fmt.Fprintf(stdout, "Demo workspace %q is ready. API key: %s\n", demo.WorkspaceName, key)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	conns := cfg.connLimit(ln, log) // limits.go: --max-connections
	if metrics != nil {
		metrics.Registry().MustRegister(conns)
	}
	// Requests run under their own base context, not ctx: a shutdown lets them finish,
	// and cancels them (rolling back their transactions) only when the grace period
	// is over.
	requests, cancelRequests := context.WithCancelCause(context.WithoutCancel(ctx))
	requests = graph.WithServer(requests)
	defer cancelRequests(nil)
	draining := make(chan struct{})
	srv := &http.Server{
		// conns.Handler refuses a request whose connection was closed for room as
		// its headers were read (with ConnContext).
		Handler: conns.Handler(server.Handler(app, log, server.Config{
			PlaygroundKey:                playgroundKey,
			BatchWait:                    cfg.batchWait,
			KeyCacheTTL:                  cfg.keyCacheTTL,
			RequestTimeout:               cfg.request,
			Draining:                     draining,
			JWT:                          sessions,
			Limits:                       cfg.limits,
			MaxRunning:                   cfg.maxRunning,
			MaxWaiting:                   cfg.maxWaiting,
			MaxRunningPerCaller:          cfg.maxRunningPerCaller,
			MaxWaitingPerCaller:          cfg.maxWaitingPerCaller,
			MaxRunningPerWorkspace:       cfg.maxRunningPerWorkspace,
			MaxWaitingPerWorkspace:       cfg.maxWaitingPerWorkspace,
			ReservedForUsersPerWorkspace: cfg.reservedForUsersPerWorkspace,
			Throttle:                     throttle,
			Introspection:                graph.Introspection(cfg.introspection),
			NoPlayground:                 cfg.playground == "off",
			Metrics:                      metrics,
			NoMetricsRoute:               !metricsOnAPI,
			Tracing:                      tracing,
			CORSOrigins:                  cfg.corsOrigins,
			IdempotencyBudget:            cfg.idempotencyBudget,
		})),
		BaseContext:       func(net.Listener) context.Context { return requests },
		ConnContext:       conns.ConnContext,
		ConnState:         conns.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// net/http's own lines (an accept error such as "too many open files", a
		// handler's superfluous WriteHeader) go through the server's log, as WARN
		// records in its format: without it they went to the process's stderr as
		// plain text, even with --log-format json.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.playground == "off" {
		fmt.Fprintf(stdout, "Serving the GraphQL API at http://%s/graphql\n", ln.Addr())
	} else {
		fmt.Fprintf(stdout, "Serving the GraphQL API at http://%s/graphql and the playground at http://%s/\n", ln.Addr(), ln.Addr())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conns) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return shutdown(srv, errc, draining, cancelRequests, cfg, log)
}

// shutdown stops the server in three steps: /readyz turns 503 while requests are still
// accepted (drain delay), then the listener closes and requests in flight finish (the
// grace period), then any still running are cancelled, which rolls their transactions
// back, and get a moment to answer.
func shutdown(srv *http.Server, errc <-chan error, draining chan<- struct{}, cancelRequests context.CancelCauseFunc, cfg *config, log *slog.Logger) error {
	close(draining)
	log.Info("shutting down: draining", "drain_delay", cfg.drainDelay, "grace", cfg.shutdown)
	time.Sleep(cfg.drainDelay)

	grace, cancel := context.WithTimeout(context.Background(), cfg.shutdown)
	defer cancel()
	err := srv.Shutdown(grace)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutting down: grace period over, cancelling the requests still running")
		cancelRequests(graph.ErrShuttingDown)
		last, cancel := context.WithTimeout(context.Background(), cancelledRequestsGrace)
		defer cancel()
		if err = srv.Shutdown(last); err != nil {
			srv.Close()
		}
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("shut down")
	return nil
}

// cancelledRequestsGrace is how long cancelled requests have to answer: enough for
// PostgreSQL to cancel their statements and roll back.
const cancelledRequestsGrace = time.Second
