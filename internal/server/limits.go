package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/connlimit"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/telemetry"
)

// CodeRequestTimeout is the code of a request whose body did not arrive in time.
const CodeRequestTimeout = "REQUEST_TIMEOUT"

// bodyTimeout is how long a request body may take to arrive when requests have no
// deadline: serve's default --request-timeout. A variable for the tests.
var bodyTimeout = 10 * time.Second

// limitRequestSize refuses requests larger than max bytes before anything else reads
// them: a body over max with 413 Content Too Large, a query string (a GET request's
// document and variables) over max with 414 URI Too Long, both with extensions.code
// REQUEST_TOO_LARGE. A declared Content-Length over max is refused unread; a body
// without one (chunked) is read up to max and no further. The body of a request
// within the limit is read here whole, so that the handlers after this one (auth,
// idempotency, the GraphQL transports, which all read whole bodies) never see more.
// A negative max turns the limit off.
//
// The body must also arrive within within (0: bodyTimeout), else 408 REQUEST_TIMEOUT:
// the request's deadline starts after it is read, and the server's only read timeout
// is the headers'. A body sent a byte a second held its connection, and its 256 KB,
// for days, before the key was even checked.
func limitRequestSize(max int64, within time.Duration, next http.Handler) http.Handler {
	if max < 0 {
		return next
	}
	if within <= 0 {
		// No request deadline (Config.RequestTimeout 0) leaves the body bounded all
		// the same: it is read before authentication, so anyone could hold a
		// connection with it.
		within = bodyTimeout
	}
	tooLarge := func(w http.ResponseWriter, status int, what string) {
		auth.WriteError(w, status, limits.CodeRequestTooLarge,
			what+" is larger than "+strconv.FormatInt(max, 10)+" bytes, the maximum")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if int64(len(r.URL.RawQuery)) > max {
			tooLarge(w, http.StatusRequestURITooLong, "the query string")
			return
		}
		if r.ContentLength > max {
			tooLarge(w, http.StatusRequestEntityTooLarge, "the request body")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(within)) // not supported (HTTP/2 tests): unbounded
			// At a connection cap with no idle connection, one reading its body so the
			// longest may be closed for a newcomer: slow bodies cannot hold every place.
			done := connlimit.ReadingBody(r.Context())
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
			done()
			if _, over := errors.AsType[*http.MaxBytesError](err); over {
				tooLarge(w, http.StatusRequestEntityTooLarge, "the request body")
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The deadline stays: net/http reads what is left of a body before it
				// answers, and the answer closes the connection. net/http cancels the
				// request's context at the deadline, as when a client leaves: the code
				// tells the log that the client is there and gets the 408 (accessLog).
				if rec := telemetry.From(r.Context()); rec != nil {
					rec.Code = CodeRequestTimeout
				}
				auth.WriteError(w, http.StatusRequestTimeout, CodeRequestTimeout,
					"the request body did not arrive within "+within.String())
				return
			}
			_ = rc.SetReadDeadline(time.Time{})
			if errors.Is(err, io.ErrUnexpectedEOF) {
				// The client closed its connection before the body was whole: it left
				// (refused with 400, it counted as a rejection). Answered all the same,
				// as one that only half-closed still reads.
				if rec := telemetry.From(r.Context()); rec != nil {
					rec.Code = telemetry.CodeClientClosed
				}
			}
			if err != nil {
				auth.WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "could not read the request body")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		next.ServeHTTP(w, r)
	})
}
