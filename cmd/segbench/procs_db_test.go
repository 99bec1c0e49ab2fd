package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestOursChargesTheRateLimit: the benchmark's server of ours charges every request
// to its API key's rate-limit bucket, the statement a default serve sends on the
// limiter's own connections (it ran without: PostgreSQL spent 0.28-0.30 ms of CPU
// on a W1 request at 100/s, against 0.61-0.69 with the charge), at a capacity no
// benchmark request reaches; with the limiter off (--rate-limit=false, for an A/B)
// it charges nothing.
func TestOursChargesTheRateLimit(t *testing.T) {
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 4, Tenant: storetest.AuthTenant})
	ws, key := storetest.Workspace(t, owner)
	charged := func() (n int64, tokens float64) {
		storetest.Exec(t, owner.DB(), "SELECT 1") // the owner's pool is open
		row := owner.DB().QueryRow(`SELECT count(*), coalesce(min(tokens), 0) FROM rate_limit_buckets WHERE workspace_id = $1`, ws.ID)
		if err := row.Scan(&n, &tokens); err != nil {
			t.Fatal(err)
		}
		return n, tokens
	}
	for _, on := range []bool{false, true} {
		h, err := oursHandler(app, 4, on)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ segments(first: 50) { nodes { id } } }"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+string(key))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"errors"`) {
				t.Fatalf("rate limit %v: %d %s", on, rec.Code, rec.Body)
			}
		}
		n, tokens := charged()
		switch {
		case !on && n != 0:
			t.Errorf("with the rate limit off, %d buckets were charged", n)
		case on && n != 1:
			t.Errorf("with the rate limit on, %d buckets were charged, want the API key's", n)
		case on && (tokens >= benchRateCapacity || tokens < benchRateCapacity-1000):
			t.Errorf("the bucket holds %v points after three requests, want a few below %v", tokens, float64(benchRateCapacity))
		}
	}
}
