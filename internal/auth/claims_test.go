package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth/authtest"
	"github.com/segments/segments/internal/globalid"
)

// The messages of the two 401s of sessions.
const (
	msgInvalid = "invalid session token"
	msgExpired = "the session has expired"
)

// sessionCase is an HS256 token with changes to testClaims (nil deletes a claim), and
// the message of its 401, or "" when it must be accepted.
type sessionCase struct {
	changes []map[string]any
	want    string
}

// checkSessions sends each case's token through Require with an HS256 verifier;
// change, if any, adjusts its configuration.
func checkSessions(t *testing.T, now time.Time, cases map[string]sessionCase, change ...func(*JWTConfig)) {
	t.Helper()
	cfg := JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, HS256Secret: testSecret}
	for _, c := range change {
		c(&cfg)
	}
	v, err := NewJWTVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	for name, tc := range cases {
		c := testClaims(now, nil)
		for _, ch := range tc.changes {
			for k, v := range ch {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
		}
		w := send("Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", c))
		if tc.want == "" {
			if w.Code != http.StatusOK {
				t.Errorf("%s: status %d, body %s", name, w.Code, w.Body)
			}
			continue
		}
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, w.Code)
			continue
		}
		if _, msg := errorOf(t, w); msg != tc.want {
			t.Errorf("%s: %q, want %q", name, msg, tc.want)
		}
	}
}

// TestSessionSubIsString proves that a token whose sub is not a string (RFC 7519
// section 4.1.2: a StringOrURI) is refused, rather than accepted without its sub,
// which would put its user in the workspace's bucket of sessions without one.
func TestSessionSubIsString(t *testing.T) {
	checkSessions(t, time.Now(), map[string]sessionCase{
		"sub a string":  {nil, ""},
		"without sub":   {[]map[string]any{{"sub": nil}}, ""},
		"sub a number":  {[]map[string]any{{"sub": 42}}, msgInvalid},
		"sub an array":  {[]map[string]any{{"sub": []string{"a"}}}, msgInvalid},
		"sub an object": {[]map[string]any{{"sub": map[string]any{"id": "a"}}}, msgInvalid},
		"sub true":      {[]map[string]any{{"sub": true}}, msgInvalid},
	})
}

// TestSessionExpiredOnlyIfValid proves that a token is said to have expired only when
// it would have been accepted before its exp: one that can never work (another
// audience or issuer, a workspace claim that is missing, malformed or names no
// workspace, times that contradict each other) is invalid, expired or not, so that its
// client is not told to refresh it.
func TestSessionExpiredOnlyIfValid(t *testing.T) {
	now := time.Now()
	expired := map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}
	with := func(m map[string]any) []map[string]any { return []map[string]any{expired, m} }
	checkSessions(t, now, map[string]sessionCase{
		"expired":                          {with(nil), msgExpired},
		"expired, with nbf":                {with(map[string]any{"nbf": now.Add(-2 * time.Hour).Unix()}), msgExpired},
		"expired, wrong audience":          {with(map[string]any{"aud": "another-api"}), msgInvalid},
		"expired, without audience":        {with(map[string]any{"aud": nil}), msgInvalid},
		"expired, wrong issuer":            {with(map[string]any{"iss": "https://evil.example/"}), msgInvalid},
		"expired, no workspace":            {with(map[string]any{"workspace": nil}), msgInvalid},
		"expired, workspace malformed":     {with(map[string]any{"workspace": "W_AQ=="}), msgInvalid},
		"expired, workspace not found":     {with(map[string]any{"workspace": globalid.Encode(globalid.Workspace, 1<<40)}), msgInvalid},
		"expired, sub a number":            {with(map[string]any{"sub": 42}), msgInvalid},
		"expired, never valid (nbf)":       {with(map[string]any{"nbf": now.Unix()}), msgInvalid},
		"expired, issued after its exp":    {with(map[string]any{"iat": now.Unix()}), msgInvalid},
		"exp not a number":                 {[]map[string]any{{"exp": "yesterday"}}, msgInvalid},
		"workspace not found, not expired": {[]map[string]any{{"workspace": globalid.Encode(globalid.Workspace, 1<<40)}}, msgInvalid},
	})

	// Nor is a forged token told that it expired: the signature comes first.
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	c := testClaims(now, expired)
	if _, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", c)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("expired and forged: %v, want ErrInvalidToken", err)
	}
	if s, err := v.Verify(t.Context(), authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", c)); !errors.Is(err, ErrTokenExpired) || s.Workspace != testWS {
		t.Errorf("expired: %+v, %v; want the session and ErrTokenExpired", s, err)
	}
}

// TestSessionDuplicateClaims proves that a token whose claims name a member twice is
// refused (RFC 7519 section 4 allows either refusing it or reading the last one):
// encoding/json keeps the last, a gateway or audit tool may keep the first, and the
// two would disagree on the workspace, the issuer or the expiry of one token. Names
// are compared as decoded, escapes and all. The claims must be valid UTF-8 too (RFC
// 7519 section 7.2), which encoding/json does not check.
func TestSessionDuplicateClaims(t *testing.T) {
	now := time.Now()
	claims, err := json.Marshal(testClaims(now, nil))
	if err != nil {
		t.Fatal(err)
	}
	// with puts members before and after the valid claims, so that encoding/json
	// (last wins) reads the valid ones.
	with := func(before, after string) string {
		return "{" + before + string(claims[1:len(claims)-1]) + after + "}"
	}
	ws := globalid.Encode(globalid.Workspace, testWS)
	other := globalid.Encode(globalid.Workspace, 2)
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIssuer, Audience: []string{testAudience}, HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	send := sessionServer(t, v)
	for _, tc := range []struct{ name, claims, want string }{
		{"valid", with("", ""), ""},
		{"with spaces", "  " + with(" ", ` , "x" : 1 `) + "\n", ""},
		{"a nested object", with("", `,"ctx":{"a":1,"b":[{"c":2}]}`), ""},
		{"workspace twice, the last valid", with(`"workspace":"`+other+`",`, ""), msgInvalid},
		{"workspace twice, the same", with("", `,"workspace":"`+ws+`"`), msgInvalid},
		{"workspace twice, through an escape", with(`"\u0077orkspace":"`+other+`",`, ""), msgInvalid},
		{"iss twice", with(`"iss":"https://evil.example/",`, ""), msgInvalid},
		{"aud twice", with(`"aud":"another-api",`, ""), msgInvalid},
		{"exp twice", with(`"exp":1,`, ""), msgInvalid},
		{"sub twice", with(`"sub":"admin",`, ""), msgInvalid},
		{"an unknown claim twice", with("", `,"x":1,"x":2`), msgInvalid},
		// encoding/json matches a struct's fields without case: a Go service reading
		// the claims into a struct takes the last of these.
		{"workspace twice, in another case", with("", `,"Workspace":"`+other+`"`), msgInvalid},
		{"iss twice, in capitals", with("", `,"ISS":"https://evil.example/"`), msgInvalid},
		{"sub twice, with a long s", with("", `,"ſub":"admin"`), msgInvalid},
		{"an unknown claim twice, with a Kelvin sign", with("", ",\"k\":1,\"\u212a\":2"), msgInvalid},
		{"names alike but for an accent are each once", with("", `,"note":1,"noté":2`), ""},
		{"invalid UTF-8", with("", ",\"name\":\"\xff\""), msgInvalid},
		{"trailing data", with("", "") + "{}", msgInvalid},
		{"an array", "[" + with("", "") + "]", msgInvalid},
	} {
		w := send("Bearer " + authtest.SignJSON(t, jwt.SigningMethodHS256, testSecret, "", tc.claims))
		switch {
		case tc.want == "" && w.Code != http.StatusOK:
			t.Errorf("%s: status %d, body %s", tc.name, w.Code, w.Body)
		case tc.want == "":
		case w.Code != http.StatusUnauthorized:
			t.Errorf("%s: status %d (workspace %s), want 401", tc.name, w.Code, w.Header().Get("X-Workspace"))
		default:
			if _, msg := errorOf(t, w); msg != tc.want {
				t.Errorf("%s: %q, want %q", tc.name, msg, tc.want)
			}
		}
	}
}

// TestSessionTimesInRange proves that exp, nbf and iat must be numbers from 1970 to
// the end of 9999. The JWT library converts them to int64 seconds unchecked, and a
// larger one wraps: nbf or iat 1e19 read as 1677 let a token in before its time, and
// exp 1e20 read as long past told a client that a token which can never work had
// expired, as though a new one would.
func TestSessionTimesInRange(t *testing.T) {
	now := time.Now()
	bad := func(name string, v any) []map[string]any { return []map[string]any{{name: v}} }
	// Without iat, which the library would find after a wrapped exp.
	exp := func(v any) []map[string]any { return []map[string]any{{"exp": v, "iat": nil}} }
	cases := map[string]sessionCase{
		"exp with a fraction":           {exp(float64(now.Unix()) + 300.5), ""},
		"exp in 10000":                  {exp(253402300800), msgInvalid},
		"exp 1e20":                      {exp(1e20), msgInvalid},
		"exp 1e300":                     {exp(1e300), msgInvalid},
		"exp 9300000000000000000":       {exp(uint64(9300000000000000000)), msgInvalid},
		"exp before 1970":               {exp(-1), msgInvalid},
		"exp -1e300":                    {exp(-1e300), msgInvalid},
		"nbf 1e19":                      {bad("nbf", 1e19), msgInvalid},
		"nbf 1e300":                     {bad("nbf", 1e300), msgInvalid},
		"nbf before 1970":               {bad("nbf", -1), msgInvalid},
		"iat 1e19":                      {bad("iat", 1e19), msgInvalid},
		"iat before 1970":               {bad("iat", -1e300), msgInvalid},
		"exp a string":                  {exp("9999999999"), msgInvalid},
		"nbf a string":                  {bad("nbf", "0"), msgInvalid},
		"iat a string":                  {bad("iat", "0"), msgInvalid},
		"iat true":                      {bad("iat", true), msgInvalid},
		"nbf an array":                  {bad("nbf", []int64{now.Unix()}), msgInvalid},
		"expired, nbf 1e19":             {[]map[string]any{{"exp": now.Add(-time.Hour).Unix(), "iat": nil, "nbf": 1e19}}, msgInvalid},
		"nbf and iat a minute ago":      {[]map[string]any{{"nbf": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix()}}, ""},
		"nbf after the end of 9999":     {bad("nbf", 253402300800), msgInvalid},
		"iat at the end of 9999 (late)": {bad("iat", 253402300799), msgInvalid},
	}
	checkSessions(t, now, cases)
	// The last date allowed, with no bound on the lifetime (TestSessionMaxLifetime).
	checkSessions(t, now, map[string]sessionCase{"exp at the end of 9999": {exp(253402300799), ""}},
		func(c *JWTConfig) { c.MaxLifetime = -1 })
}

// TestSessionSubControlCharacters proves that a token whose sub holds a control
// character is invalid: a NUL in it made the statement that charges the user's
// rate-limit bucket fail, and the rate limiter, failing open, served the user's
// requests unthrottled (15 of 15 served where 4 were allowed).
func TestSessionSubControlCharacters(t *testing.T) {
	sub := func(s string) []map[string]any { return []map[string]any{{"sub": s}} }
	checkSessions(t, time.Now(), map[string]sessionCase{
		"sub of an identity provider": {sub("auth0|5f7c8ec7c33c6c004bbafe82"), ""},
		"sub a URI":                   {sub("https://login.example.com/users/42"), ""},
		"sub with letters and spaces": {sub("Zoë Ñúñez 42"), ""},
		"sub with NUL":                {sub("user-42\x00"), msgInvalid},
		"sub NUL alone":               {sub("\x00"), msgInvalid},
		"sub with a line break":       {sub("user-42\nworkspace:1/key:7"), msgInvalid},
		"sub with a tab":              {sub("user\t42"), msgInvalid},
		"sub with an escape":          {sub("user-42\x1b[31m"), msgInvalid},
		"sub with DEL":                {sub("user-42\x7f"), msgInvalid},
		"sub with a C1 control":       {sub("user-42\u0085"), msgInvalid},
	})
}

// TestSessionMaxLifetime proves that a token valid for longer than the verifier's
// maximum lifetime (DefaultMaxLifetime, a day, unless set) is invalid, not expired:
// from its iat to its exp, or without an iat from now, give or take the clock skew.
// Sessions cannot be revoked, and a token with an exp in 9999 and no iat worked.
func TestSessionMaxLifetime(t *testing.T) {
	now := time.Now()
	times := func(iat, exp any) []map[string]any { return []map[string]any{{"iat": iat, "exp": exp}} }
	day := DefaultMaxLifetime
	checkSessions(t, now, map[string]sessionCase{
		"an hour":                                  {times(now.Unix(), now.Add(time.Hour).Unix()), ""},
		"a day from its iat":                       {times(now.Add(-time.Hour).Unix(), now.Add(day-time.Hour).Unix()), ""},
		"a day and a second from its iat":          {times(now.Add(-time.Hour).Unix(), now.Add(day-time.Hour+time.Second).Unix()), msgInvalid},
		"a year":                                   {times(now.Unix(), now.AddDate(1, 0, 0).Unix()), msgInvalid},
		"exp in 9999, without iat":                 {times(nil, 253402300799), msgInvalid},
		"without iat, a day from now":              {times(nil, now.Add(day).Unix()), ""},
		"without iat, a day and the skew from now": {times(nil, now.Add(day+ClockSkew).Unix()), ""},
		"without iat, a day and a minute from now": {times(nil, now.Add(day+time.Minute).Unix()), msgInvalid},
		"iat long ago, exp in a day":               {times(now.AddDate(-1, 0, 0).Unix(), now.Add(day).Unix()), msgInvalid},
		// Invalid, not expired: a new token of the same lifetime would not work.
		"expired, a year long":  {times(now.AddDate(-1, 0, 0).Unix(), now.Add(-time.Hour).Unix()), msgInvalid},
		"expired, an hour long": {times(now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()), msgExpired},
	})
	checkSessions(t, now, map[string]sessionCase{
		"an hour, the bound a minute": {times(now.Unix(), now.Add(time.Hour).Unix()), msgInvalid},
		"a minute":                    {times(now.Unix(), now.Add(time.Minute).Unix()), ""},
	}, func(c *JWTConfig) { c.MaxLifetime = time.Minute })
	checkSessions(t, now, map[string]sessionCase{
		"a year, no bound": {times(now.Unix(), now.AddDate(1, 0, 0).Unix()), ""},
	}, func(c *JWTConfig) { c.MaxLifetime = -1 })
}
