// Package authtest makes dashboard session tokens for the tests of package auth and
// of the server.
package authtest

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Sign signs claims with key by method; kid "" leaves the header without one.
func Sign(tb testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// With returns a copy of c with changes; a nil value deletes the claim.
func With(c jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	out := make(jwt.MapClaims, len(c)+len(changes))
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}
