package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// Errors of the key set.
var (
	// errUnknownKey: the token names no key the issuer publishes (or no key at all).
	errUnknownKey = errors.New("auth: unknown signing key")
	// errKeysUnavailable: the token's key is not known and the last fetch of the
	// issuer's keys failed, so the token could not be checked. The error returned is a
	// *keysUnavailableError, which says when to try again.
	errKeysUnavailable = errors.New("auth: the issuer's keys could not be fetched")
)

// keysUnavailableError is errKeysUnavailable with the time until the key set may be
// fetched again: the Retry-After of the 503 that the request gets.
type keysUnavailableError struct{ retryAfter time.Duration }

func (e *keysUnavailableError) Error() string { return errKeysUnavailable.Error() }
func (e *keysUnavailableError) Unwrap() error { return errKeysUnavailable }

const (
	// maxJWKSBytes caps the size of a key set document.
	maxJWKSBytes = 1 << 20
	// jwksFetchTimeout bounds one fetch of the key set.
	jwksFetchTimeout = 5 * time.Second
	// jwksMaxAge is how long a fetched key set serves before the next token that uses
	// it refreshes it (so that a key the issuer withdrew stops working); a failed
	// refresh keeps the old keys.
	jwksMaxAge = time.Hour
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
	// jwksRetryFirst and jwksRetryMax bound the wait after a failed fetch: it doubles
	// from the first with each failure in a row, up to the max (and never beyond the
	// minimum refresh). Short, so that sessions work again seconds after the issuer
	// recovers; growing and capped, so that tokens with made-up key IDs make the
	// server ask an issuer that is down at most once per jwksRetryMax.
	jwksRetryFirst = time.Second
	jwksRetryMax   = 10 * time.Second
)

// jwks is an issuer's JSON Web Key Set (RFC 7517), fetched from its URL and cached.
// A token with a key ID (kid) the cache does not know makes it fetch the set again,
// but at most once per minRefresh after a fetch that succeeded, however many such
// tokens arrive: a flood of made-up key IDs costs the issuer one request per
// interval. After a fetch that failed the next may come sooner, after a backoff of
// jwksRetryFirst doubling to jwksRetryMax; meanwhile a token whose key is not cached
// cannot be checked (errKeysUnavailable: 503 with Retry-After, not 401, which would
// sign a dashboard user out). The set is also fetched again, under the same limits,
// once it is older than jwksMaxAge.
type jwks struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu       sync.RWMutex
	keys     map[string]publicKey // by kid
	loadedAt time.Time            // of keys; zero before the first successful fetch

	// fetchMu serializes refreshes, and guards lastFetch, the time of the last
	// attempt, successful or not, and failures, the failed attempts since the last
	// success.
	fetchMu   sync.Mutex
	lastFetch time.Time
	failures  int
}

type publicKey struct {
	alg string // the JWK's "alg", or "" when it names none
	key crypto.PublicKey
}

// key returns the key with the ID kid for a token signed with alg (RS256, ES256).
func (s *jwks) key(_ context.Context, kid, alg string) (crypto.PublicKey, error) {
	if kid == "" {
		return nil, errUnknownKey
	}
	if k, ok, fresh := s.lookup(kid); ok && fresh {
		return k.check(alg)
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another request may have refreshed the set while this one waited.
	k, ok, fresh := s.lookup(kid)
	if ok && fresh {
		return k.check(alg)
	}
	now := s.now()
	if !now.Before(s.nextFetch()) {
		s.lastFetch = now
		if err := s.refresh(); err != nil {
			s.failures++
			s.log.Warn("fetch the JWT issuer's keys", "url", s.url, "err", err, "failures", s.failures)
		} else {
			s.failures = 0
		}
		k, ok, _ = s.lookup(kid)
	}
	switch {
	case ok: // possibly stale, when the refresh failed or had to wait
		return k.check(alg)
	case s.failures > 0:
		// The key may well exist: the issuer could not be asked.
		return nil, &keysUnavailableError{retryAfter: s.nextFetch().Sub(now)}
	}
	return nil, errUnknownKey
}

// nextFetch is when a token may next make the set be fetched: at once before the
// first fetch, minRefresh after a successful one, after the backoff after failures.
// The caller holds fetchMu.
func (s *jwks) nextFetch() time.Time {
	if s.lastFetch.IsZero() {
		return time.Time{}
	}
	wait := s.minRefresh
	if s.failures > 0 {
		wait = min(jwksRetryFirst<<min(s.failures-1, 10), jwksRetryMax, s.minRefresh)
	}
	return s.lastFetch.Add(wait)
}

func (s *jwks) lookup(kid string) (k publicKey, ok, fresh bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok = s.keys[kid]
	return k, ok, s.now().Sub(s.loadedAt) < s.maxAge
}

// check returns the key if it suits a token signed with alg.
func (k publicKey) check(alg string) (crypto.PublicKey, error) {
	if k.alg != "" && k.alg != alg {
		return nil, fmt.Errorf("%w: the key is for %s, the token says %s", errUnknownKey, k.alg, alg)
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		if alg == "RS256" {
			return key, nil
		}
	case *ecdsa.PublicKey:
		if alg == "ES256" && key.Curve == elliptic.P256() {
			return key, nil
		}
	}
	return nil, fmt.Errorf("%w: the key does not suit %s", errUnknownKey, alg)
}

// refresh fetches the key set and, when it holds at least one usable key, replaces
// the cached one.
func (s *jwks) refresh() error {
	// Not the request's context: one client going away must not waste the fetch
	// that the rate limit allows for everybody.
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	res, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys, s.loadedAt = keys, s.now()
	s.mu.Unlock()
	return nil
}

// jsonWebKey holds the members of a JWK (RFC 7517, 7518) this service reads.
type jsonWebKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the usable signature keys of a key set, by kid: RSA keys of at
// least 2048 bits and P-256 keys, with a kid, for signatures ("use" absent or "sig"),
// for RS256 or ES256 ("alg" absent or one of them). Other keys are skipped; a set
// without a usable key is an error.
func parseJWKS(body []byte) (map[string]publicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	keys := map[string]publicKey{}
	dupes := map[string]bool{}
	for _, raw := range set.Keys {
		var jwk jsonWebKey
		if json.Unmarshal(raw, &jwk) != nil || jwk.Kid == "" || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		if _, dup := keys[jwk.Kid]; dup || dupes[jwk.Kid] {
			// Two keys with one ID: neither can be chosen safely.
			delete(keys, jwk.Kid)
			dupes[jwk.Kid] = true
			continue
		}
		var key crypto.PublicKey
		var err error
		switch {
		case jwk.Kty == "RSA" && (jwk.Alg == "" || jwk.Alg == "RS256"):
			key, err = rsaKey(jwk)
		case jwk.Kty == "EC" && (jwk.Alg == "" || jwk.Alg == "ES256"):
			key, err = ecKey(jwk)
		default:
			continue
		}
		if err != nil {
			continue
		}
		keys[jwk.Kid] = publicKey{alg: jwk.Alg, key: key}
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set holds no usable RS256 or ES256 key")
	}
	return keys, nil
}

func rsaKey(jwk jsonWebKey) (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.Strict().DecodeString(jwk.N)
	if err != nil {
		return nil, err
	}
	e, err := base64.RawURLEncoding.Strict().DecodeString(jwk.E)
	if err != nil {
		return nil, err
	}
	if len(e) == 0 || len(e) > 4 || len(n) == 0 || n[0] == 0 {
		return nil, errors.New("bad RSA key")
	}
	var exp int64
	for _, b := range e {
		exp = exp<<8 | int64(b)
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	if key.N.BitLen() < minRSABits || exp < 3 || exp%2 == 0 {
		return nil, errors.New("weak RSA key")
	}
	return key, nil
}

func ecKey(jwk jsonWebKey) (*ecdsa.PublicKey, error) {
	if jwk.Crv != "P-256" {
		return nil, errors.New("unsupported curve")
	}
	x, err := base64.RawURLEncoding.Strict().DecodeString(jwk.X)
	if err != nil {
		return nil, err
	}
	y, err := base64.RawURLEncoding.Strict().DecodeString(jwk.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, errors.New("bad P-256 coordinates")
	}
	// Checks that the point is on the curve.
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
}
