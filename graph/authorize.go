package graph

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/telemetry"
)

// codeForbidden is the extensions.code of an operation the principal may not run.
const codeForbidden = "FORBIDDEN"

// codeServiceUnavailable is the extensions.code of a mutation refused because its
// Idempotency-Key cannot be recorded now, as the idempotency middleware's refusals.
const codeServiceUnavailable = "SERVICE_UNAVAILABLE"

// authorizeWrites refuses every mutation of a principal whose scope is read only
// (auth.Principal.CanWrite), and of a request without a principal, before any
// resolver runs: the answer is a single top-level error with extensions.code
// FORBIDDEN and no data, with HTTP status 200 (GraphQL over HTTP: a well-formed
// request answered with application/json gets 200 whatever its GraphQL errors).
// Queries pass. It runs after parsing and validation, so a malformed mutation still
// gets its validation errors.
//
// It also refuses every mutation of a request the idempotency middleware runs
// unrecorded (idempotency.Unrecorded: its key is free and the database takes no
// writes), before it is charged or any resolver runs, as that middleware refuses a
// key it cannot claim: 503 SERVICE_UNAVAILABLE with Retry-After, no data, and its
// WARN line. Only the operation tells a query, which such a request may run, from a
// mutation, whose change its key's retry would make again: the middleware does not
// parse GraphQL, and a persisted query may be only a hash.
type authorizeWrites struct{ log *slog.Logger }

var (
	_ graphql.HandlerExtension        = authorizeWrites{}
	_ graphql.OperationContextMutator = authorizeWrites{}
	_ graphql.OperationInterceptor    = authorizeWrites{}
)

func (authorizeWrites) ExtensionName() string                   { return "AuthorizeWrites" }
func (authorizeWrites) Validate(graphql.ExecutableSchema) error { return nil }
func (a authorizeWrites) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation.Operation != ast.Mutation || !idempotency.Unrecorded(ctx) {
		return nil
	}
	idempotency.LogReadOnly(ctx, a.log)
	if ref := refusalFrom(ctx); ref != nil {
		ref.status, ref.retryAfter = http.StatusServiceUnavailable, "1"
	}
	return &gqlerror.Error{Message: idempotency.ReadOnlyMessage, Extensions: map[string]any{"code": codeServiceUnavailable}}
}

func (authorizeWrites) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	if op.Operation == nil || op.Operation.Operation != ast.Mutation {
		return next(ctx)
	}
	p, ok := auth.PrincipalFrom(ctx)
	if ok && p.CanWrite() {
		return next(ctx)
	}
	msg := "this request may only read: mutations need credentials with the read_write scope"
	switch {
	case ok && p.Kind == auth.KindAPIKey:
		msg = "this API key may only read (scope read): mutations need a read_write key"
	case ok && p.Kind == auth.KindUser:
		msg = "this session may only read: mutations need a token whose scope claim includes read_write"
	}
	res := &graphql.Response{Errors: gqlerror.List{{
		Message:    msg,
		Extensions: map[string]any{"code": codeForbidden},
	}}}
	// The response interceptors, telemetry's among them, run inside the operation,
	// which this answer skips: without this, the refusal was logged and counted as
	// an unknown operation answered ok.
	if rec := telemetry.From(ctx); rec != nil {
		report(ctx, rec, res)
	}
	return graphql.OneShot(res)
}
