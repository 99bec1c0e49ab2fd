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
//
// Each cancel request costs a fork of the postmaster's and, delivered late, a
// dropped connection whose replacement costs another. Most statements whose client
// gives up end a moment later on their own, so none is sent for a statement that
// returns within the grace (cancelGrace) after its client left: amid one
// workspace's storm of abandoned searches on a slow postmaster
// (TestAbandoningWorkspaceStarvesNoOther, 6 s at load 12-16 on 2 cores), 1-11
// cancel requests were sent and 1-9 connections dropped, against 10-23 and 8-14
// without the grace. A deadline or a shutdown sends its cancel at once: its
// context's owner waits for the statement.

// cancelHandler is the ctxwatch.Handler of a connection that reaches PostgreSQL
// itself: a cancelled context's statement that has not returned within the grace
// (cancelGrace) is stopped with a cancel request, and the connection is handed back
// only once PostgreSQL has dealt with that request.
type cancelHandler struct {
	conn     *pgconn.PgConn
	grace    time.Duration // cancelGrace
	fallback time.Duration // cancelFallback
	counts   *cancelCounts
	// returned is closed when the statement of the last HandleCancel returned
	// (HandleUnwatchAfterCancel), and done when that cancel's work ended: the grace
	// passed without a cancel request, or its cancel request ended.
	returned, done chan struct{}
	// unsettled is set when a cancel request was not known to be dealt with by the
	// fallback: its signal may still come, so the connection must not serve again.
	unsettled atomic.Bool
}

// cancelHandlerKey is where a connection's cancelHandler is in its
// pgconn.PgConn.CustomData.
const cancelHandlerKey = "segments.cancelHandler"

func newCancelHandler(conn *pgconn.PgConn, counts *cancelCounts) *cancelHandler {
	h := &cancelHandler{conn: conn, grace: cancelGrace, fallback: cancelFallback, counts: counts}
	conn.CustomData()[cancelHandlerKey] = h
	return h
}

// HandleCancel lets the statement of a request whose client left (abandoned) run on
// for the grace, and sends the cancel request only if it has not returned by then;
// for any other end of its context (a deadline: a request's timeout, the rate
// limiter's charge; a shutdown) it sends it at once, as that context's owner waits
// for the statement. It sets the connection's deadline to the grace and the
// fallback: a statement PostgreSQL has not stopped by then fails with a timeout, and
// pgx closes its connection.
func (h *cancelHandler) HandleCancel(ctx context.Context) {
	grace := h.grace
	if !abandoned(ctx) {
		grace = 0
	}
	deadline := time.Now().Add(grace + h.fallback)
	_ = h.conn.Conn().SetDeadline(deadline)
	returned, done := make(chan struct{}), make(chan struct{})
	h.returned, h.done = returned, done
	go func() {
		defer close(done)
		if grace > 0 {
			grace := time.NewTimer(grace)
			defer grace.Stop()
			select {
			case <-returned: // it returned on its own: nothing to stop, nothing to settle
				return
			case <-grace.C:
			}
		}
		if h.counts != nil {
			h.counts.sent.Add(1)
		}
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

// HandleUnwatchAfterCancel returns once the cancel's work ended: the statement
// returned, and the connection waits for a cancel request sent for it to have been
// dealt with; none is sent once the statement returned within the grace.
func (h *cancelHandler) HandleUnwatchAfterCancel() {
	close(h.returned)
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
// outcome is the statement's, a second cancel included: one cancel is a stray, two
// in a row someone stopping the server's statements, which more attempts would fight
// and, for a read longer than their interval, never outlast (under pg_cancel_backend
// of every backend every 30-40 ms, 4 of 35,700 reads of 1-5 ms failed, 0-1.2% of
// those of 15-25 ms, 621 of 639 of 50 ms: docs/operations.md, "Timeouts"). It holds
// with a workspace and without one
// (queryWithoutWorkspace: an API key's lookup, before its workspace is known).

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

// cancelCounts count the cancel requests the store sent and what it did about cancels
// that were not a statement's own, for the metrics (Store.CancelCounts).
type cancelCounts struct {
	retried atomic.Uint64 // reads sent again (tenantConn.queryAgain, direct scans)
	sent    atomic.Uint64 // cancel requests sent (cancelHandler)
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
	// CancelsSent counts the cancel requests sent for statements whose context ended
	// and that had not returned within the grace (cancelGrace).
	CancelsSent uint64
}

// CancelCounts returns the store's counts of cancel requests sent, and of cancels
// that were not a statement's own.
func (s *Store) CancelCounts() CancelCounts {
	c := s.cancels
	return CancelCounts{ReadsRetried: c.retried.Load(), ConnectionsDropped: c.dropped.Load(), CancelsSent: c.sent.Load()}
}
