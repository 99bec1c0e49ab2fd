package store

import (
	"container/list"
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A statement that a connection sends again is prepared there, and runs from then on
// without being parsed and planned each time: PostgreSQL plans a statement with no
// parameters once and keeps the plan (a generic plan is the custom one when the
// statement has nothing to bind). The store's statements carry their values as
// literals (Bun interpolates them), so a text that comes back is the same question
// again: the dashboard's first page of segments, a count it polls. Planning was most
// of their time: W1's page took 0.21 ms to plan and 0.09 to run (EXPLAIN ANALYZE, as
// the server's role, warm), and pgbench ran it, with the workspace's setting, at
// 5,380-5,846 transactions a second sent as one simple query and 6,920-9,676 prepared
// and pipelined (four clients, 2026-12-07).
//
// Only a statement read outside a transaction is prepared (QueryContext with no
// transaction open: the API's reads), and only once the connection has sent its text
// before (preparedStatements.seen): a text sent once is sent as before, in one
// simple-protocol message. The generic-plan trap of prepared statements (a search's
// ILIKE planned once for every term, without the trigram index) cannot happen: the
// plan is made for the literals in the text, which are every value the statement
// has. Settings are bound, not written: the workspace's (tenantSetting) and a
// search's (searchSetting) are each a set_config(..., true) of a statement prepared
// once per connection, sent in the same pipeline before the statement and ended by
// the same Sync, so that they hold for exactly that statement, as the simple
// message's SET LOCALs do. One round trip, as before.
//
// A connection that is not PostgreSQL's own (a pooler in transaction mode, which
// hands each transaction another server connection: tenantConnector.prepare is
// false) never prepares. A prepared statement that PostgreSQL refuses to run as it
// was prepared (a migration changed the columns of a table it reads: "cached plan
// must not change result type"; or it is gone: DISCARD ALL) is dropped, and the
// statement sent the simple way instead.

// maxPrepared is how many statements a connection keeps prepared: the least recently
// used one is deallocated (in the pipeline that prepares the next). A plan is a few
// kilobytes to a few dozen in the backend's memory.
var maxPrepared = 100

// MaxPreparedText is the longest statement prepared: longer ones (a bulk insert's
// values, thousands of IDs) are seldom the same twice.
const MaxPreparedText = 8 << 10

// maxSeen bounds the hashes of the texts a connection has sent once; past it they
// are forgotten and counted again.
const maxSeen = 4096

// settingStatement sets one setting until the end of the transaction: the pipeline's
// implicit one. Its name is the connection's own, as are the statements'.
const (
	settingStatement = "SELECT set_config($1, $2, true)"
	settingName      = "segments_setting"
	// What tenantSetting and searchSetting set.
	tenantSettingName = "app.workspace_id"
	searchSettingName = "enable_seqscan"
)

// Prepares reports whether s's connections prepare the statements they send again:
// whether they reach PostgreSQL itself, not a pooler.
func (s *Store) Prepares() bool {
	c, ok := s.connector.(tenantConnector)
	return ok && c.prepare
}

// PreparedSettings is the statement with which a connection that prepares sets a
// statement's settings, set_config(name, value, true), bound before it in its
// pipeline. Tools that replay the store's SQL (cmd/segbench) write it as the SET
// LOCAL it stands for (SetLocal), as the simple protocol's message has it.
const PreparedSettings = settingStatement

// SetLocal returns the SET LOCAL that set_config(name, value, true) of
// PreparedSettings stands for, as tenantPrefix writes it.
func SetLocal(name, value string) string {
	if name == tenantSettingName {
		return tenantSetting + "'" + value + "'"
	}
	return "SET LOCAL " + name + " = " + value
}

// CutSetLocal is SetLocal's inverse: the name and value of a SET LOCAL as
// tenantPrefix writes it (CutTenantPrefix's settings), for a tool that sends it as
// set_config, as a connection that prepares does; ok is false for anything else.
func CutSetLocal(set string) (name, value string, ok bool) {
	rest, ok := strings.CutPrefix(set, "SET LOCAL ")
	if !ok {
		return "", "", false
	}
	name, value, ok = strings.Cut(rest, " = ")
	return name, strings.Trim(value, "'"), ok
}

// preparedStatements are the statements one connection has prepared, most recently
// used first.
type preparedStatements struct {
	seed   maphash.Seed
	seen   map[uint64]struct{}      // texts sent once
	never  map[uint64]struct{}      // texts PostgreSQL refused to prepare (two statements)
	byText map[string]*list.Element // of *preparedStatement
	lru    list.List
	// closing are statements the connection no longer uses but PostgreSQL may still
	// hold (evicted, dropped, forgotten): closed at the head of the next pipeline.
	closing []string
	setting bool // settingStatement is prepared
}

type preparedStatement struct {
	key, name string
}

func newPreparedStatements() *preparedStatements {
	return &preparedStatements{seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}, never: map[uint64]struct{}{}, byText: map[string]*list.Element{}}
}

// lookUp returns the name of key's prepared statement (and marks it used), or
// whether key should be prepared now: it was sent before.
func (ps *preparedStatements) lookUp(key string) (name string, prepare bool) {
	if e, ok := ps.byText[key]; ok {
		ps.lru.MoveToFront(e)
		return e.Value.(*preparedStatement).name, false
	}
	h := maphash.String(ps.seed, key)
	if _, ok := ps.never[h]; ok {
		return "", false
	}
	if _, ok := ps.seen[h]; ok {
		delete(ps.seen, h)
		return "", true
	}
	remember(ps.seen, h)
	return "", false
}

// remember adds h to a set of at most maxSeen, which forgets everything when full.
func remember(set map[uint64]struct{}, h uint64) {
	if len(set) >= maxSeen {
		clear(set)
	}
	set[h] = struct{}{}
}

// add records key's statement as prepared, and returns its name, which is that of
// key's text: the same name is the same statement on any connection, so that a
// statement bound where it does not exist (a pooler that hid itself) is refused
// (26000) rather than another's run. The least recently used statement past
// maxPrepared is closed.
func (ps *preparedStatements) add(key string) (name string) {
	sum := sha256.Sum256([]byte(key))
	name = "segments_" + hex.EncodeToString(sum[:12])
	ps.byText[key] = ps.lru.PushFront(&preparedStatement{key: key, name: name})
	for ps.lru.Len() > maxPrepared {
		old := ps.lru.Remove(ps.lru.Back()).(*preparedStatement)
		delete(ps.byText, old.key)
		ps.closing = append(ps.closing, old.name)
	}
	return name
}

// drop forgets key's statement, which PostgreSQL refused or may hold outdated, and
// closes it with the next pipeline.
func (ps *preparedStatements) drop(key string) {
	if e, ok := ps.byText[key]; ok {
		ps.lru.Remove(e)
		delete(ps.byText, key)
		ps.closing = append(ps.closing, e.Value.(*preparedStatement).name)
	}
}

// refuse drops key's statement for good: PostgreSQL cannot prepare its text.
func (ps *preparedStatements) refuse(key string) {
	ps.drop(key)
	remember(ps.never, maphash.String(ps.seed, key))
}

// forget forgets every statement, and closes them with the next pipeline: one of
// them was gone (26000), so something (DEALLOCATE, DISCARD) removed one or all.
func (ps *preparedStatements) forget() {
	for e := ps.lru.Front(); e != nil; e = e.Next() {
		ps.closing = append(ps.closing, e.Value.(*preparedStatement).name)
	}
	clear(ps.byText)
	ps.lru.Init()
	ps.setting = false
}

// queryPrepared runs query for workspace ws as a prepared statement when the
// connection may (its statements are read outside a transaction) and should (it sent
// the text before); ok is false when it did not run it, and the caller sends it the
// simple way.
func (c *tenantConn) queryPrepared(ctx context.Context, ws int64, query string) (rows driver.Rows, ok bool, err error) {
	ps := c.prepared
	if ps == nil || c.begin != "" || len(query) > MaxPreparedText {
		return nil, false, nil
	}
	conn := c.pgxConn.Conn()
	if c.unusable() {
		return nil, false, nil // the simple way reports it
	}
	pg := conn.PgConn()
	if pg.TxStatus() != 'I' {
		return nil, false, nil
	}
	search, _ := ctx.Value(searchKey{}).(bool)
	key := query
	if search {
		key = "\x00search\x00" + query // planned with sequential scans off
	}
	name, prepare := ps.lookUp(key)
	if name == "" && !prepare {
		return nil, false, nil
	}
	if prepare {
		name = ps.add(key)
	}

	// What the pipeline sends before the statement's Bind, each with a result to
	// read: closings, preparations (each after a Close of its name, which is no
	// error where the name does not exist, so that a name PostgreSQL still holds,
	// after forget, is prepared again), settings.
	p := pg.StartPipeline(ctx)
	closing := ps.closing
	before := len(closing)
	for _, n := range closing {
		p.SendDeallocate(n)
	}
	ps.closing = nil
	prepareSetting := !ps.setting
	if prepareSetting {
		p.SendDeallocate(settingName)
		p.SendPrepare(settingName, settingStatement, nil)
		before += 2
	}
	queryPrepared := -1 // the index of the statement's preparation's result
	if prepare {
		p.SendDeallocate(name)
		p.SendPrepare(name, query, nil)
		queryPrepared = before + 1
		before += 2
	}
	p.SendQueryPrepared(settingName, [][]byte{[]byte(tenantSettingName), []byte(strconv.FormatInt(ws, 10))}, nil, nil)
	before++
	if search {
		p.SendQueryPrepared(settingName, [][]byte{[]byte(searchSettingName), []byte("off")}, nil, nil)
		before++
	}
	p.SendQueryPrepared(name, nil, nil, nil)
	if err := p.Sync(); err != nil {
		// Nothing was sent (the pipeline of a context that had ended, on a
		// connection kept: notSent), or the connection is closed: the closings wait
		// for the next pipeline. Cleared for good, they left their statements on the
		// backend for as long as it lived: 21 where the connection tracked 2.
		ps.closing = closing
		ps.drop(key)
		return c.pipelineFailed(ctx, p, err)
	}
	// An error before the statement's results ran nothing: PostgreSQL skips the rest
	// up to the Sync.
	for i := range before {
		res, err := p.GetResults()
		if err == nil {
			if rr, isRows := res.(*pgconn.ResultReader); isRows {
				_, err = rr.Close()
			}
		}
		if err == nil {
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			ps.drop(key)
			return c.pipelineFailed(ctx, p, err)
		}
		_ = p.Close()
		if ctx.Err() != nil {
			// Cancelled: the statement's outcome, as the simple way would have had it.
			ps.drop(key)
			return nil, true, err
		}
		switch {
		case i == queryPrepared:
			// PostgreSQL cannot prepare the text (two statements, say): the simple
			// way, from now on.
			ps.refuse(key)
		case stalePrepared(err):
			ps.forget()
		default:
			ps.drop(key)
		}
		return nil, false, nil
	}
	if prepareSetting {
		ps.setting = true
	}
	res, err := p.GetResults()
	rr, isRows := res.(*pgconn.ResultReader)
	if err != nil || !isRows {
		if err == nil {
			err = errors.New("store: no result")
		}
		if ctx.Err() == nil && stalePrepared(err) {
			// Refused as it was bound: PostgreSQL's copy is gone or outdated.
			return c.sendSimply(p, err, key)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			ps.drop(key)
		}
		return c.pipelineFailed(ctx, p, err)
	}
	r := &tenantRows{rows: pgx.RowsFromResultReader(conn.TypeMap(), rr), rest: p, m: conn.TypeMap()}
	r.more = r.rows.Next()
	if err := r.rows.Err(); err != nil {
		_ = r.Close()
		if ctx.Err() == nil && stalePrepared(err) {
			return c.sendSimply(nil, err, key)
		}
		return nil, true, err
	}
	return r, true, nil
}

// sendSimply ends pipeline p (if not nil) after PostgreSQL refused key's prepared
// statement as stale (stalePrepared: err), and has its caller send it the simple way.
func (c *tenantConn) sendSimply(p *pgconn.Pipeline, err error, key string) (driver.Rows, bool, error) {
	if p != nil {
		_ = p.Close()
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "26000" {
		c.prepared.forget()
	} else {
		c.prepared.drop(key)
	}
	return nil, false, nil
}

// pipelineFailed ends a pipeline that failed outside PostgreSQL's errors (the
// connection, the context) and reports it as exec does.
func (c *tenantConn) pipelineFailed(ctx context.Context, p *pgconn.Pipeline, err error) (driver.Rows, bool, error) {
	_ = p.Close()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) && pgconn.SafeToRetry(err) {
		return nil, true, c.notSent(ctx, err)
	}
	return nil, true, err
}

// stalePrepared reports whether err is PostgreSQL refusing a prepared statement
// before running it: it no longer exists (26000, after a DISCARD ALL or DEALLOCATE),
// or a table it reads changed its columns ("cached plan must not change result
// type": 0A000 from RevalidateCachedQuery, told by the function's name, which
// lc_messages does not translate, as it does the message).
func stalePrepared(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "26000" || (pgErr.Code == "0A000" && pgErr.Routine == "RevalidateCachedQuery")
}
