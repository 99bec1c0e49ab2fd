package graph

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/limits"
)

// cacheSize is how many documents each cache holds: far more than the operations of
// the dashboard and of a partner integration together.
const cacheSize = 1000

// useCaches turns on the parsed-query cache (a document sent again is neither parsed
// nor validated again) and automatic persisted queries (a client may send a query's
// SHA-256 instead of its text, over POST or GET, once its workspace has sent the
// text; PERSISTED_QUERY_NOT_FOUND asks it to send both). It must be installed before
// useLimits, whose checks see the query that APQ looked up.
func useCaches(srv *handler.Server) {
	srv.SetQueryCache(lru.New[*ast.QueryDocument](cacheSize))
	srv.Use(persistedQueries{extension.AutomaticPersistedQuery{Cache: workspaceCache{lru.New[string](cacheSize)}}})
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
