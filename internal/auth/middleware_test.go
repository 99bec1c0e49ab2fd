package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
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
