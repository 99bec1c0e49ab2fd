package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
)

// TestCachesBoundedByBytes: the parsed-query cache keeps at most cacheBytes of query
// text, however few the documents, the most recently used first; a document larger
// than that alone is not kept. Bounded by count alone, 1,000 documents of 250 kB (a
// comment costs nothing to send) stayed in memory for good: 260 MB.
func TestCachesBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	c := newBoundedCache(cacheSize, cacheBytes, func(query string, _ *ast.QueryDocument) int { return len(query) })
	doc := func(i int) string { return fmt.Sprintf("#%d%s\n{ __typename }", i, strings.Repeat("x", 250_000)) }
	for i := range 1000 {
		c.Add(ctx, doc(i), &ast.QueryDocument{})
	}
	if c.bytes > cacheBytes {
		t.Errorf("the cache holds %d bytes of text, more than %d", c.bytes, cacheBytes)
	}
	if n := c.order.Len(); n != cacheBytes/len(doc(999)) {
		t.Errorf("the cache holds %d documents of %d bytes, want %d", n, len(doc(999)), cacheBytes/len(doc(999)))
	}
	for _, i := range []int{999, 990} {
		if _, ok := c.Get(ctx, doc(i)); !ok {
			t.Errorf("document %d, among the last added, is not kept", i)
		}
	}
	// The oldest document kept, used again, outlives the next oldest.
	oldest := 1000 - c.order.Len()
	c.Get(ctx, doc(oldest))
	c.Add(ctx, doc(1000), &ast.QueryDocument{})
	if _, ok := c.Get(ctx, doc(oldest)); !ok {
		t.Errorf("document %d, used again, is not kept", oldest)
	}
	if _, ok := c.Get(ctx, doc(oldest+1)); ok {
		t.Errorf("document %d, the least recently used, is kept", oldest+1)
	}
	huge := strings.Repeat("y", cacheBytes+1)
	c.Add(ctx, huge, &ast.QueryDocument{})
	if _, ok := c.Get(ctx, huge); ok || c.bytes > cacheBytes {
		t.Errorf("a document larger than the cache is kept (%d bytes held)", c.bytes)
	}

	// Small documents are bounded by their number.
	small := newBoundedCache(cacheSize, cacheBytes, func(query string, _ *ast.QueryDocument) int { return len(query) })
	smallDoc := func(i int) string { return fmt.Sprintf("#%d\n{ segments { totalCount } }", i) }
	for i := range 3 * cacheSize {
		small.Add(ctx, smallDoc(i), &ast.QueryDocument{})
	}
	if n := small.order.Len(); n != cacheSize || len(small.items) != cacheSize {
		t.Errorf("the cache holds %d small documents (%d indexed), want %d", n, len(small.items), cacheSize)
	}
	if _, ok := small.Get(ctx, smallDoc(3*cacheSize-1)); !ok {
		t.Error("the last document added is not kept")
	}
}

// TestPersistedQueriesPerWorkspace: one workspace registering more persisted queries
// than the cache holds evicts its own least recently used, not another workspace's.
// The cache was one LRU for all: workspace A registering 1,100 queries of nothing
// (`query Q1{__typename}`...) evicted B's dashboard query, sent a moment before,
// and B's next request by its hash alone was PERSISTED_QUERY_NOT_FOUND.
func TestPersistedQueriesPerWorkspace(t *testing.T) {
	srv := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: &Resolver{}}))
	srv.AddTransport(httpTransport{})
	useCaches(srv)
	// send answers whether ws's request (with the query's text or by its hash alone)
	// ran: false is PERSISTED_QUERY_NOT_FOUND.
	send := func(ws int64, query string, withText bool) bool {
		t.Helper()
		sum := sha256.Sum256([]byte(query))
		body := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}}
		if withText {
			body["query"] = query
		}
		b, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(auth.WithWorkspace(req.Context(), crm.Workspace{ID: ws}))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var out struct {
			Data   map[string]any
			Errors []struct{ Extensions map[string]any }
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if len(out.Errors) == 1 && out.Errors[0].Extensions["code"] == "PERSISTED_QUERY_NOT_FOUND" {
			return false
		}
		if out.Data["__typename"] != "Query" {
			t.Fatalf("workspace %d, %s: %d %s", ws, query, rec.Code, rec.Body)
		}
		return true
	}
	const a, b = 1, 2
	dash := `query BDash { __typename }`
	send(b, dash, true)
	if !send(b, dash, false) {
		t.Fatal("B's query, just registered, is not found by its hash")
	}
	q := func(i int) string { return fmt.Sprintf("query Q%d { __typename }", i) }
	const flood = cacheSize + 100
	for i := range flood {
		send(a, q(i), true)
	}
	if !send(b, dash, false) {
		t.Errorf("B's query is not found after A registered %d others", flood)
	}
	// A keeps its workspaceShare, its most recently used (probed oldest first, as a
	// query found is used again).
	kept := workspaceShare / minQueryCharge
	for i := range flood - kept {
		if send(a, q(i), false) {
			t.Errorf("A's query %d of %d is kept, beyond its %d most recent", i, flood, kept)
			break
		}
	}
	for i := flood - kept; i < flood; i++ {
		if !send(a, q(i), false) {
			t.Errorf("A's query %d of %d, among its %d most recent, is not found", i, flood, kept)
			break
		}
	}
}

// TestWorkspaceCacheBounds: the persisted queries cache holds at most cacheBytes of
// charges (so of text, and cacheSize queries), a workspace at most workspaceShare;
// when more workspaces than ten fill theirs, the one charged the most loses its least
// recently used, so that they end with equal shares; and a workspace evicted of all
// its queries is forgotten.
func TestWorkspaceCacheBounds(t *testing.T) {
	c := newWorkspaceCache()
	in := func(ws int64) context.Context {
		return auth.WithWorkspace(context.Background(), crm.Workspace{ID: ws})
	}
	held := func() (queries, text int) {
		for _, s := range c.spaces {
			for e := s.order.Front(); e != nil; e = e.Next() {
				q := e.Value.(*spaceQuery)
				queries, text = queries+1, text+len(q.key.hash)+len(q.query)
			}
		}
		return queries, text
	}
	perSpace := workspaceShare / minQueryCharge

	// Eleven workspaces of short queries: ten fill the cache, the eleventh's take
	// from each in turn, down to equal shares of cacheSize.
	for ws := range int64(11) {
		for i := range 2 * perSpace {
			c.Add(in(ws), fmt.Sprint(i), "{ __typename }")
		}
	}
	if n, _ := held(); n != cacheSize || len(c.queries) != cacheSize || c.charge != cacheSize*minQueryCharge {
		t.Errorf("%d queries held (%d indexed), charged %d, want %d", n, len(c.queries), c.charge, cacheSize)
	}
	for ws := range int64(11) {
		n := c.spaces[ws].order.Len()
		if n != cacheSize/11 && n != cacheSize/11+1 {
			t.Errorf("workspace %d holds %d queries, want its share of %d, %d", ws, n, cacheSize, cacheSize/11)
		}
		// Its most recent are those it keeps.
		if _, ok := c.Get(in(ws), fmt.Sprint(2*perSpace-n)); !ok {
			t.Errorf("workspace %d: its query %d, among its %d most recent, is not kept", ws, 2*perSpace-n, n)
		}
		if _, ok := c.Get(in(ws), fmt.Sprint(2*perSpace-n-1)); ok {
			t.Errorf("workspace %d: its query %d, older than its %d most recent, is kept", ws, 2*perSpace-n-1, n)
		}
	}

	// Long queries: each workspace keeps those within workspaceShare, and the cache
	// those within cacheBytes, its text included.
	long := strings.Repeat("#", 200_000) + "\n{ __typename }"
	for ws := range int64(60) {
		for i := range 10 {
			c.Add(in(100+ws), fmt.Sprint(i), fmt.Sprint(i)+long)
		}
	}
	if n, text := held(); text > cacheBytes || c.charge > cacheBytes || n > cacheSize {
		t.Errorf("%d queries held, %d bytes of text, charged %d: more than %d bytes", n, text, c.charge, cacheBytes)
	}
	for _, s := range c.spaces {
		if s.charge > workspaceShare {
			t.Errorf("workspace %d is charged %d, more than %d", s.id, s.charge, workspaceShare)
		}
	}
	// 41 long queries fill the cache: sixty workspaces keep one each at most, their
	// most recent, and the short queries keep no more than a long one's charge.
	if _, ok := c.Get(in(159), "9"); !ok {
		t.Error("the last workspace's last long query is not kept")
	}
	if _, ok := c.Get(in(159), "8"); ok {
		t.Error("the last workspace keeps two long queries")
	}
	for ws := range int64(11) {
		if s := c.spaces[ws]; s != nil && s.charge/minQueryCharge > (len(long)+1)/minQueryCharge {
			t.Errorf("workspace %d is charged %d, more than a long query's %d", ws, s.charge, len(long)+2)
		}
	}
	// A query larger than a workspace's share is not kept.
	huge := strings.Repeat("#", workspaceShare)
	c.Add(in(1000), "huge", huge)
	if _, ok := c.Get(in(1000), "huge"); ok || c.spaces[1000] != nil {
		t.Error("a query larger than a workspace's share is kept")
	}

	// A workspace whose last query is evicted is forgotten: a thousand workspaces of
	// one query each, and one more.
	c = newWorkspaceCache()
	for ws := range int64(cacheSize + 1) {
		c.Add(in(ws), "q", "{ __typename }")
	}
	if len(c.spaces) != cacheSize || c.spaces[0] != nil || len(c.queries) != cacheSize {
		t.Errorf("%d workspaces held (workspace 0 %v), %d queries, want %d", len(c.spaces), c.spaces[0], len(c.queries), cacheSize)
	}
	// Replacing a query charges it once.
	c.Add(in(cacheSize), "q", "{ t: __typename }")
	if q, _ := c.Get(in(cacheSize), "q"); q != "{ t: __typename }" || c.charge != cacheSize*minQueryCharge {
		t.Errorf("a replaced query: %q, charged %d, want %d", q, c.charge, cacheSize*minQueryCharge)
	}
}

// TestWorkspaceCacheConcurrent: workspaces adding and using queries at once leave the
// cache consistent (go test -race checks the locking): its charge the sum of its
// queries', each workspace's the sum of its own, within the bounds.
func TestWorkspaceCacheConcurrent(t *testing.T) {
	c := newWorkspaceCache()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				ctx := auth.WithWorkspace(context.Background(), crm.Workspace{ID: int64(i % (11 + g))})
				key := fmt.Sprint(i % 250)
				if _, ok := c.Get(ctx, key); !ok {
					c.Add(ctx, key, strings.Repeat("#", i%5*20_000)+"{ __typename }")
				}
			}
		})
	}
	wg.Wait()
	charge, queries := 0, 0
	for id, s := range c.spaces {
		sum := 0
		for e := s.order.Front(); e != nil; e = e.Next() {
			q := e.Value.(*spaceQuery)
			sum += q.charge
			if c.queries[q.key] != e || q.key.workspace != id {
				t.Fatalf("workspace %d's query %q is not indexed", id, q.key.hash)
			}
		}
		if sum != s.charge || sum == 0 || sum > workspaceShare {
			t.Errorf("workspace %d: charged %d, its queries %d", id, s.charge, sum)
		}
		charge, queries = charge+sum, queries+s.order.Len()
	}
	if charge != c.charge || charge > cacheBytes || queries != len(c.queries) {
		t.Errorf("charged %d, its queries %d (%d, %d indexed)", c.charge, charge, queries, len(c.queries))
	}
}

// TestWorkspaceCacheEvictsMostCharged: a cache over cacheBytes takes from the workspace
// charged the most, even when its queries are the most recent, and of workspaces
// charged alike from the one whose least recently used query is the oldest.
func TestWorkspaceCacheEvictsMostCharged(t *testing.T) {
	c := newWorkspaceCache()
	in := func(ws int64) context.Context {
		return auth.WithWorkspace(context.Background(), crm.Workspace{ID: ws})
	}
	held := func(ws int64, hash string) bool {
		_, ok := c.Get(in(ws), hash)
		return ok
	}
	// Nine workspaces of 99 short queries, and one of four long ones (209 kB), charged
	// more than each of them and added last.
	for ws := range int64(9) {
		for i := range 99 {
			c.Add(in(ws), fmt.Sprint(i), "{ __typename }")
		}
	}
	long := strings.Repeat("#", 209_000) + "\n{ __typename }"
	for i := range 4 {
		c.Add(in(9), fmt.Sprint(i), long)
	}
	if c.spaces[9].charge <= c.spaces[0].charge {
		t.Fatalf("the long queries are charged %d, the short ones %d", c.spaces[9].charge, c.spaces[0].charge)
	}
	// A new workspace fills the rest: the long queries' workspace loses its oldest.
	for i := 0; c.spaces[9].order.Len() == 4; i++ {
		if i == cacheSize {
			t.Fatal("the cache never evicted the long queries")
		}
		c.Add(in(10), fmt.Sprint(i), "{ __typename }")
	}
	if held(9, "0") || !held(9, "1") || !held(9, "3") {
		t.Error("the workspace charged the most did not lose its least recently used")
	}
	for ws := range int64(9) {
		if n := c.spaces[ws].order.Len(); n != 99 {
			t.Errorf("workspace %d, charged less, holds %d queries, want 99", ws, n)
		}
	}

	// Ten workspaces charged alike: the first, its queries all used again, keeps them;
	// the second, whose least recently used is now the oldest, loses it.
	c = newWorkspaceCache()
	for ws := range int64(10) {
		for i := range 100 {
			c.Add(in(ws), fmt.Sprint(i), "{ __typename }")
		}
	}
	for i := range 100 {
		held(0, fmt.Sprint(i))
	}
	c.Add(in(10), "0", "{ __typename }")
	if !held(0, "0") || held(1, "0") || !held(1, "1") || !held(2, "0") {
		t.Error("of workspaces charged alike, the one whose least recently used is the oldest did not lose it")
	}
}

// BenchmarkWorkspaceCacheEviction measures Add at its worst: the cache full of
// cacheSize workspaces of one query each, every Add a new workspace's, which evicts
// the query of the workspace charged the most after a scan of them all.
func BenchmarkWorkspaceCacheEviction(b *testing.B) {
	c := newWorkspaceCache()
	ctxs := make([]context.Context, 2*cacheSize)
	for i := range ctxs {
		ctxs[i] = auth.WithWorkspace(context.Background(), crm.Workspace{ID: int64(i)})
	}
	for _, ctx := range ctxs[:cacheSize] {
		c.Add(ctx, "q", "{ __typename }")
	}
	i := cacheSize // the workspaces after those held, then the first evicted
	for b.Loop() {
		c.Add(ctxs[i%len(ctxs)], "q", "{ __typename }")
		i++
	}
	if len(c.spaces) != cacheSize {
		b.Fatalf("%d workspaces held, want %d", len(c.spaces), cacheSize)
	}
}
