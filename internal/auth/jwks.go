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
	// errKeysUnavailable: the token's key is not known and the issuer's keys could
	// not be fetched (the last fetch failed, or the request ended while it waited for
	// one), so the token could not be checked. The error returned is a
	// *keysUnavailableError, which says when to try again.
	errKeysUnavailable = errors.New("auth: the issuer's keys could not be fetched")
)

// keysUnavailableError is errKeysUnavailable with the time until the key set may be
// fetched again: the Retry-After of the 503 that the request gets.
type keysUnavailableError struct {
	retryAfter time.Duration
	// cause is why the request stopped waiting for the fetch (its context's cause),
	// or nil when the fetch failed.
	cause error
}

func (e *keysUnavailableError) Error() string {
	if e.cause != nil {
		return errKeysUnavailable.Error() + ": the request ended while waiting for them: " + e.cause.Error()
	}
	return errKeysUnavailable.Error()
}

func (e *keysUnavailableError) Unwrap() []error {
	if e.cause != nil {
		return []error{errKeysUnavailable, e.cause}
	}
	return []error{errKeysUnavailable}
}

const (
	// maxJWKSBytes caps the size of a key set document.
	maxJWKSBytes = 1 << 20
	// jwksFetchTimeout bounds one fetch of the key set.
	jwksFetchTimeout = 5 * time.Second
	// jwksMaxAge is how long a fetched key set serves before the next token that uses
	// it starts a refresh in the background (so that a key the issuer withdrew stops
	// working); a failed refresh keeps the old keys.
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
// and waits for the fetch (until its request ends), but the set is fetched at most
// once per minRefresh after a fetch that succeeded, however many such tokens arrive:
// a flood of made-up key IDs costs the issuer one request per interval. After a fetch
// that failed the next may come sooner, after a backoff of jwksRetryFirst doubling to
// jwksRetryMax, counted from the failure; meanwhile a token whose key is not cached
// cannot be checked (errKeysUnavailable: 503 with Retry-After, not 401, which would
// sign a dashboard user out). A token whose key is cached never waits for a fetch:
// once the set is older than jwksMaxAge, it is checked with the cached key and starts
// a refresh in the background, under the same limits. One fetch runs at a time; the
// tokens that need it share it.
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

	// fetchMu guards fetching, closed when the fetch running ends (nil when none
	// runs); lastFetch, when the last attempt ended, successful or not; and failures,
	// the failed attempts since the last success. It is never held during a fetch, so
	// that no request queues behind an issuer that is slow to answer.
	fetchMu   sync.Mutex
	fetching  chan struct{}
	lastFetch time.Time
	failures  int
}

type publicKey struct {
	alg string // the JWK's "alg", or "" when it names none
	key crypto.PublicKey
}

// key returns the key with the ID kid for a token signed with alg (RS256, ES256). A
// key in the cache is returned at once, even from a stale set; only a kid the cache
// does not hold waits for a fetch, and only until ctx ends.
func (s *jwks) key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	if kid == "" {
		return nil, errUnknownKey
	}
	if k, ok, fresh := s.lookup(kid); ok {
		if !fresh {
			// Checked with the cached key at once, while the set is refreshed in the
			// background: waiting for the refresh made every session request queue,
			// holding its place in the server's admission, for as long as the issuer
			// took (its 5 s timeout, again and again while it hung). However old the
			// set grows while the issuer cannot be reached, its keys stay in use, as
			// the README promises: refusing them would sign every dashboard user out
			// for the issuer's outage, whereas a key the issuer withdraws stops
			// working with the first refresh that succeeds.
			s.fetchMu.Lock()
			s.startFetch()
			s.fetchMu.Unlock()
		}
		return k.check(alg)
	}
	s.fetchMu.Lock()
	done := s.startFetch()
	s.fetchMu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			// The fetch goes on for the requests that come next; one that comes a
			// second later finds its outcome or waits for it in turn.
			return nil, &keysUnavailableError{retryAfter: jwksRetryFirst, cause: context.Cause(ctx)}
		}
	}
	// Another fetch may have brought the key since the first lookup.
	if k, ok, _ := s.lookup(kid); ok {
		return k.check(alg)
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if s.failures > 0 {
		// The key may well exist: the issuer could not be asked.
		return nil, &keysUnavailableError{retryAfter: s.nextFetch().Sub(s.now())}
	}
	return nil, errUnknownKey
}

// startFetch returns the channel that the fetch running closes when it ends, after
// starting one if none runs and one may start now (see nextFetch); nil when none
// runs or may start. The caller holds fetchMu.
func (s *jwks) startFetch() chan struct{} {
	if s.fetching == nil && !s.now().Before(s.nextFetch()) {
		s.fetching = make(chan struct{})
		go s.fetch(s.fetching)
	}
	return s.fetching
}

// fetch refreshes the key set, records the outcome and closes done.
func (s *jwks) fetch(done chan struct{}) {
	err := s.refresh()
	s.fetchMu.Lock()
	// The end of the attempt, so that the backoff counts from a failure: counted from
	// the start, a fetch that hung for its 5 s timeout was followed at once by the
	// next, the first backoffs (1, 2, 4 s) being shorter.
	s.lastFetch = s.now()
	if err != nil {
		s.failures++
	} else {
		s.failures = 0
	}
	failures := s.failures
	s.fetching = nil
	s.fetchMu.Unlock()
	// Logged before the waiters go on, so that a request refused for the failure
	// finds it in the log.
	if err != nil {
		s.log.Warn("fetch the JWT issuer's keys", "url", s.url, "err", err, "failures", failures)
	}
	close(done)
}

// nextFetch is when a fetch of the set may next start: at once before the first
// fetch, minRefresh after a successful one, after the backoff after failures, both
// counted from the end of the last attempt. The caller holds fetchMu.
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
