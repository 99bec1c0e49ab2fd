package crm_test

import (
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
)

// TestWorkspaceNames: a workspace's name is trimmed and composed as a segment's,
// one line of printable text of at most MaxWorkspaceName characters, and not spelled
// as a workspace's ID. Names with line breaks, escape sequences and 100,000
// characters were stored, and broke the listings that show them; a workspace named
// "W_AQ" hid workspace W_AQ from the commands that take either.
func TestWorkspaceNames(t *testing.T) {
	for in, want := range map[string]string{
		" Acme Retail\n":               "Acme Retail",
		"\u200bCafe\u0301\u202e":       "Café",
		"Family 👨\u200d👩\u200d👧":       "Family 👨\u200d👩\u200d👧",
		"می\u200cخواهم":                "می\u200cخواهم", // a zero-width non-joiner is part of the word
		"w_AQ":                         "w_AQ",
		"W_AQ Retail":                  "W_AQ Retail",
		"S_AQ":                         "S_AQ", // no workspace's ID
		strings.Repeat("é", 200):       strings.Repeat("é", 200),
		strings.Repeat("e\u0301", 200): strings.Repeat("é", 200),
	} {
		got, err := crm.NormalizeWorkspaceName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeWorkspaceName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, code := range map[string]crm.Code{
		"":                          crm.CodeBlank,
		" \u200b\t":                 crm.CodeBlank,
		"line1\nline2":              crm.CodeInvalid,
		"tab\there":                 crm.CodeInvalid,
		"bell\a":                    crm.CodeInvalid,
		"clear\x1b[2J screen":       crm.CodeInvalid,
		"del\x7f":                   crm.CodeInvalid,
		"c1\u0085next line":         crm.CodeInvalid,
		"line\u2028separator":       crm.CodeInvalid,
		"abc\u202edcba":             crm.CodeInvalid,
		"isolate\u2067x\u2069":      crm.CodeInvalid,
		"nul\x00":                   crm.CodeInvalid,
		"bad \xff UTF-8":            crm.CodeInvalid,
		"W_AQ":                      crm.CodeInvalid,
		" W_Aw\u200b":               crm.CodeInvalid,
		strings.Repeat("n", 201):    crm.CodeTooLong,
		strings.Repeat("n", 100000): crm.CodeTooLong,
	} {
		got, err := crm.NormalizeWorkspaceName(in)
		if errs := crm.UserErrors(err); len(errs) != 1 || errs[0].Code != code || got != "" {
			t.Errorf("NormalizeWorkspaceName(%s) = %q, %v; want %s", crm.QuoteInput(in), got, err, code)
		}
	}
	_, err := crm.NormalizeWorkspaceName("a\x1b[2Jb")
	if err == nil || strings.ContainsRune(err.Error(), '\x1b') || !strings.Contains(err.Error(), "U+001B (character 2)") {
		t.Errorf("the error of an escape does not say where it is, or holds it: %q", err)
	}
}

// TestKeyNames: an API key's name is checked as a workspace's, but may be blank or
// spelled as an ID.
func TestKeyNames(t *testing.T) {
	for in, want := range map[string]string{"": "", " \t": "", " BI export ": "BI export", "W_AQ": "W_AQ"} {
		if got, err := crm.NormalizeKeyName(in); err != nil || got != want {
			t.Errorf("NormalizeKeyName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, code := range map[string]crm.Code{
		"line1\n99  fake  seg_FAKE00  read_write": crm.CodeInvalid,
		"a\tb":                   crm.CodeInvalid,
		"\x1b[2J":                crm.CodeInvalid,
		"abc\u202edcba":          crm.CodeInvalid,
		strings.Repeat("n", 201): crm.CodeTooLong,
	} {
		if _, err := crm.NormalizeKeyName(in); len(crm.UserErrors(err)) != 1 || crm.UserErrors(err)[0].Code != code {
			t.Errorf("NormalizeKeyName(%q) = %v, want %s", in, err, code)
		}
	}
}
