// Package scalar marshals the API's custom scalars where gqlgen's own functions cost
// more than they need to: DateTime, and JSON read from the database (a contact's
// attributes). gqlgen.yml binds the scalars to it.
package scalar

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/internal/crm"
)

// MarshalDateTime writes t as gqlgen's graphql.MarshalTime does: RFC 3339 with
// nanoseconds as a JSON string, the zero time as null. gqlgen's formats the time
// into one string and quotes it into another; this one writes the time straight
// into the response: one allocation where gqlgen's takes three, for every date of
// every object (a page of 50 segments with both of theirs has 100).
func MarshalDateTime(t time.Time) graphql.Marshaler {
	if t.IsZero() {
		return graphql.Null
	}
	return dateTime(t)
}

// UnmarshalDateTime reads a DateTime: RFC 3339 with a time and a zone. Anything else
// is the client's mistake and is told as one (BAD_USER_INPUT): gqlgen's
// graphql.UnmarshalTime returns a plain error, which the server answered as
// INTERNAL_SERVER_ERROR (which clients retry), and reads "" as the year 1, which
// kept every contact of a filter's range, or none, with no error.
//
// An instant finer than a microsecond is rounded up to the next microsecond
// (microsecondCeiling), here where every DateTime argument passes, in a variable or
// written in the query.
func UnmarshalDateTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, crm.Errorf(crm.CodeInvalid, nil, "a DateTime is a string in RFC 3339 form with a time and a zone, such as %q, not %s", dateTimeExample, Describe(v))
	}
	if !rfc3339Form.MatchString(s) {
		return time.Time{}, notADateTime(s)
	}
	// RFC 3339 lets "T" and "Z" be written in lower case (its section 5.6); time.Parse
	// takes only upper case.
	upper := strings.ToUpper(s)
	t, err := time.Parse(time.RFC3339Nano, upper)
	if err != nil {
		return time.Time{}, notADateTime(s)
	}
	s = upper
	if beyondNanoseconds(s) && t.Equal(t.Truncate(time.Microsecond)) {
		// time.Parse dropped digits past the nanosecond that put the instant after
		// this microsecond (".3496840001"): its ceiling is the next one.
		return t.Add(time.Microsecond), nil
	}
	return microsecondCeiling(t), nil
}

// rfc3339Form matches RFC 3339's date-time (section 5.6), which time.Parse does not
// check by itself: it also takes a comma before the fraction, a zone of +24:00 and an
// hour of one digit (golang/go#54580), forms other RFC 3339 parsers refuse, so that
// a client that got them accepted here would meet an error elsewhere. time.Parse
// checks the ranges of the date's and the time's fields.
var rfc3339Form = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

func notADateTime(s string) error {
	return crm.Errorf(crm.CodeInvalid, nil, "%s is not a DateTime: RFC 3339 with a time and a zone is expected, such as %q", strconv.Quote(s), dateTimeExample)
}

// beyondNanoseconds reports whether the fraction of s, an RFC 3339 time, has a
// digit other than 0 past its ninth, which time.Parse drops.
func beyondNanoseconds(s string) bool {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return false
	}
	digits := 0
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			break
		}
		if digits++; digits > 9 && c != '0' {
			return true
		}
	}
	return false
}

// microsecondCeiling returns t, or the next microsecond after it when t falls between
// two. PostgreSQL keeps microseconds, and truncated a finer instant written into a
// statement: a range from .3496849 kept a contact created at .349684, and
// deletedContacts(since: .3496849) listed a deletion at .349684. Every DateTime
// argument is a bound "at or after" (DateTimeRange.from, deletedContacts' since) or
// "before" (DateTimeRange.to), and an instant PostgreSQL holds is at or after t, or
// before t, exactly when it is so of t's ceiling. (A bound "at or before" or "after"
// would need the floor instead: such an argument must not take a DateTime as is.)
func microsecondCeiling(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}

const dateTimeExample = "2026-12-01T00:00:00Z"

type dateTime time.Time

// MarshalGQL writes the time, quoted (RFC 3339 has nothing JSON escapes).
func (t dateTime) MarshalGQL(w io.Writer) {
	if b, ok := w.(*bytes.Buffer); ok {
		// The buffer's spare room, grown by the appends if too small.
		out := append(b.AvailableBuffer(), '"')
		out = time.Time(t).AppendFormat(out, time.RFC3339Nano)
		b.Write(append(out, '"'))
		return
	}
	io.WriteString(w, strconv.Quote(time.Time(t).Format(time.RFC3339Nano)))
}

// MarshalObject writes a JSON object as gqlgen's graphql.MarshalMap does.
func MarshalObject(v map[string]any) graphql.Marshaler { return graphql.MarshalMap(v) }

// UnmarshalObject reads a JSON scalar's value given as input (a contact's
// attributes), which must be an object. Anything else is the client's mistake and
// is told as one (BAD_USER_INPUT, like any invalid argument): gqlgen's
// graphql.UnmarshalMap returns a plain error, which the server cannot tell from a
// failure of its own and answered as INTERNAL_SERVER_ERROR, which clients retry.
func UnmarshalObject(v any) (map[string]any, error) {
	if m, ok := v.(map[string]any); ok {
		return m, nil
	}
	return nil, crm.Errorf(crm.CodeInvalid, nil, `a JSON object is expected, such as {"city": "Pune"}, not %s`, Describe(v))
}

// Describe names an input value in an error message: as JSON, as it was sent, and its
// kind ("5.5, a number"); its kind alone when its JSON is long.
func Describe(v any) string {
	kind := "a number"
	switch v.(type) {
	case string:
		kind = "a string"
	case bool:
		kind = "a boolean"
	case []any:
		kind = "a list"
	case map[string]any:
		kind = "an object"
	}
	if n, ok := v.(json.Number); ok {
		return string(n) + ", " + kind
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > 40 {
		return kind
	}
	return string(b) + ", " + kind
}

// MarshalRawJSON writes v, JSON text (a contact's attributes as PostgreSQL keeps
// them), compacted, as the value of a JSON scalar: gqlgen's graphql.MarshalMap would
// need it decoded into a map first and encoded again, which took 8% of the CPU of a
// page of 50 contacts (the handler's benchmark, W3) and rounded integers past 2^53
// (a float64 held them). nil is null, as a nil map is for gqlgen.
func MarshalRawJSON(v json.RawMessage) graphql.Marshaler {
	if v == nil {
		return graphql.Null
	}
	return rawJSON(v)
}

// UnmarshalRawJSON reads a JSON scalar's value as JSON text.
func UnmarshalRawJSON(v any) (json.RawMessage, error) {
	return json.Marshal(v)
}

type rawJSON json.RawMessage

// MarshalGQL writes the JSON text without its insignificant spaces (jsonb's text
// has one after every colon and comma).
func (v rawJSON) MarshalGQL(w io.Writer) {
	if b, ok := w.(*bytes.Buffer); ok {
		if json.Compact(b, v) == nil {
			return
		}
		// Not JSON (never from jsonb): json.Compact wrote nothing; write it as it is
		// rather than break the response.
	}
	var compact bytes.Buffer
	if json.Compact(&compact, v) != nil {
		w.Write(v)
		return
	}
	w.Write(compact.Bytes())
}
