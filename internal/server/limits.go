package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/limits"
)

// limitRequestSize refuses requests larger than max bytes before anything else reads
// them: a body over max with 413 Content Too Large, a query string (a GET request's
// document and variables) over max with 414 URI Too Long, both with extensions.code
// REQUEST_TOO_LARGE. A declared Content-Length over max is refused unread; a body
// without one (chunked) is read up to max and no further. The body of a request
// within the limit is read here whole, so that the handlers after this one (auth,
// idempotency, the GraphQL transports, which all read whole bodies) never see more.
// A negative max turns the limit off.
func limitRequestSize(max int64, next http.Handler) http.Handler {
	if max < 0 {
		return next
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
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
			if _, over := errors.AsType[*http.MaxBytesError](err); over {
				tooLarge(w, http.StatusRequestEntityTooLarge, "the request body")
				return
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
