package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
)

// Defaults and limits of dashboard sessions.
const (
	// DefaultWorkspaceClaim is the claim that names a token's workspace.
	DefaultWorkspaceClaim = "workspace"
	// DefaultJWKSMinRefresh is the least time between two fetches of the issuer's keys
	// that tokens with unknown key IDs cause, after a fetch that succeeded (after one
	// that failed the wait is shorter: jwksRetryFirst to jwksRetryMax).
	DefaultJWKSMinRefresh = time.Minute
	// DefaultMaxLifetime is the longest a session token may be valid: from its iat (or
	// from the time it arrives, without one) to its exp. Sessions cannot be revoked
	// one by one, so a token must not outlive a working day; identity providers
	// issue dashboards tokens of an hour or so, refreshed as they go.
	DefaultMaxLifetime = 24 * time.Hour
	// ClockSkew is the leeway of the time claims: a token is accepted up to this long
	// after its exp, and from this long before its nbf and iat.
	ClockSkew = 30 * time.Second
	// maxNumericDate is the last second of year 9999, the latest exp, nbf or iat a
	// token may carry.
	maxNumericDate = 253402300799
	// minHS256Secret is the shortest shared secret: as long as the hash (RFC 7518
	// section 3.2).
	minHS256Secret = 32
)

// The signing algorithms a verifier can accept.
var jwtAlgorithms = []string{"RS256", "ES256", "HS256"}

// Errors of JWT verification, as the middleware tells them apart.
var (
	// ErrTokenExpired: the token would be valid but its exp passed (Verify returns
	// its session with the error, so that the caller can check the workspace before
	// saying so).
	ErrTokenExpired = errors.New("auth: the token has expired")
	// ErrInvalidToken: anything else wrong with a token.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrKeysUnavailable: the token could not be checked because the issuer's keys
	// could not be fetched (the last fetch failed); it is worth trying again shortly.
	ErrKeysUnavailable = errKeysUnavailable
)

// JWTConfig configures dashboard sessions: JWTs signed by one issuer, with RS256 or
// ES256 keys from its JWKS URL, or HS256 with a shared secret.
type JWTConfig struct {
	// Issuer is the required "iss". Sessions are off when Issuer, JWKSURL and
	// HS256Secret are all empty.
	Issuer string
	// Audience lists the accepted "aud" values: a token must name at least one.
	Audience []string
	// JWKSURL is where the issuer publishes its public keys (https, or http for
	// localhost); needed for RS256 and ES256.
	JWKSURL string
	// HS256Secret is the shared secret of HS256 tokens, at least 32 bytes.
	HS256Secret []byte
	// Algorithms are the accepted "alg" values: a subset of RS256, ES256 and HS256.
	// Empty means every algorithm the key sources allow (RS256 and ES256 with a JWKS
	// URL, HS256 with a secret).
	Algorithms []string
	// WorkspaceClaim names the claim that holds the workspace's global ID (W_...);
	// empty means DefaultWorkspaceClaim.
	WorkspaceClaim string
	// JWKSMinRefresh is the least time between two fetches of the key set after one
	// that succeeded (after a failure the next comes within seconds); 0 means
	// DefaultJWKSMinRefresh.
	JWKSMinRefresh time.Duration
	// MaxLifetime is the longest a token may be valid: one whose exp is further than
	// this from its iat (without an iat, from now, give or take ClockSkew) is
	// invalid. 0 means DefaultMaxLifetime; a negative value sets no bound.
	MaxLifetime time.Duration
	// Client fetches the key set; nil means a client like http.DefaultClient (each
	// fetch has its own 5 s timeout). Redirects are never followed, whatever the
	// client's CheckRedirect.
	Client *http.Client
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
	// Log receives failures to fetch the key set; nil discards them.
	Log *slog.Logger
}

// Enabled reports whether the configuration asks for dashboard sessions at all: any
// of its settings does, so that an audience or algorithms set without an issuer are
// refused as incomplete rather than ignored with sessions off.
func (c JWTConfig) Enabled() bool {
	return c.Issuer != "" || c.JWKSURL != "" || len(c.HS256Secret) > 0 || len(c.Audience) > 0 ||
		len(c.Algorithms) > 0 || c.WorkspaceClaim != "" && c.WorkspaceClaim != DefaultWorkspaceClaim
}

// JWTVerifier checks dashboard session tokens. It is safe for concurrent use.
type JWTVerifier struct {
	parser         *jwt.Parser        // the signature and algorithm
	claimOpts      []jwt.ParserOption // what the claims must be, but for the clock
	validator      *jwt.Validator     // the claims, at the verifier's clock
	algorithms     []string
	secret         []byte
	keys           *jwks
	workspaceClaim string
	maxLifetime    time.Duration // negative: no bound
	now            func() time.Time
}

// NewJWTVerifier checks cfg and returns its verifier, or nil when cfg does not enable
// sessions.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if cfg.Issuer == "" {
		return nil, errors.New("JWT sessions need an issuer")
	}
	if len(cfg.Audience) == 0 || slices.Contains(cfg.Audience, "") {
		return nil, errors.New("JWT sessions need an audience")
	}
	if cfg.JWKSURL == "" && len(cfg.HS256Secret) == 0 {
		return nil, errors.New("JWT sessions need a JWKS URL or an HS256 secret")
	}
	if len(cfg.HS256Secret) > 0 && len(cfg.HS256Secret) < minHS256Secret {
		return nil, fmt.Errorf("the HS256 secret must be at least %d bytes", minHS256Secret)
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
			return nil, fmt.Errorf("the JWKS URL %q must be an https URL (http only on localhost)", cfg.JWKSURL)
		}
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		if cfg.JWKSURL != "" {
			algs = append(algs, "RS256", "ES256")
		}
		if len(cfg.HS256Secret) > 0 {
			algs = append(algs, "HS256")
		}
	}
	for _, a := range algs {
		switch {
		case !slices.Contains(jwtAlgorithms, a):
			return nil, fmt.Errorf("unsupported JWT algorithm %q: use RS256, ES256 or HS256", a)
		case a == "HS256" && len(cfg.HS256Secret) == 0:
			return nil, errors.New("the HS256 algorithm needs an HS256 secret")
		case a != "HS256" && cfg.JWKSURL == "":
			return nil, fmt.Errorf("the %s algorithm needs a JWKS URL", a)
		}
	}
	if cfg.WorkspaceClaim == "" {
		cfg.WorkspaceClaim = DefaultWorkspaceClaim
	}
	if cfg.JWKSMinRefresh <= 0 {
		cfg.JWKSMinRefresh = DefaultJWKSMinRefresh
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	// A copy of the client, so that the caller's keeps its own redirect policy.
	client := http.Client{}
	if cfg.Client != nil {
		client = *cfg.Client
	}
	client.CheckRedirect = refuseRedirect
	cfg.Client = &client
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	claimOpts := []jwt.ParserOption{
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(ClockSkew),
	}
	v := &JWTVerifier{
		// The claims are checked by checkClaims, before the key is looked for.
		parser:         jwt.NewParser(jwt.WithValidMethods(algs), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation()),
		claimOpts:      claimOpts,
		validator:      jwt.NewValidator(append(slices.Clip(claimOpts), jwt.WithTimeFunc(cfg.Now))...),
		algorithms:     algs,
		secret:         cfg.HS256Secret,
		workspaceClaim: cfg.WorkspaceClaim,
		maxLifetime:    cfg.MaxLifetime,
		now:            cfg.Now,
	}
	if cfg.JWKSURL != "" {
		v.keys = &jwks{
			url: cfg.JWKSURL, client: cfg.Client, minRefresh: cfg.JWKSMinRefresh,
			maxAge: max(jwksMaxAge, cfg.JWKSMinRefresh), now: cfg.Now, log: cfg.Log,
		}
	}
	return v, nil
}

// refuseRedirect is the redirect policy of the key set's fetches: none is followed.
// The rule "https; http only on localhost" is checked on the configured URL, and a
// redirect could lead anywhere (to plain http, to another host) and so hand the
// choice of keys, and with it every workspace, to whoever controls the redirect or
// the network. The configured URL must be where the keys are.
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("redirected to %s: redirects are not followed, set the JWKS URL to where the keys are", req.URL.Redacted())
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Session is what a verified token says.
type Session struct {
	// Workspace is the ID of the workspace the token names (not yet looked up).
	Workspace int64
	// Subject is the token's "sub" (a string: a token with another sub is refused),
	// possibly empty.
	Subject string
	// Scope is crm.ScopeReadWrite when the token's "scope" claim lists read_write,
	// crm.ScopeRead otherwise.
	Scope crm.Scope
	// ExpiresAt is the token's "exp" (which every token carries).
	ExpiresAt time.Time
}

// Verify checks a token: its shape first (no cryptography for a malformed one), then
// its algorithm, its claims (issuer, audience, times, workspace, sub), and last its
// signature, so that a token that would be refused anyway neither makes the server
// fetch the issuer's keys nor costs a signature check. Errors: ErrTokenExpired (with
// the session: the token is valid in every other way, so that a new one would
// work), ErrKeysUnavailable, or ErrInvalidToken for anything else (wrapping the
// cause). ctx is the request's: a token whose key must be fetched waits for the
// fetch only until ctx ends.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Session, error) {
	h, err := preparseJWT(token)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if !slices.Contains(v.algorithms, h.Alg) {
		return Session{}, fmt.Errorf("%w: algorithm %q not accepted", ErrInvalidToken, h.Alg)
	}
	claims := jwt.MapClaims{}
	var s Session
	var expired bool
	// The parser decodes the claims before it asks for the key.
	_, err = v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		var err error
		if s, expired, err = v.checkClaims(claims); err != nil {
			return nil, err
		}
		return v.keyFunc(ctx, t, v.signedBy(claims))
	})
	var unavailable *keysUnavailableError
	switch {
	case errors.As(err, &unavailable):
		return Session{}, unavailable
	case err != nil:
		return Session{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	case expired:
		return s, ErrTokenExpired
	}
	return s, nil
}

// checkClaims checks a token's claims, all but its signature: iss, aud, the times,
// the workspace claim and sub. A token whose exp passed is checked again as of its
// exp, and reported expired only if it would have been accepted then; otherwise
// (another audience, an nbf after its exp...) it is invalid, since a client told
// that its session expired would refresh a token that can never work.
func (v *JWTVerifier) checkClaims(claims jwt.MapClaims) (s Session, expired bool, err error) {
	if err := checkNumericDates(claims); err != nil {
		return Session{}, false, err
	}
	err = v.validator.Validate(claims)
	if errors.Is(err, jwt.ErrTokenExpired) {
		exp, _ := claims.GetExpirationTime() // a number: it was compared
		if exp == nil {
			return Session{}, false, err
		}
		expired = true
		at := jwt.WithTimeFunc(func() time.Time { return exp.Time })
		err = jwt.NewValidator(append(slices.Clip(v.claimOpts), at)...).Validate(claims)
	}
	if err != nil {
		return Session{}, false, err
	}
	gid, ok := claims[v.workspaceClaim].(string)
	if !ok {
		return Session{}, false, fmt.Errorf("no %q claim", v.workspaceClaim)
	}
	ws, err := globalid.DecodeAs(globalid.Workspace, gid)
	if err != nil {
		return Session{}, false, fmt.Errorf("claim %q is not a workspace ID", v.workspaceClaim)
	}
	if err := v.checkLifetime(claims); err != nil {
		return Session{}, false, err
	}
	s = Session{Workspace: ws, Scope: tokenScope(claims["scope"])}
	if exp, _ := claims.GetExpirationTime(); exp != nil { // required: Validate saw it
		s.ExpiresAt = exp.Time
	}
	if sub, present := claims["sub"]; present {
		// A StringOrURI (RFC 7519 section 4.1.2). Dropping any other would put the
		// user among the workspace's sessions without a sub, in their rate limit.
		if s.Subject, ok = sub.(string); !ok {
			return Session{}, false, errors.New(`claim "sub" is not a string`)
		}
		// The sub names the user's rate-limit bucket, and shows in logs: a NUL
		// in it made the bucket's statement fail, and the rate limiter, failing
		// open, let the user's requests through unthrottled. No identity provider
		// puts control characters in a user's ID.
		if i := strings.IndexFunc(s.Subject, unicode.IsControl); i >= 0 {
			return Session{}, false, fmt.Errorf(`claim "sub" holds the control character %U`, []rune(s.Subject[i:])[0])
		}
	}
	return s, expired, nil
}

// checkLifetime refuses a token valid for longer than the verifier's maxLifetime:
// from its iat to its exp, or, without an iat, from now (give or take ClockSkew, the
// issuer's clock being ahead) to its exp. A session cannot be revoked, so a stolen
// token with an exp years away would work for years.
func (v *JWTVerifier) checkLifetime(claims jwt.MapClaims) error {
	if v.maxLifetime < 0 {
		return nil
	}
	exp, _ := claims.GetExpirationTime() // required, and a number (Validate)
	iat, _ := claims.GetIssuedAt()
	if exp == nil {
		return nil
	}
	if iat != nil {
		if exp.Sub(iat.Time) > v.maxLifetime {
			return fmt.Errorf("the token is valid for %v from its iat, longer than the %v allowed", exp.Sub(iat.Time), v.maxLifetime)
		}
		return nil
	}
	if left := exp.Sub(v.now()); left > v.maxLifetime+ClockSkew {
		return fmt.Errorf("the token, without an iat, is valid for %v more, longer than the %v allowed", left.Round(time.Second), v.maxLifetime)
	}
	return nil
}

// signedBy is when the token was signed at the latest: its iat (give or take
// ClockSkew, the issuer's clock being behind), or now, if sooner. A key set listed
// after it holds the token's key if the token can work (jwks.key).
func (v *JWTVerifier) signedBy(claims jwt.MapClaims) time.Time {
	now := v.now()
	if iat, _ := claims.GetIssuedAt(); iat != nil {
		if t := iat.Add(ClockSkew); t.Before(now) {
			return t
		}
	}
	return now
}

// checkNumericDates refuses an exp, nbf or iat that is not a number of seconds from
// 1970 to the end of 9999. The JWT library converts them to int64 unchecked, and a
// larger one wraps around: nbf 1e19 reads as 1677, letting a token in before its
// time, and exp 1e20 as long past, so that a token that can never work is said to
// have expired. No issuer dates a token before 1970.
func checkNumericDates(claims jwt.MapClaims) error {
	for _, name := range []string{"exp", "nbf", "iat"} {
		v, present := claims[name]
		if !present {
			continue
		}
		// encoding/json decodes every JSON number to a finite float64.
		if f, ok := v.(float64); !ok || f < 0 || f > maxNumericDate {
			return fmt.Errorf("claim %q is not a date from 1970 to 9999", name)
		}
	}
	return nil
}

// keyFunc returns the key that must have signed the token: the shared secret for
// HS256 (never a public key: no algorithm confusion), the issuer's key with the
// token's kid for RS256 and ES256.
func (v *JWTVerifier) keyFunc(ctx context.Context, t *jwt.Token, signedBy time.Time) (any, error) {
	switch alg := t.Method.Alg(); alg {
	case "HS256":
		if len(v.secret) == 0 {
			return nil, errUnknownKey
		}
		return v.secret, nil
	case "RS256", "ES256":
		if v.keys == nil {
			return nil, errUnknownKey
		}
		kid, _ := t.Header["kid"].(string)
		return v.keys.key(ctx, kid, alg, signedBy)
	}
	return nil, errUnknownKey
}

// tokenScope reads the OAuth "scope" claim (RFC 8693: space-separated; an array of
// strings is accepted too). Only read_write in it allows writing.
func tokenScope(claim any) crm.Scope {
	var scopes []string
	switch c := claim.(type) {
	case string:
		scopes = strings.Fields(c)
	case []any:
		for _, s := range c {
			if s, ok := s.(string); ok {
				scopes = append(scopes, s)
			}
		}
	}
	if slices.Contains(scopes, string(crm.ScopeReadWrite)) {
		return crm.ScopeReadWrite
	}
	return crm.ScopeRead
}
