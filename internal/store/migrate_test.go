package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestMigrateWithOneConnection: a store of one connection migrates. The migrations'
// lock is held in a transaction of its own while they run; on the store's one
// connection that transaction had left none for them, and Migrate waited forever.
func TestMigrateWithOneConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, storetest.Database(t), store.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applied, err := s.Migrate(ctx)
	if err != nil || len(applied) == 0 {
		t.Fatalf("Migrate applied %d migrations and returned %v; want them all and no error", len(applied), err)
	}
	if again, err := s.Migrate(ctx); err != nil || len(again) != 0 {
		t.Errorf("Migrate again applied %v and returned %v; want none and no error", again, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema after Migrate: %v", err)
	}
	if got := s.DB().Stats().MaxOpenConnections; got != 1 {
		t.Errorf("the store's pool holds %d connections; the test is about a pool of one", got)
	}
}
