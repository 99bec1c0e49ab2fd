package crm

import "time"

// Scope is what a credential may do in its workspace. The values are part of the
// public interface: the CLI shows and takes them, and dashboard tokens carry them in
// their scope claim.
type Scope string

// The scopes. A workspace's first key is ScopeReadWrite.
const (
	ScopeRead      Scope = "read"       // queries only
	ScopeReadWrite Scope = "read_write" // queries and mutations
)

// ParseScope returns the scope named s, or false.
func ParseScope(s string) (Scope, bool) {
	switch Scope(s) {
	case ScopeRead, ScopeReadWrite:
		return Scope(s), true
	}
	return "", false
}

// CanWrite reports whether the scope allows mutations.
func (s Scope) CanWrite() bool { return s == ScopeReadWrite }

// An APIKey is what a workspace knows of one of its partner API keys: never the key
// itself, which is shown once when it is made.
type APIKey struct {
	WorkspaceID int64
	// ID is unique among all keys: the CLI names a key by it.
	ID int64
	// Name is a label for people ("Shopify sync"); may be empty.
	Name string
	// Prefix is the start of the key, enough to recognise it in a list or a log.
	Prefix string
	Scope  Scope
	// ExpiresAt, when set, is when the key stops working.
	ExpiresAt *time.Time
	// LastUsedAt is when the key last authenticated a request, to within a minute.
	LastUsedAt *time.Time
	// RevokedAt, when set, is when the key was revoked: it no longer works (a server
	// that cached it, see auth.WithKeyCache, accepts it up to its cache's ttl more).
	RevokedAt *time.Time
	// ReplacedBy is the key that a rotation made to replace this one, or 0.
	ReplacedBy int64
	CreatedAt  time.Time
}

// Active reports whether the key works at now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}
