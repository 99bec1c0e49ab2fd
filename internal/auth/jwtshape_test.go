package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// tok builds a token from a header and claims in JSON, with a dummy signature.
func tok(header, claims string) string {
	return b64(header) + "." + b64(claims) + "." + b64("signature")
}

func TestPreparseJWT(t *testing.T) {
	const claims = `{"iss":"https://issuer.example","workspace":"W_AQ"}`
	refused := []struct{ name, token string }{
		{"empty", ""},
		{"an API key", validKey("abcdefghijklmnopqrstuvwxyz0123")},
		{"two segments", b64(`{"alg":"RS256"}`) + "." + b64(claims)},
		{"four segments", tok(`{"alg":"RS256"}`, claims) + "." + b64("x")},
		{"empty signature (alg none)", b64(`{"alg":"none"}`) + "." + b64(claims) + "."},
		{"empty header", "." + b64(claims) + "." + b64("s")},
		{"padding", b64(`{"alg":"RS256"}`) + "=." + b64(claims) + "." + b64("s")},
		{"standard base64 alphabet", base64.RawStdEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"??>"}`)) + "." + b64(claims) + "." + b64("s")},
		{"non-canonical base64", b64(`{"alg":"RS256"}`)[:len(b64(`{"alg":"RS256"}`))-1] + "f." + b64(claims) + "." + b64("s")},
		{"spaces", tok(`{"alg":"RS256"}`, claims) + " "},
		{"line break inside a segment (the base64 decoder skips it)", b64(`{"alg":"RS256"}`)[:4] + "\r\n" + b64(`{"alg":"RS256"}`)[4:] + "." + b64(claims) + "." + b64("s")},
		{"too long", tok(`{"alg":"RS256"}`, `{"x":"`+strings.Repeat("a", MaxTokenBytes)+`"}`)},
		{"header not JSON", tok(`alg=RS256`, claims)},
		{"header an array", tok(`["alg","RS256"]`, claims)},
		{"header with trailing data", tok(`{"alg":"RS256"}{}`, claims)},
		{"header with trailing garbage", tok(`{"alg":"RS256"} x`, claims)},
		{"header without alg", tok(`{"kid":"k1"}`, claims)},
		{"empty alg", tok(`{"alg":""}`, claims)},
		{"alg not a string", tok(`{"alg":256}`, claims)},
		{"kid null", tok(`{"alg":"RS256","kid":null}`, claims)},
		{"nested value", tok(`{"alg":"RS256","kid":{"a":1}}`, claims)},
		{"duplicate alg", tok(`{"alg":"HS256","alg":"RS256"}`, claims)},
		{"duplicate alg through an escape", tok(`{"alg":"HS256","\u0061lg":"RS256"}`, claims)},
		{"jku", tok(`{"alg":"RS256","jku":"https://evil.example/jwks"}`, claims)},
		{"embedded jwk", tok(`{"alg":"RS256","jwk":"x"}`, claims)},
		{"x5u", tok(`{"alg":"RS256","x5u":"https://evil.example/cert"}`, claims)},
		{"crit", tok(`{"alg":"RS256","crit":"exp"}`, claims)},
		{"cty (nested JWT)", tok(`{"alg":"RS256","cty":"JWT"}`, claims)},
		{"unknown parameter", tok(`{"alg":"RS256","zip":"DEF"}`, claims)},
		{"upper-case ALG", tok(`{"ALG":"RS256"}`, claims)},
		{"typ of another kind", tok(`{"alg":"RS256","typ":"JWE"}`, claims)},
		{"invalid UTF-8", b64("{\"alg\":\"RS256\",\"kid\":\"\xff\"}") + "." + b64(claims) + "." + b64("s")},
		{"claims not an object", tok(`{"alg":"RS256"}`, `["a"]`)},
		{"claims not JSON", tok(`{"alg":"RS256"}`, `hello`)},
		{"claims with trailing data", tok(`{"alg":"RS256"}`, claims+`{}`)},
		{"claims cut short", tok(`{"alg":"RS256"}`, claims[:len(claims)-1])},
		{"a claim twice", tok(`{"alg":"RS256"}`, `{"workspace":"W_Ag","workspace":"W_AQ"}`)},
		{"a claim twice through an escape", tok(`{"alg":"RS256"}`, `{"iss":"evil","\u0069ss":"https://issuer.example"}`)},
		{"an unknown claim twice", tok(`{"alg":"RS256"}`, `{"x":{"a":1},"x":[]}`)},
		{"claims in invalid UTF-8", tok(`{"alg":"RS256"}`, "{\"name\":\"\xff\"}")},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := preparseJWT(tc.token); err == nil {
				t.Errorf("accepted, header %+v", h)
			}
		})
	}

	accepted := []struct {
		name, token string
		want        jwtHeader
	}{
		{"minimal", tok(`{"alg":"RS256"}`, claims), jwtHeader{Alg: "RS256"}},
		{"with kid and typ", tok(`{"alg":"ES256","kid":"k1","typ":"JWT"}`, claims), jwtHeader{Alg: "ES256", Kid: "k1", Typ: "JWT"}},
		{"at+jwt", tok(`{"typ":"at+jwt","alg":"RS256","kid":"k"}`, claims), jwtHeader{Alg: "RS256", Kid: "k", Typ: "at+jwt"}},
		{"Azure thumbprints", tok(`{"typ":"JWT","alg":"RS256","x5t":"abc","kid":"abc"}`, claims), jwtHeader{Alg: "RS256", Kid: "abc", Typ: "JWT"}},
		{"whitespace in JSON", tok(" { \"alg\" : \"HS256\" } ", " "+claims+"\n"), jwtHeader{Alg: "HS256"}},
		{"empty claims", tok(`{"alg":"RS256"}`, `{}`), jwtHeader{Alg: "RS256"}},
		{"nested claims", tok(`{"alg":"RS256"}`, `{"a":{"b":[1,{"c":null}]},"b":"a"}`), jwtHeader{Alg: "RS256"}},
		// The shape is fine; the algorithm check comes later.
		{"alg none with a signature", tok(`{"alg":"none"}`, claims), jwtHeader{Alg: "none"}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			h, err := preparseJWT(tc.token)
			if err != nil || h != tc.want {
				t.Errorf("got %+v, %v; want %+v", h, err, tc.want)
			}
		})
	}
}

// FuzzPreparseJWT checks the pre-parser on any input: it never panics, and what it
// accepts is within the size cap, three base64url segments, and a header that the JWT
// library reads the same way (same alg, same kid), so the two parsers cannot be played
// against each other. An API key is never taken for a JWT.
func FuzzPreparseJWT(f *testing.F) {
	const claims = `{"iss":"i","aud":"a","exp":2000000000,"workspace":"W_AQ"}`
	for _, s := range []string{
		tok(`{"alg":"RS256","kid":"k1","typ":"JWT"}`, claims),
		tok(`{"alg":"HS256"}`, claims),
		tok(`{"alg":"none"}`, claims),
		tok(`{"alg":"HS256","alg":"RS256"}`, claims),
		tok(`{"alg":"RS256","jku":"https://x"}`, claims),
		tok(`{"alg":"RS256","kid":"\u006b1"}`, claims),
		tok(`{"alg":"RS256"}`, `[]`),
		tok(`{"alg":"HS256"}`, `{"workspace":"W_Ag","workspace":"W_AQ"}`),
		tok(`{"alg":"HS256"}`, `{"exp":1,"\u0065xp":2}`),
		b64(`{"alg":"none"}`) + "." + b64(claims) + ".",
		"a.b.c",
		"..",
		"e30.e30.e30",
		validKey("abcdefghijklmnopqrstuvwxyz0123"),
		"",
	} {
		f.Add(s)
	}
	lib := jwt.NewParser()
	f.Fuzz(func(t *testing.T, s string) {
		h, err := preparseJWT(s)
		if looksLikeJWT(s) != strings.Contains(s, ".") {
			t.Fatal("looksLikeJWT")
		}
		if _, kerr := ParseKey(s); kerr == nil && (err == nil || looksLikeJWT(s)) {
			t.Fatalf("API key %q taken for a JWT", s)
		}
		if err != nil {
			return
		}
		if len(s) > MaxTokenBytes || h.Alg == "" {
			t.Fatalf("accepted %d bytes, header %+v", len(s), h)
		}
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d segments", len(parts))
		}
		for _, p := range parts {
			if p == "" || strings.ContainsAny(p, "+/= \t\r\n") {
				t.Fatalf("accepted segment %q", p)
			}
		}
		var header map[string]any
		raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if err := json.Unmarshal(raw, &header); err != nil {
			t.Fatalf("accepted a header encoding/json refuses: %v", err)
		}
		for name, v := range header {
			if _, ok := v.(string); !ok || !headerParams[name] {
				t.Fatalf("accepted header parameter %q: %v", name, v)
			}
		}
		// What the library will see when it verifies the token.
		token, _, err := lib.ParseUnverified(s, jwt.MapClaims{})
		if token == nil {
			t.Fatalf("the library cannot split %q: %v", s, err)
		}
		if got, _ := token.Header["alg"].(string); got != h.Alg {
			t.Fatalf("the library reads alg %q, the pre-parser %q", got, h.Alg)
		}
		if got, _ := token.Header["kid"].(string); got != h.Kid {
			t.Fatalf("the library reads kid %q, the pre-parser %q", got, h.Kid)
		}
	})
}
