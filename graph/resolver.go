// Package graph is the GraphQL adapter: gqlgen's generated executor (graph/generated),
// the schema's Go types (graph/model), and thin resolvers that decode IDs and
// arguments, call the store, and shape its answers.
package graph

//go:generate go run github.com/segments/segments/cmd/graphgen

import (
	"context"
	"log/slog"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/loader"
	"github.com/segments/segments/internal/store"
)

// Resolver holds what the resolvers need.
type Resolver struct {
	Store *store.Store
	Log   *slog.Logger
}

// workspace returns the workspace the request acts for. The handler is only ever
// served behind auth.Require, so a request without one is a wiring bug.
func workspace(ctx context.Context) crm.Workspace {
	ws, ok := auth.WorkspaceFrom(ctx)
	if !ok {
		panic("graph: request without a workspace: serve the handler behind auth.Require")
	}
	return ws
}

func loaders(ctx context.Context) *loader.Loaders {
	ls := loader.From(ctx)
	if ls == nil {
		panic("graph: request without loaders: build the handler with NewHandler")
	}
	return ls
}
