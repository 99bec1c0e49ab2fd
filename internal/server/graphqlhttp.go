package server

import (
	"net/http"
	"slices"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/idempotency"
)

// graphQLHTTP answers the requests /graphql never serves (a method other than GET
// and POST: 405 with Allow; a body that is not JSON, or is content-coded: 415; an
// Accept header that allows no JSON: 406) before authentication, the idempotency
// keys and the deadline, so that they cost no database work. The GraphQL over HTTP rules
// themselves live in the GraphQL handler's transport (graph/transport.go).
func graphQLHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := graph.Precheck(w, r); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// negotiateGraphQL gives every answer of /graphql the media type the client's
// Accept header chose, and says it varies with Accept: the refusals of the layers
// before the transport (the body's size and time, a missing key, admission,
// idempotency) are written through auth.WriteError as application/json, whatever
// the client accepts. It must run before all of them.
func negotiateGraphQL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/graphql" {
			next.ServeHTTP(w, r)
			return
		}
		r, mediaType, ok := graph.WithNegotiation(r)
		if !ok {
			mediaType = graph.MediaTypeJSON // the 406 itself
		}
		next.ServeHTTP(&negotiatedWriter{ResponseWriter: w, mediaType: mediaType}, r)
	})
}

// negotiatedWriter labels a JSON answer with the negotiated media type. A replay of
// an Idempotency-Key keeps the type it was stored with: its status was chosen for
// it (a document that did not validate is 200 as application/json, 400 as
// application/graphql-response+json).
type negotiatedWriter struct {
	http.ResponseWriter
	mediaType string
	wrote     bool
}

func (w *negotiatedWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		if h.Get("Content-Type") == graph.MediaTypeJSON+"; charset=utf-8" && h.Get(idempotency.HeaderReplayed) == "" {
			h.Set("Content-Type", w.mediaType+"; charset=utf-8")
		}
		if !slices.Contains(h.Values("Vary"), "Accept") {
			h.Add("Vary", "Accept")
		}
		// An answer is the workspace's data as of now, for its credential: no cache,
		// private or shared, may keep it (a GET query's answer was otherwise left to
		// caches' heuristics, and a proxy that ignores Authorization could serve it
		// stale, or to another caller).
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *negotiatedWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *negotiatedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
