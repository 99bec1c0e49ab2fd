package graph

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/trace"

	"github.com/segments/segments/graph/execution"
	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/loader"
	"github.com/segments/segments/internal/store"
)

// Options configure the GraphQL handler.
type Options struct {
	// BatchWait is how long a loader waits for sibling keys; 0 means loader.DefaultWait.
	BatchWait time.Duration
	// Limits bound what one request may ask for; zero fields take limits.Defaults.
	Limits limits.Limits
	// Throttle charges requests their cost; nil never throttles (limits.Unlimited).
	Throttle limits.Throttle
	// ThrottleBucket names the bucket a request is charged to; nil: PrincipalBucket.
	ThrottleBucket func(context.Context) string
	// Introspection says who may introspect the schema; "" is IntrospectionOn.
	Introspection Introspection
	// Tracing, when set, gives each resolver a span (under the request's); nil: none.
	Tracing trace.TracerProvider
}

// NewHandler returns the GraphQL endpoint. It must be served behind auth.Require,
// which tells it the workspace of each request.
func NewHandler(s *store.Store, log *slog.Logger, opts Options) http.Handler {
	srv := handler.New(generated.NewExecutableSchema(generated.Config{
		Resolvers: &Resolver{Store: s, Log: log},
	}))
	// GraphQL over HTTP as its spec says (transport.go): GET (queries only) and POST,
	// in place of gqlgen's transports.
	srv.AddTransport(httpTransport{})
	useCaches(srv)            // the parsed-query cache and automatic persisted queries (caches.go)
	srv.Use(&strictInputs{})  // input values as the spec coerces them, before anything runs (coercion.go)
	useLimits(srv, log, opts) // limits, cost, throttle, introspection, no suggestions (limits.go)
	srv.SetErrorPresenter(presentError(log))
	srv.SetRecoverFunc(recoverPanic(log))
	// Read-only principals: every mutation is FORBIDDEN; a request whose
	// Idempotency-Key cannot be recorded: every mutation is SERVICE_UNAVAILABLE, or
	// IDEMPOTENCY_BUDGET_EXHAUSTED for a workspace over its keys' budget
	// (authorize.go).
	srv.Use(authorizeWrites{})
	useTelemetry(srv, opts) // operation and outcome for logs and metrics, resolver spans (telemetry.go)
	// Each operation gets its own loaders, bound to its workspace, and its own
	// executor state: the rows they have preloaded, the fields collected for its
	// objects (graph/execution). Each of a mutation's root fields gets loaders of its
	// own: they run one after the other, and what one loaded (a contact's segments)
	// may be changed by the next, whose payload then answered what was before it.
	// An operation's statements run at most StatementsAtOnce at a time, its
	// mutation's payloads' and its loaders' batches too (turns.go).
	//
	// A query's Idempotency-Key keeps nothing (idempotency.Query): only the
	// operation tells a query from a mutation.
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if !isMutation(ctx) {
			idempotency.Query(ctx)
			ls := loader.New(s, workspace(ctx).ID, loader.Options{Wait: opts.BatchWait, RootLookups: rootLookups(ctx)})
			ctx = loader.With(ctx, ls)
		}
		return next(execution.WithOperation(store.WithStatementTurns(ctx, StatementsAtOnce)))
	})
	// A mutation's payload is read, for a while, after the request's end once the
	// mutation is made (grace.go).
	srv.AroundRootFields(func(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
		if !isMutation(ctx) {
			return next(ctx)
		}
		ctx = loader.With(ctx, loader.New(s, workspace(ctx).ID, loader.Options{Wait: opts.BatchWait}))
		ctx, stop := withPayloadGrace(ctx)
		defer stop()
		return next(ctx)
	})

	return refusalStatus(srv)
}

// isMutation reports whether the operation of ctx is a mutation.
func isMutation(ctx context.Context) bool {
	op := graphql.GetOperationContext(ctx).Operation
	return op != nil && op.Operation == ast.Mutation
}
