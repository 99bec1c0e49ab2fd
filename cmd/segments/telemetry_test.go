package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/store/storetest"
)

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestServeObservability proves the observability settings reach the server: /metrics
// on the API's listener by default, on its own with --metrics-addr, and spans sent to
// the OTLP endpoint of the standard variable.
func TestServeObservability(t *testing.T) {
	db := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": db})
	key := newWorkspace(t, getenv, "Observed Retail")

	// Refused at start: settings that cannot work.
	for name, c := range map[string]struct {
		vars map[string]string
		args []string
	}{
		"endpoint without a scheme": {nil, []string{"--otlp-endpoint", "collector:4318"}},
		"gRPC":                      {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, nil},
		"traces endpoint not a URL": {map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "nowhere"}, nil},
	} {
		vars := map[string]string{"DATABASE_URL": db}
		for k, v := range c.vars {
			vars[k] = v
		}
		_, stderr, err := cli(env(vars), append([]string{"serve", "--addr", freeAddr(t)}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), "tracing") {
			t.Errorf("%s: got %v, want a tracing error\n%s", name, err, stderr)
		}
	}

	t.Run("metrics on the API listener", func(t *testing.T) {
		url, log := startLogged(t, getenv)
		workspaceName(t, url, key)
		status, body := get(t, url+"/metrics")
		if status != http.StatusOK || !strings.Contains(body, "segments_db_pool_open_connections") ||
			!strings.Contains(body, `segments_requests_total{operation="anonymous",outcome="ok"} 1`) {
			t.Fatalf("GET /metrics: %d\n%s", status, body)
		}
		// The cap on client connections (--max-connections), with its default.
		for _, want := range []string{"segments_connections_open ", "segments_connections_idle ", "segments_connections_max ", "segments_connections_accepts_waited_total 0"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET /metrics has no %s", want)
			}
		}
		// Which version runs (a test binary knows none), in Prometheus's convention,
		// and in the log's first line.
		schema := newestMigration(t)
		if want := `segments_build_info{go_version="` + runtime.Version() + `",revision="unknown",schema="` + schema + `",version="unknown"} 1`; !strings.Contains(body, want) {
			t.Errorf("GET /metrics has no %s:\n%s", want, body)
		}
		if want := `msg="segments starting" version="unknown (built without version information)" revision=unknown go_version=` + runtime.Version() + " schema=" + schema; !strings.Contains(log.String(), want) {
			t.Errorf("serve logged no %s:\n%s", want, log.String())
		}
	})

	t.Run("metrics on their own listener", func(t *testing.T) {
		maddr := freeAddr(t)
		url := start(t, getenv, "--metrics-addr", maddr)
		if status, _ := get(t, url+"/metrics"); status != http.StatusNotFound {
			t.Fatalf("GET /metrics on the API's listener: %d, want 404", status)
		}
		if status, body := get(t, "http://"+maddr+"/metrics"); status != http.StatusOK || !strings.Contains(body, "segments_db_pool_open_connections") {
			t.Fatalf("GET /metrics on --metrics-addr: %d\n%s", status, body)
		}
	})

	t.Run("metrics off", func(t *testing.T) {
		url := start(t, getenv, "--metrics-addr", "off")
		if status, _ := get(t, url+"/metrics"); status != http.StatusNotFound {
			t.Fatalf("GET /metrics: %d, want 404", status)
		}
	})

	t.Run("profiles on a loopback listener", func(t *testing.T) {
		daddr := freeAddr(t)
		url := start(t, getenv, "--debug-addr", daddr)
		workspaceName(t, url, key)
		if status, _ := get(t, url+"/debug/pprof/"); status != http.StatusNotFound {
			t.Fatalf("GET /debug/pprof/ on the API's listener: %d, want 404", status)
		}
		if status, body := get(t, "http://"+daddr+"/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Fatalf("GET /debug/pprof/ on --debug-addr: %d\n%s", status, body)
		}
		// A profile of this very process: its HTTP servers' goroutines.
		if status, body := get(t, "http://"+daddr+"/debug/pprof/goroutine?debug=1"); status != http.StatusOK || !strings.Contains(body, "net/http.(*Server).Serve") {
			t.Fatalf("GET /debug/pprof/goroutine?debug=1: %d\n%s", status, body)
		}
	})

	t.Run("no profiles by default", func(t *testing.T) {
		url := start(t, getenv)
		if status, _ := get(t, url+"/debug/pprof/"); status != http.StatusNotFound {
			t.Fatalf("GET /debug/pprof/ on the API's listener: %d, want 404", status)
		}
	})

	t.Run("profiles refused on other interfaces", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		for _, addr := range []string{":" + port, "0.0.0.0:" + port, "[::]:" + port, "192.0.2.1:" + port} {
			// Refused, serve returns at once; accepted, it would serve until the
			// context ends, and then return no error, which fails the test (rather
			// than the test waiting forever).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var stderr strings.Builder
			err := run(ctx, []string{"serve", "--addr", freeAddr(t), "--debug-addr", addr}, getenv, io.Discard, &stderr)
			cancel()
			if exitCode(err) != 2 || !strings.Contains(err.Error(), "-debug-addr") || !strings.Contains(err.Error(), "not a loopback address") {
				t.Errorf("--debug-addr %s: got %v, want it refused as not loopback, a usage error\n%s", addr, err, stderr.String())
			}
		}
	})

	var mu sync.Mutex
	var exports []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(string(body), "POST /graphql") && strings.Contains(string(body), "Query.workspace") {
			exports = append(exports, r.Method+" "+r.URL.Path)
		}
	}))
	defer receiver.Close()
	t.Run("tracing", func(t *testing.T) {
		url := start(t, env(map[string]string{"DATABASE_URL": db, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.URL}))
		workspaceName(t, url, key)
	}) // serve stopped: its last spans are flushed
	mu.Lock()
	defer mu.Unlock()
	if len(exports) != 1 || exports[0] != "POST /v1/traces" {
		t.Fatalf("the OTLP receiver got %q, want the request's spans once", exports)
	}
}

// TestTracingLogRedactsPassword: the line saying tracing is on names the endpoint
// without its password, from --otlp-endpoint as from
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. It was logged whole.
func TestTracingLogRedactsPassword(t *testing.T) {
	for _, c := range []*config{
		{otlpEndpoint: "http://user:s3cretpw@127.0.0.1:4318"},
		{otlpTracesEndpoint: "http://user:s3cretpw@127.0.0.1:4318/v1/traces"},
	} {
		var buf strings.Builder
		tp, stop, err := c.tracing(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil || tp == nil {
			t.Fatalf("%+v: tracing %v, %v", c, tp, err)
		}
		stop()
		if line := buf.String(); strings.Contains(line, "s3cretpw") || !strings.Contains(line, "otlp_endpoint=http://user:xxxxx@127.0.0.1:4318") {
			t.Errorf("the log: %s", line)
		}
	}
}

// TestOldTransactionHoldsTheFeedBack leaves a transaction with an ID open in another
// database of the cluster, as an operator's forgotten psql session: every
// workspace's change feed stops at it. Serve reports its age on /metrics and logs a
// warning naming it, and check warns of it, exiting 0 all the same.
func TestOldTransactionHoldsTheFeedBack(t *testing.T) {
	ctx := context.Background()
	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t)})
	conn := storetest.Conn(t, storetest.Database(t))
	var pid int64
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `BEGIN; SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	time.Sleep(1100 * time.Millisecond)
	warning := fmt.Sprintf(`msg="a transaction holds every workspace's change feed back" pid=%d `, pid)

	url, log := startLogged(t, getenv, "--old-transaction-age", "1s")
	// The gauge appears with the watch's first reading, which runs beside the start.
	var age float64
	var body string
	for deadline, seen := time.Now().Add(10*time.Second), false; !seen && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, body = get(t, url+"/metrics")
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, "segments_oldest_transaction_age_seconds "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("segments_oldest_transaction_age_seconds %q: %v", v, err)
				}
				age, seen = f, true
			}
		}
	}
	if want := time.Since(began).Seconds(); age < want-1 {
		t.Errorf("segments_oldest_transaction_age_seconds %v, the transaction is %.1f s old:\n%s", age, want, body)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), warning); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("serve logged no warning %q:\n%s", warning, log.String())
			break
		}
	}

	stdout, stderr, err := cli(getenv, "check", "--old-transaction-age", "1s")
	if err != nil || !strings.Contains(stderr, warning) || !strings.HasPrefix(stdout, "no drift") {
		t.Errorf("check: %v; want a warning on stderr, and no drift\n%s%s", err, stdout, stderr)
	}
	if _, stderr, err := cli(getenv, "check"); err != nil || strings.Contains(stderr, "change feed") {
		t.Errorf("check with the default --old-transaction-age (1m): %v\n%s", err, stderr)
	}
}
