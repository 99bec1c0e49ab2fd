package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth/authtest"
)

// TestAuthorizationHeaderTwice proves that a request with two Authorization headers
// is refused with 400, whichever credentials they carry: a proxy that reads the last
// one would authorize another principal than the server.
func TestAuthorizationHeaderTwice(t *testing.T) {
	table, key := newKeyTable(t)
	_, other := newKeyTable(t)
	send := serveWith(t, table)
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	for _, pair := range [][2]Key{{key, other}, {key, key}, {other, key}} {
		r.Header.Del("Authorization")
		r.Header.Add("Authorization", "Bearer "+string(pair[0]))
		r.Header.Add("Authorization", "Bearer "+string(pair[1]))
		w := httptest.NewRecorder()
		Require(table, slog.New(slog.NewTextHandler(io.Discard, nil)), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Error("a request with two Authorization headers got through")
		})).ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest {
			t.Errorf("status %d, want 400", w.Code)
		}
		if code, _ := errorOf(t, w); code != "BAD_REQUEST" {
			t.Errorf("code %s, want BAD_REQUEST", code)
		}
	}
	if code, ws := send(key); code != 200 || ws != 7 {
		t.Errorf("one header: %d %d", code, ws)
	}
	if n := table.lookups.Load(); n != 1 {
		t.Errorf("%d key lookups, want 1 (the request with one header)", n)
	}
}

// TestWWWAuthenticate proves the challenge of RFC 6750 section 3.1: no error
// attribute without a bearer credential, error="invalid_token" for one that was
// presented and does not work; and the message of each. A credential of another
// scheme (Basic) was told "missing API key", as if it had sent nothing.
func TestWWWAuthenticate(t *testing.T) {
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	_, key := newKeyTable(t)
	now := time.Now()
	const plain, invalid = `Bearer realm="segments"`, `Bearer realm="segments", error="invalid_token"`
	for name, tc := range map[string]struct {
		header []string
		want   string
		msg    string // how the message begins
	}{
		"no header":        {nil, plain, "missing API key"},
		"an empty bearer":  {[]string{"Bearer "}, plain, "missing API key"},
		"another scheme":   {[]string{"Basic dXNlcjpwYXNz"}, plain, "only Bearer credentials are accepted"},
		"no scheme":        {[]string{string(key)}, plain, "only Bearer credentials are accepted"},
		"unknown API key":  {[]string{"Bearer " + string(key)}, invalid, "invalid API key"},
		"mistyped API key": {[]string{"Bearer seg_nope"}, invalid, "invalid API key"},
		"forged session":   {[]string{"Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", testClaims(now, nil))}, invalid, "invalid session token"},
		"expired session":  {[]string{"Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", testClaims(now, map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}))}, invalid, ""},
		"malformed token":  {[]string{"Bearer a.b.c"}, invalid, "invalid session token"},
	} {
		w := send(tc.header...)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, w.Code)
		}
		if got := w.Header().Get("WWW-Authenticate"); got != tc.want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, tc.want)
		}
		if _, msg := errorOf(t, w); !strings.HasPrefix(msg, tc.msg) {
			t.Errorf("%s: message %q, want %q...", name, msg, tc.msg)
		}
	}
}
