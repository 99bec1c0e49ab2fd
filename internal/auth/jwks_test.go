package auth

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/logtest"
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
			var log logtest.Buffer
			v, err := NewJWTVerifier(JWTConfig{
				Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: redirector.URL + "/jwks.json",
				Client: client, Log: slog.New(slog.NewTextHandler(&log, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			tok := authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "evil-1", testClaims(time.Now(), nil))
			s, err := v.Verify(t.Context(), tok)
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

// TestJWKSFetchFailure proves that while the issuer's keys cannot be fetched, a token
// with a key ID the server does not know gets 503 with Retry-After (not 401, which
// would sign dashboard users out), however many arrive; that the fetch is tried again
// after a short backoff, not after the minimum refresh interval, so valid tokens work
// again seconds after the issuer recovers; and that the backoff grows so that tokens
// with made-up key IDs cannot make the server hammer an issuer that is down.
func TestJWKSFetchFailure(t *testing.T) {
	keys := testRSAKeys()
	iss := newTestIssuer(t)
	clock := &testClock{t: time.Now()}
	v, err := NewJWTVerifier(JWTConfig{
		Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: iss.url,
		JWKSMinRefresh: time.Minute, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	valid := func() string {
		return authtest.Sign(t, jwt.SigningMethodRS256, keys.issuer, "rsa-1", testClaims(clock.Now(), nil))
	}
	bogus := func(i int) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "bogus-"+strconv.Itoa(i), testClaims(clock.Now(), nil))
	}
	// unavailable sends tok and expects 503, and hits fetches in all unless hits < 0.
	unavailable := func(step string, tok string, hits int64) {
		t.Helper()
		w := send("Bearer " + tok)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, body %s; want 503", step, w.Code, w.Body)
		}
		if code, _ := errorOf(t, w); code != "SERVICE_UNAVAILABLE" {
			t.Errorf("%s: code %s", step, code)
		}
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Errorf("%s: Retry-After %q, want 1 to 60 seconds", step, w.Header().Get("Retry-After"))
		}
		if n := iss.hits.Load(); hits >= 0 && n != hits {
			t.Errorf("%s: %d fetches in all, want %d", step, n, hits)
		}
	}

	iss.fail.Store(true)
	unavailable("issuer down", valid(), 1)
	unavailable("issuer down, again at once", valid(), 1)
	for i := range 20 {
		unavailable("issuer down, made-up kid", bogus(i), 1)
	}

	iss.fail.Store(false)
	clock.Advance(2 * time.Second)
	if w := send("Bearer " + valid()); w.Code != http.StatusOK || w.Header().Get("X-Workspace") != "7" {
		t.Fatalf("issuer back, seconds later: status %d, body %s", w.Code, w.Body)
	}
	if n := iss.hits.Load(); n != 2 {
		t.Errorf("issuer back: %d fetches in all, want 2", n)
	}
	// Healthy again: a made-up kid is unknown (401), and the minimum refresh holds.
	for i := range 5 {
		if w := send("Bearer " + bogus(100+i)); w.Code != http.StatusUnauthorized {
			t.Errorf("made-up kid, issuer healthy: status %d", w.Code)
		}
	}
	if n := iss.hits.Load(); n != 2 {
		t.Errorf("made-up kids within the minimum refresh: %d fetches in all, want 2", n)
	}

	// A long outage with made-up kids every 100 ms for 5 minutes: a few quick retries,
	// then one per backoff, never more than 10 s apart.
	clock.Advance(time.Minute + time.Second)
	iss.fail.Store(true)
	before := iss.hits.Load()
	var made [10]string
	for i := range made {
		made[i] = bogus(1000 + i)
	}
	for i := range 3000 {
		unavailable("long outage", made[i%len(made)], -1)
		clock.Advance(100 * time.Millisecond)
	}
	if n := iss.hits.Load() - before; n < 30 || n > 40 {
		t.Errorf("5 minutes of made-up kids against an issuer that is down: %d fetches, want 30 to 40", n)
	}
	iss.fail.Store(false)
	clock.Advance(10 * time.Second)
	if w := send("Bearer " + valid()); w.Code != http.StatusOK {
		t.Errorf("issuer back after a long outage: status %d", w.Code)
	}
}

// TestJWKSNotFetchedForRefusedClaims proves that a token refused for its claims
// (another audience or issuer, no workspace, long expired and issued after its exp)
// never makes the server fetch the issuer's keys, whatever its key ID: only a token
// that would be accepted, but for its key, is worth asking the issuer for.
func TestJWKSNotFetchedForRefusedClaims(t *testing.T) {
	keys := testRSAKeys()
	iss := newTestIssuer(t)
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: iss.url})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, changes := range []map[string]any{
		{"aud": "another-api"},
		{"iss": "https://evil.example/"},
		{"workspace": nil},
		{"sub": 42},
		{"exp": now.Add(-time.Hour).Unix()},
	} {
		tok := authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "new-"+strconv.Itoa(i), testClaims(now, changes))
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%v: %v, want ErrInvalidToken", changes, err)
		}
	}
	if n := iss.hits.Load(); n != 0 {
		t.Errorf("%d fetches of the key set, want none", n)
	}
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodRS256, keys.issuer, "rsa-1", testClaims(now, nil))); err != nil || iss.hits.Load() != 1 {
		t.Errorf("valid token: %v, %d fetches", err, iss.hits.Load())
	}
}
