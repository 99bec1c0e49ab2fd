package telemetry

import (
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/segments/segments/internal/store"
)

// The values of the operation label that are not operation names.
const (
	// OperationUnknown: the request never reached a valid operation (refused before
	// GraphQL, or a document that did not parse or validate).
	OperationUnknown = "unknown"
	// OperationAnonymous: a valid operation without a name.
	OperationAnonymous = "anonymous"
	// OperationOther: a named operation past the first MaxOperations names.
	OperationOther = "other"
	// OutcomeOK is the outcome of a request answered without errors.
	OutcomeOK = "ok"
	// CodeClientClosed is the outcome of a request whose client left before it was
	// answered (nginx's 499): neither the server's failure nor its refusal.
	CodeClientClosed = "CLIENT_CLOSED_REQUEST"
	// CodeUncoded is the outcome of a request whose first error has no code.
	CodeUncoded = "ERROR"
	// CodePersistedQueryNotFound is the outcome of a request that sent only a
	// persisted query's hash, unknown here: the protocol's request for the query's
	// text, which its client sends next, and no refusal.
	CodePersistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND"
)

// DefaultMaxOperations is how many operation names get their own label by default.
const DefaultMaxOperations = 100

// maxNameLen is the longest operation name a label keeps; longer ones are cut.
const maxNameLen = 64

// maxCodes bounds the values of the code and outcome labels. Codes are the server's
// own (extensions.code, from a fixed set), so this is only a backstop.
const maxCodes = 64

// MetricsOptions configure NewMetrics.
type MetricsOptions struct {
	// DB, when set, is the connection pool whose statistics are exported as
	// segments_db_pool_*.
	DB *sql.DB
	// Cancels, when set, are the store's counts of cancels (store.Store.CancelCounts),
	// exported as segments_db_reads_retried_total,
	// segments_db_cancel_dropped_connections_total and
	// segments_db_cancel_requests_sent_total.
	Cancels func() store.CancelCounts
	// MaxOperations bounds the operation names that get their own label value: the
	// first ones seen keep theirs, any later one is counted as "other". 0 means
	// DefaultMaxOperations.
	MaxOperations int
}

// Metrics are the server's Prometheus metrics, in a registry of their own. Safe for
// concurrent use.
type Metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	statements prometheus.Histogram
	rejections *prometheus.CounterVec
	overflow   prometheus.Counter

	mu         sync.RWMutex
	operations map[string]*operationSeries
	maxOps     int
	named      int // operation names in operations
	codes      map[string]string
}

// operationSeries caches the series of one operation label, so that the common
// request (a known operation answered without errors) costs no label hashing and no
// allocation.
type operationSeries struct {
	label    string
	duration prometheus.Observer
	ok       prometheus.Counter
}

// NewMetrics returns the metrics, with Go runtime and process collectors and, with a
// DB, the pool's statistics.
func NewMetrics(opts MetricsOptions) *Metrics {
	if opts.MaxOperations <= 0 {
		opts.MaxOperations = DefaultMaxOperations
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segments_requests_total",
			Help: "GraphQL requests answered, by operation name and outcome (ok, or the extensions.code of the first error).",
		}, []string{"operation", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "segments_request_duration_seconds",
			Help:    "Time to answer a GraphQL request, by operation name.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		statements: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "segments_sql_statements_per_request",
			Help:    "SQL statements sent to PostgreSQL for one GraphQL request that ran (authentication included).",
			Buckets: []float64{0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100},
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segments_rejections_total",
			Help: "GraphQL requests refused before they ran, by extensions.code (UNAUTHENTICATED, THROTTLED, MAX_COST_EXCEEDED, REQUEST_TOO_LARGE, GRAPHQL_VALIDATION_FAILED...).",
		}, []string{"code"}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "segments_operation_names_overflow_total",
			Help: "Requests whose operation name was counted as \"other\" because the label's bound was reached.",
		}),
		operations: map[string]*operationSeries{},
		maxOps:     opts.MaxOperations,
		codes:      map[string]string{},
	}
	m.registry.MustRegister(m.requests, m.duration, m.statements, m.rejections, m.overflow,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.DB != nil {
		m.registry.MustRegister(newPoolCollector(opts.DB))
	}
	if opts.Cancels != nil {
		m.registry.MustRegister(newCancelCollector(opts.Cancels))
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry returns the registry the metrics are in, for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Observe records a GraphQL request answered with status after d.
func (m *Metrics) Observe(r *Request, status int, d time.Duration) {
	s := m.series(r)
	s.duration.Observe(d.Seconds())
	// Only requests that ran: a flood of refusals (0 or 1 statement each) must not
	// hide an N+1 that crept into an operation, nor replays (none of the operation's).
	if r.Executed && !r.Replayed {
		m.statements.Observe(float64(r.Statements()))
	}
	outcome := Outcome(r.Code, status)
	if outcome == OutcomeOK {
		s.ok.Inc()
	} else {
		outcome = m.code(outcome)
		m.requests.WithLabelValues(s.label, outcome).Inc()
	}
	// Refused: answered with an error and without running, and not for a fault of
	// the server (5xx), nor because the client left or as the persisted queries'
	// protocol asks for a query's text. Whatever its status: GraphQL over HTTP
	// answers an invalid document with 200 to clients that accept only
	// application/json.
	refused := outcome != OutcomeOK && outcome != CodeClientClosed && outcome != CodePersistedQueryNotFound
	if refused && !r.Executed && status < 500 {
		m.rejections.WithLabelValues(outcome).Inc()
	}
}

// Outcome is the outcome of a request: the code of its first error, else ok below
// status 400 and HTTP_<status> from it.
func Outcome(code string, status int) string {
	switch {
	case code != "":
		return code
	case status < 400:
		return OutcomeOK
	}
	return "HTTP_" + strconv.Itoa(status)
}

// series returns the series of the request's operation label.
//
// Operation names are chosen by clients, so the label is bounded: a name gets its
// own value only if it comes from a valid operation (which only an authenticated
// client can send), is cut to 64 bytes, and is among the first MaxOperations names
// seen by this process; every later name is "other" (and counted by
// segments_operation_names_overflow_total). A client sending a million distinct
// names thus adds at most MaxOperations series per metric, once, and the log line
// still shows each request's real name.
func (m *Metrics) series(r *Request) *operationSeries {
	name := OperationUnknown
	switch {
	case !r.Operated():
	case r.Operation == "":
		name = OperationAnonymous
	default:
		name = cut(r.Operation, maxNameLen)
	}
	m.mu.RLock()
	s, ok := m.operations[name]
	m.mu.RUnlock()
	if ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.operations[name]; ok {
		return s
	}
	// The fixed values do not count against the bound.
	fixed := name == OperationUnknown || name == OperationAnonymous || name == OperationOther
	if !fixed {
		if m.named >= m.maxOps {
			m.overflow.Inc()
			name = OperationOther
			if s, ok := m.operations[name]; ok {
				return s
			}
		} else {
			m.named++
		}
	}
	// A copy: the name may point into a cached query document.
	label := string([]byte(name))
	s = &operationSeries{
		label:    label,
		duration: m.duration.WithLabelValues(label),
		ok:       m.requests.WithLabelValues(label, OutcomeOK),
	}
	m.operations[label] = s
	return s
}

// code bounds the values of the outcome and code labels (see maxCodes).
func (m *Metrics) code(c string) string {
	m.mu.RLock()
	v, ok := m.codes[c]
	m.mu.RUnlock()
	if ok {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.codes[c]; ok {
		return v
	}
	if len(m.codes) >= maxCodes || !isCode(c) {
		return "OTHER" // not kept: the map stays bounded too
	}
	c = string([]byte(c))
	m.codes[c] = c
	return c
}

// isCode reports whether c looks like an error code: 1 to 48 of A-Z, 0-9 and _.
func isCode(c string) bool {
	if c == "" || len(c) > 48 {
		return false
	}
	for _, r := range c {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}
