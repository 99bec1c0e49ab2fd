package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/server"
)

const (
	sessIssuer   = "https://login.example.com/"
	sessAudience = "segments-api"
)

var sessSecret = []byte("a shared secret of at least 32 bytes, for HS256")

// sessKeys are the issuer's signing keys, made once: RSA key generation is slow under
// the race detector.
var sessKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2, attacker *rsa.PrivateKey
	ec                  *ecdsa.PrivateKey
}) {
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.rsa2, &k.attacker} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		*p = key
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	k.ec = key
	return k
})

// sessClock is the verifier's clock: real time plus an offset the test moves.
type sessClock struct{ offset atomic.Int64 }

func (c *sessClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *sessClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// sessIssuerServer publishes a JWKS over HTTP and counts the fetches. With hang set,
// it answers no fetch (until the fetch gives up, or the test ends).
type sessIssuerServer struct {
	mu   sync.Mutex
	keys []map[string]any
	hits atomic.Int64
	fail atomic.Bool
	hang atomic.Bool
	url  string
}

func newIssuerServer(t testing.TB) *sessIssuerServer {
	t.Helper()
	iss := &sessIssuerServer{}
	end := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.hits.Add(1)
		if iss.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-end:
			}
			return
		}
		if iss.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		iss.mu.Lock()
		defer iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": iss.keys})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(end) }) // first, so that Close need not wait for a hung fetch
	iss.url = srv.URL + "/.well-known/jwks.json"
	return iss
}

// publish replaces the published keys (by kid: *rsa.PublicKey or *ecdsa.PublicKey).
func (iss *sessIssuerServer) publish(keys map[string]any) {
	enc := base64.RawURLEncoding.EncodeToString
	var jwks []map[string]any
	for kid, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			jwks = append(jwks, map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
				"n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())})
		case *ecdsa.PublicKey:
			b, err := k.Bytes()
			if err != nil {
				panic(err)
			}
			jwks = append(jwks, map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])})
		}
	}
	iss.mu.Lock()
	iss.keys = jwks
	iss.mu.Unlock()
}

// sessAPI is a server accepting sessions, with its issuer and clock.
type sessAPI struct {
	*api
	iss   *sessIssuerServer
	clock *sessClock
}

// newSessionAPI starts a server whose verifier trusts a local issuer publishing the
// RSA key "rsa-1" and the EC key "ec-1"; change adjusts the verifier's settings.
func newSessionAPI(t testing.TB, change func(*auth.JWTConfig)) *sessAPI {
	t.Helper()
	return newSessionAPIWith(t, change, server.Config{})
}

// newSessionAPIWith is newSessionAPI with a server configured by cfg, whose JWT it
// sets.
func newSessionAPIWith(t testing.TB, change func(*auth.JWTConfig), cfg server.Config) *sessAPI {
	t.Helper()
	keys := sessKeys()
	iss := newIssuerServer(t)
	iss.publish(map[string]any{"rsa-1": &keys.rsa.PublicKey, "ec-1": &keys.ec.PublicKey})
	clock := &sessClock{}
	jwtCfg := auth.JWTConfig{
		Issuer: sessIssuer, Audience: []string{sessAudience}, JWKSURL: iss.url,
		JWKSMinRefresh: time.Minute, Now: clock.Now,
	}
	if change != nil {
		change(&jwtCfg)
	}
	v, err := auth.NewJWTVerifier(jwtCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWT = v
	return &sessAPI{api: newAPIWith(t, cfg), iss: iss, clock: clock}
}

// claims returns valid claims for the client's workspace, at the verifier's time.
func (s *sessAPI) claims() jwt.MapClaims {
	now := s.clock.Now()
	return jwt.MapClaims{
		"iss": sessIssuer, "aud": sessAudience, "sub": "user-42",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"workspace": globalid.Encode(globalid.Workspace, s.ws.ID),
	}
}

// rawToken assembles a token from its parts' JSON, signed with sig.
func rawToken(header, claims string, sig []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + enc(sig)
}

// bearer returns the client sending token as its credential.
func (s *sessAPI) bearer(t testing.TB, token string) *api {
	b := *s.api
	b.t, b.key = t, auth.Key(token)
	return &b
}

const intruderMutation = `mutation { createSegment(input: {name: "Intruder"}) { segment { id } userErrors { code } } }`

// TestSessionTokensRefused proves that every kind of bad token gets 401
// UNAUTHENTICATED, and that nothing runs for it: not a single SQL statement (one, the
// workspace lookup, for a token naming a workspace that does not exist, and for an
// expired one that is valid in every other way), and no
// mutation changes anything. Both with the JWKS alone and with an HS256 secret too.
func TestSessionTokensRefused(t *testing.T) {
	keys := sessKeys()
	rsaPub := &keys.rsa.PublicKey
	der, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	for _, setup := range []struct {
		name   string
		change func(*auth.JWTConfig)
	}{
		{"JWKS", nil},
		{"JWKS and HS256", func(c *auth.JWTConfig) { c.HS256Secret = sessSecret }},
	} {
		t.Run(setup.name, func(t *testing.T) {
			s := newSessionAPI(t, setup.change)
			other := s.as(t) // a workspace that exists, for the tampering case
			valid := s.claims()
			now := s.clock.Now()
			rs := func(c jwt.MapClaims) string { return authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", c) }
			validToken := rs(valid)
			parts := strings.Split(validToken, ".")
			enc := base64.RawURLEncoding.EncodeToString
			tamperedClaims, _ := json.Marshal(authtest.With(valid, map[string]any{"workspace": globalid.Encode(globalid.Workspace, other.ws.ID)}))
			escalated, _ := json.Marshal(authtest.With(valid, map[string]any{"scope": "read_write"}))
			sig := []byte(parts[2])
			flipped := append([]byte{}, sig...)
			if flipped[10] == 'A' {
				flipped[10] = 'B'
			} else {
				flipped[10] = 'A'
			}
			noneHeader := `{"alg":"none","typ":"JWT"}`
			validJSON, _ := json.Marshal(valid)

			cases := []struct {
				name  string
				token string
				stmts int64 // SQL statements the refusal may cost
			}{
				// An expired token costs the workspace's lookup: only a token that names
				// one is said to have expired (any other is invalid, and refreshing it
				// would not help).
				{"expired", rs(authtest.With(valid, map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix(), "nbf": nil})), 1},
				{"expired long ago", rs(authtest.With(valid, map[string]any{"exp": now.Add(-24 * time.Hour).Unix(), "iat": now.Add(-25 * time.Hour).Unix(), "nbf": nil})), 1},
				{"expired, wrong audience", rs(authtest.With(valid, map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix(), "nbf": nil, "aud": "another-api"})), 0},
				{"expired, workspace that does not exist", rs(authtest.With(valid, map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix(), "nbf": nil, "workspace": globalid.Encode(globalid.Workspace, 1<<40)})), 1},
				{"expired, issued after its exp", rs(authtest.With(valid, map[string]any{"exp": now.Add(-time.Minute).Unix()})), 0},
				{"without exp", rs(authtest.With(valid, map[string]any{"exp": nil})), 0},
				{"exp not a number", rs(authtest.With(valid, map[string]any{"exp": "tomorrow"})), 0},
				{"not valid yet (nbf)", rs(authtest.With(valid, map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), 0},
				{"issued in the future (iat)", rs(authtest.With(valid, map[string]any{"iat": now.Add(2 * time.Minute).Unix(), "nbf": nil})), 0},
				{"wrong audience", rs(authtest.With(valid, map[string]any{"aud": "another-api"})), 0},
				{"wrong audiences", rs(authtest.With(valid, map[string]any{"aud": []string{"a", "b"}})), 0},
				{"without audience", rs(authtest.With(valid, map[string]any{"aud": nil})), 0},
				{"wrong issuer", rs(authtest.With(valid, map[string]any{"iss": "https://evil.example/"})), 0},
				{"issuer without its trailing slash", rs(authtest.With(valid, map[string]any{"iss": strings.TrimSuffix(sessIssuer, "/")})), 0},
				{"without issuer", rs(authtest.With(valid, map[string]any{"iss": nil})), 0},
				{"alg none, empty signature", rawToken(noneHeader, string(validJSON), nil), 0},
				{"alg none, with a signature", rawToken(noneHeader, string(validJSON), []byte("x")), 0},
				{"alg None", rawToken(`{"alg":"None"}`, string(validJSON), []byte("x")), 0},
				{"HS256 signed with the RSA public key (PEM)", authtest.Sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", valid), 0},
				{"HS256 signed with the RSA public key (DER)", authtest.Sign(t, jwt.SigningMethodHS256, der, "rsa-1", valid), 0},
				{"HS256 signed with another secret", authtest.Sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", valid), 0},
				{"RS512 (not accepted)", authtest.Sign(t, jwt.SigningMethodRS512, keys.rsa, "rsa-1", valid), 0},
				{"PS256 (not accepted)", authtest.Sign(t, jwt.SigningMethodPS256, keys.rsa, "rsa-1", valid), 0},
				// Issued before the key set was fetched (for the earlier cases), which
				// would then have held its key: one issued since gets 503 until the set
				// may be fetched again (TestJWKSRefreshLimit).
				{"unknown kid", authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "attacker-1", authtest.With(valid, map[string]any{"iat": now.Add(-2 * time.Minute).Unix()})), 0},
				{"no kid", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "", valid), 0},
				{"known kid, another key", authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "rsa-1", valid), 0},
				{"ES256 with the RSA key's kid", authtest.Sign(t, jwt.SigningMethodES256, keys.ec, "rsa-1", valid), 0},
				{"RS256 with the EC key's kid", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "ec-1", valid), 0},
				{"tampered payload: another workspace", parts[0] + "." + enc(tamperedClaims) + "." + parts[2], 0},
				{"tampered payload: write scope added", parts[0] + "." + enc(escalated) + "." + parts[2], 0},
				{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipped), 0},
				{"signature cut", parts[0] + "." + parts[1] + "." + parts[2][:20], 0},
				{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(rs(authtest.With(valid, map[string]any{"sub": "x"})), ".")[2], 0},
				{"header swapped for jku", enc([]byte(`{"alg":"RS256","kid":"rsa-1","jku":"https://evil.example/jwks"}`)) + "." + parts[1] + "." + parts[2], 0},
				{"four segments", validToken + "." + parts[2], 0},
				{"too long", rs(authtest.With(valid, map[string]any{"pad": strings.Repeat("x", auth.MaxTokenBytes)})), 0},
				{"without workspace", rs(authtest.With(valid, map[string]any{"workspace": nil})), 0},
				{"workspace not a string", rs(authtest.With(valid, map[string]any{"workspace": s.ws.ID})), 0},
				{"workspace as a segment ID", rs(authtest.With(valid, map[string]any{"workspace": globalid.Encode(globalid.Segment, s.ws.ID)})), 0},
				{"workspace malformed", rs(authtest.With(valid, map[string]any{"workspace": "W_AQ=="})), 0},
				{"workspace in another claim", rs(authtest.With(valid, map[string]any{"workspace": nil, "org": globalid.Encode(globalid.Workspace, s.ws.ID)})), 0},
				{"sub not a string", rs(authtest.With(valid, map[string]any{"sub": 42})), 0},
				{"workspace that does not exist", rs(authtest.With(valid, map[string]any{"workspace": globalid.Encode(globalid.Workspace, 1<<40)})), 1},
				{"ES256 workspace that does not exist", authtest.Sign(t, jwt.SigningMethodES256, keys.ec, "ec-1", authtest.With(valid, map[string]any{"workspace": globalid.Encode(globalid.Workspace, 1<<40)})), 1},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c := s.bearer(t, tc.token)
					for _, q := range []string{intruderMutation, `{ workspace { id } }`} {
						res := c.post(q, nil)
						if res.Status != http.StatusUnauthorized || len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "UNAUTHENTICATED" || res.Data != nil {
							t.Fatalf("status %d, data %s, errors %+v", res.Status, res.Data, res.Errors)
						}
						if n := c.statements(); n != tc.stmts {
							t.Errorf("%d SQL statements, want %d", n, tc.stmts)
						}
					}
				})
			}

			t.Run("nothing was created", func(t *testing.T) {
				var n int
				if err := s.store.DB().QueryRowContext(context.Background(),
					"SELECT count(*) FROM segments WHERE name = 'Intruder'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d segments named Intruder", n)
				}
			})
			t.Run("the issuer was asked once", func(t *testing.T) {
				// Unknown kids refresh the key set at most once per minute: the first
				// fetch found it, and the clock did not move.
				if n := s.iss.hits.Load(); n != 1 {
					t.Errorf("%d JWKS fetches, want 1", n)
				}
			})
			t.Run("the valid token works", func(t *testing.T) {
				var out struct{ Workspace struct{ ID string } }
				s.bearer(t, validToken).do(`{ workspace { id } }`, nil, &out)
				if want := globalid.Encode(globalid.Workspace, s.ws.ID); out.Workspace.ID != want {
					t.Errorf("workspace %s, want %s", out.Workspace.ID, want)
				}
			})
		})
	}
}

// TestSessionTokensAccepted proves that RS256, ES256 and HS256 tokens act for the
// workspace they name, within the clock skew allowed, and that a session may write
// only when its scope claim says read_write.
func TestSessionTokensAccepted(t *testing.T) {
	keys := sessKeys()
	s := newSessionAPI(t, func(c *auth.JWTConfig) { c.HS256Secret = sessSecret })
	other := s.as(t)
	valid := s.claims()
	now := s.clock.Now()
	wsID := globalid.Encode(globalid.Workspace, s.ws.ID)

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"RS256", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", valid)},
		{"ES256", authtest.Sign(t, jwt.SigningMethodES256, keys.ec, "ec-1", valid)},
		{"HS256", authtest.Sign(t, jwt.SigningMethodHS256, sessSecret, "", valid)},
		{"several audiences, ours among them", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", authtest.With(valid, map[string]any{"aud": []string{"dashboard", sessAudience}}))},
		{"expired within the skew", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", authtest.With(valid, map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))},
		{"nbf within the skew", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", authtest.With(valid, map[string]any{"nbf": now.Add(10 * time.Second).Unix()}))},
		{"iat within the skew", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", authtest.With(valid, map[string]any{"iat": now.Add(10 * time.Second).Unix()}))},
		{"without sub, nbf, iat", authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", authtest.With(valid, map[string]any{"sub": nil, "nbf": nil, "iat": nil}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out struct {
				Workspace struct{ ID string }
				Segments  struct{ TotalCount int }
			}
			c := s.bearer(t, tc.token)
			c.do(`{ workspace { id } segments { totalCount } }`, nil, &out)
			if out.Workspace.ID != wsID {
				t.Errorf("workspace %s, want %s", out.Workspace.ID, wsID)
			}
		})
	}

	t.Run("another workspace's token acts for it", func(t *testing.T) {
		var out struct{ Workspace struct{ ID string } }
		s.bearer(t, authtest.Sign(t, jwt.SigningMethodES256, keys.ec, "ec-1", authtest.With(valid, map[string]any{"workspace": globalid.Encode(globalid.Workspace, other.ws.ID)}))).
			do(`{ workspace { id } }`, nil, &out)
		if want := globalid.Encode(globalid.Workspace, other.ws.ID); out.Workspace.ID != want {
			t.Errorf("workspace %s, want %s", out.Workspace.ID, want)
		}
	})

	t.Run("a session without the write scope may only read", func(t *testing.T) {
		for _, scope := range []any{nil, "", "openid profile", "read", []string{"read"}, "write", "READ_WRITE"} {
			c := s.bearer(t, authtest.Sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", authtest.With(valid, map[string]any{"scope": scope})))
			msg := c.fails("FORBIDDEN", intruderMutation, nil)
			if !strings.Contains(msg, "read_write") {
				t.Errorf("scope %v: message %q", scope, msg)
			}
			if n := c.statements(); n != 1 {
				t.Errorf("scope %v: %d statements, want 1 (the workspace lookup)", scope, n)
			}
		}
		var n int
		if err := s.store.DB().QueryRowContext(context.Background(),
			"SELECT count(*) FROM segments WHERE name = 'Intruder'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d segments named Intruder", n)
		}
	})

	t.Run("a session with the write scope may write", func(t *testing.T) {
		for i, scope := range []any{"openid read_write", []string{"profile", "read_write"}} {
			c := mutClient{s.bearer(t, authtest.Sign(t, jwt.SigningMethodHS256, sessSecret, "", authtest.With(valid, map[string]any{"scope": scope})))}
			c.addSegment(fmt.Sprintf("Made in a session %d", i))
		}
	})
}

// TestJWKSRefreshLimit proves the caching rule of the issuer's keys: known keys are
// served from the cache; unknown key IDs make the server fetch the key set again at
// most once per minimum interval, however many arrive and however concurrently, so a
// flood of made-up key IDs cannot hammer the issuer; a token with an unknown key ID
// is refused (401) when the set was fetched after the token was signed, and otherwise
// gets 503 with Retry-After until a fetch may tell, so that a key the issuer adds
// gets 503 within the interval (not 401, which signed dashboard users out for up to
// a minute after each rotation) and works after it; a key it withdraws stops working
// once the cached set is an hour old (the first token after that is still checked
// with it, while the refresh that drops the key runs in the background); and an
// issuer that is down leaves the cached keys working, while a token with a key that
// is not cached gets 503 with Retry-After (not 401) and the fetch is tried again
// after a backoff of seconds, not after the interval.
func TestJWKSRefreshLimit(t *testing.T) {
	keys := sessKeys()
	var jwksLog logtest.Buffer
	s := newSessionAPI(t, func(c *auth.JWTConfig) { c.Log = jwksLog.Logger() })
	tokenWith := func(kid string, key any, claims jwt.MapClaims) string {
		m := jwt.SigningMethod(jwt.SigningMethodRS256)
		if _, ok := key.(*ecdsa.PrivateKey); ok {
			m = jwt.SigningMethodES256
		}
		return authtest.Sign(t, m, key, kid, claims)
	}
	token := func(kid string, key any) string { return tokenWith(kid, key, s.claims()) }
	// issuedBefore are claims issued two minutes ago: before the last fetch, in the
	// steps that use them.
	issuedBefore := func() jwt.MapClaims {
		return authtest.With(s.claims(), map[string]any{"iat": s.clock.Now().Add(-2 * time.Minute).Unix()})
	}
	send := func(tok string) rawResponse {
		res, err := sendRaw(s.url, http.MethodPost, "Bearer "+tok, `{ workspace { id } }`, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	status := func(tok string) int { return send(tok).status }
	expect := func(step string, tok string, want int, hits int64) {
		t.Helper()
		res := send(tok)
		if res.status != want {
			t.Errorf("%s: status %d, want %d", step, res.status, want)
		}
		if ra := res.header.Get("Retry-After"); want == http.StatusServiceUnavailable && (ra == "" || ra == "0") {
			t.Errorf("%s: 503 with Retry-After %q", step, ra)
		}
		if got := s.iss.hits.Load(); hits >= 0 && got != hits {
			t.Errorf("%s: %d JWKS fetches in all, want %d", step, got, hits)
		}
	}
	// flood sends n tokens with made-up kids and claims from 32 goroutines; each must
	// get one of the statuses of want (503s with a Retry-After of 1 to 60 s).
	flood := func(step string, n int, claims jwt.MapClaims, want ...int) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[int]int{}
		jobs := make(chan string)
		for range 32 {
			wg.Go(func() {
				for tok := range jobs {
					res := send(tok)
					ok := slices.Contains(want, res.status)
					if ra, err := strconv.Atoi(res.header.Get("Retry-After")); res.status == http.StatusServiceUnavailable && (err != nil || ra < 1 || ra > 60) {
						ok = false
					}
					mu.Lock()
					if got[res.status]++; !ok {
						got[0]++
					}
					mu.Unlock()
				}
			})
		}
		// Made-up kids on a signed token: the kid is looked up before the signature
		// is checked, so these cost the server what real forgeries would.
		rest := strings.SplitN(tokenWith("attacker", keys.attacker, claims), ".", 2)[1]
		start := time.Now()
		for i := range n {
			h := fmt.Sprintf(`{"alg":"RS256","typ":"JWT","kid":"bogus-%s-%d"}`, step, i)
			jobs <- base64.RawURLEncoding.EncodeToString([]byte(h)) + "." + rest
		}
		close(jobs)
		wg.Wait()
		if got[0] != 0 {
			t.Errorf("%s: of %d bogus tokens, %d not answered %v (with Retry-After): statuses %v", step, n, got[0], want, got)
		}
		t.Logf("%s: %d tokens with unknown kids in %v, statuses %v; JWKS fetches so far: %d", step, n, time.Since(start).Round(time.Millisecond), got, s.iss.hits.Load())
	}

	expect("first token", token("rsa-1", keys.rsa), 200, 1)
	expect("known key, cached", token("rsa-1", keys.rsa), 200, 1)
	expect("other known key, cached", token("ec-1", keys.ec), 200, 1)

	// Tokens signed before the set was fetched: their keys would be in it.
	flood("flood issued before the fetch", 500, issuedBefore(), http.StatusUnauthorized)
	// Tokens signed since: their keys may be new, the set cannot be fetched again yet.
	flood("flood within the interval", 500, s.claims(), http.StatusServiceUnavailable)
	expect("after the floods", token("rsa-1", keys.rsa), 200, 1)

	s.clock.Advance(time.Minute + time.Second)
	// One of them fetches the set again, and is refused once the set comes without its
	// key; the rest wait for that fetch, or come after it, and cannot tell.
	flood("flood after the interval", 500, s.claims(), http.StatusUnauthorized, http.StatusServiceUnavailable)
	if got := s.iss.hits.Load(); got != 2 {
		t.Errorf("after a flood past the interval: %d JWKS fetches in all, want 2", got)
	}

	// The issuer rotates: a new key appears. Within the interval it cannot be fetched:
	// 503, to retry when it can, not 401.
	s.iss.publish(map[string]any{"rsa-1": &keys.rsa.PublicKey, "ec-1": &keys.ec.PublicKey, "rsa-2": &keys.rsa2.PublicKey})
	expect("new key within the interval", token("rsa-2", keys.rsa2), 503, 2)
	res := send(token("rsa-2", keys.rsa2))
	if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("new key within the interval: Retry-After %q, want when the interval ends (1 to 60 s)", res.header.Get("Retry-After"))
	}
	s.clock.Advance(time.Minute + time.Second)
	expect("new key after the interval", token("rsa-2", keys.rsa2), 200, 3)
	expect("new key, cached", token("rsa-2", keys.rsa2), 200, 3)
	flood("flood right after a refresh", 200, s.claims(), http.StatusServiceUnavailable)
	flood("flood right after a refresh, issued before it", 200, issuedBefore(), http.StatusUnauthorized)
	if got := s.iss.hits.Load(); got != 3 {
		t.Errorf("%d JWKS fetches in all, want 3", got)
	}

	// The issuer withdraws rsa-1: it works until the cached set is an hour old.
	s.iss.publish(map[string]any{"rsa-2": &keys.rsa2.PublicKey, "ec-1": &keys.ec.PublicKey})
	s.clock.Advance(30 * time.Minute)
	expect("withdrawn key, cache young", token("rsa-1", keys.rsa), 200, 3)
	s.clock.Advance(31 * time.Minute)
	// Signed before the refresh (by more than the 30 s of clock skew allowed).
	withdrawn := tokenWith("rsa-1", keys.rsa, issuedBefore())
	expect("withdrawn key, cache stale", withdrawn, 200, -1)
	eventually(t, "withdrawn key, once the set is refreshed", func() error {
		if got := status(withdrawn); got != http.StatusUnauthorized {
			return fmt.Errorf("status %d, want 401", got)
		}
		return nil
	})
	// Signed since, it could be a new key's: never accepted, 503 until a fetch tells.
	expect("withdrawn key, a token signed since", token("rsa-1", keys.rsa), 503, 4)
	expect("kept key", token("rsa-2", keys.rsa2), 200, 4)

	// The issuer goes down: cached keys keep working (even past the hour, the
	// refresh failing in the background); a token that needs a fetch gets 503 with
	// Retry-After, and the fetch is tried again after a backoff (1 s, 2 s, 4 s... up
	// to 10 s).
	s.iss.fail.Store(true)
	s.clock.Advance(2 * time.Hour)
	expect("issuer down, cached key, stale", token("rsa-2", keys.rsa2), 200, -1)
	eventually(t, "the background refresh's failure logged", func() error {
		if !strings.Contains(jwksLog.String(), "fetch the JWT issuer's keys") {
			return errors.New("not logged")
		}
		return nil
	})
	expect("issuer down, cached key", token("ec-1", keys.ec), 200, 5)
	s.clock.Advance(time.Minute + time.Second)
	expect("issuer down, unknown key", token("rsa-3", keys.attacker), 503, 6)
	expect("issuer down, unknown key again", token("rsa-4", keys.attacker), 503, 6)
	s.clock.Advance(3 * time.Second)
	expect("issuer down, after the backoff", token("rsa-4", keys.attacker), 503, 7)
	// It comes back with a key added meanwhile: seconds later, not a minute, that
	// key works.
	s.iss.publish(map[string]any{"rsa-2": &keys.rsa2.PublicKey, "ec-1": &keys.ec.PublicKey, "rsa-3": &keys.rsa.PublicKey})
	s.iss.fail.Store(false)
	s.clock.Advance(5 * time.Second)
	expect("issuer back", token("rsa-3", keys.rsa), 200, 8)
	expect("issuer back, cached key", token("rsa-2", keys.rsa2), 200, 8)

	// A day without a fetch that succeeds: the cached keys are no longer used (503,
	// not 401), so that a withdrawn key stops working even if whoever holds it keeps
	// the server from fetching the set.
	s.iss.fail.Store(true)
	s.clock.Advance(24 * time.Hour)
	eventually(t, "cached key, after a day of failed fetches", func() error {
		s.clock.Advance(10 * time.Second) // past each backoff
		if got := status(token("rsa-2", keys.rsa2)); got != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d, want 503", got)
		}
		return nil
	})
	s.iss.fail.Store(false)
	s.clock.Advance(10 * time.Second)
	expect("issuer back after a day", token("rsa-2", keys.rsa2), 200, -1)
}

// TestForgedTokensHoldNoPlace: session tokens waiting for the issuer's keys (a key ID
// the server does not know, made up at no cost) wait without a place among the
// server's running requests, so that an API key's request is served at once while
// they wait, and at most jwksMaxWaiters of them wait for one fetch. Forged tokens
// (plausible claims, a made-up kid, a junk signature) against an issuer that hangs
// held the server's places for the fetch's 5 s timeout: 45 of them stalled every
// workspace's API keys for 3.9-4.7 s, and here the API key's request waited 4.7 s for
// a place.
func TestForgedTokensHoldNoPlace(t *testing.T) {
	const running = 2
	s := newSessionAPIWith(t, nil, server.Config{MaxRunning: running, MaxWaiting: 100, RequestTimeout: 8 * time.Second})
	s.iss.hang.Store(true)
	claims, err := json.Marshal(s.claims())
	if err != nil {
		t.Fatal(err)
	}
	const forged = 3 * running
	replies := make(chan rawResponse, forged)
	for i := range forged {
		tok := rawToken(fmt.Sprintf(`{"alg":"RS256","typ":"JWT","kid":"forged-%d"}`, i), string(claims), []byte("junk"))
		go func() {
			res, err := sendRaw(s.url, http.MethodPost, "Bearer "+tok, `{ workspace { id } }`, nil)
			if err != nil {
				res.status = -1
			}
			replies <- res
		}()
	}
	eventually(t, "the forged tokens' fetch", func() error {
		if s.iss.hits.Load() == 0 {
			return errors.New("no fetch yet")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // room for the rest to start waiting
	start := time.Now()
	r := s.query(`{ segments { totalCount } }`, nil)
	took := time.Since(start)
	t.Logf("an API key's request, while %d forged tokens waited for the issuer: %d in %v", forged, r.status, took.Round(time.Millisecond))
	if r.status != http.StatusOK || len(r.res.Errors) != 0 {
		t.Fatalf("an API key's request while forged tokens waited: %d %s", r.status, r.body)
	}
	if took > time.Second {
		t.Errorf("an API key's request waited %v for a place held by forged tokens", took.Round(time.Millisecond))
	}
	// None of them is let in: they get 503 (the fetch failed, or too many waited).
	for range forged {
		if res := <-replies; res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
			t.Errorf("a forged token: %d %s (Retry-After %q), want 503 with Retry-After", res.status, res.body, res.header.Get("Retry-After"))
		}
	}
	if n := s.iss.hits.Load(); n != 1 {
		t.Errorf("%d fetches of the key set, want 1", n)
	}
}
