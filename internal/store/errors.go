package store

import (
	"database/sql/driver"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes the store reacts to. Errors are told apart by code and constraint,
// never by message text.
const (
	uniqueViolation      = "23505"
	serializationFailure = "40001"
	deadlockDetected     = "40P01"
	lockNotAvailable     = "55P03" // lock_timeout
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

// Unreachable reports whether err says PostgreSQL could not be reached: no connection
// could be made (refused, timed out, or the server is starting or stopping), so
// nothing of the statement ran and the same request may succeed once the database is
// back.
func Unreachable(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
