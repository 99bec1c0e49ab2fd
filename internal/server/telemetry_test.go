package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
	"github.com/segments/segments/internal/telemetry"
)

// observed is a server with its metrics, its log and, when asked, its spans.
type observed struct {
	*api
	metrics *telemetry.Metrics
	log     *logtest.Buffer
	spans   *tracetest.SpanRecorder
}

// observedOptions say how newObserved builds the server.
type observedOptions struct {
	maxOperations int
	limits        limits.Limits
	tracing       bool
	throttle      limits.Throttle
	// count puts a statement counter around the handler, as newAPIWith does, so that
	// a.statements() tells the true number of each request's statements.
	count bool
	// config, when set, adjusts the server's configuration.
	config func(*server.Config)
}

// newObserved starts the real handler on a real PostgreSQL with metrics, a JSON log
// into a buffer and, with opts.tracing, an in-memory span recorder.
func newObserved(t *testing.T, opts observedOptions) *observed {
	t.Helper()
	s := storetest.Store(t)
	ws, key := storetest.Workspace(t, s)
	o := &observed{
		api:     &api{t: t, key: key, ws: ws, store: s, last: &atomic.Pointer[store.StatementCounter]{}},
		metrics: telemetry.NewMetrics(telemetry.MetricsOptions{DB: s.DB(), Cancels: s.CancelCounts, MaxOperations: opts.maxOperations}),
		log:     &logtest.Buffer{},
	}
	if opts.limits == (limits.Limits{}) {
		opts.limits = limits.Limits{MaxCost: 100_000}
	}
	cfg := server.Config{BatchWait: time.Millisecond, Limits: opts.limits, Metrics: o.metrics, Throttle: opts.throttle}
	if opts.config != nil {
		opts.config(&cfg)
	}
	if opts.tracing {
		o.spans = tracetest.NewSpanRecorder()
		cfg.Tracing = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	}
	h := server.Handler(s, slog.New(slog.NewJSONHandler(o.log, nil)), cfg)
	if opts.count {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := &store.StatementCounter{}
			o.last.Store(c)
			inner.ServeHTTP(w, r.WithContext(store.WithStatementCounter(r.Context(), c)))
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

// eventually retries check until it passes or 5 seconds pass: the server records a
// request just after its response is written.
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape reads /metrics as Prometheus does.
func (o *observed) scrape() map[string]*dto.MetricFamily {
	o.t.Helper()
	res, err := http.Get(o.url + "/metrics")
	if err != nil {
		o.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		o.t.Fatalf("GET /metrics: %d", res.StatusCode)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		o.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the series of family name with exactly the given labels, or nil.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		match := true
		for _, l := range m.Label {
			found := false
			for i := 0; i < len(labels); i += 2 {
				if labels[i] == l.GetName() && labels[i+1] == l.GetValue() {
					found = true
				}
			}
			match = match && found
		}
		if match {
			return m
		}
	}
	return nil
}

// counter returns the value of a counter series, 0 when it does not exist yet.
func counter(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	if m := metric(fams, name, labels...); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

// histogram returns the count and sum of a histogram series, 0 when it does not exist.
func histogram(fams map[string]*dto.MetricFamily, name string, labels ...string) (uint64, float64) {
	if m := metric(fams, name, labels...); m != nil {
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	return 0, 0
}

const namedQuery = `query SegmentCount { segments(first: 5) { totalCount nodes { name } } }`

func TestMetricsMoveWithRequests(t *testing.T) {
	o := newObserved(t, observedOptions{count: true, limits: limits.Limits{MaxCost: 50}})
	op := []string{"operation", "SegmentCount", "outcome", "ok"}

	// Nothing is counted before a request.
	before := o.scrape()
	if v := counter(before, "segments_requests_total", op...); v != 0 {
		t.Fatalf("requests before any: %v", v)
	}
	if n, _ := histogram(before, "segments_request_duration_seconds", "operation", "SegmentCount"); n != 0 {
		t.Fatalf("durations before any request: %d", n)
	}
	stmtCount0, stmtSum0 := histogram(before, "segments_sql_statements_per_request")

	var wantStatements int64
	for i := 1; i <= 2; i++ {
		o.do(namedQuery, nil, nil)
		wantStatements += o.statements()
		eventually(t, "the request is counted", func() error {
			fams := o.scrape()
			if v := counter(fams, "segments_requests_total", op...); v != float64(i) {
				return fmt.Errorf("segments_requests_total%v = %v, want %d", op, v, i)
			}
			if n, sum := histogram(fams, "segments_request_duration_seconds", "operation", "SegmentCount"); n != uint64(i) || sum <= 0 {
				return fmt.Errorf("duration histogram: count %d sum %v, want count %d", n, sum, i)
			}
			n, sum := histogram(fams, "segments_sql_statements_per_request")
			if n != stmtCount0+uint64(i) || sum-stmtSum0 != float64(wantStatements) {
				return fmt.Errorf("statements histogram: count %d (was %d), sum %v (was %v), want %d more statements",
					n, stmtCount0, sum, stmtSum0, wantStatements)
			}
			return nil
		})
	}
	if wantStatements < 2 {
		t.Fatalf("the requests sent %d statements: the counter counts nothing", wantStatements)
	}

	// A request without a key is a rejection, before any operation is known.
	anonymous := *o.api
	anonymous.key = ""
	anonymous.fails("UNAUTHENTICATED", namedQuery, nil)
	eventually(t, "the 401 is counted", func() error {
		fams := o.scrape()
		if n, _ := histogram(fams, "segments_sql_statements_per_request"); n != stmtCount0+2 {
			return fmt.Errorf("statements observed for a refused request: count %d, want %d", n, stmtCount0+2)
		}
		if v := counter(fams, "segments_rejections_total", "code", "UNAUTHENTICATED"); v != 1 {
			return fmt.Errorf("rejections{UNAUTHENTICATED} = %v, want 1", v)
		}
		if v := counter(fams, "segments_requests_total", "operation", "unknown", "outcome", "UNAUTHENTICATED"); v != 1 {
			return fmt.Errorf("requests{unknown, UNAUTHENTICATED} = %v, want 1", v)
		}
		return nil
	})

	// An operation over the cost limit is refused after validation: its name is known.
	o.fails(limits.CodeMaxCost, `query Expensive { segments(first: 100) { nodes { contacts(first: 100) { totalCount } } } }`, nil)
	eventually(t, "the limit refusal is counted", func() error {
		fams := o.scrape()
		if v := counter(fams, "segments_rejections_total", "code", limits.CodeMaxCost); v != 1 {
			return fmt.Errorf("rejections{%s} = %v, want 1", limits.CodeMaxCost, v)
		}
		if v := counter(fams, "segments_requests_total", "operation", "Expensive", "outcome", limits.CodeMaxCost); v != 1 {
			return fmt.Errorf("requests{Expensive, %s} = %v, want 1", limits.CodeMaxCost, v)
		}
		return nil
	})
	// A rate-limited request.
	throttled := newObserved(t, observedOptions{throttle: emptyBucket{}})
	throttled.fails(limits.CodeThrottled, namedQuery, nil)
	eventually(t, "the throttled request is counted", func() error {
		fams := throttled.scrape()
		if v := counter(fams, "segments_rejections_total", "code", limits.CodeThrottled); v != 1 {
			return fmt.Errorf("rejections{%s} = %v, want 1", limits.CodeThrottled, v)
		}
		if v := counter(fams, "segments_requests_total", "operation", "SegmentCount", "outcome", limits.CodeThrottled); v != 1 {
			return fmt.Errorf("requests{SegmentCount, %s} = %v, want 1", limits.CodeThrottled, v)
		}
		return nil
	})

	// A read key's mutation is refused after validation: its name is known. It was
	// counted as an unknown operation answered ok, and no rejection.
	readOnly, _ := o.api.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "reports"})
	readOnly.fails("FORBIDDEN", `mutation Nope { createSegment(input: {name: "x"}) { segment { id } } }`, nil)
	eventually(t, "the forbidden mutation is counted", func() error {
		fams := o.scrape()
		if v := counter(fams, "segments_rejections_total", "code", "FORBIDDEN"); v != 1 {
			return fmt.Errorf("rejections{FORBIDDEN} = %v, want 1", v)
		}
		if v := counter(fams, "segments_requests_total", "operation", "Nope", "outcome", "FORBIDDEN"); v != 1 {
			return fmt.Errorf("requests{Nope, FORBIDDEN} = %v, want 1", v)
		}
		return nil
	})

	// Successful requests are no rejections.
	fams := o.scrape()
	if v := counter(fams, "segments_rejections_total", "code", "ok"); v != 0 {
		t.Fatalf("rejections{ok} = %v", v)
	}

	// The pool and the runtime are there too.
	if m := metric(fams, "segments_db_pool_max_open_connections"); m == nil || m.GetGauge().GetValue() != 10 {
		t.Fatalf("segments_db_pool_max_open_connections = %v, want the store's 10", m)
	}
	if m := metric(fams, "segments_db_pool_open_connections"); m == nil || m.GetGauge().GetValue() < 1 {
		t.Fatalf("segments_db_pool_open_connections = %v, want at least 1", m)
	}
	for _, name := range []string{"segments_db_pool_in_use_connections", "segments_db_pool_idle_connections",
		"segments_db_pool_wait_count_total", "segments_db_pool_wait_duration_seconds_total",
		"segments_db_reads_retried_total", "segments_db_cancel_dropped_connections_total", "segments_db_cancel_requests_sent_total", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// emptyBucket is a rate limit whose bucket is always empty.
type emptyBucket struct{}

func (emptyBucket) Take(context.Context, string, int) (limits.Status, error) {
	return limits.Status{MaximumAvailable: 10, RestoreRate: 1}, limits.ErrThrottled
}

// waitingBucket answers when the request's context ends, with its error, as the
// store's throttle does when the client leaves while it waits for the bucket's row.
type waitingBucket struct{}

func (waitingBucket) Take(ctx context.Context, _ string, _ int) (limits.Status, error) {
	<-ctx.Done()
	return limits.Status{}, fmt.Errorf("take: %w", ctx.Err())
}

// TestLeavingClientIsNoThrottleFailure: a client that leaves while the throttle
// takes its cost is no failure of the throttle, whose warning is a line docs/observability.md
// tells operators to alert on (200 clients dropping their sockets logged 20 of
// them), nor an internal error (its outcome was INTERNAL_SERVER_ERROR).
func TestLeavingClientIsNoThrottleFailure(t *testing.T) {
	o := newObserved(t, observedOptions{throttle: waitingBucket{}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := o.idemSend(ctx, idemBody(namedQuery, nil)); err == nil {
		t.Fatal("the request was answered; want the client to give up")
	}
	eventually(t, "the request ends", func() error {
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] == "request" {
				return nil
			}
		}
		return errors.New("no request line yet")
	})
	if strings.Contains(o.log.String(), "throttle unavailable") {
		t.Errorf("a client that left is logged as a throttle failure:\n%s", o.log.String())
	}
	// Nor is it an internal error, which operators count as the server's failures.
	for _, l := range o.log.JSONLines(t) {
		if l["msg"] == "request" && l["outcome"] != "CLIENT_CLOSED_REQUEST" {
			t.Errorf("outcome %v, want CLIENT_CLOSED_REQUEST: %v", l["outcome"], l)
		}
	}
	// Nor a refusal: segments_rejections_total counts what the server refused.
	if v := counter(o.scrape(), "segments_rejections_total", "code", "CLIENT_CLOSED_REQUEST"); v != 0 {
		t.Errorf("rejections{CLIENT_CLOSED_REQUEST} = %v, want 0", v)
	}
}

// TestClientLeavingBeforeGraphQL: a client that leaves before GraphQL runs is logged
// and counted as CLIENT_CLOSED_REQUEST, as one that leaves while it runs: one that left
// while its request waited for its turn was logged "status 200, ok", a success; one
// that left during the key's lookup was an ERROR "authenticate" line (an alert) and a
// 503; one that closed its connection halfway through its body a 400 rejection. A
// deadline that passes during the lookup is a TIMEOUT, not the database's failure.
func TestClientLeavingBeforeGraphQL(t *testing.T) {
	lastRequest := func(t *testing.T, o *observed) map[string]any {
		t.Helper()
		var line map[string]any
		eventually(t, "the request's line", func() error {
			for _, l := range o.log.JSONLines(t) {
				if l["msg"] == "request" && l["path"] == "/graphql" {
					line = l
				}
			}
			if line == nil {
				return errors.New("no request line yet")
			}
			return nil
		})
		return line
	}
	clientClosed := func(t *testing.T, o *observed) {
		t.Helper()
		l := lastRequest(t, o)
		if l["outcome"] != "CLIENT_CLOSED_REQUEST" || l["status"] != float64(499) {
			t.Errorf("status %v, outcome %v; want 499, CLIENT_CLOSED_REQUEST: %v", l["status"], l["outcome"], l)
		}
		if strings.Contains(o.log.String(), `"level":"ERROR"`) {
			t.Errorf("a client's leaving is logged as an error:\n%s", o.log.String())
		}
		fams := o.scrape()
		if v := counter(fams, "segments_requests_total", "operation", "unknown", "outcome", "CLIENT_CLOSED_REQUEST"); v != 1 {
			t.Errorf("requests{unknown, CLIENT_CLOSED_REQUEST} = %v, want 1", v)
		}
		if f := fams["segments_rejections_total"]; f != nil && len(f.GetMetric()) > 0 {
			t.Errorf("a client's leaving counted as a rejection: %v", f)
		}
	}
	leave := func(t *testing.T, o *observed) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := o.idemSend(ctx, idemBody(namedQuery, nil)); err == nil {
			t.Fatal("the request was answered; want the client to give up")
		}
	}

	t.Run("waiting for its turn", func(t *testing.T) {
		o := newObserved(t, observedOptions{throttle: waitingBucket{}, config: func(c *server.Config) { c.MaxRunningPerCaller = 1 }})
		// The caller's one place is taken by a request that waits on the throttle
		// until its client leaves, a moment after the second's.
		held, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		go o.idemSend(held, idemBody(namedQuery, nil))
		time.Sleep(200 * time.Millisecond)
		leave(t, o)
		clientClosed(t, o)
	})
	t.Run("during the key's lookup", func(t *testing.T) {
		o := newObserved(t, observedOptions{})
		lockTable(t, o.api, "api_keys")
		leave(t, o)
		clientClosed(t, o)
	})
	t.Run("halfway through its body", func(t *testing.T) {
		o := newObserved(t, observedOptions{})
		conn, err := net.Dial("tcp", strings.TrimPrefix(o.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 500\r\n\r\n{\"query\":", o.key)
		time.Sleep(100 * time.Millisecond)
		conn.Close()
		clientClosed(t, o)
	})
	t.Run("waiting for the issuer's keys", func(t *testing.T) {
		// An unknown kid waits for the key set's fetch, which a hung issuer never
		// ends: logged as 503 SERVICE_UNAVAILABLE, the issuer's failure.
		hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		t.Cleanup(hung.Close)
		t.Cleanup(hung.CloseClientConnections) // first: the fetch would wait its 5 s
		v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: sessIssuer, Audience: []string{sessAudience}, JWKSURL: hung.URL + "/jwks.json"})
		if err != nil {
			t.Fatal(err)
		}
		o := newObserved(t, observedOptions{config: func(c *server.Config) { c.JWT = v }})
		now := time.Now()
		token := authtest.Sign(t, jwt.SigningMethodRS256, sessKeys().rsa, "rsa-1", jwt.MapClaims{
			"iss": sessIssuer, "aud": sessAudience, "sub": "user-42", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			"workspace": globalid.Encode(globalid.Workspace, o.ws.ID)})
		o.key = auth.Key(token)
		leave(t, o)
		clientClosed(t, o)
	})
	t.Run("half-closed, waiting for its turn", func(t *testing.T) {
		// A client that half-closes its connection (done sending) still reads: net/http
		// cancels the request's context all the same, and a layer that took that for
		// the client's leaving wrote nothing, an empty 200 to the client.
		o := newObserved(t, observedOptions{throttle: waitingBucket{}, config: func(c *server.Config) { c.MaxRunningPerCaller = 1 }})
		held, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		go o.idemSend(held, idemBody(namedQuery, nil))
		time.Sleep(200 * time.Millisecond)
		conn, err := net.Dial("tcp", strings.TrimPrefix(o.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := string(idemBody(namedQuery, nil))
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", o.key, len(body), body)
		conn.(*net.TCPConn).CloseWrite()
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(res.Body)
		if res.StatusCode == http.StatusOK && len(bytes.TrimSpace(answer)) == 0 {
			t.Errorf("a half-closed client got an empty 200")
		}
		if !strings.Contains(string(answer), `"code"`) {
			t.Errorf("a half-closed client got %d %q, want a refusal with its code", res.StatusCode, answer)
		}
	})
	t.Run("deadline during the key's lookup", func(t *testing.T) {
		o := newObserved(t, observedOptions{config: func(c *server.Config) { c.RequestTimeout = 300 * time.Millisecond }})
		lockTable(t, o.api, "api_keys")
		r := o.idemPost(idemBody(namedQuery, nil))
		r.refusedWith(t, http.StatusServiceUnavailable, "TIMEOUT")
		if r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		if strings.Contains(o.log.String(), `"level":"ERROR"`) {
			t.Errorf("a request's deadline is logged as an error:\n%s", o.log.String())
		}
	})
}

// TestClientClosingAfterItsAnswer: a client that closes its connection once it read its
// whole answer, while the request still works (an Idempotency-Key's request deletes
// expired keys after it answered), left nothing unanswered: logged 200 ok. It was
// logged 499 CLIENT_CLOSED_REQUEST, told by the request's context once it ended, and
// 6 of 7 keyed mutations were while expired keys were being swept.
func TestClientClosingAfterItsAnswer(t *testing.T) {
	o := newObserved(t, observedOptions{})
	db := o.store.DB()
	if _, err := db.Exec(`INSERT INTO idempotency_keys (workspace_id, key, request_hash, status, content_type, body, created_at)
		VALUES ($1, 'expired', '\x00', 200, 'application/json', '', now() - interval '2 days')`, o.ws.ID); err != nil {
		t.Fatal(err)
	}
	// The sweep after the answer waits for the expired key, held here.
	lock, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`SELECT 1 FROM idempotency_keys WHERE key = 'expired' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	// A client that closes its connection once it read the answer.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodPost, o.url+"/graphql", bytes.NewReader(idemBody(namedQuery, nil)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(o.key))
	req.Header.Set("Idempotency-Key", newKey())
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	client.CloseIdleConnections()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"data"`) {
		t.Fatalf("the answer: %d %s", res.StatusCode, answer)
	}
	time.Sleep(200 * time.Millisecond) // the server sees the connection end
	lock.Rollback()
	var line map[string]any
	eventually(t, "the request's line", func() error {
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] == "request" && l["path"] == "/graphql" {
				line = l
				return nil
			}
		}
		return errors.New("no request line yet")
	})
	if line["status"] != float64(http.StatusOK) || line["outcome"] != "ok" {
		t.Errorf("a request answered whole, its client gone after: logged status %v, outcome %v", line["status"], line["outcome"])
	}
}

// TestReplaysCountAsTheirOperation: an answer replayed for an Idempotency-Key is
// logged and counted as the operation that answered, with that answer's outcome. It
// was the "unknown" operation (which docs/observability.md keeps for refusals before an
// operation was known) answered "ok", even when the stored answer was a refusal.
func TestReplaysCountAsTheirOperation(t *testing.T) {
	o := newObserved(t, observedOptions{})
	lines := func(op string) (n int, replayed []map[string]any) {
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] == "request" && l["operation"] == op {
				n++
				if l["replayed"] == true {
					replayed = append(replayed, l)
				}
			}
		}
		return n, replayed
	}
	create := idemBody(`mutation MakeSegment { createSegment(input: {name: "Replayed"}) { segment { id } } }`, nil)
	invalid := idemBody(`query Invalid { segments { nope } }`, nil)
	for range 2 {
		if res := o.idemPost(create, "create-1"); res.status != http.StatusOK {
			t.Fatalf("create: %d %s", res.status, res.body)
		}
		if res := o.idemPost(invalid, "invalid-1"); res.status != http.StatusOK {
			t.Fatalf("invalid: %d %s", res.status, res.body) // application/json: 200, and stored
		}
	}
	eventually(t, "the replays' log lines", func() error {
		if n, replayed := lines("MakeSegment"); n != 2 || len(replayed) != 1 {
			return fmt.Errorf("MakeSegment: %d lines, %d replayed; want 2 and 1:\n%s", n, len(replayed), o.log)
		}
		return nil
	})
	_, replayed := lines("MakeSegment")
	if l := replayed[0]; l["operation_type"] != "mutation" || l["outcome"] != "ok" {
		t.Errorf("the replay's line: %v", l)
	}
	fams := o.scrape()
	for _, c := range []struct {
		op, outcome string
		want        float64
	}{
		{"MakeSegment", "ok", 2}, {"unknown", "GRAPHQL_VALIDATION_FAILED", 2}, {"unknown", "ok", 0},
	} {
		if v := counter(fams, "segments_requests_total", "operation", c.op, "outcome", c.outcome); v != c.want {
			t.Errorf("requests{%s, %s} = %v, want %v", c.op, c.outcome, v, c.want)
		}
	}
	// The refusal replayed is a refusal again; the replay ran none of the mutation's
	// statements, so it is no sample of them.
	if v := counter(fams, "segments_rejections_total", "code", "GRAPHQL_VALIDATION_FAILED"); v != 2 {
		t.Errorf("rejections{GRAPHQL_VALIDATION_FAILED} = %v, want 2", v)
	}
	if n, _ := histogram(fams, "segments_sql_statements_per_request"); n != 1 {
		t.Errorf("statements observed for %d requests, want 1 (the mutation that ran)", n)
	}
}

// TestPersistedQueryNotFoundIsNoRejection: an unknown persisted query's hash is the
// protocol's request for the query's text, which the client sends next: every
// client's first use of each query. It was counted as a rejection, which operators
// alert on.
func TestPersistedQueryNotFoundIsNoRejection(t *testing.T) {
	o := newObserved(t, observedOptions{})
	unknown := sha256.Sum256([]byte("{ never sent }"))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(unknown[:])}}
	if res := o.idemPost(jsonBody(map[string]any{"extensions": ext})); res.status != http.StatusOK ||
		len(res.decoded.Errors) != 1 || res.decoded.Errors[0].Extensions["code"] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("an unknown hash: %d %s", res.status, res.body)
	}
	eventually(t, "the request is counted", func() error {
		fams := o.scrape()
		if v := counter(fams, "segments_requests_total", "operation", "unknown", "outcome", "PERSISTED_QUERY_NOT_FOUND"); v != 1 {
			return fmt.Errorf("requests{unknown, PERSISTED_QUERY_NOT_FOUND} = %v, want 1", v)
		}
		if v := counter(fams, "segments_rejections_total", "code", "PERSISTED_QUERY_NOT_FOUND"); v != 0 {
			return fmt.Errorf("rejections{PERSISTED_QUERY_NOT_FOUND} = %v, want 0", v)
		}
		return nil
	})
}

func TestOperationLabelIsBounded(t *testing.T) {
	o := newObserved(t, observedOptions{maxOperations: 2})
	for _, name := range []string{"First", "Second", "Third", "Fourth", "First"} {
		o.do(`query `+name+` { segments(first: 1) { totalCount } }`, nil, nil)
	}
	o.do(`{ segments(first: 1) { totalCount } }`, nil, nil)
	o.fails("GRAPHQL_PARSE_FAILED", `query Broken {`, nil)
	eventually(t, "the labels", func() error {
		fams := o.scrape()
		for _, c := range []struct {
			op, outcome string
			want        float64
		}{
			{"First", "ok", 2}, {"Second", "ok", 1}, {"other", "ok", 2}, {"Third", "ok", 0}, {"Fourth", "ok", 0},
			{"anonymous", "ok", 1}, {"unknown", "GRAPHQL_PARSE_FAILED", 1}, {"Broken", "GRAPHQL_PARSE_FAILED", 0},
		} {
			if v := counter(fams, "segments_requests_total", "operation", c.op, "outcome", c.outcome); v != c.want {
				return fmt.Errorf("requests{%s, %s} = %v, want %v", c.op, c.outcome, v, c.want)
			}
		}
		if v := counter(fams, "segments_rejections_total", "code", "GRAPHQL_PARSE_FAILED"); v != 1 {
			return fmt.Errorf("rejections{GRAPHQL_PARSE_FAILED} = %v, want 1", v)
		}
		if v := counter(fams, "segments_rejections_total", "code", "ok"); v != 0 {
			return fmt.Errorf("rejections{ok} = %v, want 0", v)
		}
		if v := counter(fams, "segments_operation_names_overflow_total"); v != 2 {
			return fmt.Errorf("overflow = %v, want 2", v)
		}
		return nil
	})
}

func TestAccessLogFields(t *testing.T) {
	o := newObserved(t, observedOptions{})
	line := func(requestID string) (map[string]any, error) {
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] == "request" && l["request_id"] == requestID {
				return l, nil
			}
		}
		return nil, fmt.Errorf("no log line with request_id %q", requestID)
	}
	send := func(key string, query ...string) string {
		body, _ := json.Marshal(map[string]any{"query": append(query, namedQuery)[0]})
		req, _ := http.NewRequest(http.MethodPost, o.url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		id := res.Header.Get(requestid.Header)
		if id == "" {
			t.Fatal("no request ID")
		}
		return id
	}

	// Refused before GraphQL: no operation, no workspace, the code of the refusal.
	id := send("")
	var got map[string]any
	eventually(t, "the 401's log line", func() (err error) { got, err = line(id); return err })
	for k, want := range map[string]any{"path": "/graphql", "status": float64(401), "outcome": "UNAUTHENTICATED", "sql_statements": float64(0)} {
		if got[k] != want {
			t.Errorf("401 line: %s = %v, want %v (%v)", k, got[k], want, got)
		}
	}
	for _, k := range []string{"operation", "workspace"} {
		if v, ok := got[k]; ok {
			t.Errorf("401 line has %s = %v", k, v)
		}
	}

	id = send(string(o.key))
	eventually(t, "the request's log line", func() (err error) { got, err = line(id); return err })
	for k, want := range map[string]any{
		"method": "POST", "path": "/graphql", "status": float64(200), "outcome": "ok",
		"operation": "SegmentCount", "operation_type": "query",
		"workspace": globalid.Encode(globalid.Workspace, o.ws.ID),
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (%v)", k, got[k], want, got)
		}
	}
	if n, _ := got["sql_statements"].(float64); n < 1 {
		t.Errorf("sql_statements = %v, want the statements it sent", got["sql_statements"])
	}
	if d, _ := got["duration"].(float64); d <= 0 {
		t.Errorf("duration = %v", got["duration"])
	}

	// An unnamed operation has its type, and no name: not operation="".
	id = send(string(o.key), `{ segments { totalCount } }`)
	eventually(t, "the unnamed operation's log line", func() (err error) { got, err = line(id); return err })
	if v, ok := got["operation"]; ok || got["operation_type"] != "query" {
		t.Errorf("unnamed: operation = %q (present %v), operation_type = %v", v, ok, got["operation_type"])
	}

	// A mutation sent with GET is refused (405) once it validated: its operation is
	// known, and was logged as none.
	r := o.exchange(http.MethodGet, "/graphql?query="+url.QueryEscape(`mutation Drop { deleteSegment(input: {id: "S_AQ"}) { deletedSegmentId } }`), nil, nil, true)
	if r.status != http.StatusMethodNotAllowed {
		t.Fatalf("a mutation over GET: %d %s", r.status, r.body)
	}
	eventually(t, "the 405's log line", func() (err error) { got, err = line(r.header.Get(requestid.Header)); return err })
	if got["operation"] != "Drop" || got["operation_type"] != "mutation" || got["outcome"] != "METHOD_NOT_ALLOWED" {
		t.Errorf("a mutation over GET: %v", got)
	}
}

// TestRequestIDIsTheServers proves that every request gets an ID of the server's,
// whatever X-Request-ID the client sent: two requests sending one ID get two, and
// each log line names the client's beside it (client_request_id), when well-formed.
// Taken as the request's ID, the client's let it give a request the ID of another,
// so that the ID an INTERNAL_SERVER_ERROR asks to quote named both in the log.
func TestRequestIDIsTheServers(t *testing.T) {
	o := newObserved(t, observedOptions{})
	body, _ := json.Marshal(map[string]any{"query": namedQuery})
	var ids []string
	for _, sent := range []string{"order-42", "order-42", "level=ERROR msg=forged"} {
		r := o.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": "application/json", requestid.Header: sent}, true)
		id := r.header.Get(requestid.Header)
		if r.status != http.StatusOK || id == "" || id == sent || slices.Contains(ids, id) {
			t.Fatalf("X-Request-ID %q: status %d, answered X-Request-ID %q (before: %q)", sent, r.status, id, ids)
		}
		ids = append(ids, id)
	}
	for i, want := range []any{"order-42", "order-42", nil} {
		var got map[string]any
		eventually(t, "the request's log line", func() error {
			for _, l := range o.log.JSONLines(t) {
				if l["msg"] == "request" && l["request_id"] == ids[i] {
					got = l
					return nil
				}
			}
			return fmt.Errorf("no log line with request_id %q", ids[i])
		})
		if got["client_request_id"] != want {
			t.Errorf("request %d: client_request_id %v, want %v", i, got["client_request_id"], want)
		}
	}
}

func TestTracesChainRequestResolverAndSQL(t *testing.T) {
	o := newObserved(t, observedOptions{tracing: true})
	// The caller's trace continues: traceparent names its trace and span.
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	body, _ := json.Marshal(map[string]any{"query": namedQuery})
	req, _ := http.NewRequest(http.MethodPost, o.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(o.key))
	req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}

	var spans []sdktrace.ReadOnlySpan
	var request sdktrace.ReadOnlySpan
	eventually(t, "the request span", func() error {
		spans = o.spans.Ended()
		for _, s := range spans {
			if s.Name() == "POST /graphql" {
				request = s
				return nil
			}
		}
		return fmt.Errorf("no request span among %d", len(spans))
	})
	if request.SpanKind() != trace.SpanKindServer || request.Parent().SpanID().String() != callerSpan ||
		request.SpanContext().TraceID().String() != traceID {
		t.Fatalf("request span %s: kind %v, parent %s, trace %s; want a server span under the caller's",
			request.Name(), request.SpanKind(), request.Parent().SpanID(), request.SpanContext().TraceID())
	}
	attrs := map[string]string{}
	for _, a := range request.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, want := range map[string]string{"graphql.operation.name": "SegmentCount", "http.response.status_code": "200",
		"segments.workspace": globalid.Encode(globalid.Workspace, o.ws.ID)} {
		if attrs[k] != want {
			t.Errorf("request span: %s = %q, want %q", k, attrs[k], want)
		}
	}

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	var resolver sdktrace.ReadOnlySpan
	var sqlUnderResolver, sqlUnderRequest int
	for _, s := range spans {
		switch {
		case s.Name() == "Query.segments":
			resolver = s
		case strings.HasPrefix(s.Name(), "Segment.") || strings.HasPrefix(s.Name(), "SegmentConnection."):
			// Fields read from a struct have no resolver of their own: no span.
			if s.Name() == "Segment.name" {
				t.Errorf("span for the trivial field %s", s.Name())
			}
		}
	}
	if resolver == nil {
		t.Fatalf("no Query.segments span among %v", names(spans))
	}
	if resolver.Parent().SpanID() != request.SpanContext().SpanID() {
		t.Fatalf("Query.segments's parent is %s, want the request span", resolver.Parent().SpanID())
	}
	for _, s := range spans {
		if s.InstrumentationScope().Name != "github.com/segments/segments/internal/store" {
			continue
		}
		if s.SpanKind() != trace.SpanKindClient || s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("SQL span %s: kind %v, trace %s", s.Name(), s.SpanKind(), s.SpanContext().TraceID())
		}
		// Walk up to the request: an SQL span is under a resolver or the request itself.
		switch p := s.Parent().SpanID(); {
		case p == request.SpanContext().SpanID():
			sqlUnderRequest++ // authentication
		case under(byID, s, resolver.SpanContext().SpanID()):
			sqlUnderResolver++
		}
	}
	if sqlUnderResolver == 0 {
		t.Errorf("no SQL span under Query.segments: %v", names(spans))
	}
	if sqlUnderRequest == 0 {
		t.Errorf("no SQL span (the key lookup) under the request span: %v", names(spans))
	}
}

// under reports whether s descends from the span id.
func under(byID map[trace.SpanID]sdktrace.ReadOnlySpan, s sdktrace.ReadOnlySpan, id trace.SpanID) bool {
	for p := s.Parent().SpanID(); p.IsValid(); {
		if p == id {
			return true
		}
		parent, ok := byID[p]
		if !ok {
			return false
		}
		p = parent.Parent().SpanID()
	}
	return false
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.InstrumentationScope().Name + ":" + s.Name()
	}
	return out
}

// BenchmarkTelemetry measures what the observability costs a request (the dashboard's
// segment list, W1, on 50 segments), through the real handler and PostgreSQL:
// without metrics, with metrics, and with metrics and tracing (every span sampled,
// none exported). Compare ns/op and allocs/op of the three.
func BenchmarkTelemetry(b *testing.B) {
	s := storetest.Store(b)
	ws, key := storetest.Workspace(b, s)
	for i := range 50 {
		if _, err := s.CreateSegment(context.Background(), ws.ID, crm.NewSegment{Name: fmt.Sprintf("Segment %02d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	body := gqlBody(`{ segments(first: 50) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`, nil)
	for _, c := range []struct {
		name             string
		metrics, tracing bool
	}{{"off", false, false}, {"metrics", true, false}, {"metrics+tracing", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := server.Config{BatchWait: time.Millisecond, Limits: limits.Limits{MaxCost: 100_000}}
			if c.metrics {
				cfg.Metrics = telemetry.NewMetrics(telemetry.MetricsOptions{DB: s.DB()})
			}
			if c.tracing {
				tp := sdktrace.NewTracerProvider()
				b.Cleanup(func() { tp.Shutdown(context.Background()) })
				cfg.Tracing = tp
			}
			h := server.Handler(s, slog.New(slog.NewJSONHandler(io.Discard, nil)), cfg)
			a := &api{t: b, key: key, ws: ws, store: s, last: &atomic.Pointer[store.StatementCounter]{}}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c := &store.StatementCounter{}
				a.last.Store(c)
				h.ServeHTTP(w, r.WithContext(store.WithStatementCounter(r.Context(), c)))
			}))
			defer srv.Close()
			a.url = srv.URL
			benchPost(b, a, [][]byte{body})
		})
	}
}

// traced sends query with a traceparent of a trace of its own and returns the spans of
// that trace, once the request's span has ended (every span of the request has then
// ended: the resolvers and their statements finish before the answer is written), and
// the request's span.
func (o *observed) traced(query string, vars map[string]any) (spans []sdktrace.ReadOnlySpan, request sdktrace.ReadOnlySpan) {
	o.t.Helper()
	id := trace.TraceID{0: 0x5e}
	binary.BigEndian.PutUint64(id[8:], tracedN.Add(1))
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, o.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(o.key))
	req.Header.Set("traceparent", "00-"+id.String()+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	eventually(o.t, "the request span", func() error {
		spans = spans[:0]
		request = nil
		for _, s := range o.spans.Ended() {
			if s.SpanContext().TraceID() != id {
				continue
			}
			spans = append(spans, s)
			if s.Name() == "POST /graphql" {
				request = s
			}
		}
		if request == nil {
			return fmt.Errorf("no request span among %d", len(spans))
		}
		return nil
	})
	return spans, request
}

var tracedN atomic.Uint64

// attr returns the value of the attribute key of s, "" when it has none.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTracesCoverNestedFieldsAndTransactions: every statement a request sends has a
// span, under the span of the field that sent it, and so has every field with a
// resolver of its own, however deep. The fields under a field's result and their
// statements had none (gqlgen resolves them with the field's context, whose span had
// ended, and the middleware and the store's hook only started spans under a span still
// recording), nor had a transaction's COMMIT (Bun sends it with the context of the
// BEGIN, whose span had ended): a contacts page of each of two segments sent 6
// statements and showed 3.
func TestTracesCoverNestedFieldsAndTransactions(t *testing.T) {
	o := newObserved(t, observedOptions{tracing: true})
	ids := o.addContacts(phones(500, 3)...)
	o.addSegment("Big", ids...)
	o.addSegment("Small", ids[:1]...)

	// Each span is in the request's tree, and each statement has a span.
	check := func(what string, spans []sdktrace.ReadOnlySpan, request sdktrace.ReadOnlySpan) map[string][]sdktrace.ReadOnlySpan {
		t.Helper()
		byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
		byName := map[string][]sdktrace.ReadOnlySpan{}
		statements := 0
		for _, s := range spans {
			byID[s.SpanContext().SpanID()] = s
			byName[s.Name()] = append(byName[s.Name()], s)
			if s.InstrumentationScope().Name == "github.com/segments/segments/internal/store" {
				statements++
			}
		}
		for _, s := range spans {
			if s != request && !under(byID, s, request.SpanContext().SpanID()) {
				t.Errorf("%s: span %s is not under the request's", what, s.Name())
			}
		}
		if want := attr(request, "segments.sql_statements"); fmt.Sprint(statements) != want {
			t.Errorf("%s: %d SQL spans, and the request sent %s statements: %v", what, statements, want, names(spans))
		}
		return byName
	}
	// parentOf checks that each span named child has a parent named parent.
	parentOf := func(what string, byName map[string][]sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan, child, parent string) {
		t.Helper()
		if len(byName[child]) == 0 {
			t.Errorf("%s: no %s span among %v", what, child, names(spans))
		}
		for _, c := range byName[child] {
			found := false
			for _, p := range byName[parent] {
				found = found || c.Parent().SpanID() == p.SpanContext().SpanID()
			}
			if !found {
				t.Errorf("%s: a %s span is not under a %s span", what, child, parent)
			}
		}
	}
	// sqlUnder checks that some statement's span is a child of a span named parent.
	sqlUnder := func(what string, byName map[string][]sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan, parent string) {
		t.Helper()
		for _, s := range spans {
			for _, p := range byName[parent] {
				if s.Parent().SpanID() == p.SpanContext().SpanID() && s.SpanKind() == trace.SpanKindClient {
					return
				}
			}
		}
		t.Errorf("%s: no SQL span under %s: %v", what, parent, names(spans))
	}

	spans, request := o.traced(`query T1b { segments(first: 2, orderBy: {field: CONTACT_COUNT, direction: DESC}) {
		totalCount nodes { id contacts(first: 2) { totalCount nodes { id segments { id } } } } } }`, nil)
	byName := check("T1b", spans, request)
	parentOf("T1b", byName, spans, "Segment.contacts", "Query.segments")
	parentOf("T1b", byName, spans, "SegmentConnection.totalCount", "Query.segments")
	sqlUnder("T1b", byName, spans, "Segment.contacts")

	seg := o.addSegment("Third", ids...)
	spans, request = o.traced(`query($id: ID!) { segment(id: $id) { contacts(first: 2) { nodes { id } } } }`, map[string]any{"id": seg})
	byName = check("segment(id:)", spans, request)
	parentOf("segment(id:)", byName, spans, "Segment.contacts", "Query.segment")
	sqlUnder("segment(id:)", byName, spans, "Segment.contacts")

	// A mutation's transaction: BEGIN, its statements and COMMIT under the mutation.
	spans, request = o.traced(`mutation { createSegment(input: {name: "Traced"}) { segment { id } } }`, nil)
	byName = check("createSegment", spans, request)
	parentOf("createSegment", byName, spans, "BEGIN", "Mutation.createSegment")
	parentOf("createSegment", byName, spans, "COMMIT", "Mutation.createSegment")
	parentOf("createSegment", byName, spans, "INSERT", "Mutation.createSegment")
}

// TestSpansKeepNoValues: a field refused for its input has its code, and not the
// message, which quotes the input, nor an error status (a refusal is the client's, as
// the request's span, an error only on 5xx, says); nor does a statement that failed
// on a value have its message. contactByPhone's span got "resolver failed" and an
// exception event quoting the phone the client sent.
func TestSpansKeepNoValues(t *testing.T) {
	o := newObserved(t, observedOptions{tracing: true})
	const phone = "+91 98765 4321"
	spans, _ := o.traced(`query E3($p: String!) { contactByPhone(phone: $p) { id } }`, map[string]any{"p": phone})
	var field sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "Query.contactByPhone" {
			field = s
		}
	}
	if field == nil {
		t.Fatalf("no Query.contactByPhone span among %v", names(spans))
	}
	if c := attr(field, "segments.error_code"); c != "BAD_USER_INPUT" || field.Status().Code == codes.Error {
		t.Errorf("Query.contactByPhone: error code %q, status %v; want BAD_USER_INPUT and no error status", c, field.Status())
	}
	noValue := func(spans []sdktrace.ReadOnlySpan, values ...string) {
		t.Helper()
		for _, s := range spans {
			for _, v := range values {
				for _, a := range s.Attributes() {
					if strings.Contains(a.Value.Emit(), v) {
						t.Errorf("%s: attribute %s = %q", s.Name(), a.Key, a.Value.Emit())
					}
				}
				for _, e := range s.Events() {
					for _, a := range e.Attributes {
						if strings.Contains(a.Value.Emit(), v) {
							t.Errorf("%s: event %s: %s = %q", s.Name(), e.Name, a.Key, a.Value.Emit())
						}
					}
				}
				if strings.Contains(s.Status().Description, v) {
					t.Errorf("%s: status %q", s.Name(), s.Status().Description)
				}
			}
		}
	}
	noValue(spans, phone, "98765")

	// Another contact's phone: the unique index refuses the update, in a statement
	// whose error's detail names the phone.
	ids := o.addContacts(phones(700, 2)...)
	taken := phones(700, 1)[0]
	spans, _ = o.traced(`mutation($in: UpdateContactInput!) { updateContact(input: $in) { userErrors { code } } }`,
		map[string]any{"in": map[string]any{"id": ids[1], "phone": taken}})
	failed := 0
	for _, s := range spans {
		if s.Status().Code == codes.Error {
			failed++
			if c := attr(s, "db.response.status_code"); c != "23505" {
				t.Errorf("%s failed with %q, want 23505", s.Name(), c)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d spans failed, want 1 (the update): %v", failed, names(spans))
	}
	noValue(spans, taken, taken[3:])
}

// TestLongOperationNameIsCut: the log line and the request's span keep the first
// telemetry.MaxOperationLen bytes of an operation's name, as the metrics keep 64.
// Five requests named with 200 KB each made 200 KB log lines, and a 1 MB export.
func TestLongOperationNameIsCut(t *testing.T) {
	o := newObserved(t, observedOptions{tracing: true})
	name := "Long" + strings.Repeat("N", 200_000)
	_, request := o.traced(`query `+name+` { segments(first: 1) { totalCount } }`, nil)
	want := name[:telemetry.MaxOperationLen]
	if got := attr(request, "graphql.operation.name"); got != want {
		t.Errorf("the span's graphql.operation.name has %d bytes, want %d", len(got), len(want))
	}
	eventually(t, "the log line", func() error {
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] == "request" && l["operation_type"] == "query" {
				if op, _ := l["operation"].(string); op != want {
					return fmt.Errorf("the log's operation has %d bytes, want %d", len(op), len(want))
				}
				return nil
			}
		}
		return errors.New("no request line")
	})
}

// TestLongPathAndMethodAreCut: the log line keeps the first
// telemetry.MaxOperationLen bytes of a request's path and method, as of an
// operation's name, and the request's span no more of them either (a method no
// client library sends names no span). A GET of a 100 KB path (a 404) wrote a 100 KB
// log line, and a 60 KB method likewise, into the span's name too.
func TestLongPathAndMethodAreCut(t *testing.T) {
	o := newObserved(t, observedOptions{tracing: true})
	path := "/" + strings.Repeat("p", 100_000)
	method := strings.Repeat("M", 60_000)
	for _, c := range []struct{ method, path string }{{http.MethodGet, path}, {method, "/graphql"}} {
		req, _ := http.NewRequest(c.method, o.url+c.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	eventually(t, "the log lines", func() error {
		var seen int
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] != "request" {
				continue
			}
			m, _ := l["method"].(string)
			p, _ := l["path"].(string)
			if m == http.MethodGet && strings.HasPrefix(p, "/ppp") || strings.HasPrefix(m, "MMM") {
				seen++
				if len(m) > telemetry.MaxOperationLen || len(p) > telemetry.MaxOperationLen {
					return fmt.Errorf("a log line with a method of %d bytes and a path of %d, want at most %d", len(m), len(p), telemetry.MaxOperationLen)
				}
			}
		}
		if seen != 2 {
			return fmt.Errorf("%d of the 2 requests logged", seen)
		}
		return nil
	})
	eventually(t, "the spans", func() error {
		ended := o.spans.Ended()
		if len(ended) < 2 {
			return fmt.Errorf("%d spans ended, want the 2 requests'", len(ended))
		}
		for _, s := range ended {
			if len(s.Name()) > telemetry.MaxOperationLen {
				return fmt.Errorf("a span named with %d bytes", len(s.Name()))
			}
			for _, a := range s.Attributes() {
				if v := a.Value.Emit(); len(v) > telemetry.MaxOperationLen {
					return fmt.Errorf("span %.40s: %s has %d bytes", s.Name(), a.Key, len(v))
				}
			}
		}
		return nil
	})
}

// TestReplayedDataNullIsNoRejection: an answer with "data": null ran (its field
// refused its argument once execution began), and so did its replay: neither is a
// rejection. The replay was counted as one, its original not. A query's key keeps
// nothing now, but an older server's kept its answer, which is replayed for a day:
// the test keeps it as such a server did.
func TestReplayedDataNullIsNoRejection(t *testing.T) {
	o := newObserved(t, observedOptions{})
	bad := idemBody(`query IdemBad { segments(first: 5, after: "zzz") { totalCount } }`, nil)
	keep := func(res rawResponse) {
		hash := sha256.Sum256(bad)
		if _, err := o.store.DB().ExecContext(context.Background(), `
			INSERT INTO idempotency_keys (workspace_id, key, request_hash, status, content_type, body, operation, operation_type, cost)
			VALUES ($1, 'bad-1', $2, $3, $4, $5, 'IdemBad', 'query', 1)`,
			o.ws.ID, hash[:], res.status, res.header.Get("Content-Type"), res.body); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		res := o.idemPost(bad, "bad-1")
		if res.status != http.StatusOK || res.replayed() != (i == 1) || string(res.decoded.Data) != "null" ||
			len(res.decoded.Errors) == 0 || res.decoded.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
			t.Fatalf("request %d: %d replayed %v %s", i, res.status, res.replayed(), res.body)
		}
		if i == 0 {
			keep(res)
		}
	}
	eventually(t, "the requests are counted", func() error {
		fams := o.scrape()
		if v := counter(fams, "segments_requests_total", "operation", "IdemBad", "outcome", "BAD_USER_INPUT"); v != 2 {
			return fmt.Errorf("requests{IdemBad, BAD_USER_INPUT} = %v, want 2", v)
		}
		if v := counter(fams, "segments_rejections_total", "code", "BAD_USER_INPUT"); v != 0 {
			return fmt.Errorf("rejections{BAD_USER_INPUT} = %v, want 0", v)
		}
		if n, _ := histogram(fams, "segments_sql_statements_per_request"); n != 1 {
			return fmt.Errorf("statements observed for %d requests, want 1 (the original)", n)
		}
		return nil
	})
}

// TestSlowBodyLoggedAsTimeout: a body that does not arrive within the request
// timeout is logged and counted as the 408 REQUEST_TIMEOUT its client gets, a
// refusal. net/http cancels the request's context at the server's own read deadline
// as when a client leaves, and every such request was logged as 499
// CLIENT_CLOSED_REQUEST, counted in no rejection (a soak's 360 slow bodies).
func TestSlowBodyLoggedAsTimeout(t *testing.T) {
	o := newObserved(t, observedOptions{config: func(c *server.Config) { c.RequestTimeout = time.Second }})
	conn, err := net.Dial("tcp", strings.TrimPrefix(o.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 32\r\n\r\n{\"que", o.key)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", res.StatusCode)
	}
	var line map[string]any
	eventually(t, "the request is logged", func() error {
		for _, l := range o.log.JSONLines(t) {
			if l["msg"] == "request" {
				line = l
				return nil
			}
		}
		return errors.New("no request line yet")
	})
	if line["outcome"] != server.CodeRequestTimeout || line["status"] != float64(http.StatusRequestTimeout) {
		t.Errorf("logged as outcome %v, status %v; want REQUEST_TIMEOUT, 408: %v", line["outcome"], line["status"], line)
	}
	if v := counter(o.scrape(), "segments_rejections_total", "code", server.CodeRequestTimeout); v != 1 {
		t.Errorf("rejections{REQUEST_TIMEOUT} = %v, want 1", v)
	}
}
