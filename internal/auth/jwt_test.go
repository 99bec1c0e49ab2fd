package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
)

func TestNewJWTVerifierRefusesBadSettings(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	const jwks = "https://issuer.example/.well-known/jwks.json"
	ok := JWTConfig{Issuer: "https://issuer.example/", Audience: []string{"segments"}, JWKSURL: jwks}
	bad := map[string]func(c *JWTConfig){
		"no issuer":                     func(c *JWTConfig) { c.Issuer = "" },
		"no audience":                   func(c *JWTConfig) { c.Audience = nil },
		"empty audience":                func(c *JWTConfig) { c.Audience = []string{""} },
		"no key source":                 func(c *JWTConfig) { c.JWKSURL = "" },
		"short secret":                  func(c *JWTConfig) { c.JWKSURL, c.HS256Secret = "", secret[:31] },
		"JWKS over http":                func(c *JWTConfig) { c.JWKSURL = "http://issuer.example/jwks" },
		"JWKS URL without host":         func(c *JWTConfig) { c.JWKSURL = "https:///jwks" },
		"alg none":                      func(c *JWTConfig) { c.Algorithms = []string{"none"} },
		"unsupported alg":               func(c *JWTConfig) { c.Algorithms = []string{"RS512"} },
		"HS256 without a secret":        func(c *JWTConfig) { c.Algorithms = []string{"HS256"} },
		"RS256 without a JWKS URL":      func(c *JWTConfig) { c.JWKSURL, c.HS256Secret, c.Algorithms = "", secret, []string{"RS256"} },
		"ES256 without a JWKS URL, too": func(c *JWTConfig) { c.JWKSURL, c.HS256Secret, c.Algorithms = "", secret, []string{"HS256", "ES256"} },
	}
	for name, change := range bad {
		t.Run(name, func(t *testing.T) {
			c := ok
			change(&c)
			if v, err := NewJWTVerifier(c); err == nil {
				t.Errorf("accepted: %+v", v)
			}
		})
	}
	if v, err := NewJWTVerifier(JWTConfig{}); v != nil || err != nil {
		t.Errorf("empty settings: %v, %v; want sessions off", v, err)
	}
	if v, err := NewJWTVerifier(JWTConfig{WorkspaceClaim: DefaultWorkspaceClaim}); v != nil || err != nil {
		t.Errorf("the default workspace claim alone: %v, %v; want sessions off", v, err)
	}
	// A setting of sessions without the others is incomplete, not ignored.
	for name, c := range map[string]JWTConfig{
		"an audience alone":        {Audience: []string{"segments"}},
		"algorithms alone":         {Algorithms: []string{"RS256"}},
		"a workspace claim alone":  {WorkspaceClaim: "https://example.com/workspace"},
		"an audience and a secret": {Audience: []string{"segments"}, HS256Secret: secret},
	} {
		if v, err := NewJWTVerifier(c); err == nil {
			t.Errorf("%s: accepted (%v), want an error", name, v)
		}
	}
	for name, c := range map[string]JWTConfig{
		"JWKS":              ok,
		"secret":            {Issuer: "i", Audience: []string{"a"}, HS256Secret: secret},
		"both":              {Issuer: "i", Audience: []string{"a", "b"}, HS256Secret: secret, JWKSURL: jwks},
		"JWKS on localhost": {Issuer: "i", Audience: []string{"a"}, JWKSURL: "http://127.0.0.1:9/jwks"},
		"ES256 only":        {Issuer: "i", Audience: []string{"a"}, JWKSURL: jwks, Algorithms: []string{"ES256"}},
	} {
		if _, err := NewJWTVerifier(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	rsaJWK := func(kid string, k *rsa.PublicKey, extra map[string]any) map[string]any {
		m := map[string]any{"kty": "RSA", "kid": kid, "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
		for n, v := range extra {
			m[n] = v
		}
		return m
	}
	ecJWK := func(kid string, k *ecdsa.PublicKey, crv string, extra map[string]any) map[string]any {
		b, err := k.Bytes() // 0x04 || x || y
		if err != nil {
			t.Fatal(err)
		}
		n := (len(b) - 1) / 2
		x, y := b[1:1+n], b[1+n:]
		m := map[string]any{"kty": "EC", "kid": kid, "crv": crv, "x": enc(x), "y": enc(y)}
		for n, v := range extra {
			m[n] = v
		}
		return m
	}
	offCurve := ecJWK("off-curve", &ecKey.PublicKey, "P-256", nil)
	offCurve["y"] = enc(make([]byte, 32))
	set := map[string]any{"keys": []any{
		rsaJWK("rsa", &rsaKey.PublicKey, map[string]any{"use": "sig", "alg": "RS256"}),
		ecJWK("ec", &ecKey.PublicKey, "P-256", nil),
		rsaJWK("weak", &weak.PublicKey, nil),
		rsaJWK("enc", &rsaKey.PublicKey, map[string]any{"use": "enc"}),
		rsaJWK("rs512", &rsaKey.PublicKey, map[string]any{"alg": "RS512"}),
		rsaJWK("", &rsaKey.PublicKey, nil),
		ecJWK("p384", &p384.PublicKey, "P-384", nil),
		offCurve,
		map[string]any{"kty": "oct", "kid": "secret", "k": enc([]byte("0123456789abcdef0123456789abcdef"))},
		rsaJWK("twice", &rsaKey.PublicKey, nil),
		ecJWK("twice", &ecKey.PublicKey, "P-256", nil),
	}}
	body, _ := json.Marshal(set)
	keys, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("usable keys %v, want rsa and ec", keys)
	}
	if k, ok := keys["rsa"]; !ok || !k.key.(*rsa.PublicKey).Equal(&rsaKey.PublicKey) {
		t.Errorf("rsa: %+v", k)
	}
	if k, ok := keys["ec"]; !ok || !k.key.(*ecdsa.PublicKey).Equal(&ecKey.PublicKey) {
		t.Errorf("ec: %+v", k)
	}
	// A key serves only its own algorithm: no algorithm confusion through the set.
	if _, err := keys["rsa"].check("ES256"); err == nil {
		t.Error("RSA key used for ES256")
	}
	if _, err := keys["ec"].check("RS256"); err == nil {
		t.Error("EC key used for RS256")
	}
	for _, body := range []string{`{}`, `{"keys":[]}`, `not json`, `{"keys":[{"kty":"oct","kid":"a","k":"AAAA"}]}`} {
		if _, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

func TestTokenScope(t *testing.T) {
	for claim, want := range map[any]crm.Scope{
		nil:                     crm.ScopeRead,
		"":                      crm.ScopeRead,
		"read":                  crm.ScopeRead,
		"openid read_writer":    crm.ScopeRead,
		"openid read_write":     crm.ScopeReadWrite,
		"read_write":            crm.ScopeReadWrite,
		"READ_WRITE":            crm.ScopeRead,
		42.0:                    crm.ScopeRead,
		true:                    crm.ScopeRead,
		"write read,read_write": crm.ScopeRead,
	} {
		if got := tokenScope(claim); got != want {
			t.Errorf("scope %v: %s, want %s", claim, got, want)
		}
	}
	if got := tokenScope([]any{"openid", "read_write"}); got != crm.ScopeReadWrite {
		t.Errorf("array: %s", got)
	}
	if got := tokenScope([]any{"openid", 1.0}); got != crm.ScopeRead {
		t.Errorf("array without it: %s", got)
	}
}
