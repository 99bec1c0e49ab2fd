package auth

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
)

// keyTable is a Workspaces with one key, counting its lookups.
type keyTable struct {
	hash    []byte
	expires *time.Time
	revoked atomic.Bool
	lookups atomic.Int64
}

func (k *keyTable) AuthenticateKey(_ context.Context, hash []byte) (crm.Workspace, crm.APIKey, error) {
	k.lookups.Add(1)
	if !bytes.Equal(hash, k.hash) || k.revoked.Load() || (k.expires != nil && !time.Now().Before(*k.expires)) {
		return crm.Workspace{}, crm.APIKey{}, crm.Errorf(crm.CodeNotFound, nil, "no such key")
	}
	return crm.Workspace{ID: 7, Name: "Acme"}, crm.APIKey{ID: 3, Scope: crm.ScopeRead, ExpiresAt: k.expires}, nil
}

func (k *keyTable) Workspace(context.Context, int64) (crm.Workspace, error) {
	return crm.Workspace{}, crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
}

func newKeyTable(t *testing.T) (*keyTable, Key) {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return &keyTable{hash: key.Hash()}, key
}

// serveWith returns a function sending one request with key through Require, that
// reports the status and the workspace the request acted for.
func serveWith(t *testing.T, table *keyTable, opts ...Option) func(key Key) (int, int64) {
	t.Helper()
	h := Require(table, slog.New(slog.NewTextHandler(io.Discard, nil)), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		if p.KeyID != 3 || p.Scope != crm.ScopeRead || p.Kind != KindAPIKey {
			t.Errorf("principal %+v", p)
		}
		w.Header().Set("X-Workspace", "ok")
	}), opts...)
	return func(key Key) (int, int64) {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Authorization", "Bearer "+string(key))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Header().Get("X-Workspace") == "ok" {
			return w.Code, 7
		}
		return w.Code, 0
	}
}

func TestKeyCache(t *testing.T) {
	t.Run("off: every request asks, a revoked key is refused at once", func(t *testing.T) {
		table, key := newKeyTable(t)
		send := serveWith(t, table)
		for range 3 {
			if code, ws := send(key); code != 200 || ws != 7 {
				t.Fatalf("%d %d", code, ws)
			}
		}
		table.revoked.Store(true)
		if code, _ := send(key); code != 401 {
			t.Errorf("revoked key: %d", code)
		}
		if n := table.lookups.Load(); n != 4 {
			t.Errorf("%d lookups, want 4", n)
		}
	})

	t.Run("refusals are not kept", func(t *testing.T) {
		_, key := newKeyTable(t) // a key other does not hold
		other, _ := newKeyTable(t)
		send := serveWith(t, other, WithKeyCache(time.Hour))
		for range 3 {
			if code, _ := send(key); code != 401 {
				t.Fatalf("unknown key: %d", code)
			}
		}
		if n := other.lookups.Load(); n != 3 {
			t.Errorf("%d lookups, want 3", n)
		}
	})

	t.Run("an accepted key is asked once per ttl; revocation shows within it", func(t *testing.T) {
		table, key := newKeyTable(t)
		const ttl = 300 * time.Millisecond
		send := serveWith(t, table, WithKeyCache(ttl))
		start := time.Now()
		for range 5 {
			if code, ws := send(key); code != 200 || ws != 7 {
				t.Fatalf("%d %d", code, ws)
			}
		}
		if n := table.lookups.Load(); n != 1 && time.Since(start) < ttl {
			t.Fatalf("%d lookups within the ttl, want 1", n)
		}
		table.revoked.Store(true)
		deadline := time.Now().Add(ttl + time.Second)
		for {
			code, _ := send(key)
			if code == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a revoked key still works after the ttl")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := table.lookups.Load(); n != 2 {
			t.Errorf("%d lookups, want 2: the first and the one after the ttl", n)
		}
	})

	t.Run("an entry never outlives the key's expiry", func(t *testing.T) {
		table, key := newKeyTable(t)
		expires := time.Now().Add(200 * time.Millisecond)
		table.expires = &expires
		send := serveWith(t, table, WithKeyCache(time.Hour))
		if code, _ := send(key); code != 200 {
			t.Fatalf("%d", code)
		}
		time.Sleep(time.Until(expires) + 10*time.Millisecond)
		if code, _ := send(key); code != 401 {
			t.Errorf("expired key, cached for an hour: %d", code)
		}
	})

	t.Run("an expiry set after the key was cached (a rotation) shows within the ttl, not at once", func(t *testing.T) {
		table, key := newKeyTable(t)
		const ttl = 300 * time.Millisecond
		send := serveWith(t, table, WithKeyCache(ttl))
		start := time.Now()
		if code, _ := send(key); code != 200 {
			t.Fatalf("%d", code)
		}
		rotated := time.Now() // a rotation with no grace
		table.expires = &rotated
		if code, _ := send(key); code != 200 && time.Since(start) < ttl {
			t.Errorf("rotated key within the ttl: %d; the cache was to keep it (the doc says so)", code)
		}
		time.Sleep(time.Until(start.Add(ttl)) + 10*time.Millisecond)
		if code, _ := send(key); code != 401 {
			t.Errorf("rotated key after the ttl: %d", code)
		}
	})

	t.Run("the cache stays bounded", func(t *testing.T) {
		c := &keyCache{ttl: time.Hour, max: 3, entries: map[string]cachedKey{}}
		now := time.Now()
		for i := range 10 {
			c.put([]byte{byte(i)}, Principal{KeyID: int64(i)}, nil, now)
			if len(c.entries) > 3 {
				t.Fatalf("%d entries", len(c.entries))
			}
		}
		if p, ok := c.get([]byte{9}, now); !ok || p.KeyID != 9 {
			t.Errorf("latest entry: %+v %v", p, ok)
		}
		if _, ok := c.get([]byte{9}, now.Add(time.Hour)); ok {
			t.Error("an entry outlived its ttl")
		}
	})
}
