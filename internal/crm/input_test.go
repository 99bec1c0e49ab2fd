package crm_test

import (
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
)

// TestTextsTrimWhatCannotBeSeen: names and descriptions lose white space and
// invisible format characters at their ends (a name of nothing else is blank), and
// names are one line. A zero-width space made "VIP Users" another name beside it, a
// name of zero-width spaces alone was accepted, and a name with a tab could not be
// found by its own text. Flags and emoji sequences at the end keep their parts.
func TestTextsTrimWhatCannotBeSeen(t *testing.T) {
	for in, want := range map[string]string{
		"\u200bVIP Users\u200b\ufeff": "VIP Users",
		" \u00a0Gold\u200d\u2060 ":    "Gold",
		"Tab\tSeg":                    "Tab Seg",
		"Two\r\nlines\u2028three":     "Two lines three",
		"in\u200bside stays":          "in\u200bside stays",
		"Team 🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F": "Team 🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F",
		"Family 👨\u200d👩\u200d👧":                                             "Family 👨\u200d👩\u200d👧",
	} {
		s := crm.NewSegment{Name: in}
		if err := s.Normalize(); err != nil || s.Name != want {
			t.Errorf("segment name %q: %q, %v; want %q", in, s.Name, err, want)
		}
		c := crm.ContactInput{Phone: "+919876543210", ContactDetails: crm.ContactDetails{Name: crm.Some(&in)}}
		if err := c.Normalize(); err != nil || c.Name.Value == nil || *c.Name.Value != want {
			t.Errorf("contact name %q: %v, %v; want %q", in, c.Name.Value, err, want)
		}
	}
	for _, blank := range []string{"\u200b", "\ufeff\u200b \u200e", "\t\n", "\u3164\u3164", "\u2800"} {
		s := crm.NewSegment{Name: blank}
		if errs := crm.UserErrors(s.Normalize()); len(errs) != 1 || errs[0].Code != crm.CodeBlank {
			t.Errorf("segment name %q: %v, want BLANK", blank, errs)
		}
	}
	desc := " Buyers of\nthe festival season\u200b"
	s := crm.NewSegment{Name: "Festival", Description: &desc}
	if err := s.Normalize(); err != nil || *s.Description != "Buyers of\nthe festival season" {
		t.Errorf("description: %q, %v; want its line break kept", *s.Description, err)
	}
	term := "Tab\tSeg\u200b"
	if got, err := crm.NormalizeSearch(&term); err != nil || got != "Tab Seg" {
		t.Errorf("search %q: %q, %v", term, got, err)
	}
}

// TestPhonesInInternationalFormat: a phone is taken in any international format and
// stored in E.164 form; one without a country code, or with an extension, is refused.
// The invisible marks WhatsApp wraps a copied number in, a fullwidth plus and a
// parenthesis before the country code were refused as having no country code, digits
// of Devanagari, Bengali and other scripts libphonenumber does not know, and narrow
// no-break spaces as no valid number, and an extension was dropped, which made two
// people behind one switchboard one contact.
func TestPhonesInInternationalFormat(t *testing.T) {
	for _, raw := range []string{
		"+91 98765 43210", "0091-98765-43210", " +919876543210 ", "+91.98765.43210",
		"\u202a+91 98765 43210\u202c", "\u200e+919876543210", "\ufeff+919876543210",
		"＋919876543210", "００91 98765 43210", "(+91) 98765 43210", "(0091) 98765 43210",
		"+９１９８７６５４３２１０", "+٩١٩٨٧٦٥٤٣٢١٠", "+91 ९८७६५ ४३२१०", "+৯১ ৯৮৭৬৫ ৪৩২১০", "+𝟗𝟏𝟗𝟖𝟕𝟔𝟓𝟒𝟑𝟐𝟏𝟎",
		"+91\u202f98765\u202f43210", "+91\u201198765\u201343210", "००91 98765 43210",
	} {
		if got, err := crm.NormalizePhone(raw); err != nil || got != "+919876543210" {
			t.Errorf("NormalizePhone(%q) = %q, %v; want +919876543210", raw, got, err)
		}
	}
	for raw, want := range map[string]string{
		"98765 43210":                      "no country code",
		"0 91 98765 43210":                 "no country code",
		"+44 20 7946 0900 ext. 12":         "extension",
		"+91 98765 43210 x12":              "extension",
		"+91 98765 43210;ext=5":            "extension",
		"+91 98765 43210 #12":              "extension",
		"+999 1234567":                     "not a valid phone number",
		"+91 " + strings.Repeat("9", 5000): "not a valid phone number",
	} {
		_, err := crm.NormalizePhone(raw)
		if errs := crm.UserErrors(err); len(errs) != 1 || errs[0].Code != crm.CodeInvalid || !strings.Contains(errs[0].Message, want) {
			t.Errorf("NormalizePhone(%.40q): %.200v; want INVALID saying %q", raw, err, want)
		} else if len(errs[0].Message) > 200 {
			t.Errorf("NormalizePhone(%.40q): a message of %d bytes, want the phone shortened", raw, len(errs[0].Message))
		}
	}
	if _, err := crm.NormalizePhone("\u200b"); err == nil || !strings.Contains(err.Error(), "blank") {
		t.Errorf("a phone of an invisible character: %v, want blank", err)
	}
}

// TestTextsComposed: names, descriptions and search terms are kept composed (NFC), so
// that "Café" typed with a combining accent is the name "Café", and is counted as 4
// characters. It was another segment's name beside "Café", looking the same, and a
// search in one form did not find the other.
func TestTextsComposed(t *testing.T) {
	desc := "Cre\u0300me bru\u0302le\u0301e"
	s := crm.NewSegment{Name: "Cafe\u0301 Buyers", Description: &desc}
	if err := s.Normalize(); err != nil || s.Name != "Café Buyers" || *s.Description != "Crème brûlée" {
		t.Errorf("segment: %q, %q, %v; want composed", s.Name, *s.Description, err)
	}
	long := crm.NewSegment{Name: strings.Repeat("e\u0301", crm.MaxSegmentName)}
	if err := long.Normalize(); err != nil {
		t.Errorf("a name of %d accented letters, written decomposed: %v", crm.MaxSegmentName, err)
	}
	term := "cafe\u0301"
	if got, err := crm.NormalizeSearch(&term); err != nil || got != "café" {
		t.Errorf("search %q: %q, %v; want composed", term, got, err)
	}
}
