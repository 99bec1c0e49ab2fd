package scalar_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/graph/scalar"
)

// A DateTime is written as gqlgen's graphql.MarshalTime writes it, into a buffer (as
// responses are) and into any other writer.
func TestMarshalDateTimeWritesWhatGqlgenWrites(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	for _, tm := range []time.Time{
		time.Date(2026, 11, 30, 5, 4, 3, 0, time.UTC),
		time.Date(2026, 11, 30, 5, 4, 3, 123456789, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 6000, ist),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // five-digit year
	} {
		var want bytes.Buffer
		graphql.MarshalTime(tm).MarshalGQL(&want)
		var got bytes.Buffer
		got.WriteString("prefix,")
		scalar.MarshalDateTime(tm).MarshalGQL(&got)
		if got.String() != "prefix,"+want.String() {
			t.Errorf("%v: wrote %s into a buffer, gqlgen writes %s", tm, got.String(), want.String())
		}
		var other strings.Builder
		scalar.MarshalDateTime(tm).MarshalGQL(&other)
		if other.String() != want.String() {
			t.Errorf("%v: wrote %s into a strings.Builder, gqlgen writes %s", tm, other.String(), want.String())
		}
	}
	if scalar.MarshalDateTime(time.Time{}) != graphql.Null {
		t.Error("the zero time is not null")
	}
}

func TestUnmarshalDateTime(t *testing.T) {
	got, err := scalar.UnmarshalDateTime("2026-11-30T05:04:03.5+05:30")
	if err != nil || !got.Equal(time.Date(2026, 11, 30, 5, 4, 3, 500000000, time.FixedZone("", 5*3600+1800))) {
		t.Errorf("got %v, %v", got, err)
	}
	// What time.Parse takes but RFC 3339 does not (golang/go#54580), and what is not a
	// date-time at all.
	for _, in := range []string{
		"30/11/2026",
		"2026-11-30",
		"2026-11-30T05:04:03",
		"2026-11-30T05:04:03,5Z",
		"2026-11-30T05:04:03+24:00",
		"2026-11-30T05:04:03-05:60",
		"2026-11-30T5:04:03Z",
		"2026-11-30 05:04:03Z",
		"2026-11-30T05:04:03.Z",
		"2026-11-30T05:04:03Z ",
		"2026-02-30T05:04:03Z",
		"2026-11-30T24:00:00Z",
	} {
		if got, err := scalar.UnmarshalDateTime(in); err == nil {
			t.Errorf("%q, not RFC 3339, was accepted as %v", in, got)
		}
	}
	// RFC 3339 lets "T" and "Z" be lower case.
	for _, in := range []string{"2026-11-30t05:04:03z", "2026-11-30t05:04:03.5+00:00", "2026-11-30T05:04:03.5z"} {
		got, err := scalar.UnmarshalDateTime(in)
		if want := time.Date(2026, 11, 30, 5, 4, 3, 0, time.UTC); err != nil || !got.Truncate(time.Second).Equal(want) {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	// Finer than a microsecond: the next microsecond, PostgreSQL's, at which every
	// argument's bound ("at or after", "before") holds of the same instants.
	for in, want := range map[string]time.Time{
		"2026-12-07T08:32:02.349684001Z": time.Date(2026, 12, 7, 8, 32, 2, 349_685_000, time.UTC),
		"2026-12-07T08:32:02.3496849Z":   time.Date(2026, 12, 7, 8, 32, 2, 349_685_000, time.UTC),
		"2026-12-07T08:32:02.349684Z":    time.Date(2026, 12, 7, 8, 32, 2, 349_684_000, time.UTC),
		// Past the nanosecond, which time.Parse drops (the probe: .3496840001 kept .349684).
		"2026-12-07T08:32:02.3496840001Z":            time.Date(2026, 12, 7, 8, 32, 2, 349_685_000, time.UTC),
		"2026-12-07T08:32:02.349684000000000000001Z": time.Date(2026, 12, 7, 8, 32, 2, 349_685_000, time.UTC),
		"2026-12-07T08:32:02.3496840000000+05:30":    time.Date(2026, 12, 7, 3, 2, 2, 349_684_000, time.UTC),
		"2026-12-07T08:32:02.3496841000001Z":         time.Date(2026, 12, 7, 8, 32, 2, 349_685_000, time.UTC),
		"2026-12-07T23:59:59.999999999Z":             time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC),
		"2026-12-07T14:02:02.000000001+05:30":        time.Date(2026, 12, 7, 8, 32, 2, 1000, time.UTC),
		"0001-01-01T00:00:00.0000001Z":               time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),
	} {
		if got, err := scalar.UnmarshalDateTime(in); err != nil || !got.Equal(want) {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
}

// JSON text is written compacted, as it is otherwise: keys in its order, numbers
// exact, strings untouched.
func TestMarshalRawJSON(t *testing.T) {
	const stored = `{"n": 9007199254740993, "city": "Pune", "tags": ["a", "<b>"], "nested": {"x": 1.50, "y": null}}`
	const want = `{"n":9007199254740993,"city":"Pune","tags":["a","<b>"],"nested":{"x":1.50,"y":null}}`
	var buf bytes.Buffer
	buf.WriteString("prefix,")
	scalar.MarshalRawJSON(json.RawMessage(stored)).MarshalGQL(&buf)
	if buf.String() != "prefix,"+want {
		t.Errorf("wrote %s into a buffer, want %s", buf.String(), want)
	}
	var other strings.Builder
	scalar.MarshalRawJSON(json.RawMessage(stored)).MarshalGQL(&other)
	if other.String() != want {
		t.Errorf("wrote %s into a strings.Builder, want %s", other.String(), want)
	}
	// Not JSON (jsonb never gives that): written as it is, and nothing else.
	buf.Reset()
	scalar.MarshalRawJSON(json.RawMessage(`{"a": `)).MarshalGQL(&buf)
	if buf.String() != `{"a": ` {
		t.Errorf("wrote %q for text that is not JSON", buf.String())
	}
	if scalar.MarshalRawJSON(nil) != graphql.Null {
		t.Error("nil is not null")
	}
	got, err := scalar.UnmarshalRawJSON(map[string]any{"a": json.Number("12345678901234567890")})
	if err != nil || string(got) != `{"a":12345678901234567890}` {
		t.Errorf("unmarshalled %s, %v", got, err)
	}
}
