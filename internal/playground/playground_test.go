package playground_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/playground"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// get fetches path from h, as a browser on the server's machine does (Host
// 127.0.0.1:8080), and returns the response with its body read.
func get(t *testing.T, h http.Handler, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = "127.0.0.1:8080"
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// assetRef matches the page's references to assets, and inside the assets their
// references to each other: "/playground/assets/x.js", "assets/x.js" or "./x.js".
var assetRef = regexp.MustCompile(`(?:/playground/assets/|"assets/|\./)[A-Za-z0-9_.-]+-[A-Za-z0-9_-]{8}\.(?:js|css|ttf)`)

// assetPath makes an assetRef match a path.
func assetPath(ref string) string {
	i := strings.LastIndexAny(ref, "/")
	return playground.AssetPrefix + ref[i+1:]
}

// TestAssets proves what the server sends: unknown and sneaky paths are 404, the page
// is never cached and names assets that exist, assets are immutable with their
// content types, and every answer carries the CSP that keeps the page on this server.
func TestAssets(t *testing.T) {
	h := playground.Handler(playground.Options{})
	for _, p := range []string{"/index.html", "/playground/", "/playground/assets/", "/playground/assets/nope-123.js",
		"/playground/assets/../index.html", "/playground/assets/index.html", "/playground/assets/x/../../index.html", "/src/main.js"} {
		if res, _ := get(t, h, p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}

	res, page := get(t, h, "/", nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("page: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if got := res.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("page Cache-Control %q, want no-cache", got)
	}
	if res, _ := get(t, playground.Handler(playground.Options{APIKey: "seg_x"}), "/", nil); res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("page with a key: Cache-Control %q, want no-store", res.Header.Get("Cache-Control"))
	}
	post := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, post)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	if res.Header.Get("Content-Security-Policy") != playground.CSP {
		t.Errorf("page CSP %q", res.Header.Get("Content-Security-Policy"))
	}
	// The policy names no host: only 'self' (and data: URLs, which are not requests).
	for _, src := range strings.Fields(strings.ReplaceAll(playground.CSP, ";", " ")) {
		if strings.Contains(src, ".") || strings.Contains(src, ":") && src != "data:" || src == "*" {
			t.Errorf("CSP allows %q", src)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("page has an inline script or an absolute URL:\n%s", page)
	}
	refs := assetRef.FindAllString(page, -1)
	if len(refs) < 2 {
		t.Fatalf("page names %d assets: %s", len(refs), page)
	}
	want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".ttf": "font/ttf"}
	seen := map[string]bool{}
	// The entry script and style, and through the style the font; the script names
	// the other chunks and the workers.
	for i := 0; i < len(refs); i++ {
		ref := assetPath(refs[i])
		if seen[ref] {
			continue
		}
		seen[ref] = true
		res, body := get(t, h, ref, nil)
		ctype := want[filepath.Ext(ref)]
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ctype {
			t.Errorf("%s: %d %q, want 200 %q", ref, res.StatusCode, res.Header.Get("Content-Type"), ctype)
			continue
		}
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", ref, got)
		}
		if res.Header.Get("Content-Security-Policy") != playground.CSP || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: CSP %q nosniff %q", ref, res.Header.Get("Content-Security-Policy"), res.Header.Get("X-Content-Type-Options"))
		}
		if ctype != "font/ttf" {
			refs = append(refs, assetRef.FindAllString(body, -1)...)
		}
	}
	var workers, fonts int
	for ref := range seen {
		if strings.Contains(ref, ".worker-") {
			workers++
		}
		if strings.HasSuffix(ref, ".ttf") {
			fonts++
		}
	}
	if workers < 3 || fonts < 1 {
		t.Errorf("reached %d workers and %d fonts from the page, want Monaco's 3 workers and its icon font: %v", workers, fonts, seen)
	}

	// Compressed on request, to the same bytes (the style sheet: small enough to be
	// quick under the race detector).
	entry := assetPath(refs[1])
	_, plain := get(t, h, entry, nil)
	res, zipped := get(t, h, entry, http.Header{"Accept-Encoding": {"br, gzip;q=0.8"}})
	if res.Header.Get("Content-Encoding") != "gzip" || len(zipped) >= len(plain)*3/4 {
		t.Fatalf("gzip: %q, %d bytes of %d", res.Header.Get("Content-Encoding"), len(zipped), len(plain))
	}
	zr, err := gzip.NewReader(strings.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); !bytes.Equal(unzipped, []byte(plain)) {
		t.Error("gzipped asset differs")
	}
	if res, _ := get(t, h, entry, http.Header{"Accept-Encoding": {"gzip;q=0"}}); res.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent though refused")
	}
}

// TestConfigEscaped proves the key reaches the page as data, whatever it holds: it
// cannot end the attribute or open a tag.
func TestConfigEscaped(t *testing.T) {
	key := `seg_"><script>alert(1)</script>&'`
	_, page := get(t, playground.Handler(playground.Options{APIKey: key}), "/", nil)
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "__SEGMENTS_PLAYGROUND_CONFIG__") {
		t.Fatalf("config not escaped:\n%s", page)
	}
	m := regexp.MustCompile(`<meta name="segments-playground" content="([^"]*)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no config meta tag:\n%s", page)
	}
	var cfg struct{ Endpoint, APIKey string }
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &cfg); err != nil || cfg.APIKey != key || cfg.Endpoint != "/graphql" {
		t.Fatalf("config %q: %+v %v", m[1], cfg, err)
	}
	// Without a demo key, the page carries none.
	_, page = get(t, playground.Handler(playground.Options{}), "/", nil)
	if strings.Contains(page, "apiKey") {
		t.Errorf("page has a key without one configured")
	}
}

// example is one of the playground's example operations (ui/src/examples).
type example struct {
	file      string
	query     string
	variables map[string]any
}

func examples(t *testing.T) []example {
	t.Helper()
	files, _ := filepath.Glob("ui/src/examples/*.graphql")
	if len(files) < 5 {
		t.Fatalf("%d examples", len(files))
	}
	var out []example
	for _, f := range files {
		q, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ex := example{file: filepath.Base(f), query: string(q)}
		v, err := os.ReadFile(strings.TrimSuffix(f, ".graphql") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(v, &ex.variables); err != nil {
			t.Fatalf("%s variables: %v", f, err)
		}
		out = append(out, ex)
	}
	return out
}

var operationName = regexp.MustCompile(`(?m)^(query|mutation) (\w+)`)

// exampleShows names, for an example's operation, fields its answer must hold: what a
// first-time user should see of the API, the newest fields included.
var exampleShows = map[string][][]string{
	"ListSegments":   {{"viewer", "canMutate"}, {"viewer", "expiresAt"}, {"segments", "nodes"}},
	"UpsertContacts": {{"upsertContacts", "createdContactIds"}, {"upsertContacts", "assignedCount"}, {"upsertContacts", "segments"}},
	"Contacts":       {{"contacts", "nodes"}, {"contactsByPhone"}},
	"AssignContacts": {{"assignContactsToSegments", "segments"}, {"assignContactsToSegments", "contacts"}},
}

// TestExamples proves the example operations the playground opens with are valid
// against the schema and run on the real server with their own variables (in a new
// workspace the mutations' placeholder IDs may name nothing: user errors, not request
// errors), that they cover the stories and show the fields of exampleShows, and that
// the committed build carries them all.
func TestExamples(t *testing.T) {
	srv, key := newServer(t, server.Config{})
	var bundle []byte
	entries, _ := filepath.Glob("dist/assets/index-*.js")
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		bundle = append(bundle, b...)
	}
	var names []string
	for _, ex := range examples(t) {
		m := operationName.FindStringSubmatch(ex.query)
		if m == nil {
			t.Errorf("%s: no named operation", ex.file)
			continue
		}
		names = append(names, m[2])
		if !bytes.Contains(bundle, []byte(m[2])) {
			t.Errorf("%s: not in dist (stale build: run make playground)", ex.file)
		}
		status, body := post(t, srv.URL, key, map[string]any{"query": ex.query, "variables": ex.variables})
		var res struct {
			Data   map[string]any    `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		if err := json.Unmarshal(body, &res); err != nil || status != http.StatusOK || len(res.Errors) > 0 || len(res.Data) == 0 {
			t.Errorf("%s: %d %s", ex.file, status, body)
		}
		for _, path := range exampleShows[m[2]] {
			if !answerHas(res.Data, path) {
				t.Errorf("%s: the answer has no %s: %s", ex.file, strings.Join(path, "."), body)
			}
		}
	}
	for _, story := range []string{"ListSegments", "SearchSegments", "UpsertContacts", "Contacts", "CreateSegment", "AssignContacts", "CampaignAudience"} {
		if !slices.Contains(names, story) {
			t.Errorf("no %s example among %v", story, names)
		}
	}
}

// answerHas reports whether data holds the field at path, a list's elements taken as
// its objects: an empty list holds the fields its elements would have, selected or
// not.
func answerHas(data any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch v := data.(type) {
	case map[string]any:
		f, ok := v[path[0]]
		return ok && answerHas(f, path[1:])
	case []any:
		for _, e := range v {
			if !answerHas(e, path) {
				return false
			}
		}
		return true
	}
	return false
}

// TestPlaygroundRoutes proves the server serves the page and its assets, and
// neither when the playground is off.
func TestPlaygroundRoutes(t *testing.T) {
	on, _ := newServer(t, server.Config{PlaygroundKey: "seg_demo"})
	off, _ := newServer(t, server.Config{NoPlayground: true})
	res, err := http.Get(on.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	ref := assetRef.FindString(string(page))
	asset := assetPath(ref)
	if res.StatusCode != http.StatusOK || ref == "" || !strings.Contains(string(page), "seg_demo") {
		t.Fatalf("on: %d %s", res.StatusCode, page)
	}
	// Under a name, as after DNS rebinding, the server's page has no key.
	req, _ := http.NewRequest(http.MethodGet, on.URL+"/", nil)
	req.Host = "attacker.example:8080"
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || strings.Contains(string(page), "seg_demo") || !strings.Contains(string(page), "segments-playground") {
		t.Errorf("Host attacker.example: %d %s", res.StatusCode, page)
	}
	for _, p := range []string{"/", asset} {
		res, err := http.Get(off.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("off: GET %s: %d", p, res.StatusCode)
		}
		if res, _ = http.Get(on.URL + p); res.StatusCode != http.StatusOK {
			t.Errorf("on: GET %s: %d", p, res.StatusCode)
		}
		res.Body.Close()
	}
}

// newServer starts the real server on the test database and returns it with the key
// of a new workspace.
func newServer(t *testing.T, cfg server.Config) (*httptest.Server, auth.Key) {
	t.Helper()
	s := storetest.Store(t)
	_, key := storetest.Workspace(t, s)
	srv := httptest.NewServer(server.Handler(s, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg))
	t.Cleanup(srv.Close)
	return srv, key
}

// post sends a GraphQL request and returns its status and body.
func post(t *testing.T, url string, key auth.Key, req map[string]any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(req)
	r, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+string(key))
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// TestAcceptEncoding proves gzip is sent exactly when the client accepts it, as RFC
// 9110 reads Accept-Encoding: any form of q=0 refuses (parameter names are
// case-insensitive, whitespace around them allowed), an explicit gzip entry wins over
// "*", and an entry with a malformed weight is ignored.
func TestAcceptEncoding(t *testing.T) {
	h := playground.Handler(playground.Options{})
	_, page := get(t, h, "/", nil)
	var style string
	for _, ref := range assetRef.FindAllString(page, -1) {
		if strings.HasSuffix(ref, ".css") {
			style = assetPath(ref)
		}
	}
	if style == "" {
		t.Fatalf("no style sheet in the page: %s", page)
	}
	for accept, want := range map[string]bool{
		"":                     false,
		"gzip":                 true,
		"GZip":                 true,
		"br, gzip;q=0.8":       true,
		"gzip;q=0.001":         true,
		"gzip;q=1.000":         true,
		"gzip ; Q = 0.5":       true,
		"x-gzip":               true,
		"*":                    true,
		"br, *;q=0.1":          true,
		"deflate, br":          false,
		"gzip;q=0":             false,
		"gzip;q=0.0":           false,
		"gzip;q=0.000":         false,
		"gzip; Q=0":            false,
		"gzip ;q=0":            false,
		"gzip; q = 0.00":       false,
		"GZIP;q=0, br":         false,
		"gzip;q=0, *":          false,
		"*;q=0":                false,
		"br, *;q=0":            false,
		"gzip;q=2":             false,
		"gzip;q=zero":          false,
		"identity, gzip;q=abc": false,
	} {
		res, _ := get(t, h, style, http.Header{"Accept-Encoding": {accept}})
		if got := res.Header.Get("Content-Encoding") == "gzip"; got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", accept, got, want)
		}
	}
}

// TestDemoKeyNeedsLocalHost proves the demo key is put in the page only for a Host
// that is localhost or an IP literal: a page that rebinds its own DNS name to this
// server (DNS rebinding) sends its name as the Host and gets the page without the key.
func TestDemoKeyNeedsLocalHost(t *testing.T) {
	const key = "seg_demo_key"
	h := playground.Handler(playground.Options{APIKey: key})
	for host, want := range map[string]bool{
		"127.0.0.1:8080":             true,
		"127.0.0.1":                  true,
		"127.1.2.3:8080":             true,
		"localhost:8080":             true,
		"LocalHost:8080":             true,
		"localhost":                  true,
		"[::1]:8080":                 true,
		"[::1]":                      true,
		"192.168.1.20:8080":          true, // --addr 0.0.0.0:8080, opened from the LAN
		"[fe80::1]:8080":             true,
		"attacker.example:8080":      false,
		"attacker.example":           false,
		"localhost.attacker.example": false,
		"127.0.0.1.nip.io:8080":      false,
		"localhost.:8080":            false,
		"":                           false,
		"[::1":                       false,
		"127.0.0.1:8080:8080":        false,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		page := rec.Body.String()
		if got := strings.Contains(page, key); got != want {
			t.Errorf("Host %q: key in page %v, want %v", host, got, want)
		}
		if rec.Code != http.StatusOK || !strings.Contains(page, "segments-playground") || !strings.Contains(page, "/graphql") {
			t.Errorf("Host %q: %d %s", host, rec.Code, page)
		}
		if got := rec.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("Host %q: Cache-Control %q, want no-store", host, got)
		}
	}
}
