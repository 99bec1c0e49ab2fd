package crm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestNumericLen holds numericLen to what PostgreSQL 15 writes for each number as
// jsonb (SELECT x::jsonb::text), measured.
func TestNumericLen(t *testing.T) {
	for num, pg := range map[string]string{
		"1.50e1": "15.0", "1e3": "1000", "1e-3": "0.001", "0.001": "0.001", "100": "100",
		"-0.0": "0.0", "0e5": "0", "0.000": "0.000", "123.456e-2": "1.23456", "-12e+2": "-1200",
		"1E2": "100", "0": "0", "-0": "0", "5e-0": "5", "1.0e0": "1.0", "0.0e-3": "0.0000",
		"-1.5e-7": "-0.00000015", "9007199254740993": "9007199254740993",
		"1e300": "1" + strings.Repeat("0", 300), "1e00000002": "100", "0e1073741822": "0",
		"-0.0e+0001073741822": "0", "0.00e1073741822": "0",
	} {
		if got, err := numericLen(num); err != nil || got != len(pg) {
			t.Errorf("numericLen(%s) = %d, %v; PostgreSQL writes %s (%d)", num, got, err, pg, len(pg))
		}
	}
	if n, err := numericLen("1e99999999"); err != nil || n < maxExponent {
		t.Errorf("numericLen(1e99999999) = %d, %v, want at least %d", n, err, maxExponent)
	}
	// PostgreSQL refuses these for their exponents, even the zeros (measured: "value
	// overflows numeric format").
	for _, num := range []string{"0e1073741823", "0e-1073741823", "-0e99999999999", "-0.0e2000000000",
		"0e0001073741823", "0e99999999999999999999999", "1e1073741823", "0.5e-1073741823"} {
		var r numericRangeError
		if n, err := numericLen(num); !errors.As(err, &r) {
			t.Errorf("numericLen(%s) = %d, %v, want a numericRangeError", num, n, err)
		}
	}
	for _, bad := range []string{"", "-", "e5", "1e", "1e+", "1e+-5", "1.5.5", "0x10", "1,5"} {
		if n, err := numericLen(bad); err == nil {
			t.Errorf("numericLen(%q) = %d, want an error", bad, n)
		}
	}
}

// TestAttributesMeasureAsJSONBWritesThem: the size attributes are checked against is
// that of the compact JSON jsonb writes back, escapes and numbers as PostgreSQL
// writes them; the values here were compacted from PostgreSQL 15's output.
func TestAttributesMeasureAsJSONBWritesThem(t *testing.T) {
	for _, tc := range []struct {
		in     map[string]any
		stored string
	}{
		{map[string]any{"city": "Pune", "n": json.Number("1.5e3"), "ok": true, "none": nil},
			`{"n":1500,"ok":true,"city":"Pune","none":null}`},
		{map[string]any{"html": "<a & b>", "ls": "\u2028", "q": "say \"hi\"\\", "ctl": "\n\t\x01"},
			`{"q":"say \"hi\"\\","ls":"` + "\u2028" + `","ctl":"\n\t\u0001","html":"<a & b>"}`},
		{map[string]any{"tags": []any{"a", json.Number("-0.10"), []any{}, map[string]any{}}, "lit": float64(1e21), "i": int64(-7)},
			`{"i":-7,"lit":1000000000000000000000,"tags":["a",-0.10,[],{}]}`},
		{map[string]any{"not nul": `\u0000`}, `{"not nul":"\\u0000"}`},
	} {
		var m jsonMeasure
		if err := m.value(tc.in); err != nil || m.size != len(tc.stored) || m.nul {
			t.Errorf("%v: size %d, nul %v, err %v; jsonb writes %s (%d bytes)", tc.in, m.size, m.nul, err, tc.stored, len(tc.stored))
		}
	}
	var m jsonMeasure
	if err := m.value(map[string]any{"k": "a\x00b"}); err != nil || !m.nul {
		t.Errorf("a NUL character not seen: nul %v, err %v", m.nul, err)
	}
}
