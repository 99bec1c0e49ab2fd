package auth

import (
	"context"
	"time"

	"github.com/segments/segments/internal/crm"
)

// Kind says what sort of credential authenticated a request.
type Kind string

// The kinds of principal.
const (
	// KindAPIKey is a partner's API key ("seg_...").
	KindAPIKey Kind = "api_key"
	// KindUser is a dashboard user, with a JWT from the configured issuer.
	KindUser Kind = "user"
)

// A Principal is who a request acts as: the workspace, the credential, and what it may
// do there.
type Principal struct {
	Workspace crm.Workspace
	Kind      Kind
	// KeyID is the API key's ID (KindAPIKey), the one the CLI shows.
	KeyID int64
	// KeyName is the API key's name (KindAPIKey); may be empty.
	KeyName string
	// Subject is the token's "sub" claim (KindUser); may be empty.
	Subject string
	// ExpiresAt is when the credential stops working: the API key's expiry, or the
	// token's exp (the token works up to ClockSkew past it); zero when never. Read
	// with the credential, as authentication did: Query.viewer shows it without
	// asking the database. A key cached by WithKeyCache keeps the expiry it had when
	// cached, so a rotation's shows within the cache's ttl.
	ExpiresAt time.Time
	// Scope is what the principal may do: crm.ScopeRead allows queries only.
	Scope crm.Scope
}

// CanWrite reports whether the principal may run mutations.
func (p Principal) CanWrite() bool { return p.Scope.CanWrite() }

type principalKey struct{}

// WithPrincipal returns a context acting as p (and for p's workspace, so that
// WorkspaceFrom answers too).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(WithWorkspace(ctx, p.Workspace), principalKey{}, p)
}

// PrincipalFrom returns who the request acts as. A context made with WithWorkspace
// alone has no principal: it may act for the workspace, but not write (see
// graph's authorization).
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
