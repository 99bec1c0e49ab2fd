// Package authtest makes dashboard session tokens for the tests of package auth and
// of the server.
package authtest

import (
	"encoding/base64"
	"encoding/json"
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

// SignJSON signs claims, given as JSON text, with key by method: for claims a map
// cannot hold, such as a name present twice. kid "" leaves the header without one.
func SignJSON(tb testing.TB, method jwt.SigningMethod, key any, kid, claims string) string {
	tb.Helper()
	header := map[string]string{"alg": method.Alg(), "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc(h) + "." + enc([]byte(claims))
	sig, err := method.Sign(signing, key)
	if err != nil {
		tb.Fatal(err)
	}
	return signing + "." + enc(sig)
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
