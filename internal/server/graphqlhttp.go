package server

import (
	"net/http"

	"github.com/segments/segments/graph"
)

// graphQLHTTP answers the requests /graphql never serves (a method other than GET
// and POST: 405 with Allow; a body that is not JSON: 415; an Accept header that
// allows no JSON: 406) before authentication, the idempotency keys and the
// deadline, so that they cost no database work. The GraphQL over HTTP rules
// themselves live in the GraphQL handler's transport (graph/transport.go).
func graphQLHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := graph.Precheck(w, r); ok {
			next.ServeHTTP(w, r)
		}
	})
}
