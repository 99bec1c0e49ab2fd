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
	// working); a failed refresh keeps the old keys, for up to jwksMaxStale.
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
	// jwksMaxStale is how long the keys of the last fetch that succeeded stay in use
	// while later fetches fail: a day, so that an outage of the issuer's key set
	// signs nobody out, yet a key the issuer withdrew (compromised, say) stops working
	// within a day even if whoever holds it keeps the server from fetching the set.
	// Past it, tokens get 503, as tokens whose key is not cached do while the issuer
	// cannot be reached.
	jwksMaxStale = 24 * time.Hour
	// jwksMaxWaiters bounds the requests that wait for one fetch of the key set; the
	// rest get 503 with Retry-After at once. A waiting request gives its place among
	// the server's running requests up (WithYield), but holds its connection and
	// goroutine, and a flood of tokens with made-up key IDs would otherwise make any
	// number of them wait for an issuer that is slow to answer.
	jwksMaxWaiters = 16
)

// jwks is an issuer's JSON Web Key Set (RFC 7517), fetched from its URL and cached.
//
// A token whose key ID (kid) the cache holds is checked with that key at once, never
// waiting for a fetch: once the set is older than maxAge, the token starts a refresh
// in the background (so that a key the issuer withdrew stops working with the first
// refresh that succeeds), and while refreshes fail the cached keys stay in use for up
// to jwksMaxStale.
//
// A kid the cache does not hold is unknown for good (errUnknownKey: 401) only when
// the cached set was listed after the token was signed (its iat, or the time it
// arrived: signedBy): the issuer then published its keys without it. Otherwise the
// key may be new (the issuer rotated since the set was fetched), and the token needs
// a fetch: it waits for the one running, or starts one, until its request ends (at
// most jwksMaxWaiters tokens wait, giving their places among the server's running
// requests up meanwhile); when no fetch may start yet, or the fetch did not settle it,
// it gets errKeysUnavailable (503 with Retry-After: when the next fetch may start),
// not 401, which would sign a dashboard user out in the minute after a rotation.
//
// The set is fetched at most once per minRefresh after a fetch that succeeded,
// however many tokens with made-up key IDs arrive: they cost the issuer one request
// per interval. After a fetch that failed the next may come sooner, after a backoff
// of jwksRetryFirst doubling to jwksRetryMax, counted from the failure. One fetch
// runs at a time; the tokens that need it share it.
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
	// listedAt is when the fetch that brought keys started: the issuer listed them
	// after it, so a token signed before it with a kid not among them can never work.
	listedAt time.Time

	// fetchMu guards fetching, closed when the fetch running ends (nil when none
	// runs); lastFetch, when the last attempt ended, successful or not; failures,
	// the failed attempts since the last success; and waiters, the requests waiting
	// for the fetch running. It is never held during a fetch, so that no request
	// queues behind an issuer that is slow to answer.
	fetchMu   sync.Mutex
	fetching  chan struct{}
	lastFetch time.Time
	failures  int
	waiters   int
}

type publicKey struct {
	alg string // the JWK's "alg", or "" when it names none
	key crypto.PublicKey
}

// key returns the key with the ID kid for a token signed with alg (RS256, ES256) at
// signedBy at the latest. A key in the cache is returned at once, even from a stale
// set; only a kid the cache cannot tell about waits for a fetch, and only until ctx
// ends, having called waiting(ctx) first.
func (s *jwks) key(ctx context.Context, kid, alg string, signedBy time.Time) (crypto.PublicKey, error) {
	if kid == "" {
		return nil, errUnknownKey
	}
	switch k, state := s.lookup(kid, signedBy); state {
	case keyStale:
		// Checked with the cached key at once, while the set is refreshed in the
		// background: waiting for the refresh made every session request queue,
		// holding its place in the server's admission, for as long as the issuer
		// took (its 5 s timeout, again and again while it hung).
		s.fetchMu.Lock()
		s.startFetch()
		s.fetchMu.Unlock()
		return k.check(alg)
	case keyCached:
		return k.check(alg)
	case keyUnknown:
		return nil, errUnknownKey
	}
	s.fetchMu.Lock()
	done := s.startFetch()
	switch {
	case done == nil:
		// No fetch runs, and none may start yet: the last one was too recent.
		retry := s.nextFetch().Sub(s.now())
		s.fetchMu.Unlock()
		return nil, &keysUnavailableError{retryAfter: retry}
	case s.waiters >= jwksMaxWaiters:
		s.fetchMu.Unlock()
		return nil, &keysUnavailableError{retryAfter: jwksRetryFirst}
	}
	s.waiters++
	s.fetchMu.Unlock()
	waiting(ctx)
	select {
	case <-done:
		s.fetchMu.Lock()
		s.waiters--
		s.fetchMu.Unlock()
	case <-ctx.Done():
		s.fetchMu.Lock()
		s.waiters--
		s.fetchMu.Unlock()
		// The fetch goes on for the requests that come next; one that comes a
		// second later finds its outcome or waits for it in turn.
		return nil, &keysUnavailableError{retryAfter: jwksRetryFirst, cause: context.Cause(ctx)}
	}
	switch k, state := s.lookup(kid, signedBy); state {
	case keyCached, keyStale:
		return k.check(alg)
	case keyUnknown:
		return nil, errUnknownKey
	}
	// The fetch failed, or it started before the token was signed (this request
	// joined it) and did not bring the key: the key may well exist.
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	return nil, &keysUnavailableError{retryAfter: s.nextFetch().Sub(s.now())}
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

// keyState is what the cache tells of a kid.
type keyState int

const (
	// keyMissing: the cache cannot tell (no set, one listed before the token was
	// signed that lacks the kid, or one too old to be used): a fetch must.
	keyMissing keyState = iota
	// keyUnknown: the set was listed after the token was signed, without the kid.
	keyUnknown
	// keyCached: in a set younger than maxAge.
	keyCached
	// keyStale: in a set older than maxAge, which a refresh should replace, but
	// younger than jwksMaxStale.
	keyStale
)

// lookup returns the cached key kid, and what the cache tells of it for a token
// signed at signedBy at the latest.
func (s *jwks) lookup(kid string, signedBy time.Time) (publicKey, keyState) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.loadedAt.IsZero() {
		return publicKey{}, keyMissing
	}
	age := s.now().Sub(s.loadedAt)
	k, ok := s.keys[kid]
	switch {
	case ok && age < s.maxAge:
		return k, keyCached
	case ok && age < max(s.maxAge, jwksMaxStale):
		return k, keyStale
	case !ok && s.listedAt.After(signedBy):
		return publicKey{}, keyUnknown
	}
	return publicKey{}, keyMissing
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
	start := s.now()
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
	s.keys, s.loadedAt, s.listedAt = keys, s.now(), start
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
