package auth

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The messages of the two 401s of sessions.
const (
	msgInvalid = "invalid session token"
	msgExpired = "the session has expired"
)

// sessionCase is an HS256 token with changes to testClaims (nil deletes a claim), and
// the message of its 401, or "" when it must be accepted.
type sessionCase struct {
	changes []map[string]any
	want    string
}

// checkSessions sends each case's token through Require with an HS256 verifier.
func checkSessions(t *testing.T, now time.Time, cases map[string]sessionCase) {
	t.Helper()
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	for name, tc := range cases {
		c := testClaims(now, nil)
		for _, ch := range tc.changes {
			for k, v := range ch {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
		}
		w := send("Bearer " + signToken(t, jwt.SigningMethodHS256, testSecret, "", c))
		if tc.want == "" {
			if w.Code != http.StatusOK {
				t.Errorf("%s: status %d, body %s", name, w.Code, w.Body)
			}
			continue
		}
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, w.Code)
			continue
		}
		if _, msg := errorOf(t, w); msg != tc.want {
			t.Errorf("%s: %q, want %q", name, msg, tc.want)
		}
	}
}

// TestSessionSubIsString proves that a token whose sub is not a string (RFC 7519
// section 4.1.2: a StringOrURI) is refused, rather than accepted without its sub,
// which would put its user in the workspace's bucket of sessions without one.
func TestSessionSubIsString(t *testing.T) {
	checkSessions(t, time.Now(), map[string]sessionCase{
		"sub a string":  {nil, ""},
		"without sub":   {[]map[string]any{{"sub": nil}}, ""},
		"sub a number":  {[]map[string]any{{"sub": 42}}, msgInvalid},
		"sub an array":  {[]map[string]any{{"sub": []string{"a"}}}, msgInvalid},
		"sub an object": {[]map[string]any{{"sub": map[string]any{"id": "a"}}}, msgInvalid},
		"sub true":      {[]map[string]any{{"sub": true}}, msgInvalid},
	})
}
