package auth

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/logtest"
)

// TestJWKSRedirectRefused proves that the key set is fetched from the configured URL
// only: a redirect, which could lead to an attacker's key set (over plain http, to any
// host), is refused and logged, and no token signed with the attacker's key is
// accepted.
func TestJWKSRedirectRefused(t *testing.T) {
	keys := testRSAKeys()
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		w.Write(jwksBody("evil-1", &keys.attacker.PublicKey))
	}))
	defer evil.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/evil.json", http.StatusFound)
	}))
	defer redirector.Close()

	for name, client := range map[string]*http.Client{"default client": nil, "own client": {Timeout: 10 * time.Second}} {
		t.Run(name, func(t *testing.T) {
			evilHits.Store(0)
			var log logtest.Buffer
			v, err := NewJWTVerifier(JWTConfig{
				Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: redirector.URL + "/jwks.json",
				Client: client, Log: slog.New(slog.NewTextHandler(&log, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			tok := authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "evil-1", testClaims(time.Now(), nil))
			s, err := v.Verify(t.Context(), tok)
			if err == nil {
				t.Fatalf("the attacker's token was accepted: %+v", s)
			}
			if !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("error %v, want ErrKeysUnavailable", err)
			}
			if n := evilHits.Load(); n != 0 {
				t.Errorf("the redirect was followed: %d fetches of the attacker's key set", n)
			}
			if l := log.String(); !strings.Contains(l, "fetch the JWT issuer's keys") || !strings.Contains(l, "redirect") {
				t.Errorf("log %q, want the fetch's failure, for a redirect", l)
			}
			if client != nil && client.CheckRedirect != nil {
				t.Error("the configured client was changed")
			}
		})
	}
}

// TestJWKSFetchFailure proves that while the issuer's keys cannot be fetched, a token
// with a key ID the server does not know gets 503 with Retry-After (not 401, which
// would sign dashboard users out), however many arrive; that the fetch is tried again
// after a short backoff, not after the minimum refresh interval, so valid tokens work
// again seconds after the issuer recovers; and that the backoff grows so that tokens
// with made-up key IDs cannot make the server hammer an issuer that is down.
func TestJWKSFetchFailure(t *testing.T) {
	keys := testRSAKeys()
	iss := newTestIssuer(t)
	clock := &testClock{t: time.Now()}
	v, err := NewJWTVerifier(JWTConfig{
		Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: iss.url,
		JWKSMinRefresh: time.Minute, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	valid := func() string {
		return authtest.Sign(t, jwt.SigningMethodRS256, keys.issuer, "rsa-1", testClaims(clock.Now(), nil))
	}
	bogus := func(i int) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "bogus-"+strconv.Itoa(i), testClaims(clock.Now(), nil))
	}
	// unavailable sends tok and expects 503, and hits fetches in all unless hits < 0.
	unavailable := func(step string, tok string, hits int64) {
		t.Helper()
		w := send("Bearer " + tok)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, body %s; want 503", step, w.Code, w.Body)
		}
		if code, _ := errorOf(t, w); code != "SERVICE_UNAVAILABLE" {
			t.Errorf("%s: code %s", step, code)
		}
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Errorf("%s: Retry-After %q, want 1 to 60 seconds", step, w.Header().Get("Retry-After"))
		}
		if n := iss.hits.Load(); hits >= 0 && n != hits {
			t.Errorf("%s: %d fetches in all, want %d", step, n, hits)
		}
	}

	iss.fail.Store(true)
	unavailable("issuer down", valid(), 1)
	unavailable("issuer down, again at once", valid(), 1)
	for i := range 20 {
		unavailable("issuer down, made-up kid", bogus(i), 1)
	}

	iss.fail.Store(false)
	clock.Advance(2 * time.Second)
	if w := send("Bearer " + valid()); w.Code != http.StatusOK || w.Header().Get("X-Workspace") != "7" {
		t.Fatalf("issuer back, seconds later: status %d, body %s", w.Code, w.Body)
	}
	if n := iss.hits.Load(); n != 2 {
		t.Errorf("issuer back: %d fetches in all, want 2", n)
	}
	// Healthy again: a made-up kid on a token signed before the fetch is unknown
	// (401); on one signed since, it may be a new key's, and the set may not be
	// fetched again yet (503, until it may); the minimum refresh holds.
	for i := range 5 {
		old := authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "bogus-"+strconv.Itoa(100+i), testClaims(clock.Now().Add(-time.Minute), nil))
		if w := send("Bearer " + old); w.Code != http.StatusUnauthorized {
			t.Errorf("made-up kid, signed before the fetch, issuer healthy: status %d", w.Code)
		}
		unavailable("made-up kid, signed since the fetch, issuer healthy", bogus(200+i), 2)
	}
	if n := iss.hits.Load(); n != 2 {
		t.Errorf("made-up kids within the minimum refresh: %d fetches in all, want 2", n)
	}

	// A long outage with made-up kids every 100 ms for 5 minutes: a few quick retries,
	// then one per backoff, never more than 10 s apart.
	clock.Advance(time.Minute + time.Second)
	iss.fail.Store(true)
	before := iss.hits.Load()
	var made [10]string
	for i := range made {
		made[i] = bogus(1000 + i)
	}
	for i := range 3000 {
		unavailable("long outage", made[i%len(made)], -1)
		clock.Advance(100 * time.Millisecond)
	}
	if n := iss.hits.Load() - before; n < 30 || n > 40 {
		t.Errorf("5 minutes of made-up kids against an issuer that is down: %d fetches, want 30 to 40", n)
	}
	iss.fail.Store(false)
	clock.Advance(10 * time.Second)
	if w := send("Bearer " + valid()); w.Code != http.StatusOK {
		t.Errorf("issuer back after a long outage: status %d", w.Code)
	}
}

// TestJWKSNotFetchedForRefusedClaims proves that a token refused for its claims
// (another audience or issuer, no workspace, long expired and issued after its exp)
// never makes the server fetch the issuer's keys, whatever its key ID: only a token
// that would be accepted, but for its key, is worth asking the issuer for.
func TestJWKSNotFetchedForRefusedClaims(t *testing.T) {
	keys := testRSAKeys()
	iss := newTestIssuer(t)
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: iss.url})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, changes := range []map[string]any{
		{"aud": "another-api"},
		{"iss": "https://evil.example/"},
		{"workspace": nil},
		{"sub": 42},
		{"exp": now.Add(-time.Hour).Unix()},
		{"exp": 1e20},
		{"nbf": 1e19},
	} {
		tok := authtest.Sign(t, jwt.SigningMethodRS256, keys.attacker, "new-"+strconv.Itoa(i), testClaims(now, changes))
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%v: %v, want ErrInvalidToken", changes, err)
		}
	}
	// A claim named twice, the last of them valid.
	claims, err := json.Marshal(testClaims(now, nil))
	if err != nil {
		t.Fatal(err)
	}
	twice := `{"workspace":"W_Ag",` + string(claims[1:])
	if _, err := v.Verify(t.Context(), authtest.SignJSON(t, jwt.SigningMethodRS256, keys.attacker, "new-twice", twice)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a claim twice: %v, want ErrInvalidToken", err)
	}
	if n := iss.hits.Load(); n != 0 {
		t.Errorf("%d fetches of the key set, want none", n)
	}
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodRS256, keys.issuer, "rsa-1", testClaims(now, nil))); err != nil || iss.hits.Load() != 1 {
		t.Errorf("valid token: %v, %d fetches", err, iss.hits.Load())
	}
}

// offsetClock is the real clock plus an offset the test moves: a fetch that hangs
// lasts its real timeout, and the backoff after it is counted in real time too.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// hangingIssuer serves its key set once, then accepts every fetch and never answers:
// the worst way for an issuer to be down, each fetch lasting its whole timeout. It
// counts the fetches, and the most that hung at once.
type hangingIssuer struct {
	url                       string
	hits, hanging, mostAtOnce atomic.Int64
}

func newHangingIssuer(t *testing.T, body []byte) *hangingIssuer {
	t.Helper()
	iss := &hangingIssuer{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if iss.hits.Add(1) == 1 {
			w.Write(body)
			return
		}
		n := iss.hanging.Add(1)
		defer iss.hanging.Add(-1)
		for m := iss.mostAtOnce.Load(); n > m && !iss.mostAtOnce.CompareAndSwap(m, n); m = iss.mostAtOnce.Load() {
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // first, so that Close need not wait for a fetch's timeout
	iss.url = srv.URL + "/jwks.json"
	return iss
}

// TestJWKSStaleKeysServeWhileIssuerHangs proves that a token whose key is cached never
// waits for a fetch of the key set: once the set is older than jwksMaxAge and the
// issuer hangs, each such token is checked with the cached key at once, while one
// refresh at a time runs in the background, its failure logged; and that a token
// whose key is not cached, which must wait for the fetch, waits no longer than its
// request (503, not 401). The issuer hung every fetch for its 5 s timeout, and
// session requests queued behind the refresh for up to 20 s.
func TestJWKSStaleKeysServeWhileIssuerHangs(t *testing.T) {
	keys := testRSAKeys()
	iss := newHangingIssuer(t, jwksBody("rsa-1", &keys.issuer.PublicKey))
	clock := &offsetClock{}
	var log logtest.Buffer
	v, err := NewJWTVerifier(JWTConfig{
		Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: iss.url, Now: clock.Now, Log: log.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(kid string, key *rsa.PrivateKey) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, key, kid, testClaims(clock.Now(), nil))
	}
	if _, err := v.Verify(t.Context(), sign("rsa-1", keys.issuer)); err != nil {
		t.Fatal(err)
	}
	// The issuer hangs from now on; an hour later the cached set is stale.
	clock.Advance(jwksMaxAge + time.Second)

	// A key the server does not know: the request waits for the fetch it starts, until
	// its deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	start := time.Now()
	_, err = v.Verify(ctx, sign("rsa-2", keys.attacker))
	cancel()
	if d := time.Since(start); d > time.Second {
		t.Errorf("a token whose key is not cached waited %v, past its request's deadline of 200 ms", d.Round(time.Millisecond))
	}
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unknown key, deadline passed while the issuer hangs: %v, want ErrKeysUnavailable for the deadline", err)
	}

	// A dashboard's traffic, with the cached key: a request every 20 ms for 7 s, through
	// the hung fetch (5 s), the backoff after its failure (1 s) and the next fetch.
	var (
		mu     sync.Mutex
		slow   []time.Duration
		n      int
		most   time.Duration
		failed []error
		wg     sync.WaitGroup
	)
	for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		tok := sign("rsa-1", keys.issuer)
		wg.Go(func() {
			start := time.Now()
			_, err := v.Verify(t.Context(), tok)
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			n++
			most = max(most, d)
			if d > 100*time.Millisecond {
				slow = append(slow, d.Round(time.Millisecond))
			}
			if err != nil {
				failed = append(failed, err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d tokens whose key is cached, the slowest checked in %v; %d fetches in all", n, most, iss.hits.Load())
	if len(slow) > 0 || len(failed) > 0 {
		t.Errorf("of %d tokens whose key is cached, %d took over 100 ms (%v), %d failed (%v)", n, len(slow), slow[:min(len(slow), 5)], len(failed), failed[:min(len(failed), 3)])
	}
	// One fetch at a time: the one the unknown key started, and after its failure and
	// the backoff one more, not one per request.
	if got := iss.mostAtOnce.Load(); got != 1 {
		t.Errorf("%d fetches hung at once, want 1", got)
	}
	if got := iss.hits.Load(); got != 3 {
		t.Errorf("%d fetches in all, want 3: the first, the hung one and one after the backoff", got)
	}
	if !strings.Contains(log.String(), "fetch the JWT issuer's keys") {
		t.Errorf("the failed fetch was not logged: %q", log.String())
	}
}

// TestJWKSBackoffCountsFromFailureEnd proves that the backoff after a failed fetch is
// counted from the failure, not from the start of the attempt: a fetch that hung for
// its whole timeout is not followed at once by another (it was, the 1, 2 and 4 s
// backoffs being shorter than the 5 s timeout).
func TestJWKSBackoffCountsFromFailureEnd(t *testing.T) {
	keys := testRSAKeys()
	body := jwksBody("rsa-1", &keys.issuer.PublicKey)
	clock := &testClock{t: time.Now()}
	var hits atomic.Int64
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if fail.Load() {
			clock.Advance(jwksFetchTimeout) // a fetch that fails once its timeout is over
			http.Error(w, "down", http.StatusGatewayTimeout)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: srv.URL + "/jwks.json", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(kid string, key *rsa.PrivateKey) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, key, kid, testClaims(clock.Now(), nil))
	}
	if _, err := v.Verify(t.Context(), sign("rsa-1", keys.issuer)); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	clock.Advance(DefaultJWKSMinRefresh + time.Second)
	for _, step := range []struct {
		name      string
		advance   time.Duration
		hits      int64
		wantRetry time.Duration
	}{
		{"unknown key, the issuer down", 0, 2, jwksRetryFirst},
		{"right after the failure", 0, 2, jwksRetryFirst},
		{"the backoff over", jwksRetryFirst, 3, 2 * jwksRetryFirst},
		{"half the next backoff", jwksRetryFirst, 3, jwksRetryFirst},
		{"the next backoff over", jwksRetryFirst, 4, 4 * jwksRetryFirst},
	} {
		clock.Advance(step.advance)
		_, err := v.Verify(t.Context(), sign("rsa-2", keys.attacker))
		var unavailable *keysUnavailableError
		if !errors.As(err, &unavailable) {
			t.Fatalf("%s: %v, want ErrKeysUnavailable", step.name, err)
		}
		if got := hits.Load(); got != step.hits {
			t.Errorf("%s: %d fetches in all, want %d", step.name, got, step.hits)
		}
		if unavailable.retryAfter != step.wantRetry {
			t.Errorf("%s: retry after %v, want %v", step.name, unavailable.retryAfter, step.wantRetry)
		}
	}
}

// TestJWKSRotationWithinInterval proves that a key the issuer adds after the set was
// fetched is not refused for good while the set may not be fetched again: a token
// signed with it gets 503 with Retry-After, until the interval's end (it got 401,
// which signs a dashboard user out, for up to the minute after each rotation), and
// works after it; while a kid missing from a set fetched after the token was signed
// is refused at once, without a fetch.
func TestJWKSRotationWithinInterval(t *testing.T) {
	keys := testRSAKeys()
	var body atomic.Value
	body.Store(jwksBody("rsa-1", &keys.issuer.PublicKey))
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	clock := &testClock{t: time.Now()}
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: srv.URL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	sign := func(kid string, key *rsa.PrivateKey, iat time.Time) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, key, kid, testClaims(iat, nil))
	}
	if w := send("Bearer " + sign("rsa-1", keys.issuer, clock.Now())); w.Code != http.StatusOK {
		t.Fatalf("first token: %d %s", w.Code, w.Body)
	}
	clock.Advance(10 * time.Second)
	// The issuer rotates to rsa-2 and signs a token with it at once.
	body.Store(jwksBody("rsa-2", &keys.attacker.PublicKey))
	w := send("Bearer " + sign("rsa-2", keys.attacker, clock.Now()))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("a new key within the interval: %d %s, want 503", w.Code, w.Body)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra != 50 {
		t.Errorf("a new key within the interval: Retry-After %q, want 50 (when the set may be fetched again)", w.Header().Get("Retry-After"))
	}
	// A kid the set lacks on a token signed before the set was fetched (give or
	// take the clock skew allowed) can never work.
	if w := send("Bearer " + sign("rsa-3", keys.attacker, clock.Now().Add(-time.Minute))); w.Code != http.StatusUnauthorized {
		t.Errorf("an unknown kid, signed before the fetch: %d %s, want 401", w.Code, w.Body)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	clock.Advance(50 * time.Second)
	if w := send("Bearer " + sign("rsa-2", keys.attacker, clock.Now().Add(-time.Minute))); w.Code != http.StatusOK {
		t.Errorf("the new key after the interval: %d %s", w.Code, w.Body)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// TestJWKSWaitersYieldTheirPlace proves that a request waiting for the issuer's keys
// gives its place up (WithYield's yield) while it waits, takes it back (resume) only
// to go on, and is answered without it when refused; and that at most jwksMaxWaiters
// requests wait for one fetch, the rest getting 503 with Retry-After at once.
func TestJWKSWaitersYieldTheirPlace(t *testing.T) {
	keys := testRSAKeys()
	var body atomic.Value
	body.Store(jwksBody("rsa-1", &keys.issuer.PublicKey))
	hold := make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) > 1 {
			<-hold
		}
		w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	clock := &offsetClock{}
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: srv.URL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var yields, resumes atomic.Int64
	h := Require(sessionTable{}, slog.New(slog.NewTextHandler(io.Discard, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		WithJWT(v), WithYield(func(context.Context) { yields.Add(1) }, func(http.ResponseWriter, context.Context) bool {
			resumes.Add(1)
			return true
		}))
	send := func(tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	sign := func(kid string, key *rsa.PrivateKey) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, key, kid, testClaims(clock.Now(), nil))
	}
	// The first token waits for the first fetch (which does not hang).
	if w := send(sign("rsa-1", keys.issuer)); w.Code != http.StatusOK || yields.Load() != 1 || resumes.Load() != 1 {
		t.Fatalf("the first token: %d, %d yields, %d resumes; want 200 after one wait", w.Code, yields.Load(), resumes.Load())
	}
	yields.Store(0)
	resumes.Store(0)
	if w := send(sign("rsa-1", keys.issuer)); w.Code != http.StatusOK || yields.Load() != 0 || resumes.Load() != 0 {
		t.Fatalf("a cached key: %d, %d yields, %d resumes; want 200 without waiting", w.Code, yields.Load(), resumes.Load())
	}
	clock.Advance(DefaultJWKSMinRefresh + time.Second)
	body.Store(jwksBody("rsa-2", &keys.attacker.PublicKey))

	// A new key's token starts the fetch, which hangs, and waits for it.
	newKey := make(chan *httptest.ResponseRecorder, 1)
	tok := sign("rsa-2", keys.attacker)
	go func() { newKey <- send(tok) }()
	waitFor := func(what string, n int64, c *atomic.Int64) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); c.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: %d, want %d", what, c.Load(), n)
			}
		}
	}
	waitFor("yields of the new key's token", 1, &yields)
	// Made-up kids join it, up to the bound; the rest are answered at once.
	const forged = jwksMaxWaiters + 5
	answers := make(chan *httptest.ResponseRecorder, forged)
	for i := range forged {
		tok := sign("made-up-"+strconv.Itoa(i), keys.attacker)
		go func() { answers <- send(tok) }()
	}
	for range forged - (jwksMaxWaiters - 1) {
		w := <-answers
		if ra := w.Header().Get("Retry-After"); w.Code != http.StatusServiceUnavailable || ra != "1" {
			t.Errorf("a made-up kid past the bound of waiters: %d, Retry-After %q; want 503 with Retry-After 1", w.Code, ra)
		}
	}
	waitFor("requests waiting", jwksMaxWaiters, &yields)
	if n := yields.Load(); n != jwksMaxWaiters {
		t.Errorf("%d requests waited for the fetch, want %d", n, jwksMaxWaiters)
	}
	close(hold)
	if w := <-newKey; w.Code != http.StatusOK {
		t.Errorf("the new key's token after the fetch: %d %s", w.Code, w.Body)
	}
	for range jwksMaxWaiters - 1 {
		if w := <-answers; w.Code == http.StatusOK {
			t.Errorf("a made-up kid was let in")
		}
	}
	if n := resumes.Load(); n != 1 {
		t.Errorf("%d requests took their place back, want 1: the new key's token alone goes on", n)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}
