package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestMigrateLearnsStatistics: a store opened on a database not migrated yet knows
// the statistics once Migrate returns. Open cannot learn them from a schema that is
// not there; before, the store's first write had it learn them in a goroutine of its
// own, whose statements ran beside the caller's: in TestTruncateKeepsDerivedDataExact
// one of them (reading contact_counts, then segments) and the test's TRUNCATE of
// every table locked the same tables in opposite orders, and PostgreSQL broke the
// deadlock by failing the TRUNCATE (2 runs of 120 on a busy machine).
func TestMigrateLearnsStatistics(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.Database(t), store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if store.StatisticsKnown(s) {
		t.Fatal("the store knows statistics of a database without its schema: the test proves nothing")
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if !store.StatisticsKnown(s) {
		t.Error("after Migrate, the store does not know the statistics: its first write will learn them in the background")
	}
}

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
