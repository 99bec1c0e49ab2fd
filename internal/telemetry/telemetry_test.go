package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/segments/segments/internal/store"
)

// series returns the label sets of family name, as "k=v,k=v".
func series(t *testing.T, m *Metrics, name string) map[string]*dto.Metric {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.Metric {
			var kv []string
			for _, l := range s.Label {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(kv, ",")] = s
		}
	}
	return out
}

// TestOperationNamesAreBounded is a client sending many distinct operation names:
// the label keeps the first MaxOperations, cut to 64 bytes, and counts the rest as
// "other", however many there are.
func TestOperationNamesAreBounded(t *testing.T) {
	m := NewMetrics(MetricsOptions{MaxOperations: 10})
	long := strings.Repeat("L", 100)
	m.Observe(&Request{OperationType: "query", Operation: long}, 200, time.Millisecond)
	for i := range 10_000 {
		m.Observe(&Request{OperationType: "query", Operation: fmt.Sprintf("Op%d", i)}, 200, time.Millisecond)
	}
	m.Observe(&Request{OperationType: "query"}, 200, time.Millisecond) // unnamed
	m.Observe(&Request{}, 401, time.Millisecond)                       // never reached an operation

	got := series(t, m, "segments_requests_total")
	// 10 names (the long one and Op0..Op8), other, anonymous, unknown: each with
	// its ok series made in advance, and unknown with HTTP_401 too.
	if len(got) != 14 {
		t.Fatalf("%d series, want 14: %v", len(got), keys(got))
	}
	for k, want := range map[string]float64{
		"operation=" + long[:64] + ",outcome=ok": 1,
		"operation=Op0,outcome=ok":               1,
		"operation=Op8,outcome=ok":               1,
		"operation=other,outcome=ok":             10_000 - 9,
		"operation=anonymous,outcome=ok":         1,
		"operation=unknown,outcome=HTTP_401":     1,
	} {
		if s := got[k]; s == nil || s.GetCounter().GetValue() != want {
			t.Errorf("%s = %v, want %v", k, s, want)
		}
	}
	if _, ok := got["operation=Op9,outcome=ok"]; ok {
		t.Error("Op9 has a series of its own past the bound")
	}
	if n := len(series(t, m, "segments_request_duration_seconds")); n != 13 {
		t.Errorf("%d duration series, want 13", n)
	}
	if s := series(t, m, "segments_operation_names_overflow_total")[""]; s.GetCounter().GetValue() != 10_000-9 {
		t.Errorf("overflow = %v", s.GetCounter().GetValue())
	}
	if len(m.operations) != 13 {
		t.Errorf("the cache holds %d names", len(m.operations))
	}
}

// TestCodesAreBounded: the outcome and code labels take codes as the server writes
// them, and anything else (or too many) becomes OTHER.
func TestCodesAreBounded(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
	m.Observe(&Request{Code: "not a code"}, 400, time.Millisecond)
	m.Observe(&Request{Code: strings.Repeat("A", 49)}, 400, time.Millisecond)
	for i := range 1000 {
		m.Observe(&Request{Code: fmt.Sprintf("CODE_%d", i)}, 429, time.Millisecond)
	}
	got := series(t, m, "segments_rejections_total")
	if len(got) != maxCodes+1 {
		t.Fatalf("%d code series, want %d", len(got), maxCodes+1)
	}
	if v := got["code=OTHER"].GetCounter().GetValue(); v != 2+1000-maxCodes {
		t.Errorf("OTHER = %v", v)
	}
	if v := got["code=CODE_0"].GetCounter().GetValue(); v != 1 {
		t.Errorf("CODE_0 = %v", v)
	}
	if len(m.codes) != maxCodes {
		t.Errorf("the cache holds %d codes", len(m.codes))
	}
}

// TestRejectionsAreRequestsThatDidNotRun: answered with an error, without data, and
// not for a fault of the server.
func TestRejectionsAreRequestsThatDidNotRun(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
	m.Observe(&Request{OperationType: "query", Code: "INTERNAL_SERVER_ERROR", Executed: true}, 200, time.Millisecond) // partial data
	m.Observe(&Request{OperationType: "query", Code: "BAD_USER_INPUT", Executed: true}, 200, time.Millisecond)
	m.Observe(&Request{Code: "SERVICE_UNAVAILABLE"}, 503, time.Millisecond)
	m.Observe(&Request{}, 500, time.Millisecond)
	m.Observe(&Request{OperationType: "query", Executed: true}, 200, time.Millisecond)
	if got := series(t, m, "segments_rejections_total"); len(got) != 0 {
		t.Fatalf("rejections %v", keys(got))
	}
	m.Observe(&Request{OperationType: "query", Code: "THROTTLED"}, 429, time.Millisecond)
	m.Observe(&Request{Code: "GRAPHQL_VALIDATION_FAILED"}, 200, time.Millisecond) // application/json
	m.Observe(&Request{}, 404, time.Millisecond)
	got := series(t, m, "segments_rejections_total")
	if len(got) != 3 || got["code=THROTTLED"] == nil || got["code=GRAPHQL_VALIDATION_FAILED"] == nil || got["code=HTTP_404"] == nil {
		t.Fatalf("rejections %v", keys(got))
	}
}

func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		code   string
		status int
		want   string
	}{
		{"", 200, "ok"}, {"", 304, "ok"}, {"THROTTLED", 429, "THROTTLED"}, {"BAD_USER_INPUT", 200, "BAD_USER_INPUT"},
		{"", 404, "HTTP_404"}, {"", 500, "HTTP_500"},
	} {
		if got := Outcome(c.code, c.status); got != c.want {
			t.Errorf("Outcome(%q, %d) = %q, want %q", c.code, c.status, got, c.want)
		}
	}
}

func TestCodeFromBody(t *testing.T) {
	for body, want := range map[string]string{
		`{"errors":[{"message":"no","extensions":{"code":"UNAUTHENTICATED"}},{"extensions":{"code":"X"}}]}`: "UNAUTHENTICATED",
		`{"errors":[{"message":"no"}]}`:            "",
		`{"data":{}}`:                              "",
		`{"errors":[{"extensions":{"code":"THROTT`: "", // cut
		`not json`: "",
		`{"errors":[{"extensions":{"code":12}}]}`:     "",
		`{"errors":[{"extensions":{"code":"A_B"}}]} `: "A_B",
	} {
		if got := CodeFromBody([]byte(body)); got != want {
			t.Errorf("CodeFromBody(%s) = %q, want %q", body, got, want)
		}
	}
}

func TestBeginCountsOnTheCounterOfTheContext(t *testing.T) {
	ctx, rec := Begin(context.Background())
	if From(ctx) != rec || From(context.Background()) != nil {
		t.Fatal("From does not find the record")
	}
	if store.StatementCounterFrom(ctx) != rec.counter || rec.counter != &rec.own {
		t.Fatal("a record without an outer counter does not count on its own")
	}
	outer := &store.StatementCounter{}
	ctx, rec = Begin(store.WithStatementCounter(context.Background(), outer))
	if store.StatementCounterFrom(ctx) != outer || rec.counter != outer {
		t.Fatal("a record under a test's counter does not count on it")
	}
}

func TestNewTracerProviderRefusesBadSettings(t *testing.T) {
	for _, opts := range []TracingOptions{
		{Endpoint: "collector:4318"},
		{Endpoint: "ftp://collector"},
		{TracesEndpoint: "://"},
		{Endpoint: "http://collector:4318", Protocol: "grpc"},
	} {
		if _, err := NewTracerProvider(context.Background(), opts); err == nil {
			t.Errorf("%+v: no error", opts)
		}
	}
	if (TracingOptions{}).Enabled() {
		t.Error("tracing is on without an endpoint")
	}
	// The refusals reach the log: a password of the URL stays out of them.
	for _, opts := range []TracingOptions{
		{Endpoint: "ftp://user:s3cretpw@collector"},
		{Endpoint: "http://user:s3cretpw@collector:port"},
		{TracesEndpoint: "ftp://user:s3cretpw@collector/v1/traces"},
		{TracesEndpoint: "http://user:s3cretpw@[::1"},
	} {
		if _, err := NewTracerProvider(context.Background(), opts); err == nil || strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("%+v: %v", opts, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:s3cretpw@collector:4318": "http://user:xxxxx@collector:4318",
		"https://collector/v1/traces":         "https://collector/v1/traces",
		"http://user@collector":               "http://user@collector",
		"http://user:s3cretpw@[::1":           "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTracerProviderExports sends a span to a fake OTLP/HTTP receiver: the base
// endpoint gets /v1/traces appended, as OTEL_EXPORTER_OTLP_ENDPOINT does.
func TestTracerProviderExports(t *testing.T) {
	var mu sync.Mutex
	var got []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+fmt.Sprint(len(body) > 0)+" "+fmt.Sprint(strings.Contains(string(body), "a-span")))
		mu.Unlock()
	}))
	defer receiver.Close()
	tp, err := NewTracerProvider(context.Background(), TracingOptions{Endpoint: receiver.URL + "/otlp/"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "a-span")
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "POST /otlp/v1/traces application/x-protobuf true true" {
		t.Fatalf("the receiver got %q", got)
	}
}

func keys(m map[string]*dto.Metric) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// BenchmarkRequest is what the telemetry adds to a request with metrics on and
// tracing off: the record, and its observation.
func BenchmarkRequest(b *testing.B) {
	m := NewMetrics(MetricsOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, rec := Begin(ctx)
		rec.OperationType, rec.Operation = "query", "SegmentList"
		m.Observe(rec, 200, time.Millisecond)
	}
}

// BenchmarkObserve is the metrics' part alone, on a known operation.
func BenchmarkObserve(b *testing.B) {
	m := NewMetrics(MetricsOptions{})
	rec := &Request{OperationType: "query", Operation: "SegmentList"}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(rec, 200, time.Millisecond)
	}
}

// TestOperationNameIsCut: the record keeps at most MaxOperationLen bytes of an
// operation's name, for the log line and the spans, as a replayed answer's, and cuts
// between UTF-8 sequences. A 200 KB name was kept whole.
func TestOperationNameIsCut(t *testing.T) {
	long := strings.Repeat("N", 200_000)
	var r Request
	r.SetOperation("query", long)
	if r.Operation != long[:MaxOperationLen] || r.OperationType != "query" {
		t.Errorf("SetOperation kept %d bytes (%q), want %d", len(r.Operation), r.OperationType, MaxOperationLen)
	}
	var replayed Request
	replayed.Replay(long, "mutation", []byte(`{"data":{}}`))
	if replayed.Operation != long[:MaxOperationLen] {
		t.Errorf("Replay kept %d bytes, want %d", len(replayed.Operation), MaxOperationLen)
	}
	r.SetOperation("query", "Short")
	if r.Operation != "Short" {
		t.Errorf("a short name became %q", r.Operation)
	}
	// "é" is two bytes: 255 of "a" and one "é" cut at 256 lose the whole "é".
	r.SetOperation("query", strings.Repeat("a", MaxOperationLen-1)+"é")
	if r.Operation != strings.Repeat("a", MaxOperationLen-1) {
		t.Errorf("cut inside a UTF-8 sequence: %q", r.Operation[MaxOperationLen-4:])
	}
}

// TestReplayRanAsItsOriginal: a replayed answer ran as the answer it repeats did: an
// answer with a "data" entry ran, null as it may be (a field refused its input,
// or failed, after execution began), as graph's hook says of the original; one
// without was refused before it ran. A replayed data:null answer was a refusal, its
// original not.
func TestReplayRanAsItsOriginal(t *testing.T) {
	for body, want := range map[string]bool{
		`{"errors":[{"message":"bad cursor","extensions":{"code":"BAD_USER_INPUT"}}],"data":null}`:      true,
		`{"errors":[{"message":"internal","extensions":{"code":"INTERNAL_SERVER_ERROR"}}],"data":null}`: true,
		`{"data":{"segments":{"totalCount":1}}}`:                                                        true,
		`{"errors":[{"message":"no such field","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`:    false,
		`not JSON`: false,
	} {
		var r Request
		r.Replay("Op", "query", []byte(body))
		if r.Executed != want {
			t.Errorf("Replay(%s): executed %v, want %v", body, r.Executed, want)
		}
	}
}
