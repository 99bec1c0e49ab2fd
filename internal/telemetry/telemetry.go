// Package telemetry observes the requests the server answers: the record each request
// fills on its way through the layers (Request), the Prometheus metrics (Metrics) and
// the OpenTelemetry traces (Tracing).
//
// The HTTP middleware starts a Request and puts it in the context; the layers that
// learn something about the request write it there (the workspace after
// authentication, the GraphQL operation and the code of its first error after
// execution); the middleware reads it back when the response is written, for the log
// line, the metrics and the request's span.
package telemetry

import (
	"cmp"
	"context"
	"encoding/json"
	"unicode/utf8"

	"github.com/segments/segments/internal/store"
)

// Request is what the layers of one request tell the telemetry. It is filled by the
// goroutine serving the request and read by it once the handler returned, so it needs
// no lock.
type Request struct {
	// Operation is the name of the GraphQL operation, "" when unnamed, cut to
	// MaxOperationLen bytes (SetOperation); OperationType is query or mutation, ""
	// when no valid operation was found.
	Operation, OperationType string
	// Workspace is the workspace the request acts for, 0 before authentication.
	Workspace int64
	// Code is the extensions.code of the first error of the response, "" without
	// errors.
	Code string
	// Executed is true once the operation ran: its response has a "data" entry,
	// null as it may be (a field that failed, or refused its arguments, after
	// execution began), as the GraphQL spec and the transport tell them apart. A
	// request answered without one is a refusal.
	Executed bool
	// Replayed is true for a request answered with the stored answer of an earlier
	// one with the same Idempotency-Key (Replay), which ran nothing.
	Replayed bool
	// Charged is the rate limit's points the request was charged
	// (extensions.cost.actualQueryCost), 0 when none: its answer, kept for its
	// Idempotency-Key, is charged as much again each time it is replayed.
	Charged int

	counter *store.StatementCounter
	own     store.StatementCounter
	base    int64
}

type requestKey struct{}

// Begin starts the record of a request and returns it with a context that carries it,
// and that counts the request's SQL statements. A statement counter already in ctx
// (a test's) keeps counting: the record counts the statements from now on.
func Begin(ctx context.Context) (context.Context, *Request) {
	r := &Request{}
	if c := store.StatementCounterFrom(ctx); c != nil {
		r.counter, r.base = c, c.N()
	} else {
		r.counter = &r.own
		ctx = store.WithStatementCounter(ctx, r.counter)
	}
	return context.WithValue(ctx, requestKey{}, r), r
}

// From returns the record of the request of ctx, or nil outside of one.
func From(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// Statements returns the number of SQL statements the request has sent so far (0 for
// a record not made by Begin).
func (r *Request) Statements() int64 {
	if r.counter == nil {
		return 0
	}
	return r.counter.N() - r.base
}

// MaxOperationLen is the most bytes of an operation's name a record keeps, for the
// log line, the request's span and an idempotent answer's record: clients choose
// names, of any length (five requests named with 200 KB each made 200 KB log lines
// and a 1 MB export of spans). GraphQL's names are ASCII; the cut keeps UTF-8 whole
// all the same.
const MaxOperationLen = 256

// SetOperation records the request's operation: its type and its name, cut to
// MaxOperationLen bytes.
func (r *Request) SetOperation(operationType, name string) {
	r.OperationType, r.Operation = operationType, cut(name, MaxOperationLen)
}

// Cut returns s cut to MaxOperationLen bytes, as SetOperation cuts an operation's
// name, for the other things a client chooses the length of that a log line or a span
// carries: a request's path and method. A GET of a 100 KB path made a 100 KB log line.
func Cut(s string) string { return cut(s, MaxOperationLen) }

// cut returns s cut to at most n bytes, at the start of a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Operated reports whether the request reached a valid GraphQL operation.
func (r *Request) Operated() bool { return r.OperationType != "" }

// Replay records that the request was answered with the stored answer of an earlier
// request (package idempotency): as the operation that answered it (operationType ""
// when none was known), with that answer's code, and as executed when that one was.
func (r *Request) Replay(operation, operationType string, body []byte) {
	r.Replayed = true
	r.SetOperation(operationType, operation)
	res := parseBody(body)
	r.Executed = res.Data != nil // "data": null is there too, as the original's was
	if r.Code == "" && len(res.Errors) > 0 {
		r.Code = cmp.Or(res.Errors[0].Extensions.Code, CodeUncoded)
	}
}

// CodeFromBody returns the extensions.code of the first error of a GraphQL-shaped
// response body, "" when it has none or does not parse. The middleware reads it from
// the refusals written before GraphQL runs (authentication, body size, rate limits,
// idempotency), whose code no GraphQL hook sees.
func CodeFromBody(body []byte) string {
	res := parseBody(body)
	if len(res.Errors) == 0 {
		return ""
	}
	return res.Errors[0].Extensions.Code
}

// responseBody is what the telemetry reads of a GraphQL response.
type responseBody struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

// parseBody reads body as a GraphQL response: empty when it is none.
func parseBody(body []byte) responseBody {
	var res responseBody
	if json.Unmarshal(body, &res) != nil {
		return responseBody{}
	}
	return res
}
