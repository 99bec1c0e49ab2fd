package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client is a small GraphQL client for the segments API: one POST per request, with
// the API key, an Idempotency-Key on every mutation, and retries of the failures a
// retry can fix.
type Client struct {
	// Endpoint is the URL of the API, such as http://127.0.0.1:8080/graphql.
	Endpoint string
	// Key is the API key (seg_...). Mutations need a read_write key.
	Key string
	// HTTP sends the requests; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// Attempts is how often a request is sent at most (1: no retries).
	Attempts int
	// Backoff is the wait before the first retry; it doubles at each retry (with
	// jitter), up to MaxBackoff. A Retry-After from the server wins when longer.
	Backoff, MaxBackoff time.Duration
	// Retried, when set, is told about each retry: for logging.
	Retried func(attempt int, wait time.Duration, cause error)
}

// Error is a top-level error of the API: a failure (the request was refused or could
// not run), as opposed to the userErrors of a mutation payload, which are answers.
type Error struct {
	// Status is the HTTP status of the response.
	Status int
	// Code is the error's extensions.code, such as BAD_USER_INPUT or THROTTLED.
	Code string
	// Message is the error's message, for people.
	Message string
	// RetryAfter is the wait the server asked for (Retry-After), if any.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
}

// Temporary reports whether sending the request again may succeed: the codes the
// docs list as transient (docs/api.md, docs/operations.md), and the HTTP statuses of
// overload and restarts.
func (e *Error) Temporary() bool {
	switch e.Code {
	case "TIMEOUT", "UNAVAILABLE", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR",
		"THROTTLED", "TOO_MANY_CONCURRENT_REQUESTS", "IDEMPOTENCY_KEY_IN_PROGRESS":
		return true
	}
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// response is the body of a GraphQL response.
type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

// Query runs a query and decodes its data into out.
func (c *Client) Query(ctx context.Context, query string, vars map[string]any, out any) error {
	return c.do(ctx, query, vars, "", out)
}

// Mutate runs a mutation and decodes its data into out. Every attempt carries the
// same Idempotency-Key and the same bytes, so an attempt whose answer was lost is
// not applied twice: the server replays the answer of the first.
func (c *Client) Mutate(ctx context.Context, query string, vars map[string]any, out any) error {
	return c.do(ctx, query, vars, newIdempotencyKey(), out)
}

func (c *Client) do(ctx context.Context, query string, vars map[string]any, idemKey string, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	attempts := max(c.Attempts, 1)
	backoff := c.Backoff
	for attempt := 1; ; attempt++ {
		data, err := c.send(ctx, body, idemKey)
		if err == nil {
			return json.Unmarshal(data, out)
		}
		if attempt >= attempts || !temporary(err) || ctx.Err() != nil {
			return err
		}
		wait := jitter(backoff)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
			wait = apiErr.RetryAfter
		}
		if c.Retried != nil {
			c.Retried(attempt, wait, err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		backoff = min(2*backoff, max(c.MaxBackoff, c.Backoff))
	}
}

// send makes one attempt and returns the response's data, or the first top-level
// error.
func (c *Client) send(ctx context.Context, body []byte, idemKey string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, &networkError{err} // the request may or may not have arrived
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, &networkError{err}
	}
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		// Not GraphQL: a proxy's error page, say.
		return nil, &Error{Status: res.StatusCode, Code: "HTTP_" + strconv.Itoa(res.StatusCode),
			Message:    "unexpected response: " + strings.TrimSpace(string(raw[:min(len(raw), 200)])),
			RetryAfter: retryAfter(res.Header.Get("Retry-After"))}
	}
	if len(r.Errors) > 0 {
		return nil, &Error{Status: res.StatusCode, Code: r.Errors[0].Extensions.Code, Message: r.Errors[0].Message,
			RetryAfter: retryAfter(res.Header.Get("Retry-After"))}
	}
	if res.StatusCode != http.StatusOK {
		return nil, &Error{Status: res.StatusCode, Code: "HTTP_" + strconv.Itoa(res.StatusCode), Message: res.Status}
	}
	return r.Data, nil
}

// networkError is a request that got no answer: a connection refused or cut, or a
// client timeout. With an Idempotency-Key it is always safe to send again.
type networkError struct{ err error }

func (e *networkError) Error() string { return "network: " + e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

func temporary(err error) bool {
	var ne *networkError
	if errors.As(err, &ne) {
		return true
	}
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.Temporary()
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// jitter returns a wait between d/2 and d, so that clients failed together do not
// retry together.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// newIdempotencyKey returns a random UUID (version 4).
func newIdempotencyKey() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
