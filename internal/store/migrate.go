package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun/migrate"

	"github.com/segments/segments/internal/store/migrations"
)

// migrationLockKey is the advisory lock that serializes migrations when several
// servers start at once.
const migrationLockKey = 7264001

// Migrate brings the schema up to date. It refuses a database that has migrations this
// binary does not know: it was migrated by a newer version, whose schema this one must
// not write to. When it applied any, or the store knows no statistics, it then learns
// the database's statistics: Open could not learn them from a schema that was not
// there yet, and without them the store's first writes had it learn them in the
// background, beside whatever came next.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.FS); err != nil {
		return nil, fmt.Errorf("store: load migrations: %w", err)
	}
	m := migrate.NewMigrator(s.db, ms, migrate.WithMarkAppliedOnSuccess(true))

	// The lock is a transaction-level advisory lock in a transaction of its own, open
	// for the whole run: it is released when this process dies, unlike Bun's lock
	// table, and it also holds through PgBouncer in transaction mode, which keeps a
	// transaction on one server connection (a session-level lock would stay behind on
	// whichever server connection took it). Its connection is one of its own, outside
	// the store's pool, so that a store of one connection migrates too: that one runs
	// the migrations while this one holds the lock.
	lockDB := newPool(s.connector, 1)
	defer lockDB.Close()
	lock, err := lockDB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: lock migrations: %w", err)
	}
	defer lock.Rollback()
	if _, err := lock.ExecContext(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0; SELECT pg_advisory_xact_lock(?)", migrationLockKey); err != nil {
		return nil, fmt.Errorf("store: lock migrations: %w", err)
	}

	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("store: init migrations: %w", err)
	}
	if err := checkKnown(ctx, m, ms); err != nil {
		return nil, err
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	var applied []string
	for _, mig := range group.Migrations {
		applied = append(applied, mig.Name)
	}
	if len(applied) > 0 || s.stats.known.Load() == nil {
		s.learnStatistics(ctx)
	}
	return applied, nil
}

// CheckSchema returns an error unless every migration this binary knows is applied and
// the database has none it does not know.
func (s *Store) CheckSchema(ctx context.Context) error {
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.FS); err != nil {
		return err
	}
	m := migrate.NewMigrator(s.db, ms)
	if err := checkKnown(ctx, m, ms); err != nil {
		return err
	}
	status, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("store: read migrations: %w", err)
	}
	if pending := status.Unapplied(); len(pending) > 0 {
		return fmt.Errorf("store: %d migration(s) not applied, first %s: run `segments migrate`", len(pending), pending[0].Name)
	}
	return nil
}

func checkKnown(ctx context.Context, m *migrate.Migrator, ms *migrate.Migrations) error {
	applied, err := m.AppliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("store: read applied migrations: %w", err)
	}
	known := map[string]bool{}
	for _, mig := range ms.Sorted() {
		known[mig.Name] = true
	}
	var unknown []string
	for _, mig := range applied {
		if !known[mig.Name] {
			unknown = append(unknown, mig.Name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("store: the database has migrations this binary does not know (%s): it was migrated by a newer version; upgrade this binary", strings.Join(unknown, ", "))
	}
	return nil
}
