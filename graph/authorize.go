package graph

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/idempotency"
)

// codeForbidden is the extensions.code of an operation the principal may not run.
const codeForbidden = "FORBIDDEN"

// authorizeWrites refuses every mutation of a principal whose scope is read only
// (auth.Principal.CanWrite), and of a request without a principal, before any
// resolver runs: the answer is a single top-level error with extensions.code
// FORBIDDEN and no data entry, as every refusal before execution (the transport's
// request errors), with HTTP status 200 (GraphQL over HTTP: a well-formed request
// answered with application/json gets 200 whatever its GraphQL errors), 403 with
// application/graphql-response+json, whose answers without data are 4xx. Refused in
// an operation interceptor, it was answered "data": null, which says the operation
// ran. Queries pass. It runs after parsing and validation, so a malformed mutation
// still gets its validation errors, and after the limits' extension, which charges
// it as a refused request (1 point); a mutation over GET is left to the transport's
// 405.
//
// It also refuses every mutation of a request the idempotency middleware runs
// unrecorded (idempotency.Unrecorded: its key is free, and the database takes no
// writes or its workspace's kept keys reached their limit), before it is charged or
// any resolver runs, as idempotency.UnrecordedRefusal says: 503 SERVICE_UNAVAILABLE
// or 429 IDEMPOTENCY_BUDGET_EXHAUSTED with Retry-After, no data, and a WARN line.
// Only the operation tells a query, which such a request may run, from a mutation,
// whose change its key's retry would make again: the middleware does not parse
// GraphQL, and a persisted query may be only a hash.
type authorizeWrites struct{}

var (
	_ graphql.HandlerExtension        = authorizeWrites{}
	_ graphql.OperationContextMutator = authorizeWrites{}
)

func (authorizeWrites) ExtensionName() string                   { return "AuthorizeWrites" }
func (authorizeWrites) Validate(graphql.ExecutableSchema) error { return nil }
func (a authorizeWrites) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation.Operation != ast.Mutation {
		return nil
	}
	ref := refusalFrom(ctx)
	if u := idempotency.UnrecordedRefusal(ctx); u != nil {
		u.Log(ctx)
		if ref != nil {
			ref.status, ref.retryAfter = u.Status, u.RetryAfter
		}
		return &gqlerror.Error{Message: u.Message, Extensions: map[string]any{"code": u.Code}}
	}
	if ref != nil && ref.method == http.MethodGet {
		return nil // the transport refuses it (405), whoever sends it
	}
	p, ok := auth.PrincipalFrom(ctx)
	if ok && p.CanWrite() {
		return nil
	}
	msg := "this request may only read: mutations need credentials with the read_write scope"
	switch {
	case ok && p.Kind == auth.KindAPIKey:
		msg = "this API key may only read (scope read): mutations need a read_write key"
	case ok && p.Kind == auth.KindUser:
		msg = "this session may only read: mutations need a token whose scope claim includes read_write"
	}
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": codeForbidden}}
}
