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
	var buf [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(buf[:], uint64(n))
	return string(k) + "_" + base64.RawURLEncoding.EncodeToString(buf[:l])
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
