// Package playground serves the GraphQL playground: GraphiQL 5 with an API key field
// and example operations, built from ui/ by Vite into dist/ and embedded in the binary,
// so that it works where no CDN can be reached. Every request the page makes goes to
// the server that served it, and its Content-Security-Policy forbids anything else.
//
// Rebuild dist/ after changing ui/ with `make playground` (needs Node); building the Go
// code does not need Node.
package playground

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"html"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/segments/segments/internal/negotiate"
)

//go:embed all:dist
var dist embed.FS

// AssetPrefix is the path under which the page's scripts, styles, fonts and workers
// are served (Vite's base in ui/vite.config.js, plus its assets directory).
const AssetPrefix = "/playground/assets/"

// CSP is the Content-Security-Policy of the page: everything from this server only.
// data: URLs (fonts and icons inlined in the styles) are not requests. Inline styles
// are allowed because Monaco and GraphiQL set them at run time; inline scripts are not.
const CSP = "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; " +
	"style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// configPlaceholder is the content of the index's config meta tag, replaced per server.
const configPlaceholder = "__SEGMENTS_PLAYGROUND_CONFIG__"

// Options configure the page.
type Options struct {
	// Endpoint is the path of the GraphQL API; "" means /graphql.
	Endpoint string
	// APIKey, when set, is filled into the key field: for the demo only, since the page
	// then shows the key to whoever opens it. Only a request whose Host is localhost or
	// an IP literal gets it (localHost): DNS rebinding needs a name.
	APIKey string
}

// config is what the page reads from its meta tag (ui/src/main.js).
type config struct {
	Endpoint string `json:"endpoint"`
	APIKey   string `json:"apiKey,omitempty"`
}

// Handler serves the page at / and its assets under AssetPrefix; anything else is 404.
func Handler(o Options) http.Handler {
	if o.Endpoint == "" {
		o.Endpoint = "/graphql"
	}
	index, err := dist.ReadFile("dist/index.html")
	if err != nil || !bytes.Contains(index, []byte(configPlaceholder)) {
		// Only a broken build gets here, and TestAssets catches it first.
		panic("playground: dist/index.html is missing or has no config placeholder: run make playground")
	}
	render := func(c config) []byte {
		cfg, _ := json.Marshal(c)
		// The JSON goes into an HTML attribute: escaped, so no key can break out of it.
		return bytes.Replace(index, []byte(configPlaceholder), []byte(html.EscapeString(string(cfg))), 1)
	}
	assets, _ := fs.Sub(dist, "dist/assets")
	// The page names the current build's hashed assets: always revalidated. With the
	// demo key, it is not stored at all (neither version: they share a URL).
	h := &handler{page: render(config{Endpoint: o.Endpoint}), pageCache: "no-cache", assets: assets}
	if o.APIKey != "" {
		h.keyPage = render(config{Endpoint: o.Endpoint, APIKey: o.APIKey})
		h.pageCache = "no-store"
	}
	return h
}

type handler struct {
	page      []byte // without a key
	keyPage   []byte // with the demo key, if there is one
	pageCache string // the page's Cache-Control
	assets    fs.FS
	gz        sync.Map // asset name → gzipped bytes, compressed on first request
}

// localHost reports whether a request's Host (host[:port]) is localhost or an IP
// literal, for which the page may carry the demo key. A browser sends the name the
// page was loaded from: a page of attacker.example whose name the attacker rebinds to
// 127.0.0.1 (DNS rebinding) reaches this server with Host attacker.example, and must
// not read the key. A page loaded from an IP literal has that address as its origin,
// which no other site can take, so every IP literal is safe, loopback or not (the LAN
// address of --addr 0.0.0.0:8080 too).
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	switch {
	case r.URL.Path == "/":
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", h.pageCache)
		hdr.Set("X-Frame-Options", "DENY")
		if h.keyPage != nil && localHost(r.Host) {
			w.Write(h.keyPage)
		} else {
			w.Write(h.page)
		}
	case strings.HasPrefix(r.URL.Path, AssetPrefix):
		h.asset(w, r, strings.TrimPrefix(r.URL.Path, AssetPrefix))
	default:
		http.NotFound(w, r)
	}
}

// contentTypes covers what Vite emits; Go's own table lacks fonts and depends on the
// machine's mime files.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".ttf":   "font/ttf",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".json":  "application/json",
	".wasm":  "application/wasm",
}

func (h *handler) asset(w http.ResponseWriter, r *http.Request, name string) {
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok || !fs.ValidPath(name) || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	body, err := fs.ReadFile(h.assets, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	// Vite puts a content hash in every asset's name: a new build gets new names.
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Add("Vary", "Accept-Encoding")
	if compressible(ctype) && acceptsGzip(r) {
		hdr.Set("Content-Encoding", "gzip")
		body = h.gzipped(name, body)
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func (h *handler) gzipped(name string, body []byte) []byte {
	if z, ok := h.gz.Load(name); ok {
		return z.([]byte)
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
	zw.Write(body)
	zw.Close()
	z, _ := h.gz.LoadOrStore(name, b.Bytes())
	return z.([]byte)
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || ctype == "image/svg+xml" || ctype == "application/json" || ctype == "font/ttf"
}

// acceptsGzip reads Accept-Encoding as RFC 9110 says: gzip (or its alias x-gzip) is
// acceptable with the weight of its own entry, else with that of "*", else not at all
// (no header: nothing but identity, to keep it simple); a weight of 0 in any spelling
// (q=0.000, Q = 0) refuses it. An entry whose parameters or weight do not parse is
// ignored (package negotiate).
func acceptsGzip(r *http.Request) bool {
	gz, star := -1.0, -1.0 // the weights found; -1: no entry
	for _, e := range negotiate.Entries(r.Header.Get("Accept-Encoding")) {
		coding, q := e.Value, e.Q
		switch coding { // lowercased
		case "gzip", "x-gzip":
			gz = max(gz, q)
		case "*":
			star = max(star, q)
		}
	}
	if gz < 0 {
		gz = star
	}
	return gz > 0
}
