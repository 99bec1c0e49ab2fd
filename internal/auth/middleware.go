package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/requestid"
)

// Workspaces finds the workspace of a credential.
type Workspaces interface {
	// AuthenticateKey returns the workspace and the key whose hash is keyHash, for a
	// key that works (not revoked, not expired), or a *crm.Error with CodeNotFound.
	AuthenticateKey(ctx context.Context, keyHash []byte) (crm.Workspace, crm.APIKey, error)
	// Workspace returns a workspace by ID, or a *crm.Error with CodeNotFound.
	Workspace(ctx context.Context, id int64) (crm.Workspace, error)
}

type workspaceKey struct{}

// WithWorkspace returns a context acting for ws. It carries no Principal: prefer
// WithPrincipal.
func WithWorkspace(ctx context.Context, ws crm.Workspace) context.Context {
	return context.WithValue(ctx, workspaceKey{}, ws)
}

// WorkspaceFrom returns the workspace the request acts for.
func WorkspaceFrom(ctx context.Context) (crm.Workspace, bool) {
	ws, ok := ctx.Value(workspaceKey{}).(crm.Workspace)
	return ws, ok
}

// An Option configures Require.
type Option func(*authenticator)

// WithJWT makes Require accept dashboard sessions checked by v as well as API keys;
// a nil v leaves them off.
func WithJWT(v *JWTVerifier) Option {
	return func(a *authenticator) { a.jwt = v }
}

// WithYield makes Require give up the request's place among the server's running
// requests (yield) while a session token waits for the issuer's keys, and take it
// back (resume) before anything else runs for the request: a token with a made-up key
// ID, which costs nothing to forge, would otherwise hold a place for as long as the
// issuer takes to answer. resume reports whether the request may go on; when not, it
// has answered the request. A request refused after its wait is answered without
// taking its place back.
func WithYield(yield func(context.Context), resume func(http.ResponseWriter, context.Context) bool) Option {
	return func(a *authenticator) { a.yield, a.resume = yield, resume }
}

type authenticator struct {
	workspaces Workspaces
	log        *slog.Logger
	jwt        *JWTVerifier
	keys       *keyCache // nil: every request asks the database (WithKeyCache)
	// yield and resume: see WithYield; nil keeps the place while waiting.
	yield  func(context.Context)
	resume func(http.ResponseWriter, context.Context) bool
}

// waitingKey carries, in the context that Verify gets, what a request does before it
// waits for the issuer's keys (see waiting).
type waitingKey struct{}

// waiting runs what ctx says a request does before it waits for the issuer's keys:
// Require's yield of the request's place, if any.
func waiting(ctx context.Context) {
	if f, ok := ctx.Value(waitingKey{}).(func()); ok {
		f()
	}
}

// errAnswered: the request was answered (resume could not take its place back).
var errAnswered = errors.New("auth: the request was answered")

// Require lets a request through only with a valid credential in
// "Authorization: Bearer <credential>", and puts its Principal (and workspace) in the
// request's context. The credential is an API key ("seg_...", checked against its
// checksum before the database is asked) or, WithJWT, a dashboard session token; the
// two are told apart by their shape (JWTs have dots) before any cryptography. Any
// other request gets 401 with a GraphQL error whose extensions.code is
// UNAUTHENTICATED, and nothing behind Require runs; a request with more than one
// Authorization header gets 400 BAD_REQUEST.
func Require(workspaces Workspaces, log *slog.Logger, next http.Handler, opts ...Option) http.Handler {
	a := &authenticator{workspaces: workspaces, log: log}
	for _, o := range opts {
		o(a)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Authorization is no list (RFC 9110 section 5.3): two of them are refused,
		// since a proxy that reads the other one would authorize another principal.
		if len(r.Header.Values("Authorization")) > 1 {
			WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "send one Authorization header, not several")
			return
		}
		header := r.Header.Get("Authorization")
		token, ok := bearer(header)
		if !ok {
			msg := "missing API key: send it as \"Authorization: Bearer <key>\""
			if scheme, _, _ := strings.Cut(strings.TrimSpace(header), " "); scheme != "" && !strings.EqualFold(scheme, "Bearer") {
				// Something was sent, in a scheme not taken here (Basic, or a bare key):
				// say so, where "missing" sent its client looking for a lost header. No
				// error attribute still: RFC 6750 section 3.1 counts an unsupported
				// method as no credential.
				msg = "only Bearer credentials are accepted: send the API key as \"Authorization: Bearer <key>\""
			}
			unauthenticated(w, msg, false)
			return
		}
		var p Principal
		var err error
		if looksLikeJWT(token) {
			ctx, waited := r.Context(), false
			if a.yield != nil {
				ctx = context.WithValue(ctx, waitingKey{}, func() {
					if !waited {
						waited = true
						a.yield(r.Context())
					}
				})
			}
			p, err = a.session(ctx, token, func() bool { return !waited || a.resume(w, r.Context()) })
		} else {
			p, err = a.apiKey(r.Context(), token)
		}
		var refusal *refusal
		var unavailable *keysUnavailableError
		switch {
		case errors.Is(err, errAnswered):
			return
		case errors.As(err, &refusal):
			unauthenticated(w, refusal.msg, true)
			return
		case err != nil && errors.Is(r.Context().Err(), context.DeadlineExceeded):
			// The request's deadline passed during the lookup (the database slow, the
			// key's row locked, the issuer's keys slow to come): a timeout, as past
			// the deadline anywhere else.
			w.Header().Set("Retry-After", "1")
			WriteError(w, http.StatusServiceUnavailable, "TIMEOUT", "the request took too long and was stopped before it ran")
			return
		case err != nil && r.Context().Err() != nil:
			// Cancelled during the lookup: the client left, or the server is shutting
			// down. No failure of the database's or the issuer's (logged as one, it
			// raised an alert); answered all the same, as the client may still read
			// (an unanswered request is an empty 200 to it). The access log tells a
			// client that left (CLIENT_CLOSED_REQUEST).
			w.Header().Set("Retry-After", "1")
			WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the request was stopped before it ran; retry it")
			return
		case errors.As(err, &unavailable):
			// Whole seconds, rounded up: a client that waits that long may be let in.
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int((unavailable.retryAfter+time.Second-1)/time.Second))))
			WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the session could not be checked, try again shortly")
			return
		case err != nil:
			a.log.ErrorContext(r.Context(), "authenticate", "err", err, "request_id", requestid.From(r.Context()))
			w.Header().Set("Retry-After", "1") // the database's fault, not the request's
			WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the service is unavailable, try again shortly")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// refusal is a credential that is not accepted: 401 with msg.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func (a *authenticator) apiKey(ctx context.Context, token string) (Principal, error) {
	key, err := ParseKey(token)
	if err != nil {
		return Principal{}, &refusal{"invalid API key"}
	}
	hash := key.Hash()
	now := time.Now()
	if a.keys != nil {
		if p, ok := a.keys.get(hash, now); ok {
			return p, nil
		}
	}
	ws, k, err := a.workspaces.AuthenticateKey(ctx, hash)
	if isNotFound(err) {
		return Principal{}, &refusal{"invalid API key"}
	}
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Workspace: ws, Kind: KindAPIKey, KeyID: k.ID, KeyName: k.Name, Scope: k.Scope}
	if k.ExpiresAt != nil {
		p.ExpiresAt = *k.ExpiresAt
	}
	if a.keys != nil {
		a.keys.put(hash, p, k.ExpiresAt, now)
	}
	return p, nil
}

// session checks a session token, and looks its workspace up once resume, called
// after the token's check (which may have waited for the issuer's keys), reports
// that the request may go on (else errAnswered).
func (a *authenticator) session(ctx context.Context, token string, resume func() bool) (Principal, error) {
	if a.jwt == nil {
		return Principal{}, &refusal{"invalid API key"}
	}
	s, err := a.jwt.Verify(ctx, token)
	expired := errors.Is(err, ErrTokenExpired)
	switch {
	case expired:
		// Said once the workspace is known to exist: a token naming none can never
		// work, and its client must not be told to refresh it.
	case errors.Is(err, ErrKeysUnavailable):
		return Principal{}, err
	case err != nil:
		a.log.DebugContext(ctx, "token refused", "err", err)
		return Principal{}, &refusal{"invalid session token"}
	}
	if !resume() {
		return Principal{}, errAnswered
	}
	ws, err := a.workspaces.Workspace(ctx, s.Workspace)
	if isNotFound(err) {
		return Principal{}, &refusal{"invalid session token"}
	}
	if err != nil {
		return Principal{}, err
	}
	if expired {
		return Principal{}, &refusal{"the session has expired"}
	}
	return Principal{Workspace: ws, Kind: KindUser, Subject: s.Subject, Scope: s.Scope, ExpiresAt: s.ExpiresAt}, nil
}

func isNotFound(err error) bool {
	var e *crm.Error
	return errors.As(err, &e) && e.Code == crm.CodeNotFound
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// unauthenticated answers 401 with the challenge of RFC 6750 section 3.1:
// error="invalid_token" when a bearer credential was presented (invalid, revoked or
// expired), no error attribute when there was none.
func unauthenticated(w http.ResponseWriter, msg string, presented bool) {
	challenge := `Bearer realm="segments"`
	if presented {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	WriteError(w, http.StatusUnauthorized, "UNAUTHENTICATED", msg)
}

// WriteError answers with a GraphQL-shaped error body, for refusals that happen before
// GraphQL execution.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	type extensions struct {
		Code string `json:"code"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{Message: msg, Extensions: extensions{Code: code}}}})
}
