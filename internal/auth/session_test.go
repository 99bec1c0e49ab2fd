package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
)

const (
	testIssuer   = "https://login.example.com/"
	testAudience = "segments-api"
	testWS       = 7 // the one workspace sessionTable holds
)

var testSecret = []byte("a shared secret of at least 32 bytes, for HS256")

// testRSAKeys are the issuer's and an attacker's keys, made once (RSA generation is
// slow under the race detector).
var testRSAKeys = sync.OnceValue(func() (k struct{ issuer, attacker *rsa.PrivateKey }) {
	for _, p := range []**rsa.PrivateKey{&k.issuer, &k.attacker} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		*p = key
	}
	return k
})

// jwksBody is a key set publishing key as kid.
func jwksBody(kid string, key *rsa.PublicKey) []byte {
	enc := base64.RawURLEncoding.EncodeToString
	b, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": enc(key.N.Bytes()), "e": enc(big.NewInt(int64(key.E)).Bytes()),
	}}})
	return b
}

// testIssuerServer publishes the issuer's key as "rsa-1"; fail makes it answer 500.
type testIssuerServer struct {
	url  string
	hits atomic.Int64
	fail atomic.Bool
}

func newTestIssuer(t *testing.T) *testIssuerServer {
	t.Helper()
	iss := &testIssuerServer{}
	body := jwksBody("rsa-1", &testRSAKeys().issuer.PublicKey)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.hits.Add(1)
		if iss.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	iss.url = srv.URL + "/jwks.json"
	return iss
}

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sessionTable is a Workspaces holding workspace testWS and no API key.
type sessionTable struct{}

func (sessionTable) AuthenticateKey(context.Context, []byte) (crm.Workspace, crm.APIKey, error) {
	return crm.Workspace{}, crm.APIKey{}, crm.Errorf(crm.CodeNotFound, nil, "no such key")
}

func (sessionTable) Workspace(_ context.Context, id int64) (crm.Workspace, error) {
	if id != testWS {
		return crm.Workspace{}, crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
	}
	return crm.Workspace{ID: testWS, Name: "Acme"}, nil
}

// testClaims are valid claims for workspace testWS at now.
func testClaims(now time.Time, changes map[string]any) jwt.MapClaims {
	return authtest.With(jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "user-42",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"workspace": globalid.Encode(globalid.Workspace, testWS),
	}, changes)
}

// sessionServer returns a function that sends one request with the given
// Authorization headers through Require, accepting sessions checked by v.
func sessionServer(t *testing.T, v *JWTVerifier) func(authorization ...string) *httptest.ResponseRecorder {
	t.Helper()
	h := Require(sessionTable{}, slog.New(slog.NewTextHandler(io.Discard, nil)), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		w.Header().Set("X-Workspace", strconv.FormatInt(p.Workspace.ID, 10))
	}), WithJWT(v))
	return func(authorization ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		for _, a := range authorization {
			r.Header.Add("Authorization", a)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
}

// errorOf returns the extensions.code and message of a refusal.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var body struct {
		Errors []struct {
			Message    string
			Extensions struct{ Code string }
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	return body.Errors[0].Extensions.Code, body.Errors[0].Message
}
