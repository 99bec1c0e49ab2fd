package crm

import (
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Optional is a value that may be absent from an input, as distinct from present and
// empty: an update changes only the fields that are Set.
type Optional[T any] struct {
	Value T
	Set   bool
}

// Some returns an Optional holding v.
func Some[T any](v T) Optional[T] { return Optional[T]{Value: v, Set: true} }

// NewSegment is the input that creates a segment, optionally with its first members.
type NewSegment struct {
	Name        string
	Description *string
	ContactIDs  []int64
}

// Normalize trims the texts and checks every rule, reporting all problems at once.
func (s *NewSegment) Normalize() error {
	var errs Errors
	s.Name, errs = requiredText(errs, Path("name"), nameText(s.Name), MaxSegmentName, nameRule)
	s.Description, errs = optionalText(errs, Path("description"), s.Description, MaxDescription, descriptionRule)
	errs = checkCount(errs, Path("contactIds"), len(s.ContactIDs), MaxBulkContacts)
	return errs.Err()
}

// SegmentPatch changes the fields of a segment that are Set. A Set Description of nil
// clears it; a Set Name must not be nil.
type SegmentPatch struct {
	Name        Optional[*string]
	Description Optional[*string]
}

// NormalizeSegmentName returns name as a segment stores it (NewSegment.Normalize),
// to look a segment up by its name, or the error that creating one would give.
func NormalizeSegmentName(name string) (string, error) {
	s := NewSegment{Name: name}
	err := s.Normalize()
	return s.Name, err
}

// Normalize trims the texts and checks every rule, reporting all problems at once.
func (p *SegmentPatch) Normalize() error {
	var errs Errors
	if p.Name.Set {
		if p.Name.Value == nil {
			errs = append(errs, Errorf(CodeBlank, Path("name"), "name cannot be null"))
		} else {
			var name string
			name, errs = requiredText(errs, Path("name"), nameText(*p.Name.Value), MaxSegmentName, nameRule)
			p.Name.Value = &name
		}
	}
	if p.Description.Set {
		p.Description.Value, errs = optionalText(errs, Path("description"), p.Description.Value, MaxDescription, descriptionRule)
	}
	return errs.Err()
}

// ContactInput is one contact of a bulk upsert, matched to an existing contact by its
// phone number. Fields that are not Set keep their stored values (or stay empty for a
// new contact). Attributes are merged key by key into the stored ones; a key set to
// null is removed, and Attributes Set to a nil map removes them all.
//
// AddToSegments are the IDs of segments to add the contact to, in the upsert's
// transaction (a contact already in one stays as it is); they are not normalized, and
// checked by the store, which reports each that names no segment at its index.
type ContactInput struct {
	Phone string
	ContactDetails
	AddToSegments []int64
}

// CheckUpsertMemberships checks the sizes of the entries' AddToSegments: at most
// MaxBulkSegments in each entry (TOO_MANY at contacts.i.addToSegmentIds), and
// MaxUpsertMemberships in all of them (TOO_MANY at contacts), repeats included.
func CheckUpsertMemberships(in []ContactInput) error {
	var errs Errors
	total := 0
	for i, c := range in {
		errs = checkCount(errs, Path("contacts", i, "addToSegmentIds"), len(c.AddToSegments), MaxBulkSegments)
		total += len(c.AddToSegments)
	}
	if total > MaxUpsertMemberships {
		errs = append(errs, Errorf(CodeTooMany, Path("contacts"),
			"%d segment IDs given in addToSegmentIds, the maximum in one call is %d: send fewer contacts at a time", total, MaxUpsertMemberships))
	}
	return errs.Err()
}

// ContactDetails are the fields of a contact besides its phone.
type ContactDetails struct {
	Name       Optional[*string]
	Email      Optional[*string]
	Attributes Optional[map[string]any]
}

// Normalize brings the phone into E.164, trims the texts and checks every rule.
// Problems are reported with fields relative to the contact.
func (c *ContactInput) Normalize() error {
	var errs Errors
	c.Phone, errs = phone(errs, Path("phone"), c.Phone)
	errs = c.normalizeDetails(errs)
	return errs.Err()
}

// NormalizeKnown is Normalize for a contact whose phone, exactly as given, a contact
// of its workspace has. Stored phones are in E.164 and were checked against their
// numbering plans when stored: the phone is the contact's even if the plans have
// changed since, so only the other fields are checked.
func (c *ContactInput) NormalizeKnown() error {
	return c.normalizeDetails(nil).Err()
}

func (c *ContactDetails) normalizeDetails(errs Errors) Errors {
	if c.Name.Set {
		if c.Name.Value != nil {
			name := contactNameText(*c.Name.Value)
			c.Name.Value = &name
		}
		c.Name.Value, errs = optionalText(errs, Path("name"), c.Name.Value, MaxContactName, nameRule)
	}
	if c.Email.Set {
		c.Email.Value, errs = email(errs, Path("email"), c.Email.Value)
	}
	if c.Attributes.Set && c.Attributes.Value != nil {
		errs = attributes(errs, Path("attributes"), c.Attributes.Value)
	}
	return errs
}

// ContactPatch changes the fields of one contact that are Set, with the same rules as
// ContactInput; the phone may change too.
type ContactPatch struct {
	Phone Optional[*string]
	ContactDetails
}

// Normalize brings the phone into E.164, trims the texts and checks every rule.
func (p *ContactPatch) Normalize() error {
	var errs Errors
	if p.Phone.Set {
		if p.Phone.Value == nil {
			errs = append(errs, Errorf(CodeBlank, Path("phone"), "phone cannot be null"))
		} else {
			var e164 string
			e164, errs = phone(errs, Path("phone"), *p.Phone.Value)
			p.Phone.Value = &e164
		}
	}
	errs = p.normalizeDetails(errs)
	return errs.Err()
}

// NormalizePhone returns the E.164 form of a phone number written in international
// format ("+91 98765 43210", "0091-98765-43210"). Numbers without a country code are
// refused: the API cannot guess the country.
func NormalizePhone(raw string) (string, error) {
	return NormalizePhoneAt(Path("phone"), raw)
}

// NormalizePhoneAt is NormalizePhone for the phone at field of a lookup's list
// (["phones", "3"]), which its refusal names.
func NormalizePhoneAt(field []string, raw string) (string, error) {
	e164, errs := phone(nil, field, raw)
	return e164, errs.Err()
}

// ContactsGivenTwice is the problem of an input that gives its contacts both by
// contactIds and by contactsMatching, which exclude each other: the bulk changes of
// memberships and createSegment.
func ContactsGivenTwice() *Error {
	return Errorf(CodeInvalid, Path("contactsMatching"), "give the contacts by contactIds or by contactsMatching, not both")
}

// CheckBulk checks the sizes of the ID lists of a bulk membership change.
func CheckBulk(contacts, segments int) error {
	var errs Errors
	errs = checkCount(errs, Path("contactIds"), contacts, MaxBulkContacts)
	errs = checkCount(errs, Path("segmentIds"), segments, MaxBulkSegments)
	return errs.Err()
}

// CheckCount checks that a list given as field has at most max elements.
func CheckCount(field string, n, max int) error {
	return checkCount(nil, Path(field), n, max).Err()
}

// NormalizeSearch trims a search term and checks its length. An empty result means
// "no search". The term's characters are read as names keep theirs (nameText): line
// breaks, tabs and other spaces are plain spaces, and zero-width characters are
// dropped, so "holi\u00a0buyers" and "diwali\u200bbuyers" are the terms a name would
// be. The rest of the folding (case, accents, width) is PostgreSQL's, on both the
// term and the searched text (migration 20261216000005_search_folds_text). A term
// that the folding would leave nothing of but spaces (SearchFoldsAway) is no search
// too, as a blank one: its pattern matched every contact, or every one with a space.
func NormalizeSearch(s *string) (string, error) {
	if s == nil {
		return "", nil
	}
	// Line breaks and tabs inside a term count as spaces; they separate the fields
	// of the searched text.
	term := normalText(nameText(*s))
	if n := utf8.RuneCountInString(term); n > MaxSearchLength {
		return "", Errorf(CodeTooLong, Path("search"), "search is %d characters long, the maximum is %d", n, MaxSearchLength)
	}
	if strings.ContainsRune(term, 0) {
		return "", Errorf(CodeInvalid, Path("search"), "search contains a NUL character")
	}
	if SearchFoldsAway(term) {
		return "", nil
	}
	return term, nil
}

// SearchFoldsAway reports whether the searches' folding (segments_search_fold,
// migration 20261216000005_search_folds_text) leaves nothing of term but spaces: whether
// each character of its compatibility decomposition (NFKD, as the folding's first
// step) is a space or one of those the folding removes (foldedAway). A lone
// combining accent (U+0301), tatweels ("ـــ"), an Arabic or Hebrew vowel sign, or a
// spacing accent such as ´ (a space and U+0301) are such terms. A test holds it to
// the SQL function over every code point, both ways.
func SearchFoldsAway(term string) bool {
	for i := 0; i < len(term); i++ {
		if term[i] < utf8.RuneSelf && term[i] != ' ' {
			return false // an ASCII character the folding keeps, as most terms begin
		}
	}
	for _, r := range norm.NFKD.String(term) {
		if r != ' ' && !foldedAway(r) {
			return false
		}
	}
	return true
}

// foldedAway reports whether segments_search_fold removes r once it has decomposed
// its text, or makes it a space: the character class of its regexp_replace(), and
// U+1680 (the one space NFKD keeps). Keep the two the same (TestSearchFoldsAway).
func foldedAway(r rune) bool {
	switch {
	case 0x0300 <= r && r <= 0x036F, // combining diacritics of Latin, Greek, Cyrillic
		0x0591 <= r && r <= 0x05BD, r == 0x05BF, r == 0x05C1, r == 0x05C2, // Hebrew points
		r == 0x05C4, r == 0x05C5, r == 0x05C7, // and cantillation
		r == 0x0640, 0x064B <= r && r <= 0x065F, r == 0x0670, // tatweel, tashkeel
		r == 0x00AD, r == 0x115F, r == 0x1160, r == 0x180E, r == 0x200B, // zero-width
		0x2060 <= r && r <= 0x2064, r == 0xFEFF,
		r == 0x1680: // the Ogham space mark, made a space
		return true
	}
	return false
}

func checkCount(errs Errors, field []string, n, max int) Errors {
	if n > max {
		errs = append(errs, Errorf(CodeTooMany, field, "%d elements given, the maximum is %d", n, max))
	}
	return errs
}

func requiredText(errs Errors, field []string, s string, max int, rule textRule) (string, Errors) {
	s = normalText(s)
	if s == "" {
		return s, append(errs, Errorf(CodeBlank, field, "%s cannot be blank", field[len(field)-1]))
	}
	return s, checkText(errs, field, s, max, rule)
}

// trimText trims what cannot be seen from both ends of s: white space, format
// characters such as zero-width spaces and joiners, the byte order mark and bidi
// marks, and the blank letters used as blank names (Hangul fillers, the blank
// braille pattern). A name of them alone is blank, and "VIP Users" followed by a
// zero-width space is the name "VIP Users" (it was another name, beside it).
func trimText(s string) string {
	return strings.TrimFunc(s, invisible)
}

// normalText is s trimmed (trimText) and composed (Unicode's NFC), as names,
// descriptions, emails and search terms are kept and compared: "Café" typed with a
// combining accent (as some keyboards and pasted text write it) is the name "Café",
// not a second segment that looks the same, and a search finds it either way.
func normalText(s string) string {
	s = trimText(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf { // ASCII is composed already (and IsNormalString allocates)
			return norm.NFC.String(s)
		}
	}
	return s
}

func invisible(r rune) bool {
	switch {
	case unicode.IsSpace(r):
		return true
	case r >= 0xE0000 && r <= 0xE007F:
		// Tags: format characters, but the end of a flag such as England's (🏴 and
		// the tags of "gbeng"), which trimming them turned into a black flag.
		return false
	case unicode.Is(unicode.Cf, r):
		return true
	}
	switch r {
	case '\u115F', '\u1160', '\u3164', '\uFFA0', '\u2800':
		return true
	}
	return false
}

// oneLine is a name as one line: its line breaks (CRLF as one) and tabs become
// spaces. Searches read them so (NormalizeSearch), since they separate the fields
// of the searched text: a name that kept them could not be found by its own text.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if lineBreakOrTab(r) {
			return ' '
		}
		return r
	}, strings.ReplaceAll(s, "\r\n", "\n"))
}

// lineBreakOrTab reports whether r breaks a line or is a tab: a name holds it as a
// space (oneLine), and a description keeps it (descriptionRule).
func lineBreakOrTab(r rune) bool {
	switch r {
	case '\n', '\r', '\t', '\v', '\f', '\u0085', '\u2028', '\u2029':
		return true
	}
	return false
}

// nameText is s, a segment's or a contact's name, as one line (oneLine) and without
// the characters inside it that show nothing and join or modify nothing (zeroWidth,
// meaningless): trimming removes them only at the ends, and "VIP\u200bUsers" looked
// exactly like "VIPUsers" yet was another segment's name beside it.
func nameText(s string) string {
	s = oneLine(s)
	var b strings.Builder
	b.Grow(len(s))
	prev := rune(-1) // the last character kept: what a selector after it would modify
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == flagBase {
			if n := tagSequence(s[i+size:]); n > 0 {
				// A flag of tags, England's: its tags are its letters.
				b.WriteString(s[i : i+size+n])
				i, prev = i+size+n, tagEnd
				continue
			}
		}
		i += size
		switch {
		case zeroWidth(r), meaningless(r, prev):
			continue
		case r != ' ' && unicode.Is(unicode.Zs, r):
			// A no-break, ideographic or other wide space shows as a space:
			// "VIP\u00a0Users" was another segment beside "VIP Users".
			r = ' '
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// zeroWidth reports whether r is invisible inside a name and holds nothing a reader
// or a script needs: the zero-width space, the word joiner and the invisible
// operators after it, the byte order mark (the old zero-width no-break space), the
// soft hyphen (shown only where a line breaks, and a name is one line), the
// combining grapheme joiner, the Mongolian vowel separator and the Hangul fillers
// (blank letters). Each made "VIP" and "Users" around it a second segment that looks
// like "VIPUsers". The zero-width joiner and non-joiner are not: they are parts of
// emoji ("👨\u200d👩\u200d👧") and of words in Persian and Indic scripts, whose
// letters they shape; nor are the left-to-right and right-to-left marks, which text
// mixing scripts of both directions needs. Variation selectors and tags are kept
// where they modify or spell something (meaningless).
func zeroWidth(r rune) bool {
	switch r {
	case '\u200B', '\u2060', '\u2061', '\u2062', '\u2063', '\u2064', '\uFEFF', '\u00AD',
		'\u034F', '\u180E', '\u115F', '\u1160', '\u3164', '\uFFA0':
		return true
	}
	return false
}

// The parts of an emoji tag sequence (Unicode's UTS #51): the black flag, then tags
// spelling a region ("gbeng", England), then the cancel tag.
const (
	flagBase = '\U0001F3F4'
	tagEnd   = '\U000E007F'
)

// tagSequence returns the length in bytes of the tags and cancel tag that start s
// and end an emoji tag sequence, or 0 if s does not start with one.
func tagSequence(s string) int {
	for i, r := range s {
		switch {
		case r >= '\U000E0020' && r <= '\U000E007E':
		case r == tagEnd && i > 0:
			return i + utf8.RuneLen(r)
		default:
			return 0
		}
	}
	return 0
}

// meaningless reports whether r, after prev (the last character of the name kept, -1
// at its start), shows nothing and modifies nothing. Each was a second segment that
// looks like the name without it ("VIP\U000E0020", "VIP\ufe0f"), or a name that
// shows as nothing and was not blank ("\ufe0f", "\U000E0041"):
//   - a tag outside an emoji tag sequence (nameText keeps those), and the other
//     characters of the tags' plane that no selector is, which Unicode reserves as
//     invisible whatever it assigns there, as it does U+2065 and U+FFF0–FFF8;
//   - a variation selector after a character it selects no variant of (variantBase),
//     and a Mongolian free variation selector after anything but a Mongolian letter;
//   - the deprecated invisible format characters U+206A–206F and Khmer vowels
//     U+17B4–17B5, which Unicode advises against using at all.
//
// Unassigned code points are kept: Go's tables (unicode.Version, 15.0 in Go 1.26)
// are behind Unicode's, which has assigned thousands of characters since, new emoji
// and the Saudi riyal sign among them; refusing them by an old table would refuse
// names people write, and which names are valid would change with Go's version.
// Those of them Unicode reserves as invisible are dropped above.
func meaningless(r, prev rune) bool {
	switch {
	case r >= '\uFE00' && r <= '\uFE0F':
		return !variantBase(prev)
	case r >= '\U000E0100' && r <= '\U000E01EF':
		// Ideographic variation sequences (Unicode's IVD): all of Han ideographs.
		return !unicode.Is(unicode.Han, prev)
	case r >= '\u180B' && r <= '\u180F' && r != '\u180E':
		return !(unicode.Is(unicode.Mongolian, prev) && unicode.IsLetter(prev))
	case r >= '\U000E0000' && r <= '\U000E0FFF', r == '\u2065', r >= '\uFFF0' && r <= '\uFFF8':
		return true
	case r >= '\u206A' && r <= '\u206F', r == '\u17B4', r == '\u17B5':
		return true
	}
	return false
}

// variantBase reports whether a variation selector after r may select one of its
// variants: r is a symbol (an emoji's text or emoji style, ❤️; a mathematical
// symbol's), a digit or # or * (keycaps, 1️⃣, and the slashed zero), one of the five
// other characters with an emoji style (‼ ⁉ ℹ 〰 〽), or a character of the scripts
// whose variants Unicode standardizes (Han, Myanmar, Phags-pa, Manichaean, Egyptian
// hieroglyphs). No variation sequence has another base: after a Latin letter, a
// space, a mark or another selector, one shows nothing.
func variantBase(r rune) bool {
	switch r {
	case '#', '*', '\u203C', '\u2049', '\u2139', '\u3030', '\u303D':
		return true
	}
	if r < utf8.RuneSelf {
		return r >= '0' && r <= '9'
	}
	return unicode.IsSymbol(r) ||
		unicode.In(r, unicode.Han, unicode.Myanmar, unicode.Phags_Pa, unicode.Manichaean, unicode.Egyptian_Hieroglyphs)
}

// contactNameText is a contact's name as nameText writes it, with its other control
// characters made spaces too, as its tabs are, and its bidi controls (bidiControl)
// removed, as they hold no letter. A segment's name with them is refused (nameRule);
// a contact's is cleaned instead, since partners sync contacts from phone books,
// where stray control characters are common, up to 1,000 at a time and all or
// nothing: one such name refused the other 999 entries, and a partner could do no
// better than clean it so itself. A contact's name is no key (two contacts may share
// one), so a name cleaned so passes for no other.
func contactNameText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case bidiControl(r):
			return -1
		case labelControl(r):
			return ' '
		}
		return r
	}, nameText(s))
}

// optionalText trims s; blank becomes nil, so an empty value and no value are the same.
func optionalText(errs Errors, field []string, s *string, max int, rule textRule) (*string, Errors) {
	if s == nil {
		return nil, errs
	}
	t := normalText(*s)
	if t == "" {
		return nil, errs
	}
	return &t, checkText(errs, field, t, max, rule)
}

// A textRule is which of the characters labelControl refuses a text may hold.
// Names and descriptions reach the dashboard, partners' CSV exports and the
// terminals these are read in, where an escape sequence acts (clears the screen,
// recolours the text after it) and a bidi control shows a name as another ("Trojan
// Source"), as with workspaces' names (labelText).
type textRule struct {
	kept func(rune) bool // which of them the text may hold; nil: none
	why  string          // what the text may hold, for the message of one it may not
}

var (
	// nameRule: one line of printable text, as a workspace's name.
	nameRule = textRule{why: "a name is one line of printable text"}
	// descriptionRule: printable text, with its line breaks and tabs, as stored since
	// the first version (a description is several lines).
	descriptionRule = textRule{kept: lineBreakOrTab, why: "a description is printable text, its line breaks and tabs aside"}
	// emailRule: an email address, whose syntax (net/mail) refuses the rest of what
	// an address may not hold but takes any other UTF-8 letter: a bidi override
	// ("a@b\u202e.co") is refused here, and the other format characters by email.
	emailRule = textRule{why: "an email address is printable text"}
)

// checkText appends the problem of s, if any: longer than max characters, a
// character rule refuses, or NUL (PostgreSQL's text cannot hold it).
func checkText(errs Errors, field []string, s string, max int, rule textRule) Errors {
	what := field[len(field)-1]
	if n := utf8.RuneCountInString(s); n > max {
		return append(errs, Errorf(CodeTooLong, field, "%s is %d characters long, the maximum is %d", what, n, max))
	}
	if err := controlError(field, what, s, rule.kept, rule.why); err != nil {
		return append(errs, err)
	}
	if strings.ContainsRune(s, 0) {
		return append(errs, Errorf(CodeInvalid, field, "%s contains a NUL character", what))
	}
	return errs
}

func phone(errs Errors, field []string, raw string) (string, Errors) {
	// "\u202a+91 98765 43210\u202c" is how WhatsApp copies a number; a phone may be
	// written in any script's digits, with any space or dash.
	s := PhoneText(trimText(raw))
	if s == "" {
		return "", append(errs, Errorf(CodeBlank, field, "phone cannot be blank"))
	}
	s, ok := internationalPrefix(s)
	if !ok {
		return raw, append(errs, Errorf(CodeInvalid, field, "phone %s has no country code: write it in international format, such as +919876543210", QuoteInput(raw)))
	}
	e164, err := e164(s)
	if err != nil {
		return raw, append(errs, Errorf(CodeInvalid, field, "phone %s %s", QuoteInput(raw), err))
	}
	return e164, errs
}

// PhoneText is s with what a phone number may be written in made ASCII: the digits
// of every script (Devanagari's, Arabic's, fullwidth ones), the fullwidth plus, every
// space (no-break, narrow) and dash (en, non-breaking hyphen). The rest is left as it
// is. libphonenumber knows only some scripts' digits and some spaces; the API takes a
// phone however its digits and separators are written, and so does the search.
func PhoneText(s string) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < utf8.RuneSelf
	}
	if ascii {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r < utf8.RuneSelf:
			return r
		case r == '＋':
			return '+'
		case unicode.IsSpace(r), unicode.Is(unicode.Zs, r):
			return ' '
		case unicode.Is(unicode.Pd, r):
			return '-'
		}
		if d, ok := digitValue(r); ok {
			return '0' + rune(d)
		}
		return r
	}, s)
}

// digitValue is the value of the decimal digit r, of any script. Unicode encodes each
// script's digits in a run from 0 to 9 (Nd), so a digit's value is its distance from
// the start of its run.
func digitValue(r rune) (int, bool) {
	if !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	for _, rg := range unicode.Nd.R16 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	return 0, false
}

// internationalPrefix returns phone (as PhoneText writes it) with "+" for the
// international prefix it starts with, "+" or "00", after any opening parentheses
// ("(+91) 98765 43210"); false if it starts with neither, since the country cannot be
// guessed.
func internationalPrefix(phone string) (string, bool) {
	s := strings.TrimLeft(phone, "([ ")
	if strings.HasPrefix(s, "+") {
		return s, true
	}
	if rest, ok := strings.CutPrefix(s, "00"); ok {
		return "+" + rest, true
	}
	return phone, false
}

// QuoteInput quotes a client's text for an error message, shortened to its first 40
// characters: a message need not repeat 10 kB the client sent.
func QuoteInput(s string) string {
	const most = 40
	if utf8.RuneCountInString(s) <= most {
		return strconv.Quote(s)
	}
	i := 0
	for n := 0; n < most; n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return strconv.Quote(s[:i]) + "…"
}

func email(errs Errors, field []string, s *string) (*string, Errors) {
	n := len(errs)
	t, errs := optionalText(errs, field, s, MaxEmail, emailRule)
	if t == nil || len(errs) > n {
		return t, errs
	}
	for i, r := range []rune(*t) {
		if invisible(r) || zeroWidth(r) {
			// Invisible (a zero-width space, a left-to-right mark, a no-break space, a
			// blank letter): an address that looks like another, or like one with a
			// space, which net/mail refuses only as ASCII.
			return t, append(errs, Errorf(CodeInvalid, field, "email cannot contain %U (character %d), an invisible character or a space", r, i+1))
		}
	}
	addr, err := mail.ParseAddress(*t)
	if err != nil || addr.Address != *t || addr.Name != "" {
		return t, append(errs, Errorf(CodeInvalid, field, "email %s is not a valid email address", QuoteInput(*t)))
	}
	return t, errs
}
