package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/server"
)

// chromiumPath is Debian's Chromium, as in internal/playground's browser test.
const chromiumPath = "/usr/bin/chromium"

// fetched is what a page's fetch of /graphql could read.
type fetched struct {
	Status          int    `json:"status"`
	Body            string `json:"body"`
	RequestID       string `json:"requestId"`
	Replayed        string `json:"replayed"`
	WWWAuthenticate string `json:"wwwAuthenticate"`
	Error           string `json:"error"` // the fetch failed: CORS refused the answer
}

// fetchJS has the page POST body to api with a bearer token and an Idempotency-Key,
// as the dashboard does, and returns what it could read of the answer (fetched).
const fetchJS = `(async (api, token, key, body) => {
  try {
    const r = await fetch(api, {method: "POST", body, headers: {
      "Authorization": "Bearer " + token, "Content-Type": "application/json",
      "Accept": "application/graphql-response+json, application/json", "Idempotency-Key": key}});
    return {status: r.status, body: await r.text(), requestId: r.headers.get("X-Request-ID") || "",
      replayed: r.headers.get("Idempotent-Replayed") || "", wwwAuthenticate: r.headers.get("WWW-Authenticate") || ""};
  } catch (e) {
    return {error: String(e)};
  }
})`

// TestCORSBrowser: in headless Chromium, a page of the dashboard's origin (another
// port of 127.0.0.1 is another origin) sends a mutation to the API with a session
// JWT and an Idempotency-Key, and reads its answer, its request ID and, sent again,
// that it was replayed; it reads a 401's code and WWW-Authenticate too. A page of
// an origin not allowed cannot read an answer: its fetch fails. Before, every such
// fetch failed, its preflight answered 405.
func TestCORSBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("SEGMENTS_SKIP_BROWSER") == "1" && os.Getenv("CI") != "true" {
			t.Skip("SEGMENTS_SKIP_BROWSER=1 and no " + chromiumPath)
		}
		t.Fatalf("the CORS browser test needs Debian's Chromium at %s: apt-get install chromium "+
			"(or set SEGMENTS_SKIP_BROWSER=1 to skip it on this machine; CI never does): %v", chromiumPath, err)
	}
	page := func() *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte("<!doctype html><title>dashboard</title>"))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	dashboard, foreign := page(), page()
	s := newSessionAPIWith(t, nil, server.Config{CORSOrigins: []string{dashboard.URL}})
	token := string(s.bearer(t, authtest.Sign(t, jwt.SigningMethodRS256, sessKeys().rsa, "rsa-1", authtest.With(s.claims(), map[string]any{"scope": "read_write"}))).key)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	mutation, _ := json.Marshal(map[string]any{"query": `mutation { createSegment(input: {name: "From the browser"}) { segment { name } userErrors { code } } }`})
	fetch := func(pageURL, token, key string) fetched {
		t.Helper()
		call := fetchJS + "(" + strings.Join([]string{quote(s.url + "/graphql"), quote(token), quote(key), quote(string(mutation))}, ", ") + ")"
		if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
			t.Fatalf("open %s: %v", pageURL, err)
		}
		out, err := chromedp.Run(ctx, chromedp.Evaluate[fetched](call, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch from %s: %v", pageURL, err)
		}
		return out
	}

	got := fetch(dashboard.URL, token, "browser-1")
	if got.Status != http.StatusOK || !strings.Contains(got.Body, `"name":"From the browser"`) || got.RequestID == "" || got.Replayed != "" {
		t.Fatalf("the dashboard's mutation: %+v", got)
	}
	if again := fetch(dashboard.URL, token, "browser-1"); again.Status != http.StatusOK || again.Body != got.Body || again.Replayed != "true" {
		t.Errorf("the dashboard's mutation sent again: %+v", again)
	}
	if bad := fetch(dashboard.URL, "seg_not-a-key", "browser-2"); bad.Status != http.StatusUnauthorized ||
		!strings.Contains(bad.Body, `"UNAUTHENTICATED"`) || !strings.HasPrefix(bad.WWWAuthenticate, "Bearer") {
		t.Errorf("a bad token, from the dashboard: %+v", bad)
	}
	if other := fetch(foreign.URL, token, "browser-3"); other.Error == "" || other.Status != 0 {
		t.Errorf("a page of another origin read the answer: %+v", other)
	}
	var out struct{ Segments struct{ TotalCount int } }
	s.do(`{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 1 {
		t.Errorf("%d segments, want the one the dashboard created (once)", out.Segments.TotalCount)
	}
}

// quote writes s as a JavaScript string literal.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
