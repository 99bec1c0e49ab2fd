package auth

import (
	"sync"
	"time"
)

// WithKeyCache makes Require remember each API key it accepted for ttl (0 or less:
// no cache), so that a busy key costs one database lookup per ttl rather than one per
// request. The price is that a change to a key the cache holds shows only when its
// entry ends: a revoked key keeps working up to ttl after the revocation, and a
// rotated key up to ttl past its grace period (a zero grace included), since the
// rotation sets an expiry the entry, made before, does not know. An expiry the key
// already had when it was cached is kept: the entry ends with it. Only accepted keys
// are kept, so a key created a moment ago works at once.
func WithKeyCache(ttl time.Duration) Option {
	return func(a *authenticator) {
		if ttl > 0 {
			a.keys = &keyCache{ttl: ttl, max: maxCachedKeys, entries: map[string]cachedKey{}}
		}
	}
}

// maxCachedKeys bounds the cache: past it, expired entries are dropped, and if that
// frees nothing the whole cache is, so memory stays bounded whatever the traffic.
const maxCachedKeys = 10_000

type keyCache struct {
	ttl     time.Duration
	max     int
	mu      sync.Mutex
	entries map[string]cachedKey // by key hash
}

type cachedKey struct {
	p     Principal
	until time.Time
}

// get returns the principal of a key hash accepted less than ttl ago.
func (c *keyCache) get(hash []byte, now time.Time) (Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[string(hash)] // no allocation: the compiler reuses hash's bytes
	if !ok {
		return Principal{}, false
	}
	if !now.Before(e.until) {
		delete(c.entries, string(hash))
		return Principal{}, false
	}
	return e.p, true
}

// put remembers an accepted key until ttl from now, or its expiry if sooner.
func (c *keyCache) put(hash []byte, p Principal, expires *time.Time, now time.Time) {
	until := now.Add(c.ttl)
	if expires != nil && expires.Before(until) {
		until = *expires
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[string(hash)] = cachedKey{p: p, until: until}
}
