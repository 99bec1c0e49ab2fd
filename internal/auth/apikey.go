// Package auth turns the credentials of a request into the workspace it acts for.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"math/big"
	"strings"
)

// API keys look like "seg_" + 30 random base62 characters + a 6-character checksum of
// them. The prefix makes a leaked key easy to recognize (secret scanners, logs), and
// the checksum lets a mistyped key be refused without a database lookup.
const (
	keyPrefix     = "seg_"
	keyRandomLen  = 30 // about 178 bits
	keyChecksumLn = 6
	keyLen        = len(keyPrefix) + keyRandomLen + keyChecksumLn
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ErrMalformedKey means a string is not an API key of this service.
var ErrMalformedKey = errors.New("auth: malformed API key")

// Key is a well-formed API key.
type Key string

// NewKey returns a new random API key.
func NewKey() (Key, error) {
	b := make([]byte, keyRandomLen)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = base62[n.Int64()]
	}
	random := string(b)
	return Key(keyPrefix + random + checksum(random)), nil
}

// ParseKey checks that s is a well-formed API key, checksum included.
func ParseKey(s string) (Key, error) {
	random, ok := strings.CutPrefix(s, keyPrefix)
	if !ok || len(s) != keyLen {
		return "", ErrMalformedKey
	}
	for i := 0; i < len(random); i++ {
		if strings.IndexByte(base62, random[i]) < 0 {
			return "", ErrMalformedKey
		}
	}
	body, sum := random[:keyRandomLen], random[keyRandomLen:]
	if checksum(body) != sum {
		return "", ErrMalformedKey
	}
	return Key(s), nil
}

// Hash is what the database keeps of a key. Keys carry 178 random bits, so a fast
// hash is enough: there is nothing to brute-force.
func (k Key) Hash() []byte {
	h := sha256.Sum256([]byte(k))
	return h[:]
}

// Prefix is the start of the key, safe to show in listings and logs.
func (k Key) Prefix() string { return string(k[:len(keyPrefix)+6]) }

func checksum(s string) string {
	n := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, keyChecksumLn)
	for i := keyChecksumLn - 1; i >= 0; i-- {
		out[i] = base62[n%62]
		n /= 62
	}
	return string(out)
}
