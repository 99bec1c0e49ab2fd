package store_test

import (
	"context"
	"fmt"
	"io/fs"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/migrations"
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

// withMigration returns the project's migrations and one more, of name and up's SQL,
// as a migration that a new version of the server brings.
func withMigration(t *testing.T, name, up string) fs.FS {
	t.Helper()
	fsys := fstest.MapFS{name + ".tx.up.sql": {Data: []byte(up)}}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(migrations.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		fsys[e.Name()] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// holdContacts opens a transaction that has read the contacts table, as a request or
// a bulk assignment under way does: it holds the table in ACCESS SHARE mode, which an
// ALTER TABLE must wait for. It returns the transaction's backend and its end.
func holdContacts(t *testing.T, s *store.Store) (pid int, release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid() FROM (SELECT count(*) FROM contacts) c").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback() }) }
	t.Cleanup(release)
	return pid, release
}

// hasColumn reports whether the contacts table has the named column.
func hasColumn(t *testing.T, s *store.Store, name string) bool {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM information_schema.columns WHERE table_name = 'contacts' AND column_name = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// A migration that a newer version of the server brings: its file's name, the ID Bun
// knows it by, and its SQL.
const (
	alterContactsName = alterContactsID + "_contacts_gain_a_column"
	alterContactsID   = "29990101000000"
	alterContactsSQL  = "ALTER TABLE contacts ADD COLUMN migrated_beside_traffic int"
)

// TestMigrationGivesWayToTraffic: a migration that alters a table while a transaction
// holds it waits in short turns, so that the requests that come to the table
// meanwhile are not stopped behind its lock request for as long as the holder runs,
// and applies once the holder is done. Before, the ALTER waited without a limit, and
// every statement on contacts queued behind it: the reader below waited for the
// holder's end, past the test's limit.
func TestMigrationGivesWayToTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log logtest.Buffer
	s := storetest.NewStore(t, store.Options{Log: log.Logger()})
	_, release := holdContacts(t, s)

	type result struct {
		applied []string
		err     error
	}
	fsys := withMigration(t, alterContactsName, alterContactsSQL)
	done := make(chan result, 1)
	go func() {
		applied, err := store.MigrateFrom(ctx, s, fsys, 50*time.Millisecond, 1000, 20*time.Millisecond)
		done <- result{applied, err}
	}()

	// Wait until the ALTER waits for its lock, so that the reader comes behind it.
	for {
		var waiting int
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE contacts%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the migration returned %v, %v while the contacts were held", r.applied, r.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	readCtx, cancelRead := context.WithTimeout(ctx, 5*time.Second)
	defer cancelRead()
	start := time.Now()
	var n int
	if err := s.DB().QueryRowContext(readCtx, "SELECT count(*) FROM contacts").Scan(&n); err != nil {
		t.Fatalf("a read of the contacts while the migration waited: %v after %v; want it to pass the migration, which gives up its place after 50 ms", err, time.Since(start))
	}
	t.Logf("a read behind the waiting migration took %v", time.Since(start))
	if hasColumn(t, s, "migrated_beside_traffic") {
		t.Fatal("the migration applied while a transaction held the contacts")
	}

	release()
	r := <-done
	if r.err != nil {
		t.Fatalf("the migration, once the contacts were released: %v", r.err)
	}
	if len(r.applied) != 1 || r.applied[0] != alterContactsID {
		t.Errorf("applied %v; want [%s]", r.applied, alterContactsID)
	}
	if !hasColumn(t, s, "migrated_beside_traffic") {
		t.Error("the migration returned no error and the column is not there")
	}
	if got := log.String(); !strings.Contains(got, "migration waits for locks") || !strings.Contains(got, alterContactsName) {
		t.Errorf("the store's log says %q; want a warning that the migration waits for locks, naming it", got)
	}
}

// TestMigrationThatCannotLockChangesNothing: a migration whose table stays held
// through all its attempts fails with an error that names it and the transaction
// that held the table, applies nothing and is not marked applied; run again once the
// table is free, it applies.
func TestMigrationThatCannotLockChangesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := storetest.NewStore(t, store.Options{})
	pid, release := holdContacts(t, s)
	fsys := withMigration(t, alterContactsName, alterContactsSQL)

	start := time.Now()
	applied, err := store.MigrateFrom(ctx, s, fsys, 50*time.Millisecond, 3, 20*time.Millisecond)
	if err == nil {
		t.Fatalf("the migration applied %v while a transaction held the contacts", applied)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the migration took %v to give up; want about 3 × 50 ms", took)
	}
	t.Logf("the migration's error: %v", err)
	if len(applied) != 0 {
		t.Errorf("applied %v; want nothing", applied)
	}
	for _, want := range []string{alterContactsName, "3 attempts", fmt.Sprintf("pid %d", pid), "changed nothing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if hasColumn(t, s, "migrated_beside_traffic") {
		t.Error("the failed migration left its column")
	}
	var marked int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM bun_migrations WHERE name = $1", alterContactsID).Scan(&marked); err != nil {
		t.Fatal(err)
	}
	if marked != 0 {
		t.Error("the failed migration is marked applied")
	}

	release()
	if applied, err := store.MigrateFrom(ctx, s, fsys, 50*time.Millisecond, 3, 20*time.Millisecond); err != nil || len(applied) != 1 {
		t.Errorf("run again with the contacts free: applied %v, %v; want the migration", applied, err)
	}
	if !hasColumn(t, s, "migrated_beside_traffic") {
		t.Error("run again, the migration did not add its column")
	}
}

// TestOldestTransactionIsCurrent: the description of the oldest open transaction, as
// each attempt of a waiting migration logs it, is read anew each time. PostgreSQL
// keeps what a transaction read of pg_stat_activity until it ends, and the
// migrations' lock is held in one transaction for the whole run: every attempt named
// the holder of the first, even after it had ended.
func TestOldestTransactionIsCurrent(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	var pid int
	before, after, err := store.OldestTransactions(ctx, s, func() { pid, _ = holdContacts(t, s) })
	if err != nil {
		t.Fatal(err)
	}
	holder := fmt.Sprintf("pid %d,", pid)
	if strings.Contains(before, holder) {
		t.Fatalf("before the holder began, the oldest transaction was %q: the test proves nothing", before)
	}
	if !strings.Contains(after, holder) {
		t.Errorf("the oldest transaction once the holder began: %q; want it (%s)", after, holder)
	}
}

// TestStoredTextsComposed: the migration that composes the texts stored before the API
// composed them (NFC) composes segments' names and descriptions and contacts' names
// and emails, and of segments whose names compose to one, leaves one with it: the one
// composed already, else the oldest. Stored decomposed, they were no longer found by
// a search (whose terms are composed), and a composed twin could be created beside.
func TestStoredTextsComposed(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{})
	up, err := fs.ReadFile(migrations.FS, "20261206000003_compose_texts.tx.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	wss := make([]int64, 3)
	for i := range wss {
		ws, _ := storetest.Workspace(t, s)
		wss[i] = ws.ID
	}
	const nfd, nfc = "Cafe\u0301", "Café"
	segment := func(ws int64, name string) (id int64) {
		t.Helper()
		if err := s.DB().QueryRowContext(ctx, `INSERT INTO segments (workspace_id, name, description) VALUES ($1, $2, $3) RETURNING id`, ws, name, "Cre\u0300me").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	alone := segment(wss[0], nfd)          // composed
	twinOfComposed := segment(wss[1], nfd) // keeps its name:
	segment(wss[1], nfc)                   // this one has it
	// Two decomposed names of one composed name (marks in another order): one gets it.
	oldest, younger := segment(wss[2], "Vie\u0323\u0302t"), segment(wss[2], "Vie\u0302\u0323t")
	storetest.Exec(t, s.DB(), `INSERT INTO contacts (workspace_id, phone, name, email) VALUES ($1, '+919800000001', $2, $3)`,
		wss[0], "Rene\u0301e", "rene\u0301e@example.com")

	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, string(up)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]string{alone: nfc, twinOfComposed: nfd, oldest: "Việt", younger: "Vie\u0302\u0323t"} {
		var name, desc string
		if err := s.DB().QueryRowContext(ctx, `SELECT name, description FROM segments WHERE id = $1`, id).Scan(&name, &desc); err != nil {
			t.Fatal(err)
		}
		if name != want || desc != "Crème" {
			t.Errorf("segment %d: %+q, %+q; want %+q, Crème", id, name, desc, want)
		}
	}
	var name, email string
	if err := s.DB().QueryRowContext(ctx, `SELECT name, email FROM contacts WHERE workspace_id = $1`, wss[0]).Scan(&name, &email); err != nil {
		t.Fatal(err)
	}
	if name != "Renée" || email != "renée@example.com" {
		t.Errorf("contact: %+q, %+q; want composed", name, email)
	}
}

// TestOlderBinaryBesideNewerMigrations: a binary started on a database that a newer
// version migrated further starts, warning and naming them, when each migration it
// does not know declared that older servers may keep running (as the newer binary
// recorded it), and refuses as before when one declared stop or declared nothing.
// Before, it refused any: an old server restarted mid-rollout (a crash, an eviction,
// a rollback) could not start beside a new table it never uses.
func TestOlderBinaryBesideNewerMigrations(t *testing.T) {
	for _, c := range []struct {
		name, header string
		starts       bool
	}{
		{"keep running", "-- older servers: keep running: a new table\n", true},
		{"stop", "-- older servers: stop: older servers would write what it forbids\n", false},
		{"undeclared", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var log logtest.Buffer
			s := storetest.NewStore(t, store.Options{Log: log.Logger()})
			// The newer binary: this one's migrations and one more.
			fsys := withMigration(t, "29990101000001_newer_table", c.header+"CREATE TABLE newer_table (id int)")
			if applied, err := store.MigrateFrom(ctx, s, fsys, time.Second, 1, 0); err != nil || len(applied) != 1 {
				t.Fatalf("the newer binary applied %v: %v; want its one migration", applied, err)
			}
			log.Reset()

			_, err := s.Migrate(ctx) // this binary, which does not know it
			if !c.starts {
				if err == nil || !strings.Contains(err.Error(), "does not know (29990101000001_newer_table)") {
					t.Errorf("Migrate beside a migration that says %q: %v, want a refusal naming it", c.header, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Migrate beside a migration declared compatible: %v, want none", err)
			}
			if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "29990101000001_newer_table") {
				t.Errorf("the log does not warn of the newer migration by name:\n%s", got)
			}
			// A migration that declares stop, applied after, refuses it again.
			fsys = withMigration(t, "29990101000002_newer_stop", "-- older servers: stop: x\nCREATE TABLE newer_stop (id int)")
			if _, err := store.MigrateFrom(ctx, s, fsys, time.Second, 1, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "29990101000002") {
				t.Errorf("Migrate beside a compatible and a stop migration: %v, want a refusal", err)
			}
		})
	}
}

// TestMigrationsChangeNothing: Migrations lists what a database lacks without
// migrating it, even one never migrated (no bun_migrations yet), and an applied
// migration this binary does not know as unknown, with what it declared.
func TestMigrationsChangeNothing(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.Database(t), store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	status, err := s.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range status {
		if m.State != store.MigrationPending || !m.Declared {
			t.Errorf("a database never migrated: %+v, want pending and declared", m)
		}
	}
	var exists bool
	if err := s.DB().QueryRowContext(ctx, "SELECT to_regclass('bun_migrations') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("Migrations made bun_migrations (%v, %v)", exists, err)
	}
	if err := s.CheckSchema(ctx); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("CheckSchema on a database never migrated: %v, want one naming what it lacks", err)
	}

	fsys := withMigration(t, "29990101000001_newer_table", "-- older servers: keep running: a new table\nCREATE TABLE newer_table (id int)")
	if _, err := store.MigrateFrom(ctx, s, fsys, time.Second, 1, 0); err != nil {
		t.Fatal(err)
	}
	if status, err = s.Migrations(ctx); err != nil {
		t.Fatal(err)
	}
	last := status[len(status)-1]
	if want := (store.MigrationStatus{Name: "29990101000001_newer_table", State: store.MigrationUnknown, KeepRunning: true, Declared: true}); last != want {
		t.Errorf("the newer migration: %+v, want %+v", last, want)
	}
	for _, m := range status[:len(status)-1] {
		if m.State != store.MigrationApplied {
			t.Errorf("after migrating: %+v, want applied", m)
		}
	}
}

// TestServerRoleCannotRewriteDeclarations: the server's role may not write
// migration_compatibility, where a binary reads whether it may run beside newer
// migrations. The table took the schema's default privileges when it was made in a
// database the role already existed in (one migrated before the table), which granted
// the role every table: every run of the migrations takes them away again, as every
// privilege the role is not declared to hold (privileges_test.go).
func TestServerRoleCannotRewriteDeclarations(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	storetest.Exec(t, s.DB(), "GRANT ALL ON migration_compatibility TO "+store.AppRole) // as the default privileges did
	if _, err := storetest.MigratedStore(t, url, store.Options{MaxConns: 2}).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var writes bool
	if err := s.DB().QueryRowContext(ctx, "SELECT has_table_privilege($1, 'migration_compatibility', 'INSERT, UPDATE, DELETE')", store.AppRole).Scan(&writes); err != nil {
		t.Fatal(err)
	}
	if writes {
		t.Error("the server's role may write migration_compatibility")
	}
}

// TestMigrateWarnsOfASCIIOnlyCase: a database whose LC_CTYPE is C lowercases ASCII
// letters alone, which searches and segment names' uniqueness rely on for every
// script; opening one warns, and opening one of a UTF-8 locale does not. Nothing
// said so: such a database of DATABASE_URL's found no "ŁÓDŹ" by "łódź".
func TestMigrateWarnsOfASCIIOnlyCase(t *testing.T) {
	if storetest.ThroughPgBouncer() {
		t.Skip("makes a database PgBouncer does not list")
	}
	ctx := context.Background()
	url := storetest.Database(t)
	var utf8Log logtest.Buffer
	s := storetest.MigratedStore(t, url, store.Options{Log: utf8Log.Logger()})
	if strings.Contains(utf8Log.String(), "LC_CTYPE") {
		t.Errorf("a database of C.UTF-8 warned:\n%s", utf8Log.String())
	}

	name := fmt.Sprintf("ctype_c_%d", time.Now().UnixNano())
	if _, err := s.DB().ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DB().ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	var cLog logtest.Buffer
	c := storetest.MigratedStore(t, u.String(), store.Options{Log: cLog.Logger()})
	if !strings.Contains(cLog.String(), "LC_CTYPE lowercases ASCII letters alone") {
		t.Errorf("a database of LC_CTYPE C did not warn:\n%s", cLog.String())
	}
	var lowered string
	if err := c.DB().QueryRowContext(ctx, "SELECT lower('ŁÓDŹ')").Scan(&lowered); err != nil || lowered != "ŁÓdŹ" {
		t.Errorf("lower('ŁÓDŹ') = %q (%v), want ŁÓdŹ: the premise, that C lowercases ASCII alone, no longer holds", lowered, err)
	}
}
