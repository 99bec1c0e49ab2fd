package auth

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSRedirectRefused proves that the key set is fetched from the configured URL
// only: a redirect, which could lead to an attacker's key set (over plain http, to any
// host), is refused and logged, and no token signed with the attacker's key is
// accepted.
func TestJWKSRedirectRefused(t *testing.T) {
	keys := testRSAKeys()
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		w.Write(jwksBody("evil-1", &keys.attacker.PublicKey))
	}))
	defer evil.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/evil.json", http.StatusFound)
	}))
	defer redirector.Close()

	for name, client := range map[string]*http.Client{"default client": nil, "own client": {Timeout: 10 * time.Second}} {
		t.Run(name, func(t *testing.T) {
			evilHits.Store(0)
			var log syncBuffer
			v, err := NewJWTVerifier(JWTConfig{
				Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: redirector.URL + "/jwks.json",
				Client: client, Log: slog.New(slog.NewTextHandler(&log, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			tok := signToken(t, jwt.SigningMethodRS256, keys.attacker, "evil-1", testClaims(time.Now(), nil))
			s, err := v.Verify(tok)
			if err == nil {
				t.Fatalf("the attacker's token was accepted: %+v", s)
			}
			if !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("error %v, want ErrKeysUnavailable", err)
			}
			if n := evilHits.Load(); n != 0 {
				t.Errorf("the redirect was followed: %d fetches of the attacker's key set", n)
			}
			if l := log.String(); !strings.Contains(l, "fetch the JWT issuer's keys") || !strings.Contains(l, "redirect") {
				t.Errorf("log %q, want the fetch's failure, for a redirect", l)
			}
			if client != nil && client.CheckRedirect != nil {
				t.Error("the configured client was changed")
			}
		})
	}
}
