package auth

import (
	"strings"
	"testing"
)

// validKey builds a well-formed key from a 30-character random part.
func validKey(random string) string { return keyPrefix + random + checksum(random) }

// TestChecksumCatchesEveryTypo proves that the checksum refuses, without a database
// lookup, every key with one character replaced by another base62 character, and
// every key with two neighbouring characters swapped (CRC-32 detects every error
// burst of up to 32 bits).
func TestChecksumCatchesEveryTypo(t *testing.T) {
	for range 5 {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		s := string(k)
		if _, err := ParseKey(s); err != nil {
			t.Fatalf("new key %q refused: %v", s, err)
		}
		for i := len(keyPrefix); i < len(s); i++ {
			for j := 0; j < len(base62); j++ {
				if base62[j] == s[i] {
					continue
				}
				typo := s[:i] + string(base62[j]) + s[i+1:]
				if _, err := ParseKey(typo); err == nil {
					t.Errorf("%q accepted: %q with position %d changed", typo, s, i)
				}
			}
			if i+1 < len(s) && s[i] != s[i+1] {
				swapped := s[:i] + string(s[i+1]) + string(s[i]) + s[i+2:]
				if _, err := ParseKey(swapped); err == nil {
					t.Errorf("%q accepted: %q with positions %d and %d swapped", swapped, s, i, i+1)
				}
			}
		}
	}
}

// FuzzParseKey checks ParseKey on any input: it never panics, what it accepts has the
// key format exactly (and is never mistaken for a JWT), and changing any character of
// an accepted key makes it refused.
func FuzzParseKey(f *testing.F) {
	good := validKey("abcdefghijklmnopqrstuvwxyz0123")
	for _, s := range []string{
		good,
		validKey("000000000000000000000000000000"),
		validKey("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"),
		good[:len(good)-1],
		good + "x",
		strings.ToUpper(good),
		"seg_",
		"",
		"seg_" + strings.Repeat("a", 36),
		"sk_live_" + strings.Repeat("x", 32),
		"seg_abcdefghijklmnopqrstuvwxyz0123\u00e9\u00e9\u00e9",
		"eyJhbGciOiJIUzI1NiJ9.eyJ9.sig",
		"seg_abcdefghijklmnopqrstuvwxyz01.3456",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if k != "" {
				t.Fatalf("refused %q but returned %q", s, k)
			}
			return
		}
		if string(k) != s || len(s) != keyLen || !strings.HasPrefix(s, keyPrefix) {
			t.Fatalf("accepted %q as %q", s, k)
		}
		if looksLikeJWT(s) {
			t.Fatalf("key %q looks like a JWT", s)
		}
		if !strings.HasPrefix(s, k.Prefix()) || len(k.Hash()) != 32 {
			t.Fatalf("prefix %q, hash %x", k.Prefix(), k.Hash())
		}
		for i := len(keyPrefix); i < len(s); i++ {
			c := byte('0')
			if s[i] == c {
				c = '1'
			}
			if _, err := ParseKey(s[:i] + string(c) + s[i+1:]); err == nil {
				t.Fatalf("%q accepted with position %d changed", s, i)
			}
		}
	})
}
