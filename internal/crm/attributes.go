package crm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// attributes checks a contact's attributes as PostgreSQL will keep them (jsonb): no
// blank name, nested at most MaxAttributesDepth levels, no NUL character (jsonb cannot
// hold one), and at most MaxAttributesBytes as compact JSON. The size is that of the JSON jsonb writes back,
// not of the request's: strings unescaped but for what JSON must escape, and numbers
// written out in full as jsonb's numeric writes them, so 1e300 takes 301 bytes, not
// 5. Measured on the request's text instead, a 2 KB request of such numbers was
// accepted and read back as 13 MB.
func attributes(errs Errors, field []string, attrs map[string]any) Errors {
	for k := range attrs {
		if trimText(k) == "" {
			return append(errs, Errorf(CodeBlank, field, "attribute names cannot be blank"))
		}
	}
	if k, ok := tooDeep(attrs); ok {
		return append(errs, Errorf(CodeInvalid, field, "attribute %s nests arrays and objects more than %d levels deep, the most attributes may",
			QuoteInput(k), MaxAttributesDepth))
	}
	return measured(errs, field, "attributes", attrs)
}

// measured appends the problems of v, JSON that attributes hold or a condition
// compares them with, named subject in the messages: a number beyond what
// PostgreSQL's numeric takes, which would fail the statement (TOO_LONG, as
// 1e131072, also past what numeric holds, is), a NUL character, which jsonb refuses,
// or more than MaxAttributesBytes.
func measured(errs Errors, field []string, subject string, v any) Errors {
	var m jsonMeasure
	if err := m.value(v); err != nil {
		var r numericRangeError
		if errors.As(err, &r) {
			return append(errs, Errorf(CodeTooLong, field, "%s: the number %s has an exponent beyond what PostgreSQL's numeric takes (%d to %d)",
				subject, QuoteInput(string(r)), -maxNumericExponent, maxNumericExponent))
		}
		return append(errs, Errorf(CodeInvalid, field, "%s: not valid JSON: %v", subject, err))
	}
	switch {
	case m.nul:
		return append(errs, Errorf(CodeInvalid, field, "%s: a NUL character, which no attribute holds", subject))
	case m.size > MaxAttributesBytes:
		return append(errs, Errorf(CodeTooLong, field, "%s: %d bytes as JSON (numbers written out in full), the most a contact's attributes may take is %d", subject, m.size, MaxAttributesBytes))
	}
	return errs
}

// tooDeep returns the first name, in order, of the attributes whose value nests
// arrays and objects more than MaxAttributesDepth levels. 16 KB holds 8,000 nested
// arrays, which Go and PostgreSQL take, but Python's json module, as partners' exports
// read pages of contacts, raises RecursionError past about 1,000 levels of the whole
// answer, and other clients' readers have limits of their own (serde_json's is 128).
// Ten levels hold any record a contact's attribute is (a list of orders of items of
// options) with room to spare.
func tooDeep(attrs map[string]any) (string, bool) {
	var names []string
	for k, v := range attrs {
		if deeper(v, MaxAttributesDepth) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "", false
	}
	return slices.Min(names), true // the same name each time the input is sent
}

// deeper reports whether v nests arrays and objects more than levels deep, looking no
// deeper than that.
func deeper(v any, levels int) bool {
	switch v := v.(type) {
	case []any:
		if levels == 0 {
			return true
		}
		for _, e := range v {
			if deeper(e, levels-1) {
				return true
			}
		}
	case map[string]any:
		if levels == 0 {
			return true
		}
		for _, e := range v {
			if deeper(e, levels-1) {
				return true
			}
		}
	}
	return false
}

// jsonMeasure measures a decoded JSON value as jsonb writes it back.
type jsonMeasure struct {
	size int  // bytes as compact JSON
	nul  bool // whether a string or a name holds a NUL character
}

// maxExponent bounds the exponents of numbers measured: beyond it a number is counted
// as maxExponent digits, far over any size limit, without spelling it out.
const maxExponent = 1 << 20

// maxNumericExponent is the largest exponent PostgreSQL's numeric input takes, in
// either direction (INT_MAX/2 - 1: set_var_from_str refuses INT_MAX/2 and beyond with
// "value overflows numeric format", even for a zero).
const maxNumericExponent = math.MaxInt32/2 - 1

// numericRangeError is the number, as sent, that PostgreSQL's numeric refuses for its
// exponent alone. A zero written out is one digit whatever its exponent, so
// 0e1073741823 passed the size limit, and its refusal by PostgreSQL failed the whole
// request as an internal error.
type numericRangeError string

func (e numericRangeError) Error() string {
	return fmt.Sprintf("the exponent of %s is out of range", QuoteInput(string(e)))
}

func (m *jsonMeasure) value(v any) error {
	switch v := v.(type) {
	case nil:
		m.size += len("null")
	case bool:
		m.size += len(strconv.FormatBool(v))
	case string:
		m.text(v)
	case json.Number: // a request's variables
		n, err := numericLen(string(v))
		if err != nil {
			return err
		}
		m.size += n
	case float64: // a literal in the query
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return fmt.Errorf("the number %v is out of range", v)
		}
		n, _ := numericLen(strconv.FormatFloat(v, 'g', -1, 64))
		m.size += n
	case int64:
		m.size += len(strconv.FormatInt(v, 10))
	case int:
		m.size += len(strconv.Itoa(v))
	case map[string]any:
		m.size += len("{}") + max(len(v)-1, 0) // the braces and the commas
		for k, e := range v {
			m.text(k)
			m.size++ // the colon
			if err := m.value(e); err != nil {
				return err
			}
		}
	case []any:
		m.size += len("[]") + max(len(v)-1, 0)
		for _, e := range v {
			if err := m.value(e); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected %T", v)
	}
	return nil
}

// text counts s as a JSON string the way jsonb writes it: quoted, escaping only the
// quote, the backslash and control characters.
func (m *jsonMeasure) text(s string) {
	m.size += len(`""`) + len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			m.nul = true
			m.size += len(`\u0000`) - 1
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			m.size++
		case c < 0x20:
			m.size += len(`\u0000`) - 1
		}
	}
	if !utf8.ValidString(s) { // the decoder replaced bad bytes: count them as U+FFFD
		m.size += len(strings.ToValidUTF8(s, "\uFFFD")) - len(s)
	}
}

// numericLen is the length of the JSON number num as PostgreSQL's numeric writes it:
// in full, without an exponent, keeping the digits after the point that num gives
// (1.50e1 is 15.0, 1e3 is 1000, 1e-3 is 0.001). A number whose exponent PostgreSQL
// refuses is a numericRangeError.
func numericLen(num string) (int, error) {
	sent := num
	// Made only when needed: every number of every contact's attributes passes here.
	bad := func() error { return fmt.Errorf("%s is not a JSON number", QuoteInput(sent)) }
	num, negative := strings.CutPrefix(num, "-")
	mantissa, exp, hasExp := strings.Cut(strings.ToLower(num), "e")
	whole, frac, _ := strings.Cut(mantissa, ".")
	if whole == "" || !digitsOnly(whole) || !digitsOnly(frac) {
		return 0, bad()
	}
	e := 0
	if hasExp {
		digits := strings.TrimLeft(exp, "+-")
		if digits == "" || !digitsOnly(digits) || len(exp)-len(digits) > 1 {
			return 0, bad()
		}
		// Leading zeros do not count: 1e0000002 is 100 (it was measured as
		// maxExponent digits).
		digits = strings.TrimLeft(digits, "0")
		if len(digits) > len(strconv.Itoa(maxNumericExponent)) {
			return 0, numericRangeError(sent)
		}
		e, _ = strconv.Atoi(digits) // 0 for ""
		if e > maxNumericExponent {
			return 0, numericRangeError(sent)
		}
		e = min(e, maxExponent)
		if strings.HasPrefix(exp, "-") {
			e = -e
		}
	}
	// The value is digits × 10^(e - len(frac)), digits without leading zeros.
	digits := strings.TrimLeft(whole+frac, "0")
	scale := max(len(frac)-e, 0) // digits after the point
	wholeDigits := max(len(digits)+e-len(frac), 1)
	if digits == "" { // zero
		wholeDigits = 1
	}
	n := wholeDigits
	if scale > 0 {
		n += 1 + scale
	}
	if negative && digits != "" { // zero has no sign
		n++
	}
	return n, nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
