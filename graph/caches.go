package graph

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/limits"
)

// cacheSize is how many documents each cache holds: far more than the operations of
// the dashboard and of a partner integration together.
const cacheSize = 1000

// useCaches turns on the parsed-query cache (a document sent again is neither parsed
// nor validated again) and automatic persisted queries (a client may send a query's
// SHA-256 instead of its text, over POST or GET, once the server has seen the text;
// PERSISTED_QUERY_NOT_FOUND asks it to send both). It must be installed before
// useLimits, whose checks see the query that APQ looked up.
func useCaches(srv *handler.Server) {
	srv.SetQueryCache(lru.New[*ast.QueryDocument](cacheSize))
	srv.Use(persistedQueries{extension.AutomaticPersistedQuery{Cache: lru.New[string](cacheSize)}})
}

// persistedQueries is gqlgen's automatic persisted queries, whose refusals of a
// malformed extension (not an object, another version, a hash that is not the
// query's) carried no extensions.code: they are BAD_REQUEST (400), as any malformed
// request. PERSISTED_QUERY_NOT_FOUND is no refusal but the protocol's request for
// the text, and stays as it is.
type persistedQueries struct {
	extension.AutomaticPersistedQuery
}

func (p persistedQueries) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	err := p.AutomaticPersistedQuery.MutateOperationParameters(ctx, params)
	if err == nil || err.Extensions["code"] != nil {
		return err
	}
	return refuse(ctx, &limits.Error{Code: CodeBadRequest, Message: err.Message}, http.StatusBadRequest)
}
