package graph

import (
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
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
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](cacheSize)})
}
