package graph

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
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
	small := newBoundedCache(cacheSize, cacheBytes, func(hash, query string) int { return len(hash) + len(query) })
	for i := range 3 * cacheSize {
		small.Add(ctx, fmt.Sprint(i), "{ segments { totalCount } }")
	}
	if n := small.order.Len(); n != cacheSize || len(small.items) != cacheSize {
		t.Errorf("the cache holds %d small documents (%d indexed), want %d", n, len(small.items), cacheSize)
	}
	if _, ok := small.Get(ctx, fmt.Sprint(3*cacheSize-1)); !ok {
		t.Error("the last document added is not kept")
	}
}
