package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/requestid"
	"golang.org/x/net/http/httpguts"
)

// AnyOrigin, as the only entry of Config.CORSOrigins, lets a page of any origin call
// /graphql from a browser.
const AnyOrigin = "*"

// The CORS answers of /graphql.
const (
	// corsAllowHeaders are the request headers clients send: the credential, the
	// body's type, content negotiation, idempotency, the request ID, and the trace
	// context the server extracts (W3C traceparent, tracestate and baggage). A
	// preflight's answer adds the others it asks for (allowedHeaders).
	corsAllowHeaders = "Authorization, Content-Type, Accept, " + idempotency.HeaderKey + ", " +
		requestid.Header + ", traceparent, tracestate, baggage"
	// corsExposeHeaders are the response headers a browser app needs to read
	// besides the CORS-safelisted ones (Content-Type...): the request ID to quote,
	// how long to wait before a retry (429, 503), whether an answer is a replay,
	// and why a credential was refused.
	corsExposeHeaders = requestid.Header + ", Retry-After, " + idempotency.HeaderReplayed + ", WWW-Authenticate"
	// corsMaxAge is how long a browser may reuse a preflight's answer, in seconds:
	// Chromium's cap (Firefox's is a day), so that a dashboard sends one preflight
	// per two hours rather than one per request.
	corsMaxAge = "7200"
)

// ParseCORSOrigins reads a list of origins allowed to call /graphql from a browser,
// comma-separated: "*" alone for any, or exact origins such as
// https://app.example.com (scheme, host and port, as a browser's Origin header
// writes them). It returns them as a browser sends them, case folded and without a
// default port, for Config.CORSOrigins. It refuses what is no origin: a path (a
// trailing slash too), a query, no scheme, a user, a wildcard in a host, and "null",
// the origin of sandboxed frames and local files, which any page can take on.
func ParseCORSOrigins(s string) ([]string, error) {
	var origins []string
	for _, entry := range strings.Split(s, ",") {
		o := strings.TrimSpace(entry)
		if o != AnyOrigin {
			var err error
			if o, err = parseOrigin(o); err != nil {
				return nil, err
			}
		}
		if !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	if slices.Contains(origins, AnyOrigin) && len(origins) > 1 {
		return nil, errors.New(`"*" allows any origin: list no other with it`)
	}
	return origins, nil
}

// parseOrigin reads one origin of ParseCORSOrigins.
func parseOrigin(s string) (string, error) {
	switch s {
	case "":
		return "", errors.New("an empty origin: want origins separated by single commas, such as https://app.example.com,https://admin.example.com")
	case "null":
		return "", errors.New(`origin "null" is that of sandboxed frames and local files, which any page can take on: list the dashboard's real origin`)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	u, err := url.Parse(s)
	switch {
	case !ok || scheme == "" || err != nil || u.Scheme == "" || u.Opaque != "":
		return "", fmt.Errorf("%q is no origin: want a scheme, a host and an optional port, such as https://app.example.com", s)
	case u.Path == "/" && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "":
		return "", fmt.Errorf("%q ends with a slash, which an Origin header never has: write %s", s, strings.TrimSuffix(s, "/"))
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return "", fmt.Errorf("%q has a path, query or fragment: an origin is a scheme, a host and an optional port only, such as https://app.example.com", s)
	case u.User != nil || strings.Contains(rest, "@"):
		return "", fmt.Errorf("%q names a user: an origin is a scheme, a host and an optional port only", s)
	case u.Hostname() == "":
		return "", fmt.Errorf("%q has no host", s)
	case strings.Contains(u.Host, "*"):
		return "", fmt.Errorf("%q: wildcards are not supported: list each origin, or \"*\" alone for any", s)
	}
	for _, c := range u.Hostname() {
		if c > 0x7e || c <= ' ' {
			return "", fmt.Errorf("%q: write an international host name as a browser sends it, in punycode (xn--...)", s)
		}
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: the port must be 1 to 65535", s)
		}
		scheme := strings.ToLower(u.Scheme)
		if scheme == "http" && n == 80 || scheme == "https" && n == 443 {
			// A browser leaves the scheme's default port out of Origin.
			host = strings.TrimSuffix(host, ":"+p)
		}
	}
	return strings.ToLower(u.Scheme) + "://" + host, nil
}

// isPreflight tells a CORS preflight: a browser's OPTIONS asking whether it may send
// a request (the Fetch standard's CORS protocol). It is no GraphQL request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// allowOrigins answers the CORS protocol on /graphql for origins (Config.CORSOrigins;
// none: no CORS, and a preflight is a method /graphql does not serve, 405). It
// answers a preflight itself, before the request's size, admission, authentication
// and GraphQL, which it neither needs nor costs: 204 with what may be sent, to an
// allowed origin; 403 without any CORS header to another, which the Fetch standard
// suggests to say so explicitly, and the browser fails either way. Every
// other answer to an allowed origin, refusals written before GraphQL runs (401,
// 429, 503) included, carries Access-Control-Allow-Origin and the headers it may
// read, so that a browser app reads the error's code and Retry-After.
//
// Access-Control-Allow-Credentials is never sent: the API authenticates by the
// Authorization header alone, which a page sets itself, and reads no cookie, so a
// page gains nothing from a user's ambient credentials; "*" then cannot let a page
// act as anyone whose token it does not already hold (which any server could use
// as well). The playground (whose page may hold the demo's key), /metrics and the
// probes have no CORS: only /graphql is meant for other origins.
func allowOrigins(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	anyOrigin := slices.Contains(origins, AnyOrigin)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/graphql" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		// Whether an answer carries the CORS headers depends on Origin, also for a
		// request without it: a cache must not give its answer to a browser's.
		h.Add("Vary", "Origin")
		allow := ""
		if values := r.Header.Values("Origin"); len(values) == 1 {
			switch {
			case anyOrigin:
				allow = AnyOrigin
			case slices.Contains(origins, values[0]):
				allow = values[0]
			}
		}
		if isPreflight(r) {
			if allow == "" {
				http.Error(w, "this origin may not call the API from a browser (--cors-origins)", http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Allow-Methods", graph.AllowedMethods)
			h.Set("Access-Control-Allow-Headers", allowedHeaders(r.Header.Values("Access-Control-Request-Headers")))
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allow != "" {
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// maxRequestedHeaders bounds the header names a preflight's answer echoes.
const maxRequestedHeaders = 32

// allowedHeaders is the Access-Control-Allow-Headers of a preflight that asks for the
// headers requested (Access-Control-Request-Headers): corsAllowHeaders, and the other
// names it asks for. A fixed list failed the preflight of a client that sends one
// more header of its own (Apollo Client's apollographql-client-name, a tracing
// vendor's sentry-trace), with no useful error in the browser; allowing any is safe,
// as no answer allows credentials and the server ignores headers it does not know.
func allowedHeaders(requested []string) string {
	list := corsAllowHeaders
	n := 0
	for _, v := range requested {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" || !httpguts.ValidHeaderFieldName(name) || len(name) > 64 || n == maxRequestedHeaders ||
				containsFold(list, name) {
				continue
			}
			list += ", " + name
			n++
		}
	}
	return list
}

// containsFold reports whether the comma-separated list holds name, case aside.
func containsFold(list, name string) bool {
	for item := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(item), name) {
			return true
		}
	}
	return false
}
