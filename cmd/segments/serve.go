package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/segments/segments/internal/demo"
	"github.com/segments/segments/internal/server"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := parse("serve", args, getenv, stderr, true)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.logFormat)
	s, closeStore, err := openStore(ctx, cfg, log, "segments")
	if err != nil {
		return err
	}
	defer closeStore()

	var playgroundKey string
	if cfg.demo {
		key, err := demo.Seed(ctx, s)
		if err != nil {
			return err
		}
		playgroundKey = string(key)
		fmt.Fprintf(stdout, "Demo workspace %q is ready. API key: %s\n", demo.WorkspaceName, key)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           server.Handler(s, log, server.Config{PlaygroundKey: playgroundKey, BatchWait: cfg.batchWait}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "Serving the GraphQL API at http://%s/graphql and the playground at http://%s/\n", ln.Addr(), ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.shutdown)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdown)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
