// Package requestid gives every HTTP request an ID that ties what the client saw to
// what the server logged.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// Header carries the request ID, both ways.
const Header = "X-Request-ID"

type (
	key       struct{}
	clientKey struct{}
)

// From returns the ID of the request ctx belongs to, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// ClientFrom returns the well-formed X-Request-ID the client of the request ctx
// belongs to sent, or "": the client's own name for the request, which the server
// logs beside its own ID (From) and never uses as it.
func ClientFrom(ctx context.Context) string {
	id, _ := ctx.Value(clientKey{}).(string)
	return id
}

// Middleware gives each request an ID of its own, always a new one, and answers it
// in the response's X-Request-ID. An ID the client sent is kept apart (ClientFrom)
// when well-formed: taken as the request's, it let a client give one request the ID
// of an earlier one (its own or anyone's it saw), so that the ID an
// INTERNAL_SERVER_ERROR asks to quote named several requests in the log.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		ctx := context.WithValue(r.Context(), key{}, id)
		if client := r.Header.Get(Header); wellFormed(client) {
			ctx = context.WithValue(ctx, clientKey{}, client)
		}
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// wellFormed accepts short IDs of safe characters, so that a client's ID cannot forge
// log lines.
func wellFormed(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
