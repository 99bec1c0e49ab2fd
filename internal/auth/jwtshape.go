package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxTokenBytes caps the size of a JWT: anything longer is refused before it is
// decoded. Dashboard tokens are well under 2 KB.
const MaxTokenBytes = 8 << 10

// ErrMalformedToken means a bearer credential is neither an API key nor a well-formed
// JWT.
var ErrMalformedToken = errors.New("auth: malformed token")

// looksLikeJWT tells a JWT from an API key by its shape alone: JWTs have dots, API
// keys never do.
func looksLikeJWT(token string) bool { return strings.IndexByte(token, '.') >= 0 }

// jwtHeader is the JOSE header of a JWT that passed preparseJWT.
type jwtHeader struct {
	Alg string // never empty
	Kid string
	Typ string
}

// headerParams are the JOSE header parameters a token may carry. Everything else is
// refused, in particular "crit" (extensions we would have to understand), "jku",
// "jwk", "x5u" and "x5c" (keys named by the token itself, which must never be
// trusted), "b64" (unencoded payloads) and "cty" (nested tokens). Some issuers (Azure
// AD) send certificate thumbprints next to "kid": allowed, and ignored.
var headerParams = map[string]bool{"alg": true, "kid": true, "typ": true, "x5t": true, "x5t#S256": true}

// preparseJWT checks the shape of a JWT before any cryptography: at most
// MaxTokenBytes, three non-empty segments of unpadded base64url, canonically encoded,
// and a header that is a flat JSON object of strings, valid UTF-8, each parameter
// known and present once, with an "alg" and, when "typ" is given, a JWT type. The
// claims and the signature are left to the verifier; a token that passes may still be
// forged.
func preparseJWT(token string) (jwtHeader, error) {
	if len(token) > MaxTokenBytes || strings.Count(token, ".") != 2 {
		return jwtHeader{}, ErrMalformedToken
	}
	parts := strings.SplitN(token, ".", 3)
	var decoded [3][]byte
	for i, p := range parts {
		// The alphabet is checked first: the base64 decoder skips \r and \n.
		if p == "" || strings.IndexFunc(p, notBase64URL) >= 0 {
			return jwtHeader{}, ErrMalformedToken
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil {
			return jwtHeader{}, ErrMalformedToken
		}
		decoded[i] = b
	}
	h, err := parseHeader(decoded[0])
	if err != nil {
		return jwtHeader{}, err
	}
	// The claims must be a JSON object; the verifier decodes them.
	if claims := bytes.TrimLeft(decoded[1], " \t\r\n"); len(claims) == 0 || claims[0] != '{' {
		return jwtHeader{}, ErrMalformedToken
	}
	return h, nil
}

func notBase64URL(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
}

func parseHeader(b []byte) (jwtHeader, error) {
	var h jwtHeader
	if !utf8.Valid(b) {
		return h, ErrMalformedToken
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return h, ErrMalformedToken
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return h, ErrMalformedToken
		}
		name, ok := tok.(string)
		if !ok || !headerParams[name] || seen[name] {
			return h, ErrMalformedToken
		}
		seen[name] = true
		tok, err = dec.Token()
		if err != nil {
			return h, ErrMalformedToken
		}
		value, ok := tok.(string)
		if !ok {
			return h, ErrMalformedToken
		}
		switch name {
		case "alg":
			h.Alg = value
		case "kid":
			h.Kid = value
		case "typ":
			h.Typ = value
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return h, ErrMalformedToken
	}
	if _, err := dec.Token(); err != io.EOF {
		return h, ErrMalformedToken // trailing data
	}
	if h.Alg == "" {
		return h, ErrMalformedToken
	}
	switch strings.TrimPrefix(strings.ToLower(h.Typ), "application/") {
	case "", "jwt", "at+jwt":
	default:
		return h, ErrMalformedToken
	}
	return h, nil
}
