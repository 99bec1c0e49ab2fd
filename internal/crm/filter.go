package crm

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// Limits of a ContactConditions' attribute conditions.
const (
	MaxAttributeConditions = 10  // conditions per filter
	MaxAttributeValues     = 100 // values of one condition's In
)

// ContactConditions are the conditions of a contact filter on each contact's own
// fields, and on whether it is in any segment: every condition given must hold. The
// zero value keeps every contact.
type ContactConditions struct {
	// CreatedAt and UpdatedAt keep the contacts whose time lies in the range.
	CreatedAt, UpdatedAt TimeRange
	// HasEmail and HasName, when set, keep the contacts with one (true) or without.
	HasEmail, HasName *bool
	// InAnySegment, when set, keeps the contacts in at least one segment (true) or
	// in none.
	InAnySegment *bool
	// Attributes keeps the contacts that meet every one of the conditions.
	Attributes []AttributeCondition
}

// IsZero reports whether c keeps every contact.
func (c ContactConditions) IsZero() bool {
	return c.CreatedAt.IsZero() && c.UpdatedAt.IsZero() && c.HasEmail == nil && c.HasName == nil &&
		c.InAnySegment == nil && c.Attributes == nil
}

// A TimeRange is the half-open range of instants from From (included) to To (not
// included); a nil end leaves that side open. A range whose From is not before its
// To holds no instant.
type TimeRange struct {
	From, To *time.Time
}

// IsZero reports whether r holds every instant.
func (r TimeRange) IsZero() bool { return r.From == nil && r.To == nil }

// Holds reports whether t lies in r.
func (r TimeRange) Holds(t time.Time) bool {
	return (r.From == nil || !t.Before(*r.From)) && (r.To == nil || t.Before(*r.To))
}

// An AttributeCondition is a condition on the value of one key of a contact's
// attributes. Exactly one operator is set, but AtLeast and AtMost, which may be set
// together.
type AttributeCondition struct {
	Key string
	// Equals, if not nil, is the JSON the value must equal: the same type and value
	// (the number 5 is not the string "5"; 5 and 5.0 are the same number), arrays
	// element by element in order, objects key by key.
	Equals json.RawMessage
	// In, if not nil, holds the JSON values the value must equal one of; empty, it
	// keeps nobody.
	In []json.RawMessage
	// Exists, if set, keeps the contacts that have the key (true) or not.
	Exists *bool
	// AtLeast and AtMost, if set, keep the contacts whose value is a JSON number in
	// the range, ends included.
	AtLeast, AtMost *float64
}

// The range of a TimeRange's ends: the years RFC 3339 can write and PostgreSQL's
// timestamptz holds (PostgreSQL has no year 0), up to the instant after 9999's
// last, to which the DateTime scalar rounds an end written within 9999's last
// microsecond ("9999-12-31T23:59:59.9999999Z").
var (
	minFilterTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxFilterTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Check returns every problem of c, each at its path within the filter
// (["attributes", "2", "in"]).
func (c ContactConditions) Check() error {
	var errs Errors
	for _, r := range []struct {
		name string
		r    TimeRange
	}{{"createdAt", c.CreatedAt}, {"updatedAt", c.UpdatedAt}} {
		for _, end := range []struct {
			name string
			t    *time.Time
		}{{"from", r.r.From}, {"to", r.r.To}} {
			if end.t != nil && (end.t.Before(minFilterTime) || end.t.After(maxFilterTime)) {
				errs = append(errs, Errorf(CodeInvalid, Path(r.name, end.name), "%s is outside the years 1 to 9999", end.t.UTC().Format(time.RFC3339Nano)))
			}
		}
	}
	if len(c.Attributes) > MaxAttributeConditions {
		return append(errs, Errorf(CodeTooMany, Path("attributes"), "%d attribute conditions, the maximum is %d", len(c.Attributes), MaxAttributeConditions))
	}
	for i, a := range c.Attributes {
		errs = a.check(errs, i)
	}
	return errs.Err()
}

// check appends the problems of a, the i-th attribute condition.
func (a AttributeCondition) check(errs Errors, i int) Errors {
	at := func(field ...any) []string { return Path(append([]any{"attributes", i}, field...)...) }
	switch {
	case trimText(a.Key) == "":
		errs = append(errs, Errorf(CodeBlank, at("key"), "an attribute's name cannot be blank"))
	case strings.ContainsRune(a.Key, 0):
		errs = append(errs, Errorf(CodeInvalid, at("key"), "an attribute's name cannot hold a NUL character"))
	}
	var given []string
	if a.Equals != nil {
		given = append(given, "equals")
	}
	if a.In != nil {
		given = append(given, "in")
	}
	if a.Exists != nil {
		given = append(given, "exists")
	}
	if a.AtLeast != nil || a.AtMost != nil {
		given = append(given, "atLeast/atMost")
	}
	switch len(given) {
	case 0:
		return append(errs, Errorf(CodeInvalid, at(), "give one of equals, in, exists, or atLeast and atMost (one or both)"))
	case 1:
	default:
		return append(errs, Errorf(CodeInvalid, at(), "give one of equals, in, exists, or atLeast and atMost, not %s", strings.Join(given, " and ")))
	}
	if a.Equals != nil {
		errs = attributeValue(errs, at("equals"), a.Equals)
	}
	if len(a.In) > MaxAttributeValues {
		return append(errs, Errorf(CodeTooMany, at("in"), "%d values, the maximum is %d", len(a.In), MaxAttributeValues))
	}
	for j, v := range a.In {
		errs = attributeValue(errs, at("in", j), v)
	}
	return errs
}

// attributeValue appends the problem of v, a JSON value a condition compares with,
// if it is one no attribute could hold: a NUL character or a number beyond what
// PostgreSQL's numeric takes (either would fail the statement, not match nothing),
// or more than MaxAttributesBytes.
func attributeValue(errs Errors, field []string, v json.RawMessage) Errors {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var value any
	if err := dec.Decode(&value); err != nil {
		return append(errs, Errorf(CodeInvalid, field, "not a JSON value: %v", err))
	}
	return measured(errs, field, "the value", value)
}
