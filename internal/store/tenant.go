package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// Row-level security is the backstop behind the store's own scoping: the server
// connects as AppRole, which is no superuser, cannot bypass row-level security and
// owns no table, and every tenant table has a policy that shows and accepts only the
// rows of the workspace in the setting app.workspace_id (migration
// 20261129000001_rls). A statement whose context carries a workspace (WithWorkspace,
// or Options.Tenant) is sent as
//
//	SET LOCAL app.workspace_id = '42'; <statement>
//
// in one simple-protocol message: PostgreSQL runs the statements of one message in one
// implicit transaction, so the setting holds for exactly that statement (or, inside an
// explicit transaction, until it ends) and never outlives it: safe with a connection
// pool and with PgBouncer in transaction mode. It costs no round trip. A statement
// without a workspace sees no tenant row at all. A read its connection sent before is
// prepared there and sent with the same settings bound, in one pipeline instead
// (prepared.go).

// AppRole is the role the server's queries run as: subject to row-level security.
// Migrations create it (without login) and grant it what the API needs; AppURL gives
// it a login.
const AppRole = "segments_app"

type tenantKey struct{}

// WithWorkspace returns a context whose statements may see and write workspace ws's
// rows only (when the store connects as AppRole). It wins over Options.Tenant.
func WithWorkspace(ctx context.Context, ws int64) context.Context {
	return context.WithValue(ctx, tenantKey{}, ws)
}

// tenantOf returns the workspace the statements of ctx act for.
func tenantOf(ctx context.Context, hook func(context.Context) (int64, bool)) (int64, bool) {
	if ws, ok := ctx.Value(tenantKey{}).(int64); ok {
		return ws, true
	}
	if hook != nil {
		return hook(ctx)
	}
	return 0, false
}

// tenantSetting starts every statement sent for a workspace.
const tenantSetting = "SET LOCAL app.workspace_id = "

// searchSetting follows the workspace's setting in the statements of a search by
// trigrams (forSearch).
const searchSetting = "SET LOCAL enable_seqscan = off"

// searchKey marks a context of forSearch.
type searchKey struct{}

// forSearch returns a context whose statements search for term: when the term has
// three characters or more, they are sent with sequential scans disabled, for the
// statement only (inside a transaction, until it ends), like the workspace's
// setting. PostgreSQL costs an ILIKE as one
// cheap operator per row, but on every row it lowercases the row's text before
// matching: for such a term in a workspace's 1,000 segments (the benchmark's dataset)
// it planned to read all of them and match each, 0.8-1.9 ms a page by term, where the
// trigram index took 0.4-0.7 ms, and 1.2-1.6 ms a count where it took 0.5-1.3. A
// shorter term has no trigram to look up (the index would be read whole), and its
// plans were as fast either way: they are left to the planner.
func forSearch(ctx context.Context, term string) context.Context {
	if utf8.RuneCountInString(term) < 3 {
		return ctx
	}
	return context.WithValue(ctx, searchKey{}, true)
}

// tenantPrefix is what a statement for workspace ws is sent after: its settings,
// each ended by "; ", and how many there are (each has a result of its own).
func tenantPrefix(ctx context.Context, ws int64) (prefix string, settings int) {
	prefix = tenantSetting + "'" + strconv.FormatInt(ws, 10) + "'; "
	if search, _ := ctx.Value(searchKey{}).(bool); search {
		return prefix + searchSetting + "; ", 2
	}
	return prefix, 1
}

// CutTenantPrefix splits a statement as the store sends it for a workspace into the
// statements sent before it in the same message (a transaction's BEGIN, when it is
// the transaction's first, or a read's read-only setting when it is sent again; the
// workspace's setting; a search's: each without its
// semicolon) and the statement itself; ok is false for a statement sent without a
// workspace. It is for tools that replay the store's SQL, such as cmd/segbench, so
// that they need not know the prefix.
func CutTenantPrefix(sent string) (settings []string, stmt string, ok bool) {
	rest := sent
	if strings.HasPrefix(rest, "BEGIN") {
		begin, after, found := strings.Cut(rest, "; ")
		if !found {
			return nil, sent, false
		}
		settings, rest = []string{begin}, after
	} else if after, found := strings.CutPrefix(rest, readOnlySetting); found {
		// A read sent again after another's cancel stopped it (cancel.go).
		settings, rest = []string{strings.TrimSuffix(readOnlySetting, "; ")}, after
	}
	rest, ok = strings.CutPrefix(rest, tenantSetting)
	if !ok {
		return nil, sent, false
	}
	value, stmt, ok := strings.Cut(rest, "; ")
	if !ok {
		return nil, sent, false
	}
	settings = append(settings, tenantSetting+value)
	if rest, ok := strings.CutPrefix(stmt, searchSetting+"; "); ok {
		settings, stmt = append(settings, searchSetting), rest
	}
	return settings, stmt, true
}

// tenantConnector opens pgx connections whose statements carry their context's
// workspace.
type tenantConnector struct {
	driver.Connector
	tenant func(context.Context) (int64, bool)
	// prepare says whether connections prepare the statements they send again
	// (prepared.go): only when they reach PostgreSQL itself.
	prepare bool
	cancels *cancelCounts // the store's
	// statementTimeout is the connections' statement_timeout as Open found it (0:
	// none): a statement stopped sooner was stopped by a cancel.
	statementTimeout time.Duration
	// life ends when the store closes (Store.Close): connections being opened stop
	// then (dialContext). Nil: never.
	life context.Context
}

func (c tenantConnector) Connect(ctx context.Context) (driver.Conn, error) {
	ctx, cancel := dialContext(ctx, c.life)
	defer cancel()
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	tc := &tenantConn{pgxConn: conn.(*stdlib.Conn), tenant: c.tenant, cancels: c.cancels, statementTimeout: c.statementTimeout}
	if c.prepare {
		tc.prepared = newPreparedStatements()
	}
	return tc, nil
}

// dialContext is the context a new connection is opened in for a statement's ctx:
// ctx's deadline (else dialTimeout), and ctx's cancellation only when it is not a
// client's leaving (abandoned), nor once life ended (the store closed). database/sql
// opens a connection in the goroutine of the statement that needs it, under its
// context, whenever the pool has none idle and is below its size. A request
// abandoned while its connection was being opened abandoned the connection too,
// after the postmaster had been asked to fork its backend: that backend was forked
// all the same, found its client gone and exited, and the pool never grew. Amid one
// workspace's storm of abandoned searches (90 a second, its clients giving up after
// 3-40 ms) on a slow postmaster, 252-416 of 267-435 connections opened in 6 s were
// abandoned so, the pool stayed at 3-11 connections, every one in use or being
// opened, and another workspace's requests waited for connections of their own
// behind the dead forks: 4.5-5.2 s at the 99th percentile, up to 6 of 6-20 failing
// at their deadline (TestAbandoningWorkspaceStarvesNoOther). Opened to the end, the
// connection joins the pool for the next statement; the abandoned request waits for
// it, in its own workspace's place.
//
// Any other cancellation stops the open at once: a shutdown's (its cause
// graph.ErrShuttingDown, answered within cancelledRequestsGrace), background work
// stopped by Store.Close (which waits for it), and the store's own Close. Kept
// opening to the deadline, a store whose postmaster did not answer took 5.5 s to
// close instead of 0.7 ms, and a request the shutdown cancelled answered after 3 s.
func dialContext(ctx, life context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(dialTimeout)
	}
	dial, cancel := context.WithDeadlineCause(context.WithoutCancel(ctx), deadline, context.DeadlineExceeded)
	stopCtx := context.AfterFunc(ctx, func() {
		if !abandoned(ctx) {
			cancel()
		}
	})
	stopLife := func() bool { return false }
	if life != nil {
		stopLife = context.AfterFunc(life, cancel)
	}
	return dial, func() {
		stopCtx()
		stopLife()
		cancel()
	}
}

// abandoned reports whether ctx was cancelled the plain way, as net/http cancels the
// request of a client that left (no cause): not by a deadline, nor with a cause of
// its own (a shutdown's).
func abandoned(ctx context.Context) bool {
	return context.Cause(ctx) == context.Canceled
}

// dialTimeout bounds opening a connection for a statement whose context has no
// deadline: a request's default deadline (serve's --request-timeout).
const dialTimeout = 10 * time.Second

// tenantConn is a pgx database/sql connection that prefixes each statement with its
// workspace, and a transaction's first statement with its BEGIN. Everything else is
// pgx's.
type tenantConn struct {
	*pgxConn
	tenant func(context.Context) (int64, bool)
	// begin is the BEGIN of the transaction open on the connection (BeginTx), until it
	// is sent, with the transaction's first statement.
	begin string
	// prepared are the statements prepared on the connection (prepared.go); nil
	// when it prepares none.
	prepared *preparedStatements
	// cancels and statementTimeout are the connector's.
	cancels          *cancelCounts
	statementTimeout time.Duration
}

// pgxConn names the embedded connection so that its own Conn method (the *pgx.Conn,
// which COPY needs through sql.Conn.Raw) stays promoted.
type pgxConn = stdlib.Conn

// IsValid tells database/sql, as it takes a connection back, whether to keep it: not
// once pgx has closed it, as it does when a statement's context ends while the
// statement runs. pgx's own connection does not say, so database/sql kept such
// connections and handed them to the next requests, whose check found them dead
// (driver.ErrBadConn); after three in a row, under a wave of timeouts, a request failed
// with that error (INTERNAL_SERVER_ERROR).
//
// Nor once a cancel request sent on it may still arrive (cancelUnsettled): its
// signal would stop the next statement, another request's.
func (c *tenantConn) IsValid() bool { return !c.unusable() }

// unusable reports whether the connection must not run another statement: pgx
// closed it, or a cancel request sent on it is unsettled (cancel.go).
func (c *tenantConn) unusable() bool {
	conn := c.Conn()
	return conn.IsClosed() || cancelUnsettled(conn.PgConn())
}

var _ driver.Validator = (*tenantConn)(nil)

// notSent is the error for database/sql of a statement that never reached the
// server (err, pgx's): driver.ErrBadConn, for it to close the connection and try
// another, unless the statement's context had ended and the connection is as good as
// before, which then goes back to the pool. pgx's own stdlib answers ErrBadConn for
// both: every request whose client left between taking its connection and sending
// its statement closed that connection, and its replacement cost the postmaster a
// fork. Amid one workspace's storm of abandoned searches, 22-50 connections were
// closed in 6 s, 1-14 of them for a cancel (TestAbandoningWorkspaceStarvesNoOther).
func (c *tenantConn) notSent(ctx context.Context, err error) error {
	if ctx.Err() != nil && !c.unusable() {
		if errors.Is(err, driver.ErrBadConn) {
			return ctx.Err()
		}
		return err
	}
	return driver.ErrBadConn
}

// ResetSession is pgx's, which pings a connection idle for a second
// (shouldPing), and discards it when the ping fails: not when the ping failed only
// for the context of the statement to come, which has ended (notSent).
func (c *tenantConn) ResetSession(ctx context.Context) error {
	if ctx.Err() != nil && !c.unusable() {
		return nil // the statement fails on its context, and leaves the connection as it is
	}
	return c.pgxConn.ResetSession(ctx)
}

var _ driver.SessionResetter = (*tenantConn)(nil)

var errTenantArgs = errors.New("store: a statement with a workspace must not take driver arguments (Bun interpolates them)")

func (c *tenantConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ws, ok := tenantOf(ctx, c.tenant)
	if !ok {
		if c.unusable() {
			return nil, driver.ErrBadConn
		}
		if err := c.sendBegin(ctx); err != nil {
			return nil, err
		}
		r, err := c.pgxConn.ExecContext(ctx, query, args)
		if errors.Is(err, driver.ErrBadConn) {
			err = c.notSent(ctx, err)
		}
		return r, err
	}
	if len(args) > 0 {
		return nil, errTenantArgs
	}
	// pgx runs every statement of the message and reports the last one's rows.
	prefix, _ := c.messagePrefix(ctx, ws)
	r, err := c.pgxConn.ExecContext(ctx, prefix+query, nil)
	if errors.Is(err, driver.ErrBadConn) {
		err = c.notSent(ctx, err)
	}
	return r, err
}

func (c *tenantConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ws, ok := tenantOf(ctx, c.tenant)
	if !ok {
		return c.queryWithoutWorkspace(ctx, query, args)
	}
	if len(args) > 0 {
		return nil, errTenantArgs
	}
	alone := c.outsideTransaction()
	start := time.Now()
	rows, ok, err := c.queryPrepared(ctx, ws, query)
	if !ok {
		prefix, settings := c.messagePrefix(ctx, ws)
		rows, err = c.querySimple(ctx, prefix, settings, query)
	}
	if err != nil && alone && c.stoppedByAnother(ctx, err, time.Since(start)) {
		prefix, settings := c.messagePrefix(ctx, ws)
		return c.queryAgain(ctx, err, prefix, settings, query)
	}
	return rows, err
}

// queryWithoutWorkspace sends a statement whose context names no workspace as pgx
// does, and once more, as a workspace's (QueryContext), when it was a read outside a
// transaction that a cancel not its own stopped: every request's API key is looked
// up so (AuthenticateKey), before its workspace is known. A statement with driver
// arguments is not sent again (the simple protocol's message carries none; Bun
// interpolates them, so none of the server's has any).
func (c *tenantConn) queryWithoutWorkspace(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.unusable() {
		return nil, driver.ErrBadConn
	}
	alone := c.outsideTransaction()
	if err := c.sendBegin(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	rows, err := c.pgxConn.QueryContext(ctx, query, args)
	if errors.Is(err, driver.ErrBadConn) {
		err = c.notSent(ctx, err)
	}
	if err != nil && alone && len(args) == 0 && c.stoppedByAnother(ctx, err, time.Since(start)) {
		return c.queryAgain(ctx, err, "", 0, query)
	}
	return rows, err
}

// queryAgain sends query, which a cancel not its own stopped with err, once more
// after prefix (settings statements), in a read-only transaction (cancel.go), and
// counts it; a statement that writes, which PostgreSQL then refuses, fails with err.
func (c *tenantConn) queryAgain(ctx context.Context, err error, prefix string, settings int, query string) (driver.Rows, error) {
	again, againErr := c.querySimple(ctx, readOnlySetting+prefix, settings+1, query)
	if ReadOnly(againErr) {
		return nil, err // it writes: not sent again
	}
	c.cancels.retried.Add(1)
	return again, againErr
}

// querySimple sends query after prefix, whose settings statements have a result
// each, in one simple-protocol message, and hands the statement's rows to
// database/sql.
func (c *tenantConn) querySimple(ctx context.Context, prefix string, settings int, query string) (driver.Rows, error) {
	// pgx's Query would read only the first result, the SET's: read the message's
	// results here and hand the statement's to database/sql.
	mrr, err := c.exec(ctx, prefix, settings, query)
	if err != nil {
		return nil, err
	}
	conn := c.pgxConn.Conn()
	r := &tenantRows{rows: pgx.RowsFromResultReader(conn.TypeMap(), mrr.ResultReader()), rest: mrr, m: conn.TypeMap()}
	// database/sql asks for the columns before the first row; reading it now also
	// surfaces the statement's error here, as pgx's stdlib does.
	r.more = r.rows.Next()
	if err := r.rows.Err(); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// A transaction's BEGIN is sent with its first statement, in the same message, as
// the workspace's setting is (above): PostgreSQL runs BEGIN, and the statements after
// it in the message then run in the transaction it opens. That saves every
// transaction a round trip of its own for BEGIN: a W6 assignment sent five messages
// (BEGIN, the contacts' lock, the segments' lock, the insert, COMMIT) and now sends
// four. A statement that pgx must send with arguments (only statements without a
// workspace have them) gets its BEGIN first in a message of its own, as before, and
// a transaction that sends no statement sends nothing at all.

// BeginTx opens a transaction whose BEGIN waits for its first statement.
func (c *tenantConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.unusable() {
		return nil, driver.ErrBadConn
	}
	begin, err := beginStatement(opts)
	if err != nil {
		return nil, err
	}
	c.begin = begin
	return tenantTx{c: c, ctx: ctx}, nil
}

// beginStatement is the BEGIN of a transaction with opts, as pgx's stdlib writes it.
func beginStatement(opts driver.TxOptions) (string, error) {
	begin := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		begin += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		begin += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		begin += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable:
		begin += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", fmt.Errorf("store: unsupported isolation level %v", sql.IsolationLevel(opts.Isolation))
	}
	if opts.ReadOnly {
		begin += " READ ONLY"
	}
	return begin, nil
}

// takeBegin returns what starts the next message: the open transaction's BEGIN
// (with its "; "), once, or nothing.
func (c *tenantConn) takeBegin() string {
	if c.begin == "" {
		return ""
	}
	begin := c.begin + "; "
	c.begin = ""
	return begin
}

// messagePrefix returns what a statement for workspace ws is sent after in its
// message, and how many results that has: the open transaction's BEGIN when the
// statement is its first (takeBegin), then the settings (tenantPrefix).
func (c *tenantConn) messagePrefix(ctx context.Context, ws int64) (prefix string, results int) {
	prefix, results = tenantPrefix(ctx, ws)
	if begin := c.takeBegin(); begin != "" {
		return begin + prefix, results + 1
	}
	return prefix, results
}

// sendBegin sends the open transaction's BEGIN in a message of its own, if it has not
// been sent: for a statement that cannot carry it.
func (c *tenantConn) sendBegin(ctx context.Context) error {
	begin := c.takeBegin()
	if begin == "" {
		return nil
	}
	mrr, err := c.exec(ctx, "", 0, begin)
	if err != nil {
		return err
	}
	return mrr.Close()
}

// commitTimeout bounds the wait for a COMMIT whose context ended (tenantTx.Commit): a
// COMMIT is quick unless its disk or a synchronous standby stalls, and then the
// request gives up on it, its outcome unknown, rather than hold its connection.
const commitTimeout = 5 * time.Second

// tenantTx ends the transaction of its connection: with a message of COMMIT or
// ROLLBACK once its BEGIN has been sent, and with nothing to send before. Like pgx's
// own transactions, it ends in the context it began in, but a COMMIT once sent is
// waited for (commitTimeout), and a ROLLBACK is sent after that context ended
// (rollbackTimeout).
type tenantTx struct {
	c   *tenantConn
	ctx context.Context
}

func (tx tenantTx) Commit() error {
	if tx.c.takeBegin() != "" {
		return nil
	}
	// Once sent, a COMMIT is waited for even when its context ends (the client left,
	// the deadline passed): cancelled midway, its outcome is unknown (PostgreSQL may
	// have committed), and the caller counts the change as not made, releasing its
	// Idempotency-Key for a retry that makes it twice. database/sql has already
	// refused to commit in a context that ended before the COMMIT was sent.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tx.ctx), commitTimeout)
	defer cancel()
	conn := tx.c.Conn()
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		// A connection left in a transaction is closed, so that database/sql never
		// hands it to another caller.
		if conn.PgConn().TxStatus() != 'I' {
			_ = conn.Close(ctx)
		}
		return err
	}
	if tag.String() == "ROLLBACK" { // the transaction had failed: PostgreSQL rolled it back
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// rollbackTimeout bounds a ROLLBACK sent after its transaction's context ended
// (tenantTx.Rollback): one round trip with nothing to write, under 1 ms unloaded, so
// that a connection that does not answer by then is closed instead. It is the
// socket's deadline, not a context's: a context's end would hand the ROLLBACK to
// the cancel handler, which waits cancelFallback more (765 ms measured against a
// stopped backend with pgx's handler, which waited 100 ms after that, where 250 were
// meant).
const rollbackTimeout = 250 * time.Millisecond

func (tx tenantTx) Rollback() error {
	if tx.c.takeBegin() != "" {
		return nil
	}
	ctx := tx.ctx
	conn := tx.c.Conn()
	if cancelUnsettled(conn.PgConn()) {
		// A cancel may still arrive, and stop the ROLLBACK: the connection is closed
		// instead, which rolls the transaction back.
		_ = tx.c.closeNow()
		return nil
	}
	if ctx.Err() != nil {
		// database/sql rolls a transaction back as soon as its context ends, after
		// the statement that ran: pgx refuses to send anything in that context, and
		// the connection, whose cancelled statement left it usable (cancelByRequest),
		// was closed for a transaction that one ROLLBACK ends.
		ctx = context.WithoutCancel(ctx)
		socket := conn.PgConn().Conn()
		if err := socket.SetDeadline(time.Now().Add(rollbackTimeout)); err == nil {
			defer socket.SetDeadline(time.Time{})
		}
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		// The connection's state is unknown: it is closed at once, without a goodbye
		// (as pgx does), and the server rolls the transaction back.
		now, cancel := context.WithCancel(context.Background())
		cancel()
		_ = conn.PgConn().Close(now)
		return err
	}
	return nil
}

// closeNow closes the connection, idle, with a goodbye bounded by rollbackTimeout and
// no cancel request (which closing in an ended context would send): database/sql
// then drops it.
func (c *tenantConn) closeNow() error {
	pg := c.Conn().PgConn()
	_ = pg.Conn().SetDeadline(time.Now().Add(rollbackTimeout))
	return pg.Close(context.Background())
}

// exec sends query after prefix (settings statements, or nothing) in one message
// and returns the reader of the message's results at the statement's. An error that
// left the connection as it was is driver.ErrBadConn, for database/sql to try
// another connection, as it is for a connection found closed before sending.
func (c *tenantConn) exec(ctx context.Context, prefix string, settings int, query string) (*pgconn.MultiResultReader, error) {
	conn := c.pgxConn.Conn()
	if c.unusable() {
		return nil, driver.ErrBadConn
	}
	mrr := conn.PgConn().Exec(ctx, prefix+query)
	fail := func() (*pgconn.MultiResultReader, error) {
		err := mrr.Close()
		if err == nil {
			err = errors.New("store: no result")
		}
		if pgconn.SafeToRetry(err) {
			return nil, c.notSent(ctx, err)
		}
		return nil, err
	}
	if !mrr.NextResult() {
		return fail()
	}
	for range settings {
		if _, err := mrr.ResultReader().Close(); err != nil {
			return fail()
		}
		if !mrr.NextResult() {
			return fail()
		}
	}
	return mrr, nil
}

// tenantRows are the rows of one statement of a message (or a pipeline: prepared.go);
// values reach database/sql as pgx's stdlib gives them.
type tenantRows struct {
	rows pgx.Rows
	// rest reads what the message (or pipeline) has after the rows, to its end.
	rest    interface{ Close() error }
	m       *pgtype.Map
	more    bool
	started bool
	cols    []string
	conv    []func([]byte) (driver.Value, error)
}

func (r *tenantRows) Columns() []string {
	if r.cols == nil {
		fds := r.rows.FieldDescriptions()
		r.cols = make([]string, len(fds))
		for i, fd := range fds {
			r.cols[i] = fd.Name
		}
	}
	return r.cols
}

func (r *tenantRows) Close() error {
	r.rows.Close()
	err := r.rows.Err()
	if mErr := r.rest.Close(); err == nil {
		err = mErr
	}
	return err
}

func (r *tenantRows) Next(dest []driver.Value) error {
	if r.conv == nil {
		r.conv = valueConverters(r.m, r.rows.FieldDescriptions())
	}
	if r.started {
		r.more = r.rows.Next()
	}
	r.started = true
	if !r.more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	for i, raw := range r.rows.RawValues() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.conv[i](raw)
		if err != nil {
			return fmt.Errorf("convert field %d failed: %w", i, err)
		}
		dest[i] = v
	}
	return nil
}

// valueConverters turn raw column values into the driver.Values pgx's stdlib gives
// database/sql for the same types (its Rows.Next), so that scanning behaves alike
// with and without a workspace.
func valueConverters(m *pgtype.Map, fds []pgconn.FieldDescription) []func([]byte) (driver.Value, error) {
	out := make([]func([]byte) (driver.Value, error), len(fds))
	for i, fd := range fds {
		oid, format := fd.DataTypeOID, fd.Format
		switch oid {
		case pgtype.BoolOID:
			out[i] = scanAs[bool](m, oid, format, func(d bool) (driver.Value, error) { return d, nil })
		case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
			out[i] = scanAs[[]byte](m, oid, format, func(d []byte) (driver.Value, error) { return d, nil })
		case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
			out[i] = scanAs[pgtype.Uint32](m, oid, format, pgtype.Uint32.Value)
		case pgtype.DateOID:
			out[i] = scanAs[pgtype.Date](m, oid, format, pgtype.Date.Value)
		case pgtype.Float4OID:
			out[i] = scanAs[float32](m, oid, format, func(d float32) (driver.Value, error) { return float64(d), nil })
		case pgtype.Float8OID:
			out[i] = scanAs[float64](m, oid, format, func(d float64) (driver.Value, error) { return d, nil })
		case pgtype.Int2OID:
			out[i] = scanAs[int16](m, oid, format, func(d int16) (driver.Value, error) { return int64(d), nil })
		case pgtype.Int4OID:
			out[i] = scanAs[int32](m, oid, format, func(d int32) (driver.Value, error) { return int64(d), nil })
		case pgtype.Int8OID:
			out[i] = scanAs[int64](m, oid, format, func(d int64) (driver.Value, error) { return d, nil })
		case pgtype.TimestampOID:
			out[i] = scanAs[pgtype.Timestamp](m, oid, format, pgtype.Timestamp.Value)
		case pgtype.TimestamptzOID:
			out[i] = scanAs[pgtype.Timestamptz](m, oid, format, pgtype.Timestamptz.Value)
		default:
			out[i] = scanAs[string](m, oid, format, func(d string) (driver.Value, error) { return d, nil })
		}
	}
	return out
}

func scanAs[T any](m *pgtype.Map, oid uint32, format int16, value func(T) (driver.Value, error)) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return value(d)
	}
}

// AppPassword is the password AppURL gives AppRole on a server whose owner role has
// ownerPassword: derived from it, so that every server instance finds the same one
// without storing it anywhere.
func AppPassword(ownerPassword string) string {
	mac := hmac.New(sha256.New, []byte(ownerPassword))
	mac.Write([]byte("segments row-level security role " + AppRole))
	return hex.EncodeToString(mac.Sum(nil))
}

// AppURL returns the URL to connect to ownerURL's database as AppRole, making sure
// the role can log in with AppPassword of the owner's password (setting it when it
// cannot: this needs the owner to be a superuser or have CREATEROLE). An owner URL
// without a password cannot be derived from: give the server the app URL instead.
func AppURL(ctx context.Context, ownerURL string) (string, error) {
	cfg, err := ParseURL(ownerURL)
	if err != nil {
		return "", fmt.Errorf("store: parse database URL: %w", err)
	}
	if cfg.Password == "" {
		return "", errors.New("store: the database URL has no password to derive the application role's from: set the application's database URL (a role without superuser, BYPASSRLS or tables, granted " + AppRole + ")")
	}
	password := AppPassword(cfg.Password)
	appURL, err := withLogin(ownerURL, AppRole, password)
	if err != nil {
		return "", err
	}
	owner, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("store: connect: %w", err)
	}
	defer owner.Close(context.WithoutCancel(ctx))
	// Try the role's login only when it has one: through PgBouncer a failed login
	// makes the bouncer wait server_login_retry (15 s) before it tries that pool's
	// server login again, after the password is set.
	// (Simple protocol: PgBouncer in transaction mode knows no prepared statements.)
	var canLogin bool
	err = owner.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
		pgx.QueryExecModeSimpleProtocol, AppRole).Scan(&canLogin)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("store: look up role %s: %w", AppRole, err)
	}
	if canLogin {
		if conn, err := pgx.Connect(ctx, appURL); err == nil {
			return appURL, conn.Close(ctx)
		}
	}
	// Several servers may start at once: ALTER ROLE of one role by two sessions can
	// fail with "tuple concurrently updated"; the next attempt finds it done.
	for attempt := 0; ; attempt++ {
		_, err = owner.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
			CREATE ROLE %[1]s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
		END $$; ALTER ROLE %[1]s LOGIN PASSWORD %[2]s`, pgx.Identifier{AppRole}.Sanitize(), quoteLiteral(password)))
		if err == nil || attempt == 4 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	if err != nil {
		return "", fmt.Errorf("store: give role %s a login: %w", AppRole, err)
	}
	return appURL, nil
}

// withLogin returns dbURL (a URL or a key=value string) with another user and password.
func withLogin(dbURL, user, password string) (string, error) {
	if _, ok := cutScheme(dbURL); ok {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", fmt.Errorf("store: parse database URL: %w", err)
		}
		u.User = url.UserPassword(user, password)
		return u.String(), nil
	}
	return dbURL + " user=" + user + " password=" + password, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// CheckAppRole returns an error unless the store's role is subject to row-level
// security: not a superuser, without BYPASSRLS, owning no table of the database.
func (s *Store) CheckAppRole(ctx context.Context) error {
	var super, bypass bool
	var owned int
	err := s.db.QueryRowContext(ctx, `SELECT r.rolsuper, r.rolbypassrls,
		(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&super, &bypass, &owned)
	switch {
	case err != nil:
		return fmt.Errorf("store: check the application's role: %w", err)
	case super:
		return errors.New("store: the application's role is a superuser, which row-level security does not hold back")
	case bypass:
		return errors.New("store: the application's role has BYPASSRLS")
	case owned > 0:
		return fmt.Errorf("store: the application's role owns %d tables, whose row-level security does not hold for their owner", owned)
	}
	return nil
}
