package graph

import (
	"container/list"
	"context"
	"crypto/sha256"
	"net/http"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/limits"
)

// Each cache holds at most cacheSize documents, far more than the operations of the
// dashboard and of a partner integration together, and at most cacheBytes of their
// text: bounded by count alone, 1,000 documents of 250 kB (free to send: comments
// cost nothing) kept 260 MB alive for good.
const (
	cacheSize  = 1000
	cacheBytes = 8 << 20
)

// useCaches turns on the parsed-query cache (a document sent again is neither parsed
// nor validated again) and automatic persisted queries (a client may send a query's
// SHA-256 instead of its text, over POST or GET, once its workspace has sent the
// text; PERSISTED_QUERY_NOT_FOUND asks it to send both). It must be installed before
// useLimits, whose checks see the query that APQ looked up.
func useCaches(srv *handler.Server) {
	srv.SetQueryCache(newBoundedCache(cacheSize, cacheBytes, func(query string, _ *ast.QueryDocument) int { return len(query) }))
	srv.Use(persistedQueries{extension.AutomaticPersistedQuery{Cache: workspaceCache{
		newBoundedCache(cacheSize, cacheBytes, func(hash, query string) int { return len(hash) + len(query) })}}})
}

// A boundedCache is a least-recently-used cache of at most maxEntries entries and at
// most maxBytes in all, as size measures each entry. An entry larger than maxBytes
// alone is not kept.
type boundedCache[T any] struct {
	maxEntries, maxBytes int
	size                 func(key string, value T) int

	mu    sync.Mutex
	order *list.List // of *cached[T], the most recently used first
	items map[string]*list.Element
	bytes int
}

type cached[T any] struct {
	key   string
	value T
	size  int
}

func newBoundedCache[T any](maxEntries, maxBytes int, size func(string, T) int) *boundedCache[T] {
	return &boundedCache[T]{maxEntries: maxEntries, maxBytes: maxBytes, size: size, order: list.New(), items: map[string]*list.Element{}}
}

func (c *boundedCache[T]) Get(_ context.Context, key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		var zero T
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cached[T]).value, true
}

func (c *boundedCache[T]) Add(_ context.Context, key string, value T) {
	size := c.size(key, value)
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.bytes -= e.Value.(*cached[T]).size
		c.order.Remove(e)
	}
	c.items[key] = c.order.PushFront(&cached[T]{key, value, size})
	c.bytes += size
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		last := c.order.Back()
		old := last.Value.(*cached[T])
		c.order.Remove(last)
		delete(c.items, old.key)
		c.bytes -= old.size
	}
}

// persistedQueries is gqlgen's automatic persisted queries, whose refusals of a
// malformed extension (not an object, another version, a hash that is not the
// query's) carried no extensions.code: they are BAD_REQUEST (400), as any malformed
// request, and so is a hash that is no SHA-256 (missing, empty), which gqlgen looked
// up. PERSISTED_QUERY_NOT_FOUND is no refusal but the protocol's request for the
// text, and stays as it is.
type persistedQueries struct {
	extension.AutomaticPersistedQuery
}

func (p persistedQueries) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if ext, ok := params.Extensions["persistedQuery"].(map[string]any); ok {
		if hash, _ := ext["sha256Hash"].(string); !sha256Hex(hash) {
			return refuse(ctx, &limits.Error{Code: CodeBadRequest,
				Message: "extensions.persistedQuery.sha256Hash must be the SHA-256 of the query, 64 lower-case hexadecimal digits"},
				http.StatusBadRequest)
		}
	}
	err := p.AutomaticPersistedQuery.MutateOperationParameters(ctx, params)
	if err == nil || err.Extensions["code"] != nil {
		return err
	}
	return refuse(ctx, &limits.Error{Code: CodeBadRequest, Message: err.Message}, http.StatusBadRequest)
}

// sha256Hex reports whether s is a SHA-256 as APQ clients send it: 64 lower-case
// hexadecimal digits (gqlgen compares the query's hash with s as a string).
func sha256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// workspaceCache keeps each workspace's persisted queries apart, in one cache: a
// hash is found only by the workspace that sent its query. Shared, a workspace could
// tell whether any other had sent a given document (a search term, a phone number
// written in it) by sending its hash.
type workspaceCache struct {
	graphql.Cache[string]
}

// workspaceKey is key within the workspace of ctx; requests reach the cache only
// authenticated, so there is always one.
func workspaceKey(ctx context.Context, key string) string {
	ws, _ := auth.WorkspaceFrom(ctx)
	return strconv.FormatInt(ws.ID, 10) + ":" + key
}

func (c workspaceCache) Get(ctx context.Context, key string) (string, bool) {
	return c.Cache.Get(ctx, workspaceKey(ctx, key))
}

func (c workspaceCache) Add(ctx context.Context, key, query string) {
	c.Cache.Add(ctx, workspaceKey(ctx, key), query)
}
