package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
)

// FuzzDecodeCursor proves that whatever a client sends as a cursor, decodeCursor
// neither panics nor lets through anything but a cursor the list could have written:
// an accepted cursor re-encodes to one that decodes to the same position, and a
// refused one is an input error naming the argument (BAD_USER_INPUT, never an
// internal error). The seeds are replayed by every go test.
func FuzzDecodeCursor(f *testing.F) {
	keys := []sortKey{segmentsByCreatedAt, segmentsByUpdatedAt, segmentsByContactCount, segmentsByName,
		contactsByCreatedAt, contactsByUpdatedAt, contactsByName, contactsByPhone, contactsByEmail, changesByXid}
	now := time.Date(2026, 11, 28, 9, 30, 0, 123456000, time.UTC)
	for _, key := range keys {
		var v any = now
		switch key.cast {
		case "text":
			v = "Anna"
		case "bigint":
			v = int64(42)
		}
		if key.list == changeList {
			f.Add(encodeChangeCursor(42, 7, now, 0))
			f.Add(encodeChangeCursor(42, 7, now, 3))
			continue
		}
		f.Add(encodeCursor(key, v, 7))
	}
	f.Add(encodeCursor(contactsByName, nil, 1))
	for _, raw := range []string{
		`{"l":"c","k":"name","v":"a\u0000b","i":1}`,
		`{"l":"s","k":"contact_count","v":1e3,"i":1}`,
		`{"l":"c","k":"created_at","v":"0000-01-01T00:00:00Z","i":1}`,
		`{"l":"s","k":"contact_count","v":1,"i":9223372036854775808}`,
		`{"l":"c","k":"created_at","v":"2026-01-01T00:00:00Z","i":1}{}`,
		`{"l":"x","k":"change_xid","v":42,"i":7,"t":"2026-11-28T09:30:00.1234567Z"}`,
		`{"l":"c","k":"created_at","v":"2026-01-01T00:00:00Z","i":1,"t":"2026-01-01T00:00:00Z"}`,
		`[]`, `null`, ``,
	} {
		f.Add(rawCursor(raw))
	}
	f.Add("!!!")
	f.Add("eyJsIjoi")
	f.Fuzz(func(t *testing.T, s string) {
		for _, key := range keys {
			c, err := decodeCursor("after", s, key)
			if err != nil {
				if e, ok := err.(*crm.Error); !ok || len(e.Field) == 0 || e.Field[0] != "after" {
					t.Fatalf("decodeCursor(%q) for %s %s: %v, want an input error on after", s, key.list, key.name, err)
				}
				continue
			}
			re := encodeCursor(key, c.Value, c.ID)
			if key.list == changeList {
				re = encodeChangeCursor(uint64(c.Value.(int64)), c.ID, c.since, c.Epoch)
			}
			again, err := decodeCursor("after", re, key)
			if err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("decodeCursor(%q) for %s %s = %+v, which re-encodes to %+v, %v", s, key.list, key.name, c, again, err)
			}
		}
	})
}
