package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes the store reacts to. Errors are told apart by code and constraint,
// never by message text.
const (
	uniqueViolation       = "23505"
	serializationFailure  = "40001"
	deadlockDetected      = "40P01"
	lockNotAvailable      = "55P03" // lock_timeout, or a lock taken NOWAIT
	queryCanceled         = "57014" // statement_timeout, or a cancel request
	readOnlyTransaction   = "25006" // a write in a read-only database (a standby, maintenance)
	adminShutdown         = "57P01" // pg_terminate_backend, or a smart or fast shutdown
	crashShutdown         = "57P02" // another backend crashed: every session ends
	cannotConnectNow      = "57P03" // the server is starting or stopping
	insufficientPrivilege = "42501" // a function or table the role may not use
	// connectionException is the class of connection errors (08000, 08006, ...).
	// PgBouncer sends every error of its own as 08P01 (protocol_violation): "server
	// conn crashed?" when its server connection is lost, a query_wait_timeout, a
	// server it cannot reach. PostgreSQL's own 08P01, a message of ours it could not
	// read, would be a bug taken for an outage; it has not been seen.
	connectionException = "08"
)

// pgError returns the PostgreSQL error err carries, if any.
func pgError(err error) *pgconn.PgError {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return nil
}

// violates reports whether err is a unique violation of the named constraint or index.
func violates(err error, constraint string) bool {
	pgErr := pgError(err)
	return pgErr != nil && pgErr.Code == uniqueViolation && pgErr.ConstraintName == constraint
}

// lockHeld reports whether err is a lock taken NOWAIT (or past lock_timeout) that
// another transaction held (55P03). The statement's transaction is aborted.
func lockHeld(err error) bool {
	pgErr := pgError(err)
	return pgErr != nil && pgErr.Code == lockNotAvailable
}

// errConcurrentChange is how a transaction reports that a concurrent one changed what
// it read between two of its statements, so that it must run again.
var errConcurrentChange = errors.New("store: changed concurrently")

// retryable reports whether a transaction failed only because of a concurrent one, or
// of a pooled connection found broken before its statement reached the server
// (driver.ErrBadConn: nothing of the transaction ran), and can run again as it is.
func retryable(err error) bool {
	if errors.Is(err, errConcurrentChange) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	pgErr := pgError(err)
	return pgErr != nil && (pgErr.Code == serializationFailure || pgErr.Code == deadlockDetected)
}

// Contended reports whether err is a transaction's failure for concurrent ones alone
// (a deadlock, a serialization failure, rows changed between its statements) that
// its attempts did not outlast: nothing of it was written, and the same change may
// succeed when retried.
func Contended(err error) bool {
	return !errors.Is(err, driver.ErrBadConn) && retryable(err)
}

// Unreachable reports whether err says PostgreSQL could not be reached: no connection
// could be made (refused, timed out, or the server is starting or stopping), so
// nothing of the statement ran and the same request may succeed once the database is
// back.
func Unreachable(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// Canceled reports whether err is a statement that PostgreSQL stopped (57014): its
// statement_timeout passed, or a cancel request reached it (pg_cancel_backend, or
// the store's own when the statement's context ended). Its transaction rolled back;
// the same request may succeed when it takes less time. A read outside a
// transaction stopped by a cancel not its own was sent once more before it failed
// so (cancel.go).
func Canceled(err error) bool {
	pgErr := pgError(err)
	return pgErr != nil && pgErr.Code == queryCanceled
}

// ReadOnly reports whether err is a write that PostgreSQL refused because the
// database takes no writes now (25006): a hot standby (the server connected to a
// replica after a failover), or default_transaction_read_only set for maintenance.
// Nothing was written; the same request may succeed once the database takes writes.
func ReadOnly(err error) bool {
	pgErr := pgError(err)
	return pgErr != nil && pgErr.Code == readOnlyTransaction
}

// Disconnected reports whether err says the connection to PostgreSQL was lost under a
// statement: the server ended the session (pg_terminate_backend, a shutdown, a crash
// of another backend), or the connection broke (a killed backend, a cut network).
// Nothing of the statement's transaction committed unless the loss came during its
// COMMIT; the same request may succeed on another connection. (These were answered
// INTERNAL_SERVER_ERROR, a bug to the client and the operator, with PostgreSQL
// healthy.)
func Disconnected(err error) bool {
	if pgErr := pgError(err); pgErr != nil {
		switch pgErr.Code {
		case adminShutdown, crashShutdown, cannotConnectNow:
			return true
		}
		return strings.HasPrefix(pgErr.Code, connectionException)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false // the statement's context ended (context.DeadlineExceeded is a net.Error too)
	}
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr)
}
