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

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"

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

// TestParsedChargeCoversTheHeap: what the parsed-query cache charges a document
// (parsedCharge) is at least the heap its parsed and validated document keeps, for
// every large valid document of limitstest's corpus, so that parsedBytes bounds the
// cache's memory whatever clients send. Charged by tokens alone, documents of
// __typename kept 399 bytes a token against 320 charged (validation gives each its
// own field definition): 38 MB of heap for 31 MB charged.
func TestParsedChargeCoversTheHeap(t *testing.T) {
	for _, d := range limitstest.Adversarial(limits.Defaults) {
		tokens, _ := limits.CountTokens(d.Query, -1)
		if !d.Valid || tokens < 1000 { // smaller ones: the collector's noise
			continue
		}
		exec := newExecutor(Options{})
		c := newBoundedCache(1<<20, 1<<40, func(query string, _ *ast.QueryDocument) int { return len(query) })
		exec.SetQueryCache(c)
		const n = 10
		before := heapAlloc()
		for i := range n {
			exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: distinctDoc(d.Query, i), Variables: d.Variables})
		}
		kept := (int64(heapAlloc()) - int64(before)) / n
		if c.order.Len() != n {
			t.Fatalf("%s: %d of %d documents cached", d.Name, c.order.Len(), n)
		}
		charged := parsedCharge(d.Query, nil)
		t.Logf("%s: %d tokens, heap %d B a document, charged %d", d.Name, tokens, kept, charged)
		if kept > int64(charged) {
			t.Errorf("%s: a parsed document keeps %d bytes of heap, charged %d (%d tokens: %.0f bytes a token)",
				d.Name, kept, charged, tokens, float64(kept)/float64(tokens))
		}
		runtime.KeepAlive(exec)
		runtime.KeepAlive(c)
	}
}
