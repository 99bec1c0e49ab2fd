package crm_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
)

// TestContactConditionsRefused: each malformed condition is refused with its code at
// its path within the filter, every one of a filter at once; well-formed ones,
// empty ranges and lists included, are not.
func TestContactConditionsRefused(t *testing.T) {
	yes, no := true, false
	five, ten := 5.0, 10.0
	year0 := time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)
	// The end of 9999 as the DateTime scalar reads "9999-12-31T23:59:59.9999999Z"
	// (rounded up to the next microsecond), and the microsecond after it.
	end9999, after9999 := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 1000, time.UTC)
	now := time.Now()
	many := make([]crm.AttributeCondition, crm.MaxAttributeConditions+1)
	for i := range many {
		many[i] = crm.AttributeCondition{Key: "city", Exists: &yes}
	}
	values := make([]json.RawMessage, crm.MaxAttributeValues+1)
	for i := range values {
		values[i] = json.RawMessage(`1`)
	}
	for _, tc := range []struct {
		name string
		c    crm.ContactConditions
		want []string // "CODE path"
	}{
		{"none", crm.ContactConditions{}, nil},
		{"every operator alone", crm.ContactConditions{Attributes: []crm.AttributeCondition{
			{Key: "city", Equals: json.RawMessage(`"Pune"`)},
			{Key: "city", In: []json.RawMessage{}},
			{Key: "city", Exists: &no},
			{Key: "orders", AtLeast: &five},
			{Key: "orders", AtMost: &five},
			{Key: "orders", AtLeast: &ten, AtMost: &five}, // an empty range: nobody
		}}, nil},
		{"empty date range", crm.ContactConditions{CreatedAt: crm.TimeRange{From: &now, To: &now}}, nil},
		{"no operator", crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "city"}}}, []string{"INVALID attributes.0"}},
		{"two operators", crm.ContactConditions{Attributes: []crm.AttributeCondition{
			{Key: "city", Exists: &yes},
			{Key: "city", Equals: json.RawMessage(`1`), AtLeast: &five},
		}}, []string{"INVALID attributes.1"}},
		{"blank key", crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: " ", Exists: &yes}}}, []string{"BLANK attributes.0.key"}},
		{"NUL key", crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "a\x00", Exists: &yes}}}, []string{"INVALID attributes.0.key"}},
		{"too many conditions", crm.ContactConditions{Attributes: many}, []string{"TOO_MANY attributes"}},
		{"too many values", crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: "k", In: values}}}, []string{"TOO_MANY attributes.0.in"}},
		{"values no attribute holds", crm.ContactConditions{Attributes: []crm.AttributeCondition{
			{Key: "k", Equals: json.RawMessage(`"a\u0000b"`)},
			{Key: "k", In: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`1e2000000000`)}},
			{Key: "k", Equals: json.RawMessage(`"` + strings.Repeat("x", crm.MaxAttributesBytes) + `"`)},
		}}, []string{"INVALID attributes.0.equals", "TOO_LONG attributes.1.in.1", "TOO_LONG attributes.2.equals"}},
		{"year 0", crm.ContactConditions{CreatedAt: crm.TimeRange{From: &year0}, UpdatedAt: crm.TimeRange{To: &year0}},
			[]string{"INVALID createdAt.from", "INVALID updatedAt.to"}},
		{"the end of 9999", crm.ContactConditions{CreatedAt: crm.TimeRange{To: &end9999}}, nil},
		{"after 9999", crm.ContactConditions{CreatedAt: crm.TimeRange{From: &after9999}}, []string{"INVALID createdAt.from"}},
	} {
		var got []string
		for _, e := range crm.UserErrors(tc.c.Check()) {
			got = append(got, string(e.Code)+" "+strings.Join(e.Field, "."))
			if e.Message == "" {
				t.Errorf("%s: %v without a message", tc.name, e)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: refused %q, want %q", tc.name, got, tc.want)
		}
	}
}
