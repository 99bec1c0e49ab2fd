// Package store keeps the CRM in PostgreSQL through Bun. It is the only package that
// writes SQL.
//
// Every method acts for one workspace, passed explicitly, and every statement filters
// by it: another workspace's rows are invisible, exactly like rows that do not exist.
// Input problems come back as *crm.Error or crm.Errors and leave the database unchanged.
//
// Connected as AppRole, PostgreSQL's row-level security also holds every statement to
// the workspace of its context (tenant.go).
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Store is the CRM's data, safe for concurrent use.
type Store struct {
	db         *bun.DB
	connector  driver.Connector   // db's, from which ownPool opens pools of its own
	endLife    context.CancelFunc // stops the connector's opens in flight (Close)
	pools      ownPools           // those pools, which Close closes
	ready      *bun.DB            // Ping's one connection, an ownPool that no request takes
	stats      learnedStatistics  // what PostgreSQL's statistics tell the plans (statistics.go)
	analyzer   analyzer           // when to analyze a new workspace's rows (analyze.go)
	catalogs   catalogs           // the workspaces' segment catalogs (catalog.go)
	cancels    *cancelCounts      // what was done about cancels not a statement's own (cancel.go)
	background background         // the work no request waits for
	log        *slog.Logger       // Options.Log
}

// background runs the store's work that no request waits for (learning the
// statistics, analyzing new workspaces) in goroutines that Close stops and waits for.
type background struct {
	ctx     context.Context // canceled by Close
	stop    context.CancelFunc
	mu      sync.Mutex // orders starting work before Close's wait
	stopped bool
	running sync.WaitGroup
}

// goBackground runs f with the store's background context in a goroutine of its own,
// unless the store is closed.
func (s *Store) goBackground(f func(ctx context.Context)) {
	b := &s.background
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.running.Add(1)
	go func() {
		defer b.running.Done()
		f(b.ctx)
	}()
}

// ownPools are the connection pools opened by Store.ownPool.
type ownPools struct {
	mu    sync.Mutex
	pools []*bun.DB
}

// DefaultMaxConns is the pool size of a store whose Options.MaxConns is 0.
const DefaultMaxConns = 20

// Options tune the connection pool.
type Options struct {
	// MaxConns caps open connections; 0 means DefaultMaxConns.
	MaxConns int
	// AppName is reported to PostgreSQL as application_name (pg_stat_activity).
	AppName string
	// StatementTimeout and IdleInTransactionTimeout, when positive, become the
	// defaults of the connecting role in this database (ALTER ROLE ... IN DATABASE ...
	// SET), so that they hold for every session, also through PgBouncer, which does
	// not pass such settings from a client. They are the database's own backstop
	// behind the request deadline: a statement nobody waits for any more, or a
	// transaction its client forgot, cannot hold locks and a connection for long.
	// They are rounded up to whole milliseconds (500µs is 1ms, not 0: none).
	StatementTimeout         time.Duration
	IdleInTransactionTimeout time.Duration
	// ClientCheckInterval, when positive, becomes the role's
	// client_connection_check_interval the same way: how often a backend busy in a
	// statement, or waiting for a lock, checks that its client is still connected. A
	// cancelled context stops its statement with a cancel request (cancelByRequest),
	// but through a pooler such as PgBouncer pgx closes the connection's socket, as it
	// does when a cancel goes unanswered or our process exits; without the check the
	// backend notices only when it next writes to the socket, and until then keeps
	// its locks and its connection slot, even after our process has exited. Through
	// PgBouncer the bouncer closes its server connection when its client's goes, so
	// the check works there too.
	ClientCheckInterval time.Duration
	// SerialPlans, when set, makes max_parallel_workers_per_gather 0 the role's
	// default the same way: PostgreSQL then plans every statement without parallel
	// workers. The API's statements read a page or a count; starting workers cost
	// more than they could save (20-50 ms to launch two on a 2-core machine, where
	// the page they served took 1 ms), and the planner chose them for exactly the
	// pages it misjudged (a walk of the contacts for the members of a segment it
	// took for larger than it was).
	SerialPlans bool
	// NoJIT, when set, makes jit off the role's default the same way: PostgreSQL then
	// never compiles a statement's expressions. It compiles those it costs above
	// jit_above_cost (100,000), which on this API were mostly statements it misjudged
	// rather than long ones: an audience page of five segments, read from their
	// bitmaps in 19-21 ms, spent another 160 ms compiling for the way of reading the
	// members that it costed and did not take (allMembers); an earlier form of the
	// assignments' insert, 74 ms. Without it, counting 200,000 to 1M matches of a
	// search takes 30-70 ms longer (0.2-0.35 s).
	NoJIT bool
	// Tenant returns the workspace whose rows the statements of a context may see,
	// for contexts without WithWorkspace: the server's finds the authenticated
	// workspace. Connected as AppRole, a statement without a workspace sees no tenant
	// row (see tenant.go).
	Tenant func(context.Context) (int64, bool)
	// Log receives what the store does on its own that an operator would want to
	// know: a migration waiting for locks, statistics it cannot learn, an analysis
	// that failed. Nil discards it.
	Log *slog.Logger
}

// ParseURL parses a database URL (postgres://...) or keyword/value string as pgx
// does, refusing first a URL whose user or password holds an '@' that is not
// percent-encoded. pgx, as libpq, ends the user and password at the first '@' and
// takes the rest for the host, so that "postgres://segments:Sec@ret@db/x" failed to
// connect with "lookup ret@db: no such host", echoing part of the password, where
// pgx's own refusals of a URL show it as xxxxx. Its errors echo none of url.
func ParseURL(url string) (*pgx.ConnConfig, error) {
	if rest, ok := cutScheme(url); ok {
		// As libpq, only a '/' ends the search for the user's '@'; a host has none.
		before, _, _ := strings.Cut(rest, "/")
		if strings.Count(before, "@") > 1 {
			return nil, errors.New("more than one '@' before the host: percent-encode '@' in the user or password as %40")
		}
	}
	return pgx.ParseConfig(url)
}

// cutScheme returns url without its postgres:// or postgresql:// scheme, and
// whether it had one: a URL rather than a keyword/value string, in which a
// password's '@' needs no escaping.
func cutScheme(url string) (string, bool) {
	if rest, ok := strings.CutPrefix(url, "postgresql://"); ok {
		return rest, true
	}
	return strings.CutPrefix(url, "postgres://")
}

// Open connects to the database at url. It does not migrate: call Migrate.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("store: parse database URL: %w", err)
	}
	// Bun interpolates arguments into the statement text, so every statement reaches pgx
	// without arguments. The simple protocol sends it in one round trip, and works
	// behind PgBouncer in transaction mode; pgx's own statement cache would prepare
	// every text, with its parameters' generic plans. A read sent again is prepared by
	// the tenant connection itself (prepared.go), with no parameters, where it reaches
	// PostgreSQL directly.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.RuntimeParams["timezone"] = "UTC"
	if opts.AppName != "" {
		cfg.RuntimeParams["application_name"] = opts.AppName
	}
	first, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	unset, err := configureRole(ctx, first, cfg, opts)
	var direct bool
	cancels := new(cancelCounts)
	if err == nil {
		direct, err = cancelByRequest(ctx, first, cfg, cancels)
	}
	// The connections' statement_timeout: the one set (configureRole), else the
	// database's (read: set as 1 ms, it would stop the read).
	statementTimeout := time.Duration(ceilUnits(opts.StatementTimeout, time.Millisecond)) * time.Millisecond
	if err == nil && opts.StatementTimeout <= 0 {
		statementTimeout, err = readStatementTimeout(ctx, first)
	}
	first.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	// Each statement carries its context's workspace for row-level security. A
	// statement sent again is prepared, on a connection to PostgreSQL itself
	// (prepared.go): a pooler in transaction mode would run it on another.
	life, endLife := context.WithCancel(context.Background())
	connector := tenantConnector{Connector: stdlib.GetConnector(*cfg, stdlib.OptionShouldPing(shouldPing)), tenant: opts.Tenant, prepare: direct, cancels: cancels, statementTimeout: statementTimeout, life: life}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	db := newPool(connector, opts.MaxConns)
	if err := db.PingContext(ctx); err != nil {
		endLife()
		db.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	s := &Store{db: db, connector: connector, endLife: endLife, analyzer: newAnalyzer(), cancels: cancels, log: opts.Log}
	s.ready = s.ownPool(1)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(unset) > 0 {
		s.log.Warn("database is read-only: the role's session defaults could not be changed, so this process's sessions set them as they connect",
			"settings", strings.Join(unset, ", "))
	}
	s.background.ctx, s.background.stop = context.WithCancel(context.Background())
	s.learnStatistics(ctx)
	return s, nil
}

// restartedAt is when this process last learned that its database started again
// (NoteRestart), in Unix nanoseconds; 0: never.
var restartedAt atomic.Int64

// restartPingWindow is how long after NoteRestart every pooled connection is pinged
// before it is reused.
const restartPingWindow = 30 * time.Second

// NoteRestart tells the process's stores that their database started again (the
// embedded PostgreSQL, restarted by the command that keeps it). A connection to the
// server that ended holds the FATAL that server sent it, read by the next statement
// on it: pgx pings a connection before reuse only once it has been idle for a second,
// so one used in the second before the crash failed the first request after the
// restart (SERVICE_UNAVAILABLE; TestServeStartsItsDatabaseAgain, now and then). For
// restartPingWindow after NoteRestart, every reuse pings first: the dead connections
// are dropped and replaced, at a round trip per reuse meanwhile.
func NoteRestart() { restartedAt.Store(time.Now().UnixNano()) }

// shouldPing is the pools' stdlib.OptionShouldPing: pgx's own rule (a connection
// idle for more than a second), and every connection within restartPingWindow of
// NoteRestart.
func shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	at := restartedAt.Load()
	return p.IdleDuration > time.Second || at != 0 && time.Since(time.Unix(0, at)) < restartPingWindow
}

// newPool returns a pool of at most n connections of connector, which keeps them
// open while idle up to five minutes, and runs the store's query hooks.
func newPool(connector driver.Connector, n int) *bun.DB {
	sqldb := sql.OpenDB(connector)
	sqldb.SetMaxOpenConns(n)
	sqldb.SetMaxIdleConns(n)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	// A connection keeps its prepared statements' plans (prepared.go) until a change
	// to their tables replans them, and PostgreSQL does not replan for what changes
	// no table: a function declared leakproof again (segments check --repair), a
	// planner setting reloaded. New connections plan afresh.
	sqldb.SetConnMaxLifetime(connMaxLifetime)
	db := bun.NewDB(sqldb, pgdialect.New())
	for _, h := range queryHooks {
		db.AddQueryHook(h)
	}
	return db
}

// connMaxLifetime is how long a pool's connection serves before it is replaced.
const connMaxLifetime = 30 * time.Minute

// ownPool returns a pool of at most n connections of the store's, its own: for work
// that must not wait behind the requests for the store's pool. Close closes it.
func (s *Store) ownPool(n int) *bun.DB {
	db := newPool(s.connector, n)
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	s.pools.pools = append(s.pools.pools, db)
	return db
}

// ClientCheckInterval is the Options.ClientCheckInterval of a store that serves
// requests: a statement whose client went away stops within a second.
const ClientCheckInterval = time.Second

// roleDefaultsLockKey is the advisory lock that serializes configureRole when
// several servers start at once (migrationLockKey's neighbour).
const roleDefaultsLockKey = 7264002

// cancelFallback is how long a cancelled statement's connection waits for the cancel
// request's effect (cancelByRequest) before pgx closes its socket after all, and for
// PostgreSQL to have dealt with the cancel request before the connection is dropped
// rather than reused (cancelHandler), counted from the cancel request: a cancelled
// statement stopped 3-41 ms after its cancel on a loaded 2-core machine
// (TestCancelledStatementsKeepTheirConnection), so ten times that means PostgreSQL is
// not answering; and a shutdown's cancelled requests, which then roll back
// (rollbackTimeout), must still answer within its last second (cancelledRequestsGrace):
// cancelGrace, cancelFallback and rollbackTimeout together are 850 ms.
const cancelFallback = 500 * time.Millisecond

// cancelGrace is how long a statement whose client left (its context cancelled the
// plain way, abandoned) may run on before a cancel request is sent for it
// (cancelHandler); a deadline's or a shutdown's is sent at once. One that returns by then costs no cancel
// request, no process forked by the postmaster, no wait for its settling, and no
// dropped connection. The API's reads take a few milliseconds, and clients that give
// up after 3-40 ms (a type-ahead search, a prober's storm) abandoned statements that
// ended a moment later anyway. A runaway statement stops this much later: within
// cancelGrace and cancelFallback of its client's leaving (600 ms), not
// statement_timeout.
const cancelGrace = 100 * time.Millisecond

// cancelByRequest makes a cancelled context (its client gone, a request's deadline,
// the end of a shutdown's grace period) stop its statement with a cancel request,
// when conn, a connection of cfg, reaches PostgreSQL itself: the statement ends with
// query_canceled (57014) and its connection goes back to the pool. pgx's default
// closes the connection's socket (and asyncClose sends a cancel request too), so that
// each cancel cost a new backend, its authentication and its role's settings for the
// next statement: 9 of 9 cancelled statements before (TestCancelledStatementsKeep
// TheirConnection), a type-ahead search cancelled at every keystroke.
//
// Through a pooler such as PgBouncer, which gives its clients cancel keys of its own
// (the process ID conn was given is not its backend's), the default stays, and a
// pooler's handling of a late cancel is its own. PgBouncer 1.18, Debian 12's, exits
// (FATAL "bad client state: 0"; "server in bad state", pgbouncer#822, in our
// PgBouncer suite before) when a cancel request's connection closes before it
// answered, as pgx's handler closes it once the cancelled statement has returned: at
// the second cancel of TestCancelledStatementsKeepTheirConnection through it. pgx's
// default sends its cancel as it closes the connection and waits for the answer; the
// backend stops as soon (3-11 ms there), else within client_connection_check_interval
// once PgBouncer closes its server connection (Options.ClientCheckInterval).
//
// It reports whether conn reaches PostgreSQL itself (direct). The handler is the
// store's own (cancelHandler): pgx's gave up on a cancel request as soon as its
// statement returned, and a cancel delivered late stopped another request's
// statement; counts receives the connections dropped for a cancel still unsettled.
func cancelByRequest(ctx context.Context, conn *pgx.Conn, cfg *pgx.ConnConfig, counts *cancelCounts) (direct bool, err error) {
	var pid uint32
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return false, fmt.Errorf("store: read the backend's process ID: %w", err)
	}
	if pid != conn.PgConn().PID() {
		return false, nil
	}
	// The cancel is sent once the grace passed for a request whose client left, at
	// once otherwise, and the connection kept until PostgreSQL has dealt with it, so
	// that it stops no later statement (cancel.go).
	cfg.BuildContextWatcherHandler = func(pgConn *pgconn.PgConn) ctxwatch.Handler {
		return newCancelHandler(pgConn, counts)
	}
	return true, nil
}

// readStatementTimeout returns conn's statement_timeout (0: none), which its role's
// default (configureRole) gives every connection of the pool.
func readStatementTimeout(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	var ms int64
	if err := conn.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'").Scan(&ms); err != nil {
		return 0, fmt.Errorf("store: read statement_timeout: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// configureRole sets the role's session defaults on conn, a connection of cfg, before
// the pool opens its first connection, so that every connection of the pool has them.
//
// A database that takes no writes (a hot standby, default_transaction_read_only)
// refuses ALTER ROLE: a server restarted there could not start at all. The defaults
// an earlier start set usually hold already; those that differ are set as each
// connection starts (cfg's runtime parameters, which take precedence over the
// role's), and returned as name=value to be reported.
func configureRole(ctx context.Context, conn *pgx.Conn, cfg *pgx.ConnConfig, opts Options) (unset []string, err error) {
	var sets, now []string
	want := map[string]string{}
	set := func(name, value string) {
		sets = append(sets, fmt.Sprintf(
			"EXECUTE format('ALTER ROLE %%I IN DATABASE %%I SET %s = %s', current_user, current_database());",
			name, value))
		now = append(now, fmt.Sprintf("SET %s = %s;", name, value))
		want[name] = value
	}
	for _, s := range []struct {
		name string
		d    time.Duration
	}{
		{"statement_timeout", opts.StatementTimeout},
		{"idle_in_transaction_session_timeout", opts.IdleInTransactionTimeout},
		{"client_connection_check_interval", opts.ClientCheckInterval},
	} {
		if s.d > 0 {
			set(s.name, strconv.FormatInt(ceilUnits(s.d, time.Millisecond), 10))
		}
	}
	if opts.SerialPlans {
		set("max_parallel_workers_per_gather", "0")
	}
	if opts.NoJIT {
		set("jit", "off")
	}
	if len(sets) == 0 {
		return nil, nil
	}
	// A role's defaults reach only sessions that start after the change. Through
	// PgBouncer this session's server connection stays open and serves the pool next,
	// so it gets the values now too. (A bouncer's older server connections get them
	// when it reconnects them: server_lifetime, or RECONNECT on its console.) Servers
	// that start at once take turns: two ALTER ROLEs of one role's settings at a time
	// fail ("tuple concurrently updated"), and the server that lost would not start.
	// The lock is the statement's transaction's. The session starts with the defaults
	// being replaced: without the first SET, the 1 ms an earlier run had set stopped
	// the statement that replaces it, and no server could start again.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0; "+
		fmt.Sprintf("DO $$ BEGIN PERFORM pg_advisory_xact_lock(%d); ", roleDefaultsLockKey)+
		strings.Join(sets, " ")+" END $$; RESET statement_timeout; "+strings.Join(now, " ")); err != nil {
		if !ReadOnly(err) {
			return nil, fmt.Errorf("store: set the role's session defaults: %w", err)
		}
		return roleDefaultsDiffer(ctx, conn, cfg, want)
	}
	return nil, nil
}

// roleDefaultsDiffer finds which of want the role's defaults in this database lack,
// and sets those as cfg's runtime parameters instead.
func roleDefaultsDiffer(ctx context.Context, conn *pgx.Conn, cfg *pgx.ConnConfig, want map[string]string) ([]string, error) {
	var have []string
	err := conn.QueryRow(ctx, `
		SELECT coalesce(s.setconfig, '{}')
		FROM pg_roles AS r CROSS JOIN pg_database AS d
		LEFT JOIN pg_db_role_setting AS s ON s.setrole = r.oid AND s.setdatabase = d.oid
		WHERE r.rolname = current_user AND d.datname = current_database()`).Scan(&have)
	if err != nil {
		return nil, fmt.Errorf("store: read the role's session defaults: %w", err)
	}
	var unset []string
	for name, value := range want {
		if !slices.Contains(have, name+"="+value) {
			cfg.RuntimeParams[name] = value
			unset = append(unset, name+"="+value)
		}
	}
	slices.Sort(unset)
	return unset, nil
}

// InTurn runs fn while it holds the advisory lock named name: processes that run
// InTurn with the same name at once take turns. fn may use the store's pool freely.
func (s *Store) InTurn(ctx context.Context, name string, fn func() error) error {
	return s.holding(ctx, name, "hashtext(?)", "segments: "+name, func(bun.Tx) error { return fn() })
}

// holding runs fn while it holds the advisory lock what, whose key is the SQL
// expression key of arg (a bigint), waiting for it first. The lock is a
// transaction-level advisory lock in a transaction of its own, open for the whole
// run: it is released when this process dies, and it also holds through PgBouncer in
// transaction mode, which keeps a transaction on one server connection (a
// session-level lock would stay behind on whichever server connection took it). Its
// connection is one of its own, outside the store's pool, so that fn may use the
// pool, even a pool of one connection. fn gets the lock's transaction, to read from
// it.
func (s *Store) holding(ctx context.Context, what, key string, arg any, fn func(lock bun.Tx) error) error {
	lockDB := newPool(s.connector, 1)
	defer lockDB.Close()
	lock, err := lockDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: lock %s: %w", what, err)
	}
	defer lock.Rollback()
	if _, err := lock.ExecContext(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0; SELECT pg_advisory_xact_lock("+key+")", arg); err != nil {
		return fmt.Errorf("store: lock %s: %w", what, err)
	}
	return fn(lock)
}

// ceilUnits is d in whole units, rounded up: a positive duration below one unit must
// not become 0, which PostgreSQL (statement_timeout) and our SQL (a key's expiry)
// read as none.
func ceilUnits(d, unit time.Duration) int64 {
	n := int64(d / unit)
	if d%unit > 0 {
		n++
	}
	return n
}

// Close stops the store's background work and closes the connection pool.
func (s *Store) Close() error {
	if s.endLife != nil {
		s.endLife() // opens in flight stop, so that background work waiting on one ends
	}
	b := &s.background
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.stop()
	b.running.Wait()
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	for _, db := range s.pools.pools {
		db.Close()
	}
	return s.db.Close()
}

// Ping checks that the database answers, on a connection of its own (opened at the
// first Ping, and again after a failure): the server's readiness asks the database,
// not whether the pool has a connection free. On the pool, a burst of slow requests
// that held all its connections made every instance unready at once, for as long as
// they ran, while PostgreSQL answered at once.
func (s *Store) Ping(ctx context.Context) error { return s.ready.PingContext(ctx) }

// DB returns the underlying connection pool, for tests and tools that inspect the
// database directly.
func (s *Store) DB() *sql.DB { return s.db.DB }

// txAttempts bounds how often a transaction runs when concurrent ones make it fail
// (deadlock, serialization failure, rows changed between its statements), or its
// connection turns out broken.
const txAttempts = 5

// retryPause is the most a transaction waits before its next attempt, doubled for
// each attempt made (a random part of it, so that transactions that collided do not
// run again in step): an upsert whose phones a deletion made new again between its
// statements ran again at once, met the same deletion, and ran out of its 3 attempts
// 7 to 13 times a minute beside 5 deleters.
const retryPause = 2 * time.Millisecond

// inTx runs fn in a transaction that commits when fn returns nil and rolls back
// otherwise, so a refused input changes nothing. A transaction that fails only because
// of a concurrent one runs again, a bounded number of times; fn must therefore not
// keep state across attempts. So does one whose statement found its pooled connection
// broken before anything reached the server (driver.ErrBadConn; BEGIN goes with the
// first statement, tenant.go): database/sql drops that connection, and the next
// attempt gets another. Each of its statements starts with SET LOCAL
// app.workspace_id when ctx carries a workspace (tenant.go): the transaction is
// scoped for row-level security from its first statement on, without a round trip.
//
// fn runs its statements under the ctx it is given: the transaction holds one of its
// request's statement turns (WithStatementTurns) for as long as it holds its
// connection, and its statements take none of their own.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return inTurn(ctx, func(ctx context.Context) error {
		return retryTx(ctx, func() error { return s.db.RunInTx(ctx, nil, fn) })
	})
}

// inLongTx is inTx for the operator's checks and repairs, whose statements read every
// membership of every workspace: its statements run without the roles'
// statement_timeout, which is the API's (15 s by default). At 5M memberships two of
// the check's statements took 11-12 s on the benchmark's machine, so a check of a
// little more data failed where the operator needs it most.
func (s *Store) inLongTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
}

// inTxOn is inTx for a transaction that also reads rows through pgx (scanRowsOn):
// fn gets the connection the transaction is open on, which database/sql's
// transactions do not give. The turn is taken before the connection.
func (s *Store) inTxOn(ctx context.Context, fn func(ctx context.Context, tx bun.Tx, conn *sql.Conn) error) error {
	return inTurn(ctx, func(ctx context.Context) error {
		return retryTx(ctx, func() error {
			conn, err := s.db.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			return conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return fn(ctx, tx, conn.Conn) })
		})
	})
}

// retryTx runs the transaction run, again while it fails only for a concurrent one
// or a broken connection (inTx). Once it committed, it calls ctx's OnCommit function.
func retryTx(ctx context.Context, run func() error) error {
	var err error
	for attempt := range txAttempts {
		if attempt > 0 && !errors.Is(err, driver.ErrBadConn) {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(rand.N(retryPause << attempt)):
			}
		}
		err = run()
		if err == nil {
			if f, ok := ctx.Value(commitKey{}).(func()); ok {
				f()
			}
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

type commitKey struct{}

// OnCommit returns a context under which every change the store commits calls f once
// it has committed, and then the functions given under ctx before: the API learns so
// that a mutation was made, whatever happens to the request after it.
func OnCommit(ctx context.Context, f func()) context.Context {
	if outer, ok := ctx.Value(commitKey{}).(func()); ok {
		inner := f
		f = func() {
			inner()
			outer()
		}
	}
	return context.WithValue(ctx, commitKey{}, f)
}

// StatementCounter counts the SQL statements a request sends, to prove that their
// number does not grow with the size of a page.
type StatementCounter struct{ n atomic.Int64 }

// N returns the number of statements counted so far.
func (c *StatementCounter) N() int64 { return c.n.Load() }

type counterKey struct{}

// WithStatementCounter returns a context whose statements are counted by c.
func WithStatementCounter(ctx context.Context, c *StatementCounter) context.Context {
	return context.WithValue(ctx, counterKey{}, c)
}

// StatementCounterFrom returns the counter of ctx, or nil.
func StatementCounterFrom(ctx context.Context) *StatementCounter {
	c, _ := ctx.Value(counterKey{}).(*StatementCounter)
	return c
}

// statementCounter is the Bun query hook that feeds StatementCounter.
type statementCounter struct{}

func (statementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	if c, ok := ctx.Value(counterKey{}).(*StatementCounter); ok {
		c.n.Add(1)
	}
	return ctx
}

func (statementCounter) AfterQuery(context.Context, *bun.QueryEvent) {}
