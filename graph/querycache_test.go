package graph

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/limits/limitstest"
)

// heapAlloc is the heap in use after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// distinctDoc makes query distinct for each i by a suffix of characters the lexer
// ignores, so that each is a new document to the caches.
func distinctDoc(query string, i int) string {
	var b strings.Builder
	b.WriteString(query)
	b.WriteByte('\n')
	for range 10 {
		b.WriteByte(" \t,"[i%3])
		i /= 3
	}
	return b.String()
}

// maxCachedHeap is the most heap the parsed-query cache (parsedBytes, an upper
// bound of its documents' heap) and the limits' cache of checked documents (their
// text, cacheBytes) may keep, with 8 MB for the rest of the test's garbage.
const maxCachedHeap = parsedBytes + cacheBytes + 8<<20

// TestQueryCachesBoundedByMemory: documents within the limits, each different, sent
// one after the other, keep at most maxCachedHeap of heap alive in the caches the
// handler installs. Bounded by their text, the parsed-query cache kept 8 MB of
// 9,000-item lists (63 kB of text, 2 MB of parsed document each): 270 MB; and the
// documents that passed the limits were remembered by count alone, 1,000 of up to
// 256 kB of text (comments made spaces, whitespace, commas).
func TestQueryCachesBoundedByMemory(t *testing.T) {
	srv := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: &Resolver{}}))
	srv.AddTransport(httpTransport{})
	useCaches(srv)
	useLimits(srv, slog.New(slog.DiscardHandler), Options{})
	docs := map[string]limitstest.Doc{}
	for _, d := range limitstest.Adversarial(limits.Defaults) {
		docs[d.Name] = d
	}
	send := func(query string) {
		b, _ := json.Marshal(map[string]any{"query": query})
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(auth.WithPrincipal(req.Context(), auth.Principal{
			Workspace: crm.Workspace{ID: 1}, Kind: auth.KindAPIKey, Scope: crm.ScopeReadWrite}))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if body := rec.Body.String(); !strings.Contains(body, limits.CodeMaxCost) && !strings.Contains(body, `"__typename":"Query"`) {
			t.Fatalf("%.60q: %d %.300s", query, rec.Code, rec.Body)
		}
	}
	before, began := heapAlloc(), time.Now()
	// Parsed, validated and cached, then refused for their cost: the most parsed
	// document per token of text the limits let through.
	list := docs["9,000 list items (over the cost: each ID is an object read)"].Query
	for i := range 40 {
		send(distinctDoc(list, i))
	}
	check := func(what string) {
		t.Helper()
		grown := int64(heapAlloc()) - int64(before)
		t.Logf("%s: heap grown by %d MB (%v)", what, grown>>20, time.Since(began))
		if grown > maxCachedHeap {
			t.Errorf("%s: the caches keep %d MB of heap alive, more than %d MB", what, grown>>20, maxCachedHeap>>20)
		}
	}
	check("lists")
	// Long text that passes the limits, and is parsed into nearly nothing (byte order
	// marks: the cheapest to lex of such texts, comments are made spaces all the same).
	blank := docs["byte order marks"].Query
	for i := range 250 {
		send(distinctDoc(blank, i))
	}
	check("blank text")
	runtime.KeepAlive(srv)
}
