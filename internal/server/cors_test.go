package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/server"
)

const (
	dashboardOrigin = "https://app.example.com"
	foreignOrigin   = "https://evil.example"
)

// preflight is what a browser sends before a cross-origin POST with a bearer token
// and a JSON body: no credential of its own.
var preflight = map[string]string{
	"Origin":                         dashboardOrigin,
	"Access-Control-Request-Method":  "POST",
	"Access-Control-Request-Headers": "authorization,content-type,idempotency-key,traceparent,x-request-id",
}

func from(origin string, h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	out["Origin"] = origin
	return out
}

// corsHeaders returns the Access-Control-* headers of an answer.
func corsHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = h.Get(k)
		}
	}
	return out
}

// varies reports whether h says the answer varies with field.
func varies(h http.Header, field string) bool {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), field) {
				return true
			}
		}
	}
	return false
}

// allowedPreflight checks the answer to an allowed origin's preflight: 204, no
// body, what a browser may send, for two hours, and never credentials.
func allowedPreflight(t *testing.T, r reply, allowOrigin string) {
	t.Helper()
	want := map[string]string{
		"Access-Control-Allow-Origin":  allowOrigin,
		"Access-Control-Allow-Methods": "GET, POST",
		"Access-Control-Allow-Headers": "Authorization, Content-Type, Accept, Idempotency-Key, X-Request-ID, traceparent, tracestate, baggage",
		"Access-Control-Max-Age":       "7200",
	}
	if got := corsHeaders(r.header); r.status != http.StatusNoContent || r.body != "" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("preflight: %d %q %v, want 204 with %v", r.status, r.body, got, want)
	}
	if !varies(r.header, "Origin") {
		t.Errorf("preflight: Vary %q, want Origin", r.header.Values("Vary"))
	}
	// Every header the preflight asked for is allowed.
	allowed := strings.Split(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), ", ")
	for _, h := range strings.Split(preflight["Access-Control-Request-Headers"], ",") {
		if !slices.Contains(allowed, h) {
			t.Errorf("preflight: %s not allowed", h)
		}
	}
}

// actual checks the CORS headers of an actual answer to an allowed origin.
func actual(t *testing.T, what string, r reply, allowOrigin string) {
	t.Helper()
	want := map[string]string{
		"Access-Control-Allow-Origin":   allowOrigin,
		"Access-Control-Expose-Headers": "X-Request-ID, Retry-After, Idempotent-Replayed, WWW-Authenticate",
	}
	if got := corsHeaders(r.header); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: %d %v, want %v", what, r.status, got, want)
	}
	if !varies(r.header, "Origin") {
		t.Errorf("%s: Vary %q, want Origin", what, r.header.Values("Vary"))
	}
}

// total sums every series of a counter or histogram family: how many requests it
// has seen, whatever their labels.
func total(fams map[string]*dto.MetricFamily, name string) float64 {
	var n float64
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			n += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return n
}

// TestCORSPreflight: an allowed origin's preflight is answered 204 with what it may
// send, without a credential, without SQL, and without being counted as a GraphQL
// request in the metrics or logged with an outcome; another origin's (and "null")
// gets 403 without any CORS header. An OPTIONS that is no preflight (no
// Access-Control-Request-Method) is still 405 with Allow. Before, every preflight
// was 405 METHOD_NOT_ALLOWED, counted as a rejected GraphQL request.
func TestCORSPreflight(t *testing.T) {
	o := newObserved(t, observedOptions{count: true, config: func(c *server.Config) { c.CORSOrigins = []string{dashboardOrigin, "http://localhost:3000"} }})
	before := o.scrape()
	// Without a key, as browsers send it.
	r := o.exchange(http.MethodOptions, "/graphql", nil, preflight, false)
	allowedPreflight(t, r, dashboardOrigin)
	if n := o.statements(); n != 0 {
		t.Errorf("preflight: %d SQL statements", n)
	}
	ids := []string{r.header.Get(requestid.Header)}
	if !varies(r.header, "Access-Control-Request-Headers") {
		t.Errorf("preflight: Vary %q, want Access-Control-Request-Headers", r.header.Values("Vary"))
	}
	// A client's own header (Apollo Client's, with its name option) is allowed too:
	// a fixed list failed the dashboard's preflight. A name that is no token is not.
	extra := from(dashboardOrigin, preflight)
	extra["Access-Control-Request-Headers"] = "authorization, apollographql-client-name,content-type, bad name"
	r = o.exchange(http.MethodOptions, "/graphql", nil, extra, false)
	if got := r.header.Get("Access-Control-Allow-Headers"); r.status != http.StatusNoContent ||
		!strings.HasSuffix(got, ", baggage, apollographql-client-name") {
		t.Errorf("preflight asking for apollographql-client-name: %d, Access-Control-Allow-Headers %q", r.status, got)
	}
	allowedPreflight(t, o.exchange(http.MethodOptions, "/graphql", nil, from("http://localhost:3000", preflight), false), "http://localhost:3000")

	for _, origin := range []string{foreignOrigin, "null", "https://app.example.com:8443", "http://app.example.com"} {
		r := o.exchange(http.MethodOptions, "/graphql", nil, from(origin, preflight), false)
		if got := corsHeaders(r.header); r.status != http.StatusForbidden || len(got) != 0 || !varies(r.header, "Origin") {
			t.Errorf("preflight from %s: %d %v Vary %q, want 403 without CORS headers", origin, r.status, got, r.header.Values("Vary"))
		}
		if n := o.statements(); n != 0 {
			t.Errorf("preflight from %s: %d SQL statements", origin, n)
		}
		ids = append(ids, r.header.Get(requestid.Header))
	}

	// An OPTIONS that asks nothing of CORS is a method /graphql does not serve.
	r = o.exchange(http.MethodOptions, "/graphql", nil, map[string]string{"Origin": dashboardOrigin}, true)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" || r.code() != "METHOD_NOT_ALLOWED" {
		t.Errorf("OPTIONS without Access-Control-Request-Method: %d Allow %q %s", r.status, r.header.Get("Allow"), r.body)
	}
	actual(t, "405", r, dashboardOrigin)

	// Logged as plain HTTP requests, with no GraphQL outcome.
	eventually(t, "the preflights' log lines", func() error {
		lines := o.log.JSONLines(t)
		for _, id := range ids {
			i := slices.IndexFunc(lines, func(l map[string]any) bool { return l["msg"] == "request" && l["request_id"] == id })
			if i < 0 {
				return fmt.Errorf("no log line of preflight %s", id)
			}
			if l := lines[i]; l["method"] != "OPTIONS" || l["path"] != "/graphql" || l["outcome"] != nil || l["sql_statements"] != nil {
				return fmt.Errorf("preflight's line %v, want OPTIONS /graphql without outcome", l)
			}
		}
		return nil
	})
	// Counted in no GraphQL metric, while the 405 is.
	eventually(t, "the 405 is counted", func() error {
		after := o.scrape()
		if v := counter(after, "segments_rejections_total", "code", "METHOD_NOT_ALLOWED"); v != 1 {
			return fmt.Errorf("rejections{METHOD_NOT_ALLOWED} = %v, want 1 (the OPTIONS that is no preflight)", v)
		}
		for name, want := range map[string]float64{
			"segments_requests_total": 1, "segments_request_duration_seconds": 1, "segments_rejections_total": 1,
			"segments_sql_statements_per_request": 0, // only requests that ran
		} {
			if d := total(after, name) - total(before, name); d != want {
				return fmt.Errorf("%s moved by %v after 6 preflights and one 405, want %v", name, d, want)
			}
		}
		return nil
	})

	// Without CORSOrigins there is no CORS: a preflight is 405, as any OPTIONS.
	off := newAPI(t)
	r = off.exchange(http.MethodOptions, "/graphql", nil, preflight, false)
	if r.status != http.StatusMethodNotAllowed || len(corsHeaders(r.header)) != 0 {
		t.Errorf("preflight without CORSOrigins: %d %v", r.status, corsHeaders(r.header))
	}
}

// TestCORSActualResponses: every answer of /graphql to an allowed origin says so and
// exposes the headers a browser app reads, the refusals written before GraphQL runs
// (401 with WWW-Authenticate) as those of GraphQL (200; 429 THROTTLED with
// Retry-After); never Access-Control-Allow-Credentials. Another origin's request is
// served without CORS headers (its browser keeps the answer from its page), and a
// request without Origin (a partner's server) is served as before, Vary: Origin
// aside. The playground and the probes have no CORS.
func TestCORSActualResponses(t *testing.T) {
	a := newAPIWith(t, server.Config{CORSOrigins: []string{dashboardOrigin}})
	const q = `{ segments { totalCount } }`

	a.header = map[string]string{"Origin": dashboardOrigin}
	r := a.query(q, nil)
	if r.status != http.StatusOK || len(r.res.Errors) != 0 {
		t.Fatalf("200: %d %s", r.status, r.body)
	}
	actual(t, "200", r, dashboardOrigin)
	if !varies(r.header, "Accept") {
		t.Errorf("200: Vary %q lost Accept", r.header.Values("Vary"))
	}
	r = a.send(http.MethodGet, "/graphql?query="+url.QueryEscape(q), nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	actual(t, "GET", r, dashboardOrigin)
	// With an Idempotency-Key, the first answer and its replay alike: the first's
	// Vary: Accept replaced Vary: Origin, when the key's layer copied its headers.
	mutation := jsonBody(map[string]any{"query": `mutation { createSegment(input: {name: "From the dashboard"}) { segment { id } } }`})
	idem := map[string]string{"Origin": dashboardOrigin, "Content-Type": ctJSON, "Idempotency-Key": newKey()}
	for _, what := range []string{"first answer", "replay"} {
		r = a.exchange(http.MethodPost, "/graphql", mutation, idem, true)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
		actual(t, "an Idempotency-Key's "+what, r, dashboardOrigin)
	}

	noKey := *a
	noKey.key = ""
	r = noKey.query(q, nil)
	r.refused(t, http.StatusUnauthorized, "UNAUTHENTICATED")
	actual(t, "401", r, dashboardOrigin)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}

	throttled := newAPIWith(t, server.Config{CORSOrigins: []string{dashboardOrigin}, Throttle: emptyBucket{}, Limits: limits.Defaults})
	throttled.header = a.header
	r = throttled.query(q, nil)
	r.refused(t, http.StatusTooManyRequests, limits.CodeThrottled)
	actual(t, "429", r, dashboardOrigin)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}

	// Another origin: served, without CORS headers.
	a.header = map[string]string{"Origin": foreignOrigin}
	r = a.query(q, nil)
	if got := corsHeaders(r.header); r.status != http.StatusOK || len(got) != 0 || !varies(r.header, "Origin") {
		t.Errorf("another origin: %d %v Vary %q", r.status, got, r.header.Values("Vary"))
	}
	// No Origin at all: a server's request.
	a.header = nil
	r = a.query(q, nil)
	if got := corsHeaders(r.header); r.status != http.StatusOK || len(got) != 0 || !varies(r.header, "Origin") {
		t.Errorf("no Origin: %d %v Vary %q", r.status, got, r.header.Values("Vary"))
	}
	// Only /graphql speaks CORS.
	for _, path := range []string{"/", "/livez", "/readyz"} {
		r := a.exchange(http.MethodGet, path, nil, map[string]string{"Origin": dashboardOrigin}, false)
		if got := corsHeaders(r.header); r.status != http.StatusOK || len(got) != 0 {
			t.Errorf("GET %s: %d %v", path, r.status, got)
		}
		r = a.exchange(http.MethodOptions, path, nil, preflight, false)
		if got := corsHeaders(r.header); len(got) != 0 {
			t.Errorf("preflight of %s: %d %v", path, r.status, got)
		}
	}
}

// TestCORSAnyOrigin: with "*", any origin's preflight and answers get
// Access-Control-Allow-Origin: * (a request without credentials needs no more),
// "null" too; never Access-Control-Allow-Credentials, which "*" could not carry.
func TestCORSAnyOrigin(t *testing.T) {
	a := newAPIWith(t, server.Config{CORSOrigins: []string{server.AnyOrigin}})
	for _, origin := range []string{dashboardOrigin, foreignOrigin, "http://localhost:5173", "null"} {
		allowedPreflight(t, a.exchange(http.MethodOptions, "/graphql", nil, from(origin, preflight), false), "*")
		a.header = map[string]string{"Origin": origin}
		r := a.query(`{ segments { totalCount } }`, nil)
		if r.status != http.StatusOK || len(r.res.Errors) != 0 {
			t.Fatalf("from %s: %d %s", origin, r.status, r.body)
		}
		actual(t, origin, r, "*")
	}
	a.header = nil
	if got := corsHeaders(a.query(`{ segments { totalCount } }`, nil).header); len(got) != 0 {
		t.Errorf("no Origin: %v", got)
	}
}

// TestCORSRefusalsOfAdmission: the refusals of admission, written before the key is
// even read (503 for the server, 429 for a caller), carry the CORS headers, so that
// a dashboard reads their code and Retry-After; and a preflight takes no place: it
// is answered at once while the server's only place and only waiting room are
// taken, where a GraphQL request is refused.
func TestCORSRefusalsOfAdmission(t *testing.T) {
	for _, tc := range []struct {
		cfg    server.Config
		status int
		code   string
	}{
		{server.Config{MaxRunning: 1, MaxWaiting: 1}, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE"},
		{server.Config{MaxRunningPerCaller: 1, MaxWaitingPerCaller: 1}, http.StatusTooManyRequests, "TOO_MANY_CONCURRENT_REQUESTS"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			tc.cfg.CORSOrigins = []string{dashboardOrigin}
			a := newAPIWith(t, tc.cfg)
			a.header = map[string]string{"Origin": dashboardOrigin}
			refused := overflow(t, a, tc.status, tc.code, func() {
				allowedPreflight(t, a.exchange(http.MethodOptions, "/graphql", nil, preflight, false), dashboardOrigin)
			})
			actual(t, tc.code, refused, dashboardOrigin)
		})
	}
}

// TestParseCORSOrigins: --cors-origins takes "*" alone or exact origins, written as
// browsers send them, and refuses at start what no Origin header can match.
func TestParseCORSOrigins(t *testing.T) {
	for in, want := range map[string]string{
		"*":                           "*",
		" * ":                         "*",
		"*,*":                         "*",
		"https://app.example.com":     "https://app.example.com",
		"HTTPS://App.Example.COM":     "https://app.example.com",
		"https://app.example.com:443": "https://app.example.com",
		"http://localhost:80":         "http://localhost",
		"http://localhost:3000, https://app.example.com,http://localhost:3000": "http://localhost:3000,https://app.example.com",
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080",
		"http://[::1]:5173":                   "http://[::1]:5173",
		"https://app.example.com:8443":        "https://app.example.com:8443",
		"capacitor://localhost":               "capacitor://localhost",
		"chrome-extension://abcdefghijklmnop": "chrome-extension://abcdefghijklmnop",
		"https://xn--bcher-kva.example":       "https://xn--bcher-kva.example",
	} {
		got, err := server.ParseCORSOrigins(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", ",", "https://app.example.com,", "https://a.example,,https://b.example",
		"null", "app.example.com", "//app.example.com", "app.example.com:8080", "localhost:3000",
		"https://app.example.com/", "https://app.example.com/graphql", "https://app.example.com?x=1",
		"https://app.example.com?", "https://app.example.com#top", "https://app.example.com#",
		"https://user@app.example.com", "https://user:pw@app.example.com", "https://", "https://:443",
		"https://*.example.com", "*.example.com", "*, https://app.example.com", "https://app.example.com,*",
		"https://app.example.com:", "https://app.example.com:0", "https://app.example.com:65536", "https://app.example.com:http",
		"https://bücher.example", "file:///tmp/page.html", "mailto:someone@example.com", "https://app example.com",
	} {
		if got, err := server.ParseCORSOrigins(in); err == nil {
			t.Errorf("%q taken as %q", in, got)
		}
	}
}
