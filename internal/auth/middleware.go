package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/segments/segments/internal/crm"
)

// Workspaces finds the workspace an API key belongs to.
type Workspaces interface {
	// WorkspaceByKey returns a *crm.Error with CodeNotFound for an unknown or revoked
	// key.
	WorkspaceByKey(ctx context.Context, keyHash []byte) (crm.Workspace, error)
}

type workspaceKey struct{}

// WithWorkspace returns a context acting for ws.
func WithWorkspace(ctx context.Context, ws crm.Workspace) context.Context {
	return context.WithValue(ctx, workspaceKey{}, ws)
}

// WorkspaceFrom returns the workspace the request acts for.
func WorkspaceFrom(ctx context.Context) (crm.Workspace, bool) {
	ws, ok := ctx.Value(workspaceKey{}).(crm.Workspace)
	return ws, ok
}

// Require lets a request through only with a valid API key in
// "Authorization: Bearer <key>", and puts the key's workspace in its context. Any other
// request gets 401 with a GraphQL error whose extensions.code is UNAUTHENTICATED.
func Require(workspaces Workspaces, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			unauthenticated(w, "missing API key: send it as \"Authorization: Bearer <key>\"")
			return
		}
		key, err := ParseKey(token)
		if err != nil {
			unauthenticated(w, "invalid API key")
			return
		}
		ws, err := workspaces.WorkspaceByKey(r.Context(), key.Hash())
		var notFound *crm.Error
		switch {
		case errors.As(err, &notFound) && notFound.Code == crm.CodeNotFound:
			unauthenticated(w, "invalid API key")
			return
		case err != nil:
			log.ErrorContext(r.Context(), "authenticate", "err", err)
			WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the service is unavailable, try again shortly")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithWorkspace(r.Context(), ws)))
	})
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func unauthenticated(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="segments"`)
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
