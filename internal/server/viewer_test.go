package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
)

const viewerQuery = `{ viewer { kind scope canMutate name apiKeyId expiresAt } }`

// viewerOut is Query.viewer as a client reads it.
type viewerOut struct {
	Kind      string  `json:"kind"`
	Scope     string  `json:"scope"`
	CanMutate bool    `json:"canMutate"`
	Name      *string `json:"name"`
	APIKeyID  *int64  `json:"apiKeyId"`
	ExpiresAt *string `json:"expiresAt"`
}

// viewerOf reads c's Query.viewer, and checks what every credential's must: it
// costs 1 (an object of scalars, as Query.workspace), it sends no statement beyond
// authentication's, it shows no secret (the credential), and canMutate says what the server does with a mutation: run it,
// or refuse it with FORBIDDEN before it runs.
func viewerOf(t *testing.T, c *api) viewerOut {
	t.Helper()
	c = c.using(t, c.key)
	base := c.baseline()
	r := c.query(viewerQuery, nil)
	if r.status != 200 || len(r.res.Errors) > 0 {
		t.Fatalf("viewer: status %d, body %s", r.status, r.body)
	}
	if strings.Contains(r.body, string(c.key)) {
		t.Errorf("viewer shows the credential: %s", r.body)
	}
	if n := c.statements(); n != base {
		t.Errorf("viewer sent %d statements, %d besides authentication's", n, n-base)
	}
	if r.cost == nil || r.cost.RequestedQueryCost != 1 {
		t.Errorf("viewer cost %+v, want 1", r.cost)
	}
	var out struct{ Viewer viewerOut }
	if err := json.Unmarshal(r.res.Data, &out); err != nil {
		t.Fatal(err)
	}
	// A segment ID no workspace has: the mutation changes nothing where it runs.
	m := c.post(`mutation { deleteSegment(input: {id: "S_AQ"}) { userErrors { code } } }`, nil)
	refused := len(m.Errors) == 1 && m.Errors[0].Extensions["code"] == "FORBIDDEN"
	if out.Viewer.CanMutate == refused {
		t.Errorf("viewer.canMutate %v, but a mutation got %+v", out.Viewer.CanMutate, m.Errors)
	}
	return out.Viewer
}

// TestViewer proves Query.viewer for each kind of credential: an API key's kind,
// scope, name, ID (the CLI's) and expiry, as the key was made; a session's scope for
// each form of its scope claim (docs/security.md), its subject and its exp. No
// secret shows: neither the key, its hash nor the token.
func TestViewer(t *testing.T) {
	s := newSessionAPI(t, func(c *auth.JWTConfig) { c.HS256Secret = sessSecret })
	ptr := func(s string) *string { return &s }

	t.Run("API keys", func(t *testing.T) {
		ctx := t.Context()
		// The workspace's first key: read_write, without a name or an expiry.
		keys, err := s.store.APIKeys(ctx, s.ws.ID)
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys %v, %v", keys, err)
		}
		first := keys[0]
		read, readKey := s.withKey(t, store.NewAPIKey{Name: "Shopify sync", Scope: crm.ScopeRead})
		expiring, expKey := s.withKey(t, store.NewAPIKey{Name: "Nightly export", Scope: crm.ScopeReadWrite, ExpiresIn: 90 * 24 * time.Hour})
		for _, tc := range []struct {
			name string
			c    *api
			want viewerOut
		}{
			{"read_write", s.api, viewerOut{Kind: "API_KEY", Scope: "READ_WRITE", CanMutate: true, APIKeyID: &first.ID}},
			{"read", read, viewerOut{Kind: "API_KEY", Scope: "READ", Name: ptr("Shopify sync"), APIKeyID: &readKey.ID}},
			{"expiring", expiring, viewerOut{Kind: "API_KEY", Scope: "READ_WRITE", CanMutate: true, Name: ptr("Nightly export"), APIKeyID: &expKey.ID,
				ExpiresAt: ptr(expKey.ExpiresAt.UTC().Format(time.RFC3339Nano))}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := viewerOf(t, tc.c); !equalViewer(got, tc.want) {
					t.Errorf("viewer %s, want %s", show(got), show(tc.want))
				}
			})
		}
	})

	t.Run("sessions", func(t *testing.T) {
		valid := s.claims()
		exp := time.Unix(valid["exp"].(int64), 0).UTC().Format(time.RFC3339Nano)
		for _, tc := range []struct {
			name  string
			scope any // nil: no scope claim
			write bool
		}{
			{"no scope claim", nil, false},
			{"empty", "", false},
			{"space-separated, without read_write", "openid profile", false},
			{"space-separated, with read_write", "openid read_write", true},
			{"read_write alone", "read_write", true},
			{"array, with read_write", []string{"profile", "read_write"}, true},
			{"array, without read_write", []string{"read"}, false},
			{"comma-separated", "read_write,profile", false},
			{"upper case", "READ_WRITE", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				claims := authtest.With(valid, map[string]any{"scope": tc.scope})
				token := authtest.Sign(t, jwt.SigningMethodHS256, sessSecret, "", claims)
				want := viewerOut{Kind: "SESSION", Scope: "READ", Name: ptr("user-42"), ExpiresAt: &exp}
				if tc.write {
					want.Scope, want.CanMutate = "READ_WRITE", true
				}
				got := viewerOf(t, s.bearer(t, token))
				if !equalViewer(got, want) {
					t.Errorf("viewer %s, want %s", show(got), show(want))
				}
			})
		}
		t.Run("without sub", func(t *testing.T) {
			token := authtest.Sign(t, jwt.SigningMethodHS256, sessSecret, "", authtest.With(valid, map[string]any{"sub": nil}))
			want := viewerOut{Kind: "SESSION", Scope: "READ", ExpiresAt: &exp}
			if got := viewerOf(t, s.bearer(t, token)); !equalViewer(got, want) {
				t.Errorf("viewer %s, want %s", show(got), show(want))
			}
		})
	})
}

// equalViewer compares two viewers, their expiries as instants.
func equalViewer(a, b viewerOut) bool {
	eq := func(x, y *string) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	instant := func(x, y *string) bool {
		if x == nil || y == nil {
			return x == y
		}
		tx, errX := time.Parse(time.RFC3339Nano, *x)
		ty, errY := time.Parse(time.RFC3339Nano, *y)
		return errX == nil && errY == nil && tx.Equal(ty)
	}
	return a.Kind == b.Kind && a.Scope == b.Scope && a.CanMutate == b.CanMutate && eq(a.Name, b.Name) && instant(a.ExpiresAt, b.ExpiresAt) &&
		(a.APIKeyID == nil && b.APIKeyID == nil || a.APIKeyID != nil && b.APIKeyID != nil && *a.APIKeyID == *b.APIKeyID)
}

func show(v viewerOut) string {
	b, _ := json.Marshal(v)
	return string(b)
}
