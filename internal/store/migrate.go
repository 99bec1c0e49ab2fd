package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/segments/segments/internal/store/migrations"
)

// migrationLockKey is the advisory lock that serializes migrations when several
// servers start at once.
const migrationLockKey = 7264001

// Migrate brings the schema up to date. It refuses a database that has migrations this
// binary does not know: it was migrated by a newer version, whose schema this one must
// not write to; unless each of them declared that older servers may keep running
// (package migrations), when it logs a warning naming them and goes on. It records
// what its own migrations declare, for older binaries to read. When it applied any, or the store knows no statistics, it then learns
// the database's statistics: Open could not learn them from a schema that was not
// there yet, and without them the store's first writes had it learn them in the
// background, beside whatever came next.
//
// A migration waits for the locks it takes in short turns (lockTurns): see
// migrateInTurns. After the migrations, every run makes the privileges of the
// server's role (and PUBLIC) what they grant (appPrivileges), warning of what it
// changed; not beside a newer version's migrations, whose grants it does not know.
// And it declares leakproof again the built-in functions the migrations declare
// (leakproofFunctions), which a restore into a new database drops, as a superuser,
// warning of what it did, or, as a role that is no superuser, of what it could not.
//
// Then it stamps again the changes a restore into a new cluster left ahead of the
// database's transactions (RepairChangesAhead), so that the change feed lists them
// and refuses the cursors made before; a database that takes no writes is left as it
// is, and served. Then it deletes some of the membership changes of workspaces an
// older server deleted (pruneGoneWorkspaceChanges).
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	applied, err := s.migrate(ctx, migrations.FS, lockTurns, appPrivileges)
	if err != nil {
		return applied, err
	}
	if _, _, err := s.RepairChangesAhead(ctx); err != nil {
		if !ReadOnly(err) {
			return applied, err
		}
		s.log.Warn("database is read-only: the change feed's rows ahead of its transactions (a restore into a new cluster) are not stamped again; they are when a store opens it taking writes",
			"err", err)
	}
	s.pruneGoneWorkspaceChanges(ctx)
	s.warnASCIIOnlyCase(ctx)
	return applied, nil
}

// goneWorkspaceOpenBatches bounds what one open of the database deletes of the
// membership changes of workspaces that no longer exist: 20 statements of
// goneWorkspaceBatch rows (100,000, a few seconds), so that a command's start waits
// for no large deletion; the next opens, or segments check --repair, delete the rest.
const goneWorkspaceOpenBatches = 20

// pruneGoneWorkspaceChanges deletes, within goneWorkspaceOpenBatches, the membership
// changes of workspaces an older server deleted (PruneGoneWorkspaceChanges), and logs
// what it did. It stops nothing: on a database that takes no writes, or should it
// fail, it warns.
func (s *Store) pruneGoneWorkspaceChanges(ctx context.Context) {
	deleted, left, err := s.PruneGoneWorkspaceChanges(ctx, goneWorkspaceOpenBatches)
	for _, d := range deleted {
		s.log.Info("membership changes of a workspace that no longer exists deleted (an older server deleted the workspace)",
			"workspace_id", d.WorkspaceID, "rows", d.Rows)
	}
	switch {
	case err != nil:
		s.log.Warn("could not delete the membership changes of workspaces that no longer exist; the next start, or segments check --repair, tries again", "err", err)
	case left:
		s.log.Info("membership changes of workspaces that no longer exist are left; the next start, or segments check --repair, deletes more")
	}
}

// warnASCIIOnlyCase warns when the database's character type is C (or POSIX) by the
// C library: PostgreSQL's lower() then lowercases ASCII letters alone, so searches
// fold the case of no other letter ("łódź" does not find "ŁÓDŹ") and segment names
// are unique ignoring ASCII case only. The embedded PostgreSQL's is C.UTF-8; a
// database of DATABASE_URL's is what its maker chose, and cannot change it after.
func (s *Store) warnASCIIOnlyCase(ctx context.Context) {
	var ctype string
	err := s.db.QueryRowContext(ctx, `SELECT datctype FROM pg_database
		WHERE datname = current_database() AND datlocprovider = 'c' AND datctype IN ('C', 'POSIX')`).Scan(&ctype)
	if err == nil {
		s.log.Warn("the database's LC_CTYPE lowercases ASCII letters alone: searches ignore the case of no other letter, and segment names are unique ignoring ASCII case only; make the database with a UTF-8 locale (LC_CTYPE 'C.UTF-8') and restore into it",
			"lc_ctype", ctype)
	}
}

// lockTurns is how long each attempt of a migration may wait for a lock, in turn:
// from a tenth of a second, doubling up to 5 s, about half a minute of waiting in all.
var lockTurns = turns{
	waits: []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
		5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second,
	},
	pause: time.Second,
}

// turns says how a migration waits for its locks: the lock_timeout of each attempt,
// and the pause between two attempts (jittered by ±50%).
type turns struct {
	waits []time.Duration
	pause time.Duration
}

// migrate applies the migrations of fsys that the database lacks, each attempt of a
// migration waiting for its locks as t says, then makes the privileges of the
// server's role what decl declares (enforcePrivileges) and declares the functions
// of leakproofFunctions leakproof (migrateLeakproof); neither with decl nil.
func (s *Store) migrate(ctx context.Context, fsys fs.FS, t turns, decl []declaredPrivileges) ([]string, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(fsys); err != nil {
		return nil, fmt.Errorf("store: load migrations: %w", err)
	}
	var lockTimeout time.Duration // the current attempt's
	m := migrate.NewMigrator(s.db, ms, migrate.WithMarkAppliedOnSuccess(true),
		migrate.BeforeMigration(func(ctx context.Context, tx bun.IConn, _ *migrate.Migration) error {
			// Every migration runs in a transaction of its own (migrations.go), so
			// the setting ends with it.
			_, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds()))
			return err
		}))

	// The lock (holding) is released when this process dies, unlike Bun's lock table,
	// and its connection is not the store's: a store of one connection migrates too.
	var applied []string
	readOnly := false
	err := s.holding(ctx, "migrations", "?", migrationLockKey, func(lock bun.Tx) error {
		if err := m.Init(ctx); err != nil {
			if !ReadOnly(err) {
				return fmt.Errorf("store: init migrations: %w", err)
			}
			// A standby after a failover, or maintenance: a server restarted now
			// serves what it can if the schema needs nothing.
			readOnly = true
		}
		if !readOnly {
			if err := s.recordDeclarations(ctx, fsys, ms); err != nil {
				if !ReadOnly(err) {
					return err
				}
				readOnly = true
			}
		}
		status, err := s.migrationStatus(ctx, fsys)
		if err != nil {
			return err
		}
		newer, err := checkKnown(status, true)
		if err != nil {
			return err
		}
		if len(newer) > 0 {
			s.log.Warn("database has migrations of a newer version, each declaring that older servers may keep running: this binary runs beside them; upgrade it",
				"migrations", strings.Join(newer, ", "))
		}
		if readOnly {
			return s.checkUpToDate(ctx, m)
		}
		if applied, err = s.migrateInTurns(ctx, m, lock, t, &lockTimeout); err != nil {
			return err
		}
		if decl == nil {
			return nil
		}
		// Beside a newer version's migrations, the privileges they grant are not this
		// binary's to take back: its declaration does not know them.
		if len(newer) == 0 {
			if err := s.migratePrivileges(ctx, decl); err != nil {
				return err
			}
		}
		// Leakproof beside a newer version too: its migrations declare these as well.
		return s.migrateLeakproof(ctx)
	})
	if err != nil {
		return applied, err
	}
	if len(applied) > 0 || s.stats.known.Load() == nil {
		s.learnStatistics(ctx)
	}
	return applied, nil
}

// migratePrivileges makes the privileges of the server's role what decl declares, as
// every run of the migrations does, and warns of what it found: a restore with
// pg_restore --clean, or a GRANT by hand, gave or took them.
func (s *Store) migratePrivileges(ctx context.Context, decl []declaredPrivileges) error {
	changed, left, err := s.enforcePrivileges(ctx, decl)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		s.log.Warn("the privileges of the server's role differed from those the migrations grant (pg_restore --clean into this database, or a GRANT, REVOKE or ALTER ROLE by hand): revoked and granted to match",
			"role", AppRole, "privileges", describePrivileges(changed))
	}
	if len(left) > 0 {
		fix, by := make([]string, len(left)), make([]string, len(left))
		for i, d := range left {
			fix[i], by[i] = d.Fix(), d.RunBy()
		}
		slices.Sort(by)
		s.log.Warn("the privileges of the server's role still differ from those the migrations grant, and the role migrating may not change them: have run_by run fix",
			"role", AppRole, "privileges", describePrivileges(left), "fix", strings.Join(fix, "; "), "run_by", strings.Join(slices.Compact(by), "; "))
	}
	return nil
}

// migrateInTurns runs m's migrations, and runs again the one that could not take a
// lock in its turn, after a pause, with the next turn's lock_timeout.
//
// A migration that alters a table waits for every transaction that uses the table to
// end, and every statement that comes to the table after it queues behind its lock
// request: a migration deployed beside live traffic, waiting without a limit for a
// 10-second bulk assignment, would stop every request on that table for 10 s. A
// migration that gives up its place after a short wait, and tries again once the
// requests that queued behind it have run, costs them at most that wait. One that
// never gets its locks fails, having changed nothing (its transaction rolled back),
// and says which transaction is the oldest open, the likely holder.
//
// lockTimeout is the variable m's hook sets each migration's lock_timeout from; lock
// is the transaction that holds the migrations' advisory lock.
func (s *Store) migrateInTurns(ctx context.Context, m *migrate.Migrator, lock bun.Tx, t turns, lockTimeout *time.Duration) ([]string, error) {
	var applied []string
	for turn := 0; ; turn++ {
		*lockTimeout = t.waits[turn]
		group, err := m.Migrate(ctx)
		done := group.Migrations
		if err != nil && len(done) > 0 {
			done = done[:len(done)-1] // the last is the one that failed
		}
		for _, mig := range done {
			applied = append(applied, mig.Name)
		}
		if err == nil {
			return applied, nil
		}
		failed := "a migration"
		if n := len(group.Migrations); n > 0 {
			failed = group.Migrations[n-1].String()
		}
		if !lockContended(err) {
			return applied, fmt.Errorf("store: migrate: %w", err)
		}
		holder := oldestTransaction(ctx, lock)
		if turn == len(t.waits)-1 {
			return applied, fmt.Errorf("store: migrate: %s could not take its locks in %d attempts (lock_timeout up to %v) and changed nothing: other transactions held the tables it alters (the oldest open: %s); run it again when they are done: %w",
				failed, len(t.waits), *lockTimeout, holder, err)
		}
		pause := time.Duration(float64(t.pause) * (0.5 + rand.Float64()))
		s.log.Warn("migration waits for locks held by other transactions; it gave up its place in the queue and will try again",
			"migration", failed, "attempt", turn+1, "attempts", len(t.waits), "waited", *lockTimeout, "next_in", pause, "oldest_transaction", holder)
		select {
		case <-ctx.Done():
			return applied, fmt.Errorf("store: migrate: %s waited for its locks: %w", failed, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// lockContended reports whether a migration failed only because it could not take a
// lock: its lock_timeout ran out, or PostgreSQL broke a deadlock by failing it.
// Nothing of it was applied, and it can run again as it is.
func lockContended(err error) bool {
	pgErr := pgError(err)
	return pgErr != nil && (pgErr.Code == lockNotAvailable || pgErr.Code == deadlockDetected)
}

// oldestTransaction describes the oldest transaction open in the database but tx's
// own, for an operator looking for what holds a migration's locks.
func oldestTransaction(ctx context.Context, tx bun.Tx) string {
	var (
		pid           int
		app, state, q string
		age           float64
	)
	// A transaction reads pg_stat_activity once and keeps what it read: without
	// clearing it, every attempt of a migration would name the first one's holder.
	if _, err := tx.ExecContext(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return fmt.Sprintf("unknown: %v", err)
	}
	err := tx.QueryRowContext(ctx, `
		SELECT pid, application_name, coalesce(state, ''), extract(epoch FROM clock_timestamp() - xact_start)::float8,
		       left(regexp_replace(coalesce(query, ''), '\s+', ' ', 'g'), 200)
		FROM pg_stat_activity
		WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
		ORDER BY xact_start LIMIT 1`).Scan(&pid, &app, &state, &age, &q)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "none now"
	case err != nil:
		return fmt.Sprintf("unknown: %v", err)
	}
	if app != "" {
		app = " of " + app
	}
	return fmt.Sprintf("pid %d%s, %s for %.1f s, last statement %q", pid, app, state, age, q)
}

// CheckSchema returns an error unless every migration this binary knows is applied and
// the database has none it does not know, whatever they declare: it reads only, so a
// command that must not migrate (segments check) can refuse a schema it was not
// written for.
func (s *Store) CheckSchema(ctx context.Context) error {
	status, err := s.migrationStatus(ctx, migrations.FS)
	if err != nil {
		return err
	}
	if _, err := checkKnown(status, false); err != nil {
		return err
	}
	var pending []string
	for _, m := range status {
		if m.State == MigrationPending {
			pending = append(pending, m.Name)
		}
	}
	if n := len(pending); n > 0 {
		if n > 3 { // a database never migrated lacks them all: `migrate --status` lists them
			pending = append(pending[:3], fmt.Sprintf("and %d more", n-3))
		}
		return fmt.Errorf("store: the database lacks %d migration(s) this binary has (%s): run `segments migrate` first", n, strings.Join(pending, ", "))
	}
	return nil
}

// The states of a migration (MigrationStatus.State).
const (
	MigrationApplied = "applied" // this binary has it, and the database
	MigrationPending = "pending" // this binary has it, the database not yet
	MigrationUnknown = "unknown" // the database has it, this binary not: a newer version applied it
)

// MigrationStatus is a migration, as this binary and the database know it.
type MigrationStatus struct {
	// Name is the migration's ID and name (20261209000001_deleted_contacts); of an
	// unknown migration whose declaration is not recorded, its ID alone.
	Name string
	// State is MigrationApplied, MigrationPending or MigrationUnknown.
	State string
	// KeepRunning is what the migration declares (migrations.Declaration): servers
	// older than it may keep running beside it. Declared is false when it declares
	// nothing (an unknown migration whose binary recorded no declaration), which
	// counts as stop.
	KeepRunning, Declared bool
}

// Migrations lists the migrations this binary has and those the database has, by
// ID, changing nothing: a database never migrated has them all pending.
func (s *Store) Migrations(ctx context.Context) ([]MigrationStatus, error) {
	return s.migrationStatus(ctx, migrations.FS)
}

// migrationCompatibility is a row of migration_compatibility: what a migration
// declares of older servers, recorded by the binary that has it for those that do
// not (recordDeclarations).
type migrationCompatibility struct {
	bun.BaseModel `bun:"table:migration_compatibility"`

	Name                    string `bun:",pk"` // the ID, as bun_migrations has it
	Comment                 string `bun:",notnull"`
	OlderServersKeepRunning bool   `bun:",notnull"`
}

// recordDeclarations records what each migration of ms declares (the up files of
// fsys) in migration_compatibility, beside Bun's bun_migrations, for binaries that
// do not know the migration. It records them all, applied or not, before they are
// applied: a declaration without its migration is never read, a migration without
// its declaration would count as stop. A recorded declaration is kept, as its
// migration is.
func (s *Store) recordDeclarations(ctx context.Context, fsys fs.FS, ms *migrate.Migrations) error {
	decls, err := migrations.Declarations(fsys)
	if err != nil {
		return fmt.Errorf("store: read migrations' declarations: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migration_compatibility (
		name text PRIMARY KEY,
		comment text NOT NULL,
		older_servers_keep_running boolean NOT NULL)`); err != nil {
		return fmt.Errorf("store: create migration_compatibility: %w", err)
	}
	// The server's role must not rewrite a declaration: made here, in a database
	// migrated before 20261213000001_server_role_privileges, the table took the
	// schema's default privileges, which gave the role every table; migrate takes
	// them away again (appPrivileges), as every privilege the role should not hold.
	var rows []migrationCompatibility
	for _, mig := range ms.Sorted() {
		rows = append(rows, migrationCompatibility{Name: mig.Name, Comment: mig.Comment, OlderServersKeepRunning: decls[mig.Name].KeepRunning})
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := s.db.NewInsert().Model(&rows).On("CONFLICT (name) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("store: record migrations' declarations: %w", err)
	}
	return nil
}

// migrationStatus lists the migrations of fsys and those of the database, reading
// only: without bun_migrations (a database never migrated) none is applied.
func (s *Store) migrationStatus(ctx context.Context, fsys fs.FS) ([]MigrationStatus, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(fsys); err != nil {
		return nil, fmt.Errorf("store: load migrations: %w", err)
	}
	decls, err := migrations.Declarations(fsys)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations' declarations: %w", err)
	}
	var hasApplied, hasRecorded bool
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass('bun_migrations') IS NOT NULL,
		to_regclass('migration_compatibility') IS NOT NULL`).Scan(&hasApplied, &hasRecorded); err != nil {
		return nil, fmt.Errorf("store: read applied migrations: %w", err)
	}
	applied := map[string]bool{}
	if hasApplied {
		var names []string
		if err := s.db.NewSelect().ColumnExpr("name").TableExpr("bun_migrations").Scan(ctx, &names); err != nil {
			return nil, fmt.Errorf("store: read applied migrations: %w", err)
		}
		for _, n := range names {
			applied[n] = true
		}
	}
	var out []MigrationStatus
	for _, mig := range ms.Sorted() {
		st := MigrationStatus{Name: mig.String(), State: MigrationPending, KeepRunning: decls[mig.Name].KeepRunning, Declared: decls[mig.Name].Declared}
		if applied[mig.Name] {
			st.State = MigrationApplied
			delete(applied, mig.Name)
		}
		out = append(out, st)
	}
	if len(applied) == 0 {
		return out, nil
	}
	recorded := map[string]migrationCompatibility{}
	if hasRecorded {
		var rows []migrationCompatibility
		if err := s.db.NewSelect().Model(&rows).Scan(ctx); err != nil {
			return nil, fmt.Errorf("store: read migrations' declarations: %w", err)
		}
		for _, r := range rows {
			recorded[r.Name] = r
		}
	}
	for name := range applied {
		st := MigrationStatus{Name: name, State: MigrationUnknown}
		if r, ok := recorded[name]; ok {
			st.Declared, st.KeepRunning = true, r.OlderServersKeepRunning
			if r.Comment != "" {
				st.Name = name + "_" + r.Comment
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b MigrationStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// checkUpToDate refuses a database that takes no writes when it lacks migrations: this
// binary's statements need them, and they cannot be applied now.
func (s *Store) checkUpToDate(ctx context.Context, m *migrate.Migrator) error {
	all, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("store: read applied migrations: %w", err)
	}
	if missing := all.Unapplied(); len(missing) > 0 {
		names := make([]string, len(missing))
		for i, mig := range missing {
			names[i] = mig.Name
		}
		return fmt.Errorf("store: the database takes no writes now (read-only: a standby, or default_transaction_read_only), and lacks migrations this binary needs (%s): start it when the database takes writes", strings.Join(names, ", "))
	}
	s.log.Warn("database is read-only: its schema is up to date; queries are served, writes answered UNAVAILABLE until it takes writes")
	return nil
}

// checkKnown refuses a database that has migrations this binary does not know (of
// status), as a newer version's schema, which this binary must not write to; with
// keepRunning, unless each of them declared that older servers may keep running
// (recorded by the binary that applied it), and returns those.
func checkKnown(status []MigrationStatus, keepRunning bool) (newer []string, err error) {
	var unknown []string
	compatible := true
	for _, m := range status {
		if m.State == MigrationUnknown {
			unknown = append(unknown, m.Name)
			compatible = compatible && m.KeepRunning
		}
	}
	if len(unknown) == 0 || keepRunning && compatible {
		return unknown, nil
	}
	return nil, fmt.Errorf("store: the database has migrations this binary does not know (%s): it was migrated by a newer version; upgrade this binary", strings.Join(unknown, ", "))
}
