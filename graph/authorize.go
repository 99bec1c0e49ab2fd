package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/telemetry"
)

// codeForbidden is the extensions.code of an operation the principal may not run.
const codeForbidden = "FORBIDDEN"

// authorizeWrites refuses every mutation of a principal whose scope is read only
// (auth.Principal.CanWrite), and of a request without a principal, before any
// resolver runs: the answer is a single top-level error with extensions.code
// FORBIDDEN and no data, with HTTP status 200 (GraphQL over HTTP: a well-formed
// request answered with application/json gets 200 whatever its GraphQL errors).
// Queries pass. It runs after parsing and validation, so a malformed mutation still
// gets its validation errors.
type authorizeWrites struct{}

var (
	_ graphql.HandlerExtension     = authorizeWrites{}
	_ graphql.OperationInterceptor = authorizeWrites{}
)

func (authorizeWrites) ExtensionName() string                   { return "AuthorizeWrites" }
func (authorizeWrites) Validate(graphql.ExecutableSchema) error { return nil }
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
