package store

// Tests of the cursor codec alone, without a database: every value decodeCursor lets
// through is one PostgreSQL takes, and every cursor fits one list and one ordering.

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
)

func rawCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestCursorRoundTrip proves that every cursor the store writes decodes to its value,
// for the extremes of each column as well.
func TestCursorRoundTrip(t *testing.T) {
	name255 := strings.Repeat("é", crm.MaxContactName)
	for _, tc := range []struct {
		key   sortKey
		value any
		want  any
	}{
		{contactsByCreatedAt, time.Date(2026, 11, 28, 9, 30, 0, 123456000, time.UTC), nil},
		{contactsByUpdatedAt, time.Date(2026, 11, 28, 15, 0, 0, 0, time.FixedZone("IST", 19800)), nil},
		{segmentsByCreatedAt, minCursorTime, nil},
		{segmentsByUpdatedAt, maxCursorTime, nil},
		{segmentsByContactCount, int64(0), nil},
		{segmentsByContactCount, int64(1 << 62), nil},
		{segmentsByName, strings.Repeat("x", crm.MaxSegmentName), nil},
		{contactsByName, name255, nil},
		{contactsByName, nil, nil},
		{contactsByName, `quote " backslash \ tab	`, nil},
		{contactsByPhone, "+" + strings.Repeat("9", crm.MaxPhone-1), nil},
		{contactsByEmail, strings.Repeat("é", crm.MaxEmail), nil},
		{contactsByEmail, nil, nil},
	} {
		s := encodeCursor(tc.key, tc.value, 42)
		c, err := decodeCursor("after", s, tc.key)
		if err != nil {
			t.Errorf("%s %s %v: %v", tc.key.list, tc.key.name, tc.value, err)
			continue
		}
		want := tc.value
		if tm, ok := want.(time.Time); ok {
			if got, ok := c.Value.(time.Time); !ok || !got.Equal(tm) {
				t.Errorf("%s %s: got %v, want %v", tc.key.list, tc.key.name, c.Value, tm)
			}
		} else if c.Value != want {
			t.Errorf("%s %s: got %#v, want %#v", tc.key.list, tc.key.name, c.Value, want)
		}
		if c.ID != 42 {
			t.Errorf("%s %s: id %d", tc.key.list, tc.key.name, c.ID)
		}
	}
}

// TestCursorIsTheJSONOfItsFields proves that encodeCursor, which appends its JSON by
// hand, writes what json.Marshal writes for the cursor (times as RFC 3339 in UTC):
// strings that need no escape, and those that do, included.
func TestCursorIsTheJSONOfItsFields(t *testing.T) {
	ist := time.FixedZone("IST", 19800)
	for _, tc := range []struct {
		key   sortKey
		value any
	}{
		{contactsByCreatedAt, time.Date(2026, 11, 28, 9, 30, 0, 123456000, time.UTC)},
		{contactsByUpdatedAt, time.Date(2026, 11, 28, 15, 0, 0, 0, ist)},
		{segmentsByCreatedAt, minCursorTime},
		{segmentsByUpdatedAt, maxCursorTime},
		{segmentsByContactCount, int64(0)},
		{segmentsByContactCount, int64(-1 << 63)},
		{segmentsByName, "VIP Users 2026"},
		{segmentsByName, ""},
		{contactsByName, nil},
		{contactsByName, `quote " backslash \ tab	`},
		{contactsByName, "a<b"},
		{contactsByName, "a>b"},
		{contactsByName, "a&b"},
		{contactsByName, "Élodie ✓ \u2028 \xff"},
		{contactsByName, "\x00\x1f\x7f"},
	} {
		value := tc.value
		if tm, ok := value.(time.Time); ok {
			value = tm.UTC().Format(time.RFC3339Nano)
		}
		j, err := json.Marshal(cursor{List: tc.key.list, Key: tc.key.name, Value: value, ID: 9007199254740993})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := encodeCursor(tc.key, tc.value, 9007199254740993), rawCursor(string(j)); got != want {
			t.Errorf("%s %#v: cursor %s, want %s (%s)", tc.key.name, tc.value, got, want, j)
		}
	}
}

// TestCursorOfAnotherList proves that a cursor fits only the list that made it:
// segments and contacts never share cursors, though their orderings share names.
func TestCursorOfAnotherList(t *testing.T) {
	now := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	for _, pair := range [][2]sortKey{
		{segmentsByCreatedAt, contactsByCreatedAt},
		{segmentsByUpdatedAt, contactsByUpdatedAt},
		{segmentsByName, contactsByName},
		// Lists whose orderings have other names: the list is what is wrong.
		{contactsByCreatedAt, changesByXid},
		{contactsByCreatedAt, deletedContactsByDeletedAt},
		{contactsByName, deletedContactsByDeletedAt},
		{changesByXid, deletedContactsByDeletedAt},
	} {
		for i, key := range pair {
			other := pair[1-i]
			var v any = now
			switch key.cast {
			case "text":
				v = "anna"
			case "xid8":
				v = int64(812)
			}
			_, err := decodeCursor("before", encodeCursor(key, v, 7), other)
			if e, ok := err.(*crm.Error); !ok || e.Field[0] != "before" || !strings.Contains(e.Message, "another list") {
				t.Errorf("cursor of %s %s read by %s: %v", key.list, key.name, other.list, err)
			}
		}
	}
	// The feeds' cursors as they write them, with the fields of their own list: the
	// feed of memberships' while it lists the members (s and c), the contacts' feed's
	// since and epoch. Each is for another list, not one this API did not return.
	since := now.Add(-time.Hour)
	for _, tc := range []struct {
		cursor string
		other  sortKey
	}{
		{encodeMembershipCursor(feedPlace{812, 7}, [2]int64{3, 4}, since, 2), changesByXid},
		{encodeMembershipCursor(feedPlace{812, 7}, [2]int64{}, since, 2), changesByXid},
		{encodeChangeCursor(812, 7, since, 2), membershipChangesByXid},
	} {
		_, err := decodeCursor("after", tc.cursor, tc.other)
		if e, ok := err.(*crm.Error); !ok || e.Field[0] != "after" || !strings.Contains(e.Message, "another list") {
			t.Errorf("feed cursor %s read by %s: %v", tc.cursor, tc.other.list, err)
		}
	}
}

// TestCursorValuesRefused proves that decodeCursor refuses, as an input error naming
// the argument, every value encodeCursor would not write: those PostgreSQL rejects
// (NUL, year 0), and those it would take but read differently (other time zones,
// nanoseconds, numbers in other forms).
func TestCursorValuesRefused(t *testing.T) {
	for _, tc := range []struct {
		key sortKey
		raw string
	}{
		// Text.
		{contactsByName, `{"l":"c","k":"name","v":"a\u0000b","i":1}`},
		{segmentsByName, `{"l":"s","k":"name","v":"\u0000","i":1}`},
		{segmentsByName, `{"l":"s","k":"name","v":"` + strings.Repeat("x", crm.MaxSegmentName+1) + `","i":1}`},
		{contactsByName, `{"l":"c","k":"name","v":"` + strings.Repeat("é", crm.MaxContactName+1) + `","i":1}`},
		{segmentsByName, `{"l":"s","k":"name","v":null,"i":1}`}, // segment names are never null
		{contactsByName, `{"l":"c","k":"name","v":12,"i":1}`},
		{contactsByPhone, `{"l":"c","k":"phone","v":null,"i":1}`}, // every contact has a phone
		{contactsByPhone, `{"l":"c","k":"phone","v":"+` + strings.Repeat("9", crm.MaxPhone) + `","i":1}`},
		{contactsByEmail, `{"l":"c","k":"email","v":"` + strings.Repeat("é", crm.MaxEmail+1) + `","i":1}`},
		{contactsByEmail, `{"l":"c","k":"name","v":"a@x.in","i":1}`}, // another orderBy's
		{contactsByPhone, `{"l":"c","k":"email","v":"+919876543210","i":1}`},
		// Timestamps.
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":"0000-01-01T00:00:00Z","i":1}`},
		{segmentsByUpdatedAt, `{"l":"s","k":"updated_at","v":"0000-12-31T23:59:59.999999Z","i":1}`},
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":"2026-01-01T05:30:00+05:30","i":1}`},
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":"2026-01-01T00:00:00.000000001Z","i":1}`},
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":"2026-01-01T00:00:00.100Z","i":1}`}, // not as written
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":"2026-01-01 00:00:00Z","i":1}`},
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":"infinity","i":1}`},
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":null,"i":1}`},
		{contactsByCreatedAt, `{"l":"c","k":"created_at","v":1767225600,"i":1}`},
		// Counts.
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":-1,"i":1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1.5,"i":1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1e3,"i":1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":9223372036854775808,"i":1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":"12","i":1}`},
		// IDs and shape.
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1,"i":0}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1,"i":-1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1,"i":1.0}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1,"i":9223372036854775808}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1,"i":1,"x":0}`},
		{segmentsByContactCount, `{"k":"contact_count","v":1,"i":1}`},
		{segmentsByContactCount, `{"l":"c","k":"contact_count","v":1,"i":1}`},
		{segmentsByContactCount, `{"l":"s","k":"contact_count","v":1,"i":1} 1`},
	} {
		_, err := decodeCursor("after", rawCursor(tc.raw), tc.key)
		if e, ok := err.(*crm.Error); !ok || e.Code != crm.CodeInvalid || e.Field[0] != "after" {
			t.Errorf("%s: got %v, want an INVALID error naming after", tc.raw, err)
		}
	}
}
