package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/store"
)

// openAppStore opens the store the server's requests run on: as the application's
// role (store.AppRole, or SEGMENTS_APP_DATABASE_URL's), which is no superuser, cannot
// bypass row-level security and owns no table, so that PostgreSQL holds every
// statement to the workspace its request authenticated, behind the store's own
// scoping. Migrations, the demo data and the administrative commands keep the owner's
// store (openStore). Without SEGMENTS_APP_DATABASE_URL, the owner's URL is reused with
// the role segments_app, whose password is derived from the owner's (store.AppURL).
func openAppStore(ctx context.Context, cfg *config, log *slog.Logger) (*store.Store, func(), error) {
	url := cfg.appDatabaseURL
	if url == "" {
		var err error
		if url, err = store.AppURL(ctx, cfg.ownerURL); err != nil {
			return nil, nil, fmt.Errorf("%w (or set SEGMENTS_APP_DATABASE_URL)", err)
		}
	}
	s, err := store.Open(ctx, url, store.Options{
		AppName:                  "segments",
		StatementTimeout:         cfg.statement,
		IdleInTransactionTimeout: cfg.idleTransaction,
		ClientCheckInterval:      store.ClientCheckInterval,
		SerialPlans:              true,
		NoJIT:                    true,
		Log:                      log,
		Tenant: func(ctx context.Context) (int64, bool) {
			ws, ok := auth.WorkspaceFrom(ctx)
			return ws.ID, ok
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("connect as the application's role: %w", err)
	}
	if err := s.CheckAppRole(ctx); err != nil {
		s.Close()
		return nil, nil, err
	}
	log.Info("requests run as a role held to their workspace by row-level security")
	return s, func() { s.Close() }, nil
}
