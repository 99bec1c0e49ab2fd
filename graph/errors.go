package graph

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// Codes of top-level errors (extensions.code), following the names Apollo's tooling
// knows. Mutations report input problems in their payload's userErrors instead.
const (
	codeBadUserInput = "BAD_USER_INPUT"
	codeInternal     = "INTERNAL_SERVER_ERROR"
	codeTimeout      = "TIMEOUT"
	codeUnavailable  = "UNAVAILABLE"
	// codeResyncRequired: a contactChanges cursor from which the feed cannot resume
	// without loss (store.ResyncError); the client syncs again from the start.
	codeResyncRequired = "RESYNC_REQUIRED"
	// codeClientClosed: the client left before the answer (nginx's 499).
	codeClientClosed = telemetry.CodeClientClosed
)

// ErrShuttingDown is the cause with which a server shutting down cancels the requests
// still running at the end of its grace period: they are reported as UNAVAILABLE,
// which a client may retry (against another instance, or after the restart).
var ErrShuttingDown = errors.New("the server is shutting down")

// payloadErrors splits the outcome of a mutation: input problems become userErrors
// (with fields under "input"), anything else stays an error for the top level.
func payloadErrors(err error) ([]*model.UserError, error) {
	if err == nil {
		return []*model.UserError{}, nil
	}
	errs := crm.UserErrors(err)
	if errs == nil {
		return nil, err
	}
	return userErrors(crm.Prefixed(errs, "input")), nil
}

func userErrors(errs []*crm.Error) []*model.UserError {
	out := make([]*model.UserError, len(errs))
	for i, e := range errs {
		out[i] = &model.UserError{Field: e.Field, Message: e.Message, Code: model.UserErrorCode(e.Code)}
	}
	return out
}

// presentError is the one place errors become what clients see. Input problems in
// queries (a bad cursor, a page size out of range) are BAD_USER_INPUT; errors gqlgen
// made (validation, coercion) pass as they are; the end of the request's context, a
// statement the database stopped (TIMEOUT) and a database out of reach or lost under
// a statement (UNAVAILABLE) are transient, for the client to retry; anything else is
// logged with the request ID and shown only as an internal error, never with its
// details.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	present := presentUnlocated(log)
	return func(ctx context.Context, err error) *gqlerror.Error {
		e := present(ctx, err)
		// A field's error points at the field in the document, as the spec says it
		// should (locations), and as validation's errors do.
		if fc := graphql.GetFieldContext(ctx); e != nil && len(e.Locations) == 0 && fc != nil && fc.Field.Field != nil {
			at(e, fc.Field.Position)
		}
		return e
	}
}

// presentUnlocated is presentError but for the locations, which it leaves to presentError.
func presentUnlocated(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		path := graphql.GetPath(ctx)
		var resync *store.ResyncError
		if errors.As(err, &resync) {
			e := coded(path, err, codeResyncRequired, resync.Error())
			e.Extensions["argument"] = "after"
			return e
		}
		if errs := crm.UserErrors(err); errs != nil {
			// The first problem; field paths are relative to the field's arguments.
			field := errs[0].Field
			if field == nil {
				field = argumentPath(path, err)
			}
			return badUserInput(path, err, errs[0].Message, field)
		}
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			if gqlErr.Message == "operation  not found" {
				// gqlgen's words for a document of several operations and no
				// operationName, which named none.
				gqlErr.Message = "the document has several operations: name the one to run in operationName"
			}
			return gqlErr
		}
		// An error after the request's context ended is that end, whatever form it
		// took on the way: the context's own error, PostgreSQL's query_canceled for a
		// statement the store's cancel request stopped, or the error of a statement
		// whose connection was closed under it (through PgBouncer; pgx's "conn
		// closed", a driver.ErrBadConn).
		ended := ctx.Err()
		if ended != nil {
			// Why it ended: a mutation's payload grace (grace.go) ends with the
			// request's cause, its own error being Canceled whatever that was.
			ended = context.Cause(ctx)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ended, context.DeadlineExceeded) {
			return coded(path, err, codeTimeout, "the request took too long and was stopped")
		}
		if (errors.Is(err, context.Canceled) || ended != nil) && errors.Is(context.Cause(ctx), ErrShuttingDown) {
			return coded(path, err, codeUnavailable, "the server is shutting down; retry the request")
		}
		if errors.Is(ended, context.Canceled) {
			// No one reads this answer; its code is for the log and the metrics, where
			// an internal error would count a client's leaving as the server's failure.
			return coded(path, err, codeClientClosed, "the client closed the request before it was answered")
		}
		if store.Canceled(err) {
			// PostgreSQL stopped the statement, with the request's context alive: the
			// database's statement_timeout passed, or an operator cancelled it (a
			// read outside a transaction was sent once more first: store's cancel.go). The
			// request ran out of time as at its own deadline (it was answered
			// INTERNAL_SERVER_ERROR, a bug).
			return coded(path, err, codeTimeout, "the request took too long and was stopped")
		}
		id := requestid.From(ctx)
		if store.ReadOnly(err) {
			// The database takes no writes for now (a failover to a standby,
			// maintenance): the queries of every workspace still run, and the client
			// may retry its write. Logged once per request as a warning, not as a bug.
			log.WarnContext(ctx, "database is read-only", "path", path.String(), "request_id", id)
			return unavailable(path, err, id, "the database takes no writes for now; retry shortly")
		}
		if store.Contended(err) {
			// Concurrent changes of the same rows kept colliding through every
			// attempt the store made (deadlocks, rows created or deleted between its
			// statements): nothing was written, and the same request, retried a moment
			// later, runs alone. It was INTERNAL_SERVER_ERROR, a bug, at 7 to 13 a
			// minute for upserts beside deletions of the same phones.
			log.WarnContext(ctx, "concurrent changes collided", "path", path.String(), "request_id", id, "err", err)
			return unavailable(path, err, id, "concurrent changes to the same contacts or segments collided; retry shortly")
		}
		if store.Unreachable(err) || store.Disconnected(err) {
			// No bug to quote: the client may retry, as after a refusal with 503. A
			// connection lost under a statement (the session terminated, PostgreSQL
			// restarting, the network cut) is the same outage, seen a moment later.
			told := "the database cannot be reached; retry shortly"
			if store.Unreachable(err) {
				log.ErrorContext(ctx, "database unreachable", "err", err, "path", path.String(), "request_id", id)
			} else {
				told = "the connection to the database was lost; retry shortly"
				log.ErrorContext(ctx, "database connection lost", "err", err, "path", path.String(), "request_id", id)
			}
			return unavailable(path, err, id, told)
		}
		if !errors.Is(err, context.Canceled) && ended == nil {
			log.ErrorContext(ctx, "resolver failed", "err", err, "path", path.String(), "request_id", id)
		}
		return internalError(ctx, id)
	}
}

// unavailable is err as clients see it at path when the database could not serve the
// request for now: UNAVAILABLE, to retry, with the request's ID, under which it was
// logged.
func unavailable(path ast.Path, err error, id, message string) *gqlerror.Error {
	e := coded(path, err, codeUnavailable, message)
	e.Extensions["requestId"] = id
	return e
}

// coded is err as clients see it at path: message, and code as extensions.code.
// Without err (nil), the presenter passes the error as it is.
func coded(path ast.Path, err error, code, message string) *gqlerror.Error {
	e := &gqlerror.Error{Path: path}
	if err != nil {
		e = gqlerror.WrapPath(path, err)
	}
	e.Message = message
	e.Extensions = map[string]any{"code": code}
	return e
}

// badUserInput is a bad argument's error at path: BAD_USER_INPUT, naming the
// argument and the value's path within it (field; nil when no one value is at fault).
func badUserInput(path ast.Path, err error, message string, field []string) *gqlerror.Error {
	e := coded(path, err, codeBadUserInput, message)
	if field != nil {
		e.Extensions["argument"] = field[0]
		e.Extensions["field"] = field
	}
	return e
}

// argumentPath is the path within the arguments of the field at field of a value
// gqlgen could not unmarshal (a scalar's error, such as attributes that are not an
// object): gqlgen puts it after the field's own path.
func argumentPath(field ast.Path, err error) []string {
	var gqlErr *gqlerror.Error
	if !errors.As(err, &gqlErr) {
		return nil
	}
	if len(gqlErr.Path) <= len(field) || gqlErr.Path[:len(field)].String() != field.String() {
		return nil
	}
	var path []string
	for _, e := range gqlErr.Path[len(field):] {
		switch e := e.(type) {
		case ast.PathName:
			path = append(path, string(e))
		case ast.PathIndex:
			path = append(path, strconv.Itoa(int(e)))
		}
	}
	return path
}

// recoverPanic turns a panic in a resolver into an internal error; the stack goes to
// the log only.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		id := requestid.From(ctx)
		log.ErrorContext(ctx, "resolver panicked", "panic", p, "stack", string(debug.Stack()), "request_id", id)
		return internalError(ctx, id)
	}
}

func internalError(ctx context.Context, id string) *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "internal server error; quote request ID " + id + " when reporting it",
		Path:       graphql.GetPath(ctx),
		Extensions: map[string]any{"code": codeInternal, "requestId": id},
	}
}

// quietPresenter presents errors as presentError does, without its log lines.
var quietPresenter = presentUnlocated(slog.New(slog.DiscardHandler))

// errorCode is the extensions.code with which presentError shows err in ctx to the
// client (telemetry.CodeUncoded when it has none), for the field's span; it logs
// nothing, as the presenter logs the error when gqlgen presents it.
func errorCode(ctx context.Context, err error) string {
	if code, ok := quietPresenter(ctx, err).Extensions["code"].(string); ok {
		return code
	}
	return telemetry.CodeUncoded
}
