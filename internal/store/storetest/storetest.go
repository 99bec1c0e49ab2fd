// Package storetest gives tests a real, migrated PostgreSQL database.
//
// With DATABASE_URL set, tests create their databases on that server. Otherwise the
// first test that asks starts a private server (package pgserver) in a temporary
// directory; Main stops it when the tests end. With SEGMENTS_TEST_PGBOUNCER=1 as
// well, tests reach that server through a PgBouncer in transaction mode: the whole
// suite then proves the service works behind one. Tests of one process share one migrated
// database and keep out of each other's way through workspaces, exactly as tenants do.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/pgserver"
	"github.com/segments/segments/internal/store"
)

var (
	mu      sync.Mutex
	server  *pgserver.Server
	tempDir string
	adminDB string // URL of a database on the server, to create others from
	bouncer *pgserver.Bouncer
	shared  *store.Store
	// sharedURL is the shared database's URL (through the bouncer when there is one);
	// app connects to it as store.AppRole.
	sharedURL string
	app       *store.Store
	dbs       []string // databases created, dropped by Main
)

// Main runs the tests of a package and then stops what they started. Call it from
// TestMain: os.Exit(storetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if app != nil {
		app.Close()
	}
	if shared != nil {
		shared.Close()
	}
	if server == nil && len(dbs) > 0 {
		dropDatabases() // on a server we did not start
	}
	if bouncer != nil {
		bouncer.Stop()
	}
	if server != nil {
		_ = server.Stop()
		os.RemoveAll(tempDir)
	}
	return code
}

// Store returns the store on the database shared by this process's tests.
func Store(tb testing.TB) *store.Store {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		return shared
	}
	url := newDatabase(tb)
	s, err := store.Open(context.Background(), url, store.Options{MaxConns: 10, AppName: "storetest"})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	shared, sharedURL = s, url
	return s
}

// NewStore returns a store on a new database of the test's own (Database), migrated,
// and closes it when the test ends: for tests that look at every workspace, or change
// the schema or the statistics, which the shared database (Store) must not see.
func NewStore(tb testing.TB, opts store.Options) *store.Store {
	tb.Helper()
	return MigratedStore(tb, Database(tb), opts)
}

// NewStores returns a store on a new database of the test's own, as NewStore does,
// and one on the same database connected as the application's role (as AppStore),
// both opened with opts and closed when the test ends.
func NewStores(tb testing.TB, opts store.Options) (owner, app *store.Store) {
	tb.Helper()
	return MigratedStores(tb, Database(tb), opts)
}

// MigratedStores returns MigratedStore's store on the database at url, and one on the
// same database connected as the application's role, both opened with opts and closed
// when the test ends.
func MigratedStores(tb testing.TB, url string, opts store.Options) (owner, app *store.Store) {
	tb.Helper()
	ctx := context.Background()
	owner = MigratedStore(tb, url, opts)
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	if app, err = store.Open(ctx, appURL, opts); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { app.Close() })
	return owner, app
}

// MigratedStore returns a store on the database at url, opened with opts and
// migrated, and closes it when the test ends: for tests that need the database's URL
// too (a second store on it, a proxy in front of it), with Database or a server of
// their own.
func MigratedStore(tb testing.TB, url string, opts store.Options) *store.Store {
	tb.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, url, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

// AppStore returns a store on the same database as Store, connected as the
// application's role (store.AppRole), which row-level security holds to one
// workspace: the one of the statement's context (store.WithWorkspace), or else the
// workspace authenticated by package auth (auth.WorkspaceFrom), as in the server.
func AppStore(tb testing.TB) *store.Store {
	tb.Helper()
	Store(tb)
	mu.Lock()
	defer mu.Unlock()
	if app != nil {
		return app
	}
	ctx := context.Background()
	url, err := store.AppURL(ctx, sharedURL)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := store.Open(ctx, url, store.Options{MaxConns: 10, AppName: "storetest-app", Tenant: AuthTenant, ClientCheckInterval: store.ClientCheckInterval, SerialPlans: true, NoJIT: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.CheckAppRole(ctx); err != nil {
		s.Close()
		tb.Fatal(err)
	}
	app = s
	return s
}

// AuthTenant is the store.Options.Tenant of a server: the workspace package auth
// authenticated.
func AuthTenant(ctx context.Context) (int64, bool) {
	ws, ok := auth.WorkspaceFrom(ctx)
	return ws.ID, ok
}

// Deadlocks returns the number of deadlocks PostgreSQL has detected in s's database,
// for tests that check that concurrent writers lock in one order. A busy backend
// reports its statistics at most once a second, and an idle one may hold them back for
// up to 10 s, but every backend reports them when it exits: so the pool's idle
// connections are closed first.
func Deadlocks(tb testing.TB, s *store.Store) int64 {
	tb.Helper()
	db := s.DB()
	db.SetMaxIdleConns(0)
	db.SetMaxIdleConns(db.Stats().MaxOpenConnections)
	var n int64
	var last int64 = -1
	// Until the number stops moving: the backends exit in their own time.
	for range 20 {
		if err := db.QueryRowContext(context.Background(),
			"SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == last {
			break
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// Database returns the URL of a new, empty database: for tests of migrations and of
// start-up.
func Database(tb testing.TB) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	return newDatabase(tb)
}

// Server starts a PostgreSQL server of the test's own, without durability
// (pgserver.Options.Ephemeral) and with settings (pgserver.Options.Settings), and
// stops it when the test ends: for tests of server settings.
func Server(tb testing.TB, settings ...string) *pgserver.Server {
	tb.Helper()
	pg, err := pgserver.Start(context.Background(), pgserver.Options{Dir: ServerDir(tb), Ephemeral: true, Settings: settings})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pg.Stop() })
	return pg
}

// ServerDir returns the path of a directory, not yet created, for a PostgreSQL server
// of the test's own (pgserver.Options.Dir), removed when the test ends. Not
// t.TempDir: as root, the server runs as the postgres OS user, which must be able to
// reach it.
func ServerDir(tb testing.TB) string {
	tb.Helper()
	base, err := reachableTempDir("segments-server-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(base) })
	return filepath.Join(base, "db")
}

// reachableTempDir makes a new temporary directory that the postgres OS user can
// reach, as a server started as root runs as that user.
func reachableTempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Workspace creates a new workspace and returns it with its API key.
func Workspace(tb testing.TB, s *store.Store) (crm.Workspace, auth.Key) {
	tb.Helper()
	key, err := auth.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	ws, err := s.CreateWorkspace(context.Background(), "test "+tb.Name(), store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix()})
	if err != nil {
		tb.Fatal(err)
	}
	return ws, key
}

func newDatabase(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	if adminDB == "" {
		if env := os.Getenv("DATABASE_URL"); env != "" {
			adminDB = env
		} else {
			dir, err := reachableTempDir("segments-test-")
			if err != nil {
				tb.Fatal(err)
			}
			// 400 connections, not the embedded server's 200: a package's tests share
			// this server, and through PgBouncer (a pool of 40 per database and role
			// beside the tests' own connections) the store's suite ran out of them
			// ("sorry, too many clients already") in make test's PgBouncer pass.
			srv, err := pgserver.Start(ctx, pgserver.Options{Dir: dir + "/db", Ephemeral: true, Settings: []string{"max_connections=400"}})
			if err != nil {
				os.RemoveAll(dir)
				tb.Fatal(err)
			}
			server, tempDir, adminDB = srv, dir, srv.URL("segments")
			if ThroughPgBouncer() {
				// The bouncer must know the application's role too.
				u, _ := url.Parse(adminDB)
				pw, _ := u.User.Password()
				appLogin := pgserver.Login{User: store.AppRole, Password: store.AppPassword(pw)}
				if bouncer, err = srv.StartBouncer(ctx, dir+"/bouncer", appLogin); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	conn, err := pgx.Connect(ctx, adminDB)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("segments_test_%d_%s", os.Getpid(), hex.EncodeToString(suffix))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatal(err)
	}
	dbs = append(dbs, name)
	if bouncer != nil {
		return bouncer.URL(name)
	}
	u, err := url.Parse(adminDB)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// ThroughPgBouncer reports whether tests reach PostgreSQL through PgBouncer: tests
// that inspect the server's sessions (pg_stat_activity) see the bouncer's then.
func ThroughPgBouncer() bool {
	return os.Getenv("SEGMENTS_TEST_PGBOUNCER") == "1" && os.Getenv("DATABASE_URL") == ""
}

func dropDatabases() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminDB)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, name := range dbs {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
}

// Exec runs query on db, failing the test on an error.
func Exec(tb testing.TB, db *sql.DB, query string, args ...any) {
	tb.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		tb.Fatal(err)
	}
}

// Column returns the first column of every row that query returns on db, in order,
// failing the test on any error.
func Column[T any](tb testing.TB, db *sql.DB, query string, args ...any) []T {
	tb.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			tb.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Conn opens a connection to url that prepares no statements, so that it works
// through PgBouncer in transaction pooling (where the next transaction may run on a
// server connection that never prepared them), and closes it when the test ends.
func Conn(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
