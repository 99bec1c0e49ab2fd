package server

import (
	"net/http"
	"slices"

	"github.com/segments/segments/graph"
)

// graphQLHTTP answers the requests /graphql never serves (a method other than GET
// and POST: 405 with Allow; a body that is not JSON: 415; an Accept header that
// allows no JSON: 406) before authentication, the idempotency keys and the
// deadline, so that they cost no database work. The GraphQL over HTTP rules
// themselves live in the GraphQL handler's transport (graph/transport.go).
//
// Every answer of /graphql, the refusals of the layers before the transport's
// included (a missing key, admission, idempotency), has the media type the client's
// Accept header chose, and says it varies with Accept.
func graphQLHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mediaType, ok := graph.ResponseMediaType(r.Header.Get("Accept"))
		if !ok {
			mediaType = graph.MediaTypeJSON // the 406 itself
		}
		w = &negotiatedWriter{ResponseWriter: w, mediaType: mediaType}
		if _, ok := graph.Precheck(w, r); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// negotiatedWriter labels a JSON answer with the negotiated media type: the
// refusals written through auth.WriteError say application/json, whatever the
// client accepts.
type negotiatedWriter struct {
	http.ResponseWriter
	mediaType string
	wrote     bool
}

func (w *negotiatedWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		if h.Get("Content-Type") == graph.MediaTypeJSON+"; charset=utf-8" {
			h.Set("Content-Type", w.mediaType+"; charset=utf-8")
		}
		if !slices.Contains(h.Values("Vary"), "Accept") {
			h.Add("Vary", "Accept")
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
