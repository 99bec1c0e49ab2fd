package store

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A cancelled statement is stopped with a cancel request (cancelByRequest): a
// connection of its own to PostgreSQL's postmaster, which forks a process that
// signals the statement's backend and exits. Nothing ties the signal to the
// statement: it stops whatever the backend runs when it arrives, so a cancel that
// arrives after its statement ended on its own stops the next statement of the
// connection, another request's ("canceling statement due to user request"). A
// backend that waits for its next command ignores the signal (PostgreSQL's
// ProcessInterrupts, DoingCommandRead); once the cancel request's connection has
// closed, its process has signalled the backend and exited, and the signal is
// pending there before the next statement can be sent, so a connection is safe to
// reuse from then on.
//
// pgx's own handler (pgconn.CancelRequestContextWatcherHandler) gives up on the
// cancel request as soon as the statement returns, waits a fixed 100 ms and hands
// the connection back. Under load the postmaster took longer to fork: 4 of 3,520
// live reads of a black-box prober, amid a storm of abandoned requests, failed with
// another request's cancel (TIMEOUT), and PostgreSQL logged "PID ... in cancel
// request did not match any process" for cancels that outlived their backend.
// cancelHandler instead keeps the connection until the cancel request's connection
// closed, and has it dropped when that takes past the fallback (cancelFallback).

// cancelHandler is the ctxwatch.Handler of a connection that reaches PostgreSQL
// itself: a cancelled context's statement is stopped with a cancel request, and the
// connection is handed back only once PostgreSQL has dealt with that request.
type cancelHandler struct {
	conn     *pgconn.PgConn
	fallback time.Duration // cancelFallback
	counts   *cancelCounts
	// done is closed when the cancel request of the last HandleCancel ended.
	done chan struct{}
	// unsettled is set when a cancel request was not known to be dealt with by the
	// fallback: its signal may still come, so the connection must not serve again.
	unsettled atomic.Bool
}

// cancelHandlerKey is where a connection's cancelHandler is in its
// pgconn.PgConn.CustomData.
const cancelHandlerKey = "segments.cancelHandler"

func newCancelHandler(conn *pgconn.PgConn, counts *cancelCounts) *cancelHandler {
	h := &cancelHandler{conn: conn, fallback: cancelFallback, counts: counts}
	conn.CustomData()[cancelHandlerKey] = h
	return h
}

// HandleCancel sends the cancel request at once, and sets the connection's
// deadline to the fallback: a statement PostgreSQL has not stopped by then fails
// with a timeout, and pgx closes its connection.
func (h *cancelHandler) HandleCancel(context.Context) {
	deadline := time.Now().Add(h.fallback)
	_ = h.conn.Conn().SetDeadline(deadline)
	done := make(chan struct{})
	h.done = done
	go func() {
		defer close(done)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		// CancelRequest returns once PostgreSQL closed the request's connection,
		// or at the deadline (then without an error: it ignores the read's).
		err := h.conn.CancelRequest(ctx)
		if err != nil || ctx.Err() != nil {
			if !h.unsettled.Swap(true) && h.counts != nil {
				h.counts.dropped.Add(1)
			}
		}
	}()
}

// HandleUnwatchAfterCancel returns once the cancel request ended: the statement
// returned, but the connection waits for the cancel's signal to have been sent.
func (h *cancelHandler) HandleUnwatchAfterCancel() {
	<-h.done
	_ = h.conn.Conn().SetDeadline(time.Time{})
}

// cancelUnsettled reports whether a cancel request sent on conn may still stop a
// later statement there: the connection must be closed, not reused.
func cancelUnsettled(conn *pgconn.PgConn) bool {
	h, _ := conn.CustomData()[cancelHandlerKey].(*cancelHandler)
	return h != nil && h.unsettled.Load()
}

// A read sent outside a transaction that PostgreSQL stopped (57014) while its
// context was alive, before statement_timeout could have passed, was stopped by a
// cancel that was not its own: an operator's pg_cancel_backend, or a cancel that a
// pooler routed to the wrong server connection. Its
// implicit transaction rolled back, and it is sent once more, the simple way, in a
// read-only transaction (readOnlySetting): PostgreSQL refuses that (25006) for a
// statement that writes, which then fails with its cancel as before. A statement in a
// transaction is never sent again: its transaction is aborted. The second attempt's
// outcome is the statement's, a second cancel included.

// readOnlySetting starts a read sent again: its implicit transaction writes nothing.
const readOnlySetting = "SET LOCAL transaction_read_only = on; "

// outsideTransaction reports whether the connection's next statement runs in an
// implicit transaction of its own: no transaction open, none begun (BeginTx).
func (c *tenantConn) outsideTransaction() bool {
	conn := c.Conn()
	return c.begin == "" && !conn.IsClosed() && conn.PgConn().TxStatus() == 'I'
}

// stoppedByAnother reports whether err, a statement's after it ran for elapsed, is
// PostgreSQL's stopping it for a cancel that was not its own: its context is alive,
// and it ran for less than statement_timeout. Told by code and time alone, as
// lc_messages translates the message.
func (c *tenantConn) stoppedByAnother(ctx context.Context, err error, elapsed time.Duration) bool {
	return Canceled(err) && ctx.Err() == nil && (c.statementTimeout <= 0 || elapsed < c.statementTimeout)
}

// cancelCounts count what the store did about cancels that were not a statement's
// own, for the metrics (Store.CancelCounts).
type cancelCounts struct {
	retried atomic.Uint64 // reads sent again (retryRead)
	dropped atomic.Uint64 // connections closed with a cancel request unsettled
}

// CancelCounts are counts of a store's since it opened.
type CancelCounts struct {
	// ReadsRetried counts reads sent again after PostgreSQL stopped them for a
	// cancel that was not theirs (their context alive, within statement_timeout).
	ReadsRetried uint64
	// ConnectionsDropped counts connections closed instead of reused because
	// PostgreSQL had not dealt with the cancel request of a statement on them
	// within the fallback (500 ms): its signal could still stop a later statement.
	ConnectionsDropped uint64
}

// CancelCounts returns the store's counts of cancels that were not a statement's own.
func (s *Store) CancelCounts() CancelCounts {
	c := s.cancels
	return CancelCounts{ReadsRetried: c.retried.Load(), ConnectionsDropped: c.dropped.Load()}
}
