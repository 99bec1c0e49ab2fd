// Package server is the HTTP shell of the service: its routes, and the middleware
// every request passes through.
package server

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/playground"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// GCPercent is the garbage collector's target that the server's binaries set
// (debug.SetGCPercent) unless GOGC is set. A large page allocates about 1 MB of
// short-lived objects (gqlgen's executor: field contexts, and a goroutine per item of a
// list of objects), so at Go's default of 100 the collector ran often and took a large
// share of the CPU. Measured with BenchmarkW3ContactsPage (50 contacts with their
// segments): 4.9 ms of CPU per request at 100, 3.6 ms at 400; W1 1.03 ms -> 0.86 ms.
// The price is a heap that grows to about five times the live heap between
// collections, goroutine stacks counted as live: 65 MB for this server at full speed,
// 200 MB with 1,000 requests waiting for admission (MemoryLimitPercent bounds it in a
// container).
const GCPercent = 400

// Config configures the routes.
type Config struct {
	// PlaygroundKey, when set, is filled into the playground's API key field:
	// for the demo only, since the page then shows the key to whoever opens it.
	PlaygroundKey string
	// BatchWait is how long loaders wait for sibling keys; 0 means the default.
	BatchWait time.Duration
	// RequestTimeout bounds each GraphQL request; when it passes, the request's SQL is
	// cancelled on the database too and the client gets a TIMEOUT error. A request's
	// body must arrive within it too, before the request starts (408
	// REQUEST_TIMEOUT). 0 means no deadline, but the body's stays (10 s).
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
	// ThrottleBucket names the bucket a request is charged to; nil: one per API key
	// and one per dashboard user (graph.PrincipalBucket).
	ThrottleBucket func(context.Context) string
	// Introspection says who may introspect the schema: on ("" too), off, or
	// sessions (dashboard sessions only, not API keys).
	Introspection graph.Introspection
	// NoPlayground turns the playground at / and its assets off (404).
	NoPlayground bool
	// KeyCacheTTL, when positive, is how long an accepted API key is remembered
	// (auth.WithKeyCache): a revoked key stops working within it. 0: every request
	// looks its key up.
	KeyCacheTTL time.Duration
	// Metrics, when set, count every GraphQL request, and are served at /metrics
	// unless NoMetricsRoute (the binary's --metrics-addr serves them elsewhere).
	Metrics        *telemetry.Metrics
	NoMetricsRoute bool
	// Tracing, when set, gives each request, resolver and SQL statement a span; nil
	// is off, at no cost.
	Tracing trace.TracerProvider
	// MaxRunning bounds how many GraphQL requests run at once, and MaxWaiting how
	// many more wait for them (first come, first served, until their deadline);
	// beyond, requests get 503 SERVICE_UNAVAILABLE with Retry-After at once (see
	// admit). 0 takes DefaultMaxRunning and DefaultMaxWaiting, -1 is no limit.
	MaxRunning, MaxWaiting int
	// MaxRunningPerCaller bounds how many GraphQL requests of one caller (an API key,
	// a dashboard user: ThrottleBucket's names) run at once, and MaxWaitingPerCaller
	// how many more of its requests wait for them; beyond, its requests get 429
	// TOO_MANY_CONCURRENT_REQUESTS with Retry-After at once (see admitPerCaller). 0
	// takes DefaultMaxRunningPerCaller and DefaultMaxWaitingPerCaller, -1 is no limit.
	MaxRunningPerCaller, MaxWaitingPerCaller int
	// MaxRunningPerWorkspace bounds how many GraphQL requests of one workspace (all of
	// its callers) run at once, and MaxWaitingPerWorkspace how many more of them wait,
	// as MaxRunningPerCaller does for a caller (see admitPerWorkspace). 0 takes
	// DefaultMaxRunningPerWorkspace and DefaultMaxWaitingPerWorkspace, -1 is no limit.
	MaxRunningPerWorkspace, MaxWaitingPerWorkspace int
	// ReservedForUsersPerWorkspace is how many of MaxRunningPerWorkspace's places
	// only the workspace's dashboard users may take: its API keys together run at
	// most the rest, and wait for them as for the workspace's (see
	// admitKeysPerWorkspace). Only with JWT, since without sessions there are no
	// users to keep them for. 0 takes DefaultReservedForUsersPerWorkspace, -1 keeps
	// none.
	ReservedForUsersPerWorkspace int
	// IdempotencyBudget bounds the bytes of the answers each workspace's
	// Idempotency-Keys keep (idempotency.Options.AnswerBudget): 0 takes
	// idempotency.DefaultAnswerBudget, -1 is no bound.
	IdempotencyBudget int64
	// CORSOrigins are the origins whose pages may call /graphql from a browser, as
	// ParseCORSOrigins returns them: AnyOrigin alone for any. Empty: none (no CORS
	// headers; the binary's default is AnyOrigin, see allowOrigins).
	CORSOrigins []string
}

// DefaultMaxRunning is twice the store's default pool: requests beyond it would only
// wait for a connection, holding their memory. DefaultMaxWaiting is about a second or
// two of the server's throughput on a 2-core machine.
const (
	DefaultMaxRunning = 2 * store.DefaultMaxConns
	DefaultMaxWaiting = 1000
)

// DefaultMaxRunningPerCaller is twice the cores of the machine it was measured on:
// as many of one caller's slow requests as keep the cores busy, a fifth of the
// store's default pool. DefaultMaxWaitingPerCaller lets a dashboard page's burst of
// queries wait rather than fail.
const (
	DefaultMaxRunningPerCaller = 4
	DefaultMaxWaitingPerCaller = 8
)

// DefaultMaxRunningPerWorkspace is two callers' worth: two fifths of the store's
// default pool, the rest left to the other workspaces. DefaultMaxWaitingPerWorkspace
// lets the dashboards of a dozen users, each page a burst of queries, wait rather
// than fail.
const (
	DefaultMaxRunningPerWorkspace = 2 * DefaultMaxRunningPerCaller
	DefaultMaxWaitingPerWorkspace = 100
)

// DefaultReservedForUsersPerWorkspace keeps a quarter of a workspace's default places
// for its dashboard users: two of its pages at once, whatever its integrations send.
const DefaultReservedForUsersPerWorkspace = 2

// keysPerWorkspace is the bound of admitKeysPerWorkspace: the workspace's bound less
// the places kept for its users, at least one; -1 (no bound of their own) when the
// workspace is unbounded, nothing is kept, or there are no users (no sessions).
func keysPerWorkspace(workspace, reserved int, sessions bool) int {
	if workspace < 0 || reserved <= 0 || !sessions {
		return -1
	}
	return max(1, workspace-reserved)
}

// Handler returns the service's routes:
//
//	POST, GET /graphql  the GraphQL API (API key required)
//	OPTIONS /graphql    CORS preflights, with CORSOrigins
//	GET /               the GraphQL playground (unless NoPlayground), served with its
//	                    assets (GET /playground/assets/...) from the binary
//	GET /livez          200 while the process runs
//	GET /readyz         200 while the database answers, else 503
//	GET /metrics        Prometheus metrics (with Metrics, unless NoMetricsRoute)
func Handler(s *store.Store, log *slog.Logger, cfg Config) http.Handler {
	mux := http.NewServeMux()
	gopts := graph.Options{BatchWait: cfg.BatchWait, Limits: cfg.Limits, Throttle: cfg.Throttle, ThrottleBucket: cfg.ThrottleBucket, Introspection: cfg.Introspection, Tracing: cfg.Tracing}
	api := graph.NewHandler(s, log, gopts)
	// /graphql, innermost first: each workspace's requests that run the API are bounded
	// (admitPerWorkspace), its API keys' together before them (admitKeysPerWorkspace), and
	// each caller's (admitPerCaller) before those, so that requests waiting for their turn
	// hold no room of the workspace's; replays of an Idempotency-Key answer without
	// running it (charged to the rate limit as the request they repeat, by the same
	// throttle and bucket), and copies waiting for the first's answer are not counted (they give
	// the server's place up while they wait, at most 8 of them per key); they and
	// everything below need the caller (auth), whose workspace the telemetry record learns
	// at once; admission bounds the requests past this point, authentication's SQL
	// included (a session token waiting for the issuer's keys gives its place up); the deadline covers the wait for admission too; the GraphQL-over-HTTP
	// checks refuse malformed requests before any of it.
	caller := cfg.ThrottleBucket
	if caller == nil {
		caller = graph.PrincipalBucket
	}
	wsRunning, wsWaiting := cmp.Or(cfg.MaxRunningPerWorkspace, DefaultMaxRunningPerWorkspace), cmp.Or(cfg.MaxWaitingPerWorkspace, DefaultMaxWaitingPerWorkspace)
	var gql http.Handler = admitPerWorkspace(wsRunning, wsWaiting, api)
	gql = admitKeysPerWorkspace(keysPerWorkspace(wsRunning, cmp.Or(cfg.ReservedForUsersPerWorkspace, DefaultReservedForUsersPerWorkspace), cfg.JWT != nil), wsWaiting, gql)
	gql = admitPerCaller(cmp.Or(cfg.MaxRunningPerCaller, DefaultMaxRunningPerCaller), cmp.Or(cfg.MaxWaitingPerCaller, DefaultMaxWaitingPerCaller), caller, gql)
	gql = idempotency.Middleware(s, log, idempotency.Options{
		Lease: claimLease(cfg.RequestTimeout),
		// Copies waiting for the answer of the request holding their key wait without
		// a place among the server's running requests, as those waiting for their
		// caller's or workspace's turn do.
		Pause: func(ctx context.Context) { serverSlotFrom(ctx).yield() },
		Resume: func(w http.ResponseWriter, ctx context.Context) bool {
			return serverSlotFrom(ctx).reclaimOrRefuse(w, ctx)
		},
		// Free replays bypassed the rate limit: a key throttled at 3 answers a second
		// was replayed a stored 22 KB answer 1,644 times a second.
		Charge:       graph.ChargeReplay(log, gopts),
		AnswerBudget: cfg.IdempotencyBudget,
	})(gql)
	gql = auth.Require(s, log, noteWorkspace(gql), auth.WithJWT(cfg.JWT), auth.WithKeyCache(cfg.KeyCacheTTL),
		// A session token waiting for the issuer's keys (a new or made-up key ID)
		// waits without a place: 45 forged tokens against an issuer that took 10 s
		// held all 40, and every workspace's API keys waited 4-5 s behind them.
		auth.WithYield(func(ctx context.Context) { serverSlotFrom(ctx).yield() }, func(w http.ResponseWriter, ctx context.Context) bool {
			return serverSlotFrom(ctx).reclaimOrRefuse(w, ctx)
		}))
	gql = admit(cmp.Or(cfg.MaxRunning, DefaultMaxRunning), cmp.Or(cfg.MaxWaiting, DefaultMaxWaiting), gql)
	gql = withTimeout(cfg.RequestTimeout, gql)
	mux.Handle("/graphql", graphQLHTTP(gql))
	if !cfg.NoPlayground {
		pg := playground.Handler(playground.Options{Endpoint: "/graphql", APIKey: cfg.PlaygroundKey})
		mux.Handle("GET /{$}", pg)
		mux.Handle("GET "+playground.AssetPrefix, pg)
	}
	if cfg.Metrics != nil && !cfg.NoMetricsRoute {
		mux.Handle("GET /metrics", cfg.Metrics.Handler())
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
	// CORS before everything that may refuse a request, so that a browser app can
	// read the refusal; its preflights are answered before the body's size is.
	return requestid.Middleware(accessLog(log, cfg.Metrics, telemetry.NewTracer(cfg.Tracing),
		allowOrigins(cfg.CORSOrigins, negotiateGraphQL(limitRequestSize(cfg.Limits.WithDefaults().MaxBodyBytes, cfg.RequestTimeout, mux)))))
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
// goes away. Writing the answer gets as long again from its first byte: a client that
// does not read it is cut off then, so that its connection, its goroutine and the
// answer's bytes are not held for as long as it likes.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		// net/http clears the write deadline after each answer of a connection.
		next.ServeHTTP(&boundedWriter{ResponseWriter: w, within: d}, r.WithContext(ctx))
	})
}

// A boundedWriter sets the deadline of writing an answer when its first byte is
// written.
type boundedWriter struct {
	http.ResponseWriter
	within  time.Duration
	started bool
}

func (w *boundedWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.started = true
		// Not every ResponseWriter has a deadline (a test's recorder): then none.
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.within))
	}
	return w.ResponseWriter.Write(b)
}

func (w *boundedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request. It starts the request's telemetry record
// (telemetry.Begin), which the layers below fill, and with it, for GraphQL requests,
// records the request in metrics (nil: none); with a tracer (nil: none) each request
// gets a span. A CORS preflight is no GraphQL request: it is logged as a plain HTTP
// request, and counted in no GraphQL metric.
func accessLog(log *slog.Logger, metrics *telemetry.Metrics, tracer *telemetry.Tracer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, rec := telemetry.Begin(r.Context())
		var span trace.Span
		if tracer != nil {
			ctx, span = tracer.Start(ctx, r, route(r.URL.Path))
		}
		sr := &statusRecorder{ResponseWriter: w, status: http.StatusOK, rec: rec, client: r.Context()}
		next.ServeHTTP(sr, r.WithContext(ctx))
		d := time.Since(start)
		switch {
		case sr.undelivered:
			rec.Code = telemetry.CodeClientClosed // whatever the answer said, nobody heard it
		case rec.Code == CodeRequestTimeout:
			// The server's read deadline ended the body, and net/http cancelled the
			// request's context as it does when a client leaves; the client is there,
			// and its 408 was delivered.
		case rec.Code == telemetry.CodeClientClosed || sr.leftBeforeAnswer():
			// The client left before its answer (net/http cancels the request's
			// context when the connection ends; a shutdown cancels it with its own
			// cause): whatever the layer that saw it go answered (while its request
			// waited for its turn, say, logged as 200 ok or as that layer's refusal),
			// nobody heard it. 499 is nginx's status for it.
			rec.Code, sr.status = telemetry.CodeClientClosed, statusClientClosed
		case rec.Code == "" && sr.body != nil:
			rec.Code = telemetry.CodeFromBody(sr.body)
		}
		id := requestid.From(ctx)
		if span != nil {
			telemetry.End(span, rec, sr.status, id)
		}
		graphQL := r.URL.Path == "/graphql" && !isPreflight(r)
		if metrics != nil && graphQL {
			metrics.Observe(rec, sr.status, d)
		}
		if !log.Enabled(ctx, slog.LevelInfo) {
			return
		}
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			// Cut as the operation's name is: the client chooses their length.
			slog.String("method", telemetry.Cut(r.Method)),
			slog.String("path", telemetry.Cut(r.URL.Path)),
			slog.Int("status", sr.status),
			slog.Duration("duration", d),
			slog.String("request_id", id))
		if client := requestid.ClientFrom(ctx); client != "" {
			attrs = append(attrs, slog.String("client_request_id", client))
		}
		if graphQL {
			if rec.Operated() {
				attrs = append(attrs, slog.String("operation_type", rec.OperationType))
				if rec.Operation != "" {
					attrs = append(attrs, slog.String("operation", rec.Operation))
				}
			}
			if rec.Workspace != 0 {
				attrs = append(attrs, slog.String("workspace", globalid.Encode(globalid.Workspace, rec.Workspace)))
			}
			if rec.Replayed {
				attrs = append(attrs, slog.Bool("replayed", true))
			}
			attrs = append(attrs,
				slog.Int64("sql_statements", rec.Statements()),
				slog.String("outcome", telemetry.Outcome(rec.Code, sr.status)))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
	})
}

// route names the route of path for span names, from a bounded set.
func route(path string) string {
	switch path {
	case "/graphql", "/", "/livez", "/readyz", "/metrics":
		return path
	}
	return "unmatched"
}

// noteWorkspace writes the workspace of the request, which auth.Require just put in
// its context, in its telemetry record: also for the requests refused before GraphQL
// runs (idempotency).
func noteWorkspace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec := telemetry.From(r.Context()); rec != nil {
			if ws, ok := auth.WorkspaceFrom(r.Context()); ok {
				rec.Workspace = ws.ID
			}
		}
		next.ServeHTTP(w, r)
	})
}

// maxSniff is how much of an error response's body statusRecorder keeps.
const maxSniff = 4096

type statusRecorder struct {
	http.ResponseWriter
	status int
	rec    *telemetry.Request
	// body is the start of an error response (4xx, 5xx) whose code no layer reported
	// in rec: a refusal written before GraphQL runs, whose code it tells.
	body []byte
	// undelivered tells that writing the answer failed: the client left, or did not
	// read it in time.
	undelivered bool
	// client is the request's context as net/http made it, which it cancels when
	// the client's connection ends; begun tells that the answer was begun, and
	// leftFirst that the client had left by then.
	client           context.Context
	begun, leftFirst bool
}

// begin notes that the answer begins, and whether the client had left by then.
func (r *statusRecorder) begin() {
	if !r.begun {
		r.begun = true
		r.leftFirst = errors.Is(context.Cause(r.client), context.Canceled)
	}
}

// leftBeforeAnswer reports whether the client left before the answer began (or, with
// none begun, before the request ended). Asked once the request ended, it took a
// client that closed its connection after reading a whole answer for one that left:
// a request's work may go on after its answer (an Idempotency-Key's cleanup).
func (r *statusRecorder) leftBeforeAnswer() bool {
	if !r.begun {
		return errors.Is(context.Cause(r.client), context.Canceled)
	}
	return r.leftFirst
}

// statusClientClosed is the status logged for a request whose client left before its
// answer was whole (nginx's 499).
const statusClientClosed = 499

func (r *statusRecorder) WriteHeader(status int) {
	r.begin()
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.begin()
	if r.status >= 400 && r.rec.Code == "" && len(r.body) < maxSniff {
		r.body = append(r.body, b[:min(len(b), maxSniff-len(r.body))]...)
	}
	n, err := r.ResponseWriter.Write(b)
	if err != nil {
		r.undelivered = true
	}
	return n, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
