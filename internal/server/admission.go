package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync/atomic"

	"github.com/segments/segments/internal/auth"
)

// admit bounds how many GraphQL requests run at once (running) and how many more may
// wait for one of them to finish (waiting), in the order they came, until their
// deadline. Beyond that a request is refused at once: 503 SERVICE_UNAVAILABLE with
// Retry-After, which every client already treats as "retry with backoff".
//
// Why: the database pool serves a few dozen requests at a time and two cores run
// only two; more requests admitted than that gain no throughput, only wait for a
// connection while holding their parsed documents, resolvers and buffers. Under an
// open-model overload (the benchmark's SLO search at several times the server's
// capacity) that grew the process to 0.9-1.9 GB. A waiting request here holds
// little more than its goroutine and unread body. Requests wait before
// authentication, whose key lookup is SQL too. A negative running admits every
// request; a negative waiting lets any number wait.
func admit(running, waiting int, next http.Handler) http.Handler {
	if running < 0 {
		return next
	}
	if waiting < 0 {
		waiting = math.MaxInt32
	}
	slots := make(chan struct{}, running) // a token per running request
	var queued atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			if queued.Add(1) > int64(waiting) {
				queued.Add(-1)
				refuseBusy(w)
				return
			}
			// Blocked senders of a channel proceed first come, first served.
			select {
			case slots <- struct{}{}:
				queued.Add(-1)
			case <-r.Context().Done():
				queued.Add(-1)
				if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
					refuseBusy(w)
				} // else the client is gone: nobody reads an answer
				return
			}
		}
		defer func() { <-slots }()
		next.ServeHTTP(w, r)
	})
}

// refuseBusy answers a request the server has no room for.
func refuseBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	auth.WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the server is at capacity; retry in a moment")
}
