package crm

import (
	"unicode"
	"unicode/utf8"

	"github.com/segments/segments/internal/globalid"
)

// NormalizeWorkspaceName returns a workspace's name as it is kept, or an *Error
// whose message says which text it is about (it has no field: the name is no input
// of the API): trimmed and composed as a segment's name is, 1 to MaxWorkspaceName
// characters of one line of printable text (see labelText), and not spelled as a
// workspace's ID. The commands take a workspace by its ID or its name: a workspace
// named "W_AQ" could not be told from workspace W_AQ.
func NormalizeWorkspaceName(name string) (string, error) {
	name, err := labelText("a workspace's name", name, MaxWorkspaceName)
	if err != nil {
		return "", err
	}
	if name == "" {
		return "", Errorf(CodeBlank, nil, "a workspace's name cannot be blank")
	}
	if _, err := globalid.DecodeAs(globalid.Workspace, name); err == nil {
		return "", Errorf(CodeInvalid, nil, "a workspace's name cannot be spelled as a workspace's ID, as %q is: commands that take a workspace by its ID or its name could not tell them apart", name)
	}
	return name, nil
}

// WorkspaceNameText is name, a workspace's name as an operator types it to a
// command, in the form names are kept (NormalizeWorkspaceName): trimmed and composed
// (NFC), without the checks of a new name. "Cafe\u0301 Ltd", typed with a combining
// accent as some keyboards and pasted text write it, is the name "Café Ltd".
func WorkspaceNameText(name string) string {
	return normalText(name)
}

// NormalizeKeyName returns an API key's name as it is kept, or an *Error: checked as
// a workspace's is, at most MaxKeyName characters, but blank is allowed (a key need
// not have a name) and so is the shape of an ID.
func NormalizeKeyName(name string) (string, error) {
	return labelText("an API key's name", name, MaxKeyName)
}

// labelText is s, a name shown to operators in listings and logs, trimmed and
// composed (normalText), or an *Error if it is not valid UTF-8, is longer than max
// characters, or has a control character (labelControl): a line break or a tab in
// it broke a listing's rows and columns (a name could fake a row), and an escape
// sequence acted on the operator's terminal. what names the text in the messages.
func labelText(what, s string, max int) (string, error) {
	if !utf8.ValidString(s) {
		return "", Errorf(CodeInvalid, nil, "%s is not valid UTF-8", what)
	}
	s = normalText(s)
	if n := utf8.RuneCountInString(s); n > max {
		return "", Errorf(CodeTooLong, nil, "%s is %d characters long, the maximum is %d", what, n, max)
	}
	if err := controlError(nil, what, s, nil, "a name is one line of printable text"); err != nil {
		return "", err
	}
	return s, nil
}

// controlError is the INVALID error at field of s, a text people read, if it has a
// character that labelControl refuses and kept (nil: none) does not allow; else nil.
// The message says which character and where, without holding it (it would act on
// the terminal that shows the error), then why, what is allowed.
func controlError(field []string, what, s string, kept func(rune) bool, why string) *Error {
	i := 0
	for _, r := range s {
		i++
		if !labelControl(r) || kept != nil && kept(r) {
			continue
		}
		kind := "a control character"
		if bidiControl(r) {
			kind = "a bidi control, which reorders the text after it"
		}
		return Errorf(CodeInvalid, field, "%s cannot contain %U (character %d), %s: %s", what, r, i, kind, why)
	}
	return nil
}

// labelControl reports whether r may not be in a name (labelText) or in any text
// people read (checkText): a control character (C0, DEL, C1: line breaks, tabs, BEL,
// ESC), the line and paragraph separators, or a bidi control (bidiControl). Other
// format characters stay: the zero-width joiner and non-joiner are parts of emoji
// and of words in several scripts.
func labelControl(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028', r == '\u2029':
		return true
	}
	return bidiControl(r)
}

// bidiControl reports whether r is a bidi embedding, override or isolate, which
// reorders how the text after it is shown ("Trojan Source": a name that reads as
// another, or that reverses the columns after it). The marks (LRM, RLM, ALM) are
// not: they change only the direction of the characters beside them.
func bidiControl(r rune) bool {
	return r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069'
}
