package crm

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// Phones are checked against their numbering plans with libphonenumber's metadata.
// libphonenumber's own Parse and IsValidNumber take about 21 µs a phone on this
// machine, nearly all of it in regular expressions: Parse matches its pattern of
// extensions ("ext. 12", "#12", ...) at every position of the number, and each of
// the dozen patterns IsValidNumber tries is looked up by its text, built anew (5 kB)
// on every call. A partner's sync of 1,000 new contacts spent 20 ms of our server's
// CPU there. A phone already in E.164 form, as partners send them, is checked here
// instead with the same metadata and the same patterns, compiled once per calling
// code (1.4-3.3 µs); TestValidE164IsLibphonenumbers holds the two to the same
// answers.

// InE164Form reports whether phone, exactly as given, has the form every stored
// phone has: "+", then 7 to 15 digits, the first not 0 (the contacts table checks
// it too).
func InE164Form(phone string) bool {
	if len(phone) < 8 || len(phone) > 16 || phone[0] != '+' || phone[1] == '0' {
		return false
	}
	for _, c := range []byte(phone[1:]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// MayBeStoredAsGiven reports whether a contact may have phone exactly as given
// although normalizing it gave e164 or refused it (err): stored phones have
// InE164Form's form and were checked against the numbering plans of their day, which
// may have changed since (a plan may now refuse the number, or write it otherwise).
// Only such a phone is worth looking up as given before it is taken for another or
// refused.
func MayBeStoredAsGiven(phone, e164 string, err error) bool {
	return InE164Form(phone) && (err != nil || e164 != phone)
}

// validE164 reports whether phone, in E.164 form (InE164Form), is a valid number
// that libphonenumber parses to itself. sure is false where only libphonenumber's
// Parse can say: where the national number starts with what its country's national
// prefix may be (Parse may strip that, as it does the 0 of "+44 07911 123456"), and
// where no calling code starts it.
func validE164(phone string) (valid, sure bool) {
	digits := phone[1:]
	for n := 1; n <= 3; n++ { // the shortest known calling code wins, as in Parse
		cc, _ := strconv.Atoi(digits[:n])
		if len(phonenumbers.GetRegionCodesForCountryCode(cc)) == 0 {
			continue
		}
		plan := planOf(cc)
		if plan == nil { // a region of the code without metadata: never so far
			return false, false
		}
		national := digits[n:]
		if len(national) < 2 || plan.prefix != nil && plan.prefix.MatchString(national) {
			return false, false
		}
		return plan.valid(int32(cc), national), true
	}
	return false, false
}

// A numberingPlan is libphonenumber's metadata of one calling code, its patterns
// compiled.
type numberingPlan struct {
	// prefix matches the start of a national number that Parse would try to strip as
	// the national prefix of the calling code's main region; nil when it has none.
	prefix *regexp.Regexp
	// regions share the calling code (+1: the US, Canada, ...), main region first.
	regions []*regionPlan
}

// A regionPlan is the metadata of one region: the patterns of its numbers by type.
type regionPlan struct {
	callingCode int32
	// leadingDigits, when set, tell the region's numbers from those of the other
	// regions of its calling code.
	leadingDigits *regexp.Regexp
	general       numberDesc
	// special are the types that IsValidNumber tries before fixed lines and mobiles:
	// premium rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail.
	special                []numberDesc
	fixedLine, mobile      numberDesc
	sameMobileAndFixedLine bool
}

// numberDesc is the lengths and pattern of national numbers of one type. A type the
// region does not have matches nothing.
type numberDesc struct {
	lengths []int32 // any length the pattern allows when empty
	pattern *regexp.Regexp
}

func (d numberDesc) matches(national string) bool {
	if d.pattern == nil || len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(national))) {
		return false
	}
	return d.pattern.MatchString(national)
}

// valid is IsValidNumber for the number of calling code cc and national number
// national: the region it belongs to (by its leading digits, or as the first whose
// patterns it matches) has a type whose pattern it matches.
func (p *numberingPlan) valid(cc int32, national string) bool {
	region := p.regions[0]
	if len(p.regions) > 1 {
		region = nil
		for _, r := range p.regions {
			if r.leadingDigits != nil && r.leadingDigits.MatchString(national) ||
				r.leadingDigits == nil && r.knows(national) {
				region = r
				break
			}
		}
	}
	return region != nil && region.callingCode == cc && region.knows(national)
}

// knows reports whether national has a type in the region (getNumberTypeHelper's
// answer is not UNKNOWN).
func (r *regionPlan) knows(national string) bool {
	if !r.general.matches(national) {
		return false
	}
	for _, d := range r.special {
		if d.matches(national) {
			return true
		}
	}
	return r.fixedLine.matches(national) || !r.sameMobileAndFixedLine && r.mobile.matches(national)
}

// plans holds the numbering plan of each calling code asked for, compiled on first
// use: all 224 take 0.1 s to compile, one a few milliseconds, and a workspace's
// phones are mostly of one country.
var plans sync.Map // int → *numberingPlan

func planOf(cc int) *numberingPlan {
	if p, ok := plans.Load(cc); ok {
		return p.(*numberingPlan)
	}
	p, _ := plans.LoadOrStore(cc, newPlan(cc))
	return p.(*numberingPlan)
}

// metadata indexes libphonenumber's metadata: geographic regions by their code,
// non-geographic calling codes (+800, +882, ...) by the code.
var metadata = sync.OnceValues(func() (regions map[string]*phonenumbers.PhoneMetadata, nonGeographic map[int32]*phonenumbers.PhoneMetadata) {
	regions, nonGeographic = map[string]*phonenumbers.PhoneMetadata{}, map[int32]*phonenumbers.PhoneMetadata{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil { // the metadata is compiled in: libphonenumber's own init would have failed first
		panic(err)
	}
	for _, m := range coll.GetMetadata() {
		if m.GetId() == nonGeographicRegion {
			nonGeographic[m.GetCountryCode()] = m
		} else {
			regions[m.GetId()] = m
		}
	}
	return regions, nonGeographic
})

// nonGeographicRegion is libphonenumber's region of non-geographic calling codes.
const nonGeographicRegion = "001"

// newPlan compiles the numbering plan of calling code cc, or returns nil if
// libphonenumber lacks the metadata of one of its regions.
func newPlan(cc int) *numberingPlan {
	codes := phonenumbers.GetRegionCodesForCountryCode(cc)
	if len(codes) == 0 {
		return nil
	}
	regions, nonGeographic := metadata()
	plan := &numberingPlan{}
	var main *phonenumbers.PhoneMetadata // the main region's, whose national prefix Parse strips
	for _, code := range codes {
		m := regions[code]
		if code == nonGeographicRegion {
			m = nonGeographic[int32(cc)]
		}
		if m == nil { // not in libphonenumber's data: Parse is left to answer
			return nil
		}
		if main == nil {
			main = m
		}
		plan.regions = append(plan.regions, newRegionPlan(m))
	}
	if p := main.GetNationalPrefixForParsing(); p != "" {
		plan.prefix = regexp.MustCompile("^(?:" + p + ")")
	}
	return plan
}

func newRegionPlan(m *phonenumbers.PhoneMetadata) *regionPlan {
	r := &regionPlan{
		callingCode:            m.GetCountryCode(),
		general:                newNumberDesc(m.GetGeneralDesc()),
		fixedLine:              newNumberDesc(m.GetFixedLine()),
		mobile:                 newNumberDesc(m.GetMobile()),
		sameMobileAndFixedLine: m.GetSameMobileAndFixedLinePattern(),
	}
	for _, d := range []*phonenumbers.PhoneNumberDesc{m.GetPremiumRate(), m.GetTollFree(), m.GetSharedCost(),
		m.GetVoip(), m.GetPersonalNumber(), m.GetPager(), m.GetUan(), m.GetVoicemail()} {
		if d := newNumberDesc(d); d.pattern != nil {
			r.special = append(r.special, d)
		}
	}
	if ld := m.GetLeadingDigits(); ld != "" {
		r.leadingDigits = regexp.MustCompile("^(?:" + ld + ")")
	}
	return r
}

// newNumberDesc compiles d's pattern as libphonenumber matches it: the whole number.
// A type without a pattern matches only an empty number, which is none.
func newNumberDesc(d *phonenumbers.PhoneNumberDesc) numberDesc {
	p := d.GetNationalNumberPattern()
	if p == "" {
		return numberDesc{}
	}
	return numberDesc{lengths: d.GetPossibleLength(), pattern: regexp.MustCompile("^(?:" + p + ")$")}
}

// e164 is phone (trimmed, with "+" for its international prefix) in E.164 form if it
// is a valid number, as libphonenumber parses and formats it, and fits E.164:
// libphonenumber knows valid numbers of 6 digits and of 16 or 17 (Germany's, Iran's,
// Uruguay's), which E.164 and the contacts table do not take. The error completes
// "phone ... ".
func e164(phone string) (string, error) {
	if InE164Form(phone) {
		if valid, sure := validE164(phone); sure {
			if !valid {
				return "", errNotValid
			}
			return phone, nil
		}
	}
	num, err := phonenumbers.Parse(phone, "")
	valid := err == nil && phonenumbers.IsValidNumber(num)
	if valid && num.GetExtension() != "" {
		// Parse takes "ext. 12", "x12", "#12" as an extension and Format drops it,
		// which made the numbers of two people behind one switchboard one contact.
		// WhatsApp reaches no extension. Checked before letters, as "ext." and "x"
		// are: the message names what to remove.
		return "", errExtension
	}
	if strings.IndexFunc(phone, unicode.IsLetter) >= 0 {
		// Parse reads letters as the digits under them on a keypad ("+1-800-GO-FEDEX"
		// is +18004633339), so a junk cell of a CSV ("+91 98765 HELLO") became a
		// stranger's number, whom a campaign would then message.
		return "", errLetters
	}
	if !valid {
		return "", errNotValid
	}
	formatted := phonenumbers.Format(num, phonenumbers.E164)
	if !InE164Form(formatted) {
		return "", errNotValid
	}
	return formatted, nil
}

var (
	errNotValid  = errors.New("is not a valid phone number")
	errExtension = errors.New("has an extension, which WhatsApp cannot reach: give the number alone")
	errLetters   = errors.New("has letters, which are not read as digits: give the number in digits")
)
