// Package globalid encodes the IDs the API shows for its objects: a type letter and the
// object's number, such as "S_AQ" for segment 1. Clients must treat them as opaque; the
// type letter lets node(id:) find the object without a lookup table.
package globalid

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// Kind is the type of object an ID names.
type Kind string

// The kinds of object with a global ID.
const (
	Workspace Kind = "W"
	Segment   Kind = "S"
	Contact   Kind = "C"
)

// Errors of Decode.
var (
	ErrMalformed = errors.New("malformed ID")
	ErrWrongKind = errors.New("ID of another type")
)

// Encode returns the global ID of object n of kind k.
func Encode(k Kind, n int64) string {
	var buf [maxLen]byte
	return string(Append(buf[:0], k, n))
}

// maxLen is the length of the longest ID: a kind letter, "_" and the unpadded
// base64 of the longest varint (6 bits a character).
const maxLen = 2 + (binary.MaxVarintLen64*8+5)/6

// Append appends the global ID of object n of kind k to dst, as Encode spells it,
// and returns the extended slice: an ID written into a response's buffer is not
// made a string first.
func Append(dst []byte, k Kind, n int64) []byte {
	var varint [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(varint[:], uint64(n))
	dst = append(dst, k...)
	dst = append(dst, '_')
	return base64.RawURLEncoding.AppendEncode(dst, varint[:l])
}

// Decode returns the kind and number of a global ID. Every ID has exactly one spelling:
// anything Encode would not have produced is malformed.
func Decode(id string) (Kind, int64, error) {
	kind, body, ok := strings.Cut(id, "_")
	switch Kind(kind) {
	case Workspace, Segment, Contact:
	default:
		return "", 0, ErrMalformed
	}
	if !ok || len(body) > 12 {
		return "", 0, ErrMalformed
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return "", 0, ErrMalformed
	}
	n, l := binary.Uvarint(b)
	if l != len(b) || n == 0 || n > 1<<63-1 || Encode(Kind(kind), int64(n)) != id {
		return "", 0, ErrMalformed
	}
	return Kind(kind), int64(n), nil
}

// DecodeAs returns the number of a global ID that must be of kind want.
func DecodeAs(want Kind, id string) (int64, error) {
	k, n, err := Decode(id)
	if err != nil {
		return 0, err
	}
	if k != want {
		return 0, ErrWrongKind
	}
	return n, nil
}
