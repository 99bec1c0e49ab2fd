// Package server is the HTTP shell of the service: its routes, and the middleware
// every request passes through.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/store"
)

// Config configures the routes.
type Config struct {
	// PlaygroundKey, when set, is filled into the playground's Authorization header:
	// for the demo only, since the page then shows the key to whoever opens it.
	PlaygroundKey string
	// BatchWait is how long loaders wait for sibling keys; 0 means the default.
	BatchWait time.Duration
	// RequestTimeout bounds each GraphQL request; when it passes, the request's SQL is
	// cancelled on the database too and the client gets a TIMEOUT error. 0 means no
	// deadline.
	RequestTimeout time.Duration
	// Draining, once closed, turns /readyz to 503 while requests are still served: the
	// first step of a graceful shutdown, so that load balancers stop sending traffic
	// before the listener closes.
	Draining <-chan struct{}
	// JWT, when set, makes /graphql accept the dashboard session tokens it verifies,
	// besides API keys (see auth.NewJWTVerifier).
	JWT *auth.JWTVerifier
	// Limits bound what one request may ask for (see limits.Limits): the size of its
	// body here (limitRequestSize), the rest in the GraphQL handler. Zero fields take
	// limits.Defaults.
	Limits limits.Limits
	// Throttle charges each GraphQL request its cost; nil never throttles.
	Throttle limits.Throttle
	// ThrottleBucket names the bucket a request is charged to; nil: one per workspace.
	ThrottleBucket func(context.Context) string
	// Introspection says who may introspect the schema: on ("" too), off, or
	// sessions (dashboard sessions only, not API keys).
	Introspection graph.Introspection
	// NoPlayground turns the playground at / off (404).
	NoPlayground bool
}

// Handler returns the service's routes:
//
//	POST, GET /graphql  the GraphQL API (API key required)
//	GET /               the GraphQL playground (unless NoPlayground)
//	GET /livez          200 while the process runs
//	GET /readyz         200 while the database answers, else 503
func Handler(s *store.Store, log *slog.Logger, cfg Config) http.Handler {
	mux := http.NewServeMux()
	api := graph.NewHandler(s, log, graph.Options{BatchWait: cfg.BatchWait, Limits: cfg.Limits, Throttle: cfg.Throttle, ThrottleBucket: cfg.ThrottleBucket, Introspection: cfg.Introspection})
	mux.Handle("/graphql", withTimeout(cfg.RequestTimeout, auth.Require(s, log, idempotency.Middleware(s, log, idempotency.Options{Lease: claimLease(cfg.RequestTimeout)})(api), auth.WithJWT(cfg.JWT))))
	if !cfg.NoPlayground {
		mux.Handle("GET /{$}", playgroundHandler(cfg.PlaygroundKey))
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-cfg.Draining:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		default:
		}
		// Short, so that a database cut shows within a probe period or two.
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return requestid.Middleware(accessLog(log, limitRequestSize(cfg.Limits.WithDefaults().MaxBodyBytes, mux)))
}

// claimLease is how long an Idempotency-Key stays claimed by a request whose answer
// was neither stored nor released (its process died, or the database was cut when it
// tried): a request cannot run past its deadline, so a retry may take the key over a
// few seconds after it. Without a deadline, the idempotency package's default.
func claimLease(deadline time.Duration) time.Duration {
	if deadline <= 0 {
		return 0
	}
	return deadline + 5*time.Second
}

// withTimeout gives each request a deadline. The store's SQL runs under the request's
// context, so the database stops working on it when the deadline passes or the client
// goes away.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func playgroundHandler(key string) http.Handler {
	header := "Bearer <your API key>"
	if key != "" {
		header = "Bearer " + key
	}
	return playground.Handler("segments", "/graphql",
		playground.WithGraphiqlUiHeaders(map[string]string{"Authorization": header}),
		playground.WithStoragePrefix("segments"))
}

// accessLog logs one line per request.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)),
			slog.String("request_id", requestid.From(r.Context())))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
