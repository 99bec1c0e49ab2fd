package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// The hot read paths (the pages of segments and contacts, a page's segments) read
// their rows through pgx directly rather than through database/sql. database/sql
// hands every column of every row over as an interface value, which boxes each
// integer and time (a page of 50 contacts with their 250 segments: about 1,300
// allocations, an eighth of the request's), then converts each value again into its
// destination by reflection; pgx decodes each column's text straight into the
// destination. The statement, the connection pool, the workspace prefix, the
// statement counter and the tracing spans are the same as Bun's.

// queryHooks are the Bun query hooks of every statement: Open installs them, and
// queryDirect runs them around the statements it sends itself.
var queryHooks = []bun.QueryHook{
	statementCounter{},
	statementTurn{}, // under WithStatementTurns, before the span: the span times the statement, not its wait (turns.go)
	tracingHook{},   // spans only under a recording span (tracing.go)
}

// queryDirect sends query, complete SQL as Bun writes it (arguments interpolated),
// for ctx's workspace on a connection of db's pool, and calls scan for each row of
// its result, which scans it with pgx's Scan into typed destinations (a *string,
// *int64, *time.Time, **string for a nullable column, a sql.Scanner). q is the Bun
// query that wrote it, if one did: the hooks name the statement after it. Like
// database/sql, queryDirect tries again on another connection when the one it got
// turns out broken before the statement reached the server.
func queryDirect(ctx context.Context, db *bun.DB, q bun.Query, query string, scan func(pgx.Rows) error) error {
	return withQueryHooks(ctx, db, q, query, func(ctx context.Context) error {
		for attempt := 0; ; attempt++ {
			err := queryOnce(ctx, db, query, scan)
			if !errors.Is(err, driver.ErrBadConn) || attempt == 2 {
				return err
			}
		}
	})
}

// queryDirectOn is queryDirect on conn, a connection the caller holds: the one its
// transaction is open on (inTxOn). A transaction cannot move to another connection,
// so it is not tried again.
func queryDirectOn(ctx context.Context, db *bun.DB, conn *sql.Conn, q bun.Query, query string, scan func(pgx.Rows) error) error {
	return withQueryHooks(ctx, db, q, query, func(ctx context.Context) error {
		return queryOn(ctx, conn, query, scan)
	})
}

// withQueryHooks runs send, which sends query, between the query hooks.
func withQueryHooks(ctx context.Context, db *bun.DB, q bun.Query, query string, send func(context.Context) error) (err error) {
	event := &bun.QueryEvent{DB: db, IQuery: q, Query: query, QueryTemplate: query, StartTime: time.Now()}
	for _, h := range queryHooks {
		ctx = h.BeforeQuery(ctx, event)
	}
	defer func() {
		event.Err = err
		for i := len(queryHooks) - 1; i >= 0; i-- {
			queryHooks[i].AfterQuery(ctx, event)
		}
	}()
	return send(ctx)
}

// queryOnce is one attempt of queryDirect, on one connection of the pool.
func queryOnce(ctx context.Context, db *bun.DB, query string, scan func(pgx.Rows) error) error {
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return queryOn(ctx, conn, query, scan)
}

// queryOn sends query on conn and scans its rows.
func queryOn(ctx context.Context, conn *sql.Conn, query string, scan func(pgx.Rows) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*tenantConn)
		if !ok {
			return fmt.Errorf("store: a connection of type %T, not the store's own", dc)
		}
		return c.queryEach(ctx, query, scan)
	})
}

// queryEach sends query, prefixed with ctx's workspace, and calls scan for each row
// of its result.
func (c *tenantConn) queryEach(ctx context.Context, query string, scan func(pgx.Rows) error) error {
	alone := c.outsideTransaction()
	var prefix string
	var settings int
	if ws, ok := tenantOf(ctx, c.tenant); ok {
		prefix, settings = c.messagePrefix(ctx, ws)
	} else if begin := c.takeBegin(); begin != "" {
		// Without a workspace too: the first statement of a transaction carries its
		// BEGIN. Without it, an owner's transaction read this way ran each statement
		// in a transaction of its own, and a refused upsert left rows behind.
		prefix, settings = begin, 1
	}
	start := time.Now()
	scanned, err := c.scanEach(ctx, prefix, settings, query, scan)
	if err != nil && alone && !scanned && c.stoppedByAnother(ctx, err, time.Since(start)) {
		again, againErr := c.scanEach(ctx, readOnlySetting+prefix, settings+1, query, scan)
		if ReadOnly(againErr) && !again {
			return err // it writes: not sent again
		}
		c.cancels.retried.Add(1)
		return againErr
	}
	return err
}

// scanEach sends query after prefix (settings statements, each with a result) in
// one message, and calls scan for each row of its result; scanned says whether it
// did for any.
func (c *tenantConn) scanEach(ctx context.Context, prefix string, settings int, query string, scan func(pgx.Rows) error) (scanned bool, err error) {
	mrr, err := c.exec(ctx, prefix, settings, query)
	if err != nil {
		return false, err
	}
	rows := pgx.RowsFromResultReader(c.pgxConn.Conn().TypeMap(), mrr.ResultReader())
	for rows.Next() {
		scanned = true
		if err = scan(rows); err != nil {
			break
		}
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if mErr := mrr.Close(); err == nil {
		err = mErr
	}
	return scanned, err
}
