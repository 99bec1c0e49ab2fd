package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
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
// a header that is a flat JSON object of strings, each parameter known and present
// once, with an "alg" and, when "typ" is given, a JWT type, and claims that are a JSON
// object with no member named twice. Both are valid UTF-8. What the claims say and
// the signature are left to the verifier; a token that passes may still be forged.
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
	// The verifier decodes the claims with encoding/json, which keeps the last of two
	// members of one name; another reader of the same token (a gateway, an audit log)
	// may keep the first, and see another workspace or issuer. RFC 7519 section 4
	// allows refusing such a token, which is what we do. Only the top level is
	// checked: no claim we read is inside an object.
	if err := readObject(decoded[1], skipValue); err != nil {
		return jwtHeader{}, err
	}
	return h, nil
}

func notBase64URL(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
}

func parseHeader(b []byte) (jwtHeader, error) {
	var h jwtHeader
	err := readObject(b, func(name string, dec *json.Decoder) error {
		if !headerParams[name] {
			return ErrMalformedToken
		}
		tok, err := dec.Token()
		if err != nil {
			return ErrMalformedToken
		}
		value, ok := tok.(string)
		if !ok {
			return ErrMalformedToken
		}
		switch name {
		case "alg":
			h.Alg = value
		case "kid":
			h.Kid = value
		case "typ":
			h.Typ = value
		}
		return nil
	})
	if err != nil {
		return h, err
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

// readObject reads b, which must be one JSON object in valid UTF-8 and nothing more,
// calling member with each member's name (unescaped) for it to read the value from
// dec: exactly one value, or an error. A name present twice, however spelled ("alg"
// and "\u0061lg"), is refused: parsers that keep the first and the last would read
// different things. So is one present twice in another case ("workspace" and
// "Workspace", "sub" and "ſub"): encoding/json matches a struct's fields without
// case, so that a Go service reading the claims into a struct took the last.
func readObject(b []byte, member func(name string, dec *json.Decoder) error) error {
	if !utf8.Valid(b) {
		return ErrMalformedToken
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ErrMalformedToken
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ErrMalformedToken
		}
		name, ok := tok.(string)
		if !ok || seen[foldName(name)] {
			return ErrMalformedToken
		}
		seen[foldName(name)] = true
		if err := member(name, dec); err != nil {
			return err
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return ErrMalformedToken
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrMalformedToken // trailing data
	}
	return nil
}

// foldName is name with each letter replaced by the least of its case variants
// (unicode.SimpleFold's orbit), so that names encoding/json would take for one map to
// one: "S", "s" and "ſ" (U+017F) alike, "K" and the Kelvin sign alike.
func foldName(name string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, name)
}

// skipValue reads the next JSON value from dec, whatever it is.
func skipValue(_ string, dec *json.Decoder) error {
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return ErrMalformedToken
	}
	return nil
}
