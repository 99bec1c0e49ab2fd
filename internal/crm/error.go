package crm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Code classifies an Error. The values are part of the public API: they appear as
// UserError.code in mutation payloads.
type Code string

// The codes a caller can act on.
const (
	CodeBlank    Code = "BLANK"     // a required value is empty
	CodeInvalid  Code = "INVALID"   // a value is malformed or out of range
	CodeNotFound Code = "NOT_FOUND" // an ID names nothing in this workspace
	CodeTaken    Code = "TAKEN"     // a unique value is already used in this workspace
	CodeTooLong  Code = "TOO_LONG"  // a text is longer than allowed
	CodeTooMany  Code = "TOO_MANY"  // a list has more elements than allowed
)

// An Error is a problem with the caller's input: the request is refused and nothing
// changes. Field is the path of the offending input value, relative to the operation's
// input (for example ["contactIds", "3"]).
type Error struct {
	Code    Code
	Field   []string
	Message string
}

func (e *Error) Error() string {
	if len(e.Field) == 0 {
		return e.Message
	}
	return strings.Join(e.Field, ".") + ": " + e.Message
}

// Errorf returns an Error for the input value at field.
func Errorf(code Code, field []string, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Errors collects every problem found in one input, so that a caller learns about all
// of them at once instead of one per attempt.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// UserErrors returns the input problems that err carries, or nil when err is not
// (or does not wrap) an *Error or Errors.
func UserErrors(err error) []*Error {
	var many Errors
	if errors.As(err, &many) {
		return many
	}
	var one *Error
	if errors.As(err, &one) {
		return []*Error{one}
	}
	return nil
}

// Path builds a field path; integers become list indexes.
func Path(elems ...any) []string {
	p := make([]string, len(elems))
	for i, e := range elems {
		switch v := e.(type) {
		case string:
			p[i] = v
		case int:
			p[i] = strconv.Itoa(v)
		default:
			p[i] = fmt.Sprint(v)
		}
	}
	return p
}

// Prefixed returns copies of errs whose fields start with prefix.
func Prefixed(errs []*Error, prefix ...string) []*Error {
	out := make([]*Error, len(errs))
	for i, e := range errs {
		field := append(append([]string{}, prefix...), e.Field...)
		out[i] = &Error{Code: e.Code, Field: field, Message: e.Message}
	}
	return out
}
