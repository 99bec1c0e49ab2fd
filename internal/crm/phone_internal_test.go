package crm

import (
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// viaLibphonenumber is what e164 answers: libphonenumber's parse, check and format.
func viaLibphonenumber(phone string) (string, bool) {
	num, err := phonenumbers.Parse(phone, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return phonenumbers.Format(num, phonenumbers.E164), true
}

// TestValidE164IsLibphonenumbers checks e164 against libphonenumber on numbers of
// every calling code: each region's example of each type of number, the example with
// its last digit changed, a digit short and a digit long, with the region's national
// prefix or a 0 before it, and random digits after each calling code. Where
// validE164 is sure, it must give libphonenumber's answer, and it must be sure of
// most valid numbers (else the test proves nothing about it).
func TestValidE164IsLibphonenumbers(t *testing.T) {
	var phones []string
	add := func(cc int, national string) {
		if p := "+" + strconv.Itoa(cc) + national; InE164Form(p) {
			phones = append(phones, p)
		}
	}
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}
	rng := rand.New(rand.NewPCG(1, 2))
	codes := phonenumbers.GetSupportedCallingCodes() // the library's own map, non-geographic codes too: only read
	for _, cc := range slices.Sorted(maps.Keys(codes)) {
		var examples []*phonenumbers.PhoneNumber
		for _, region := range phonenumbers.GetRegionCodesForCountryCode(cc) {
			if region == nonGeographicRegion {
				examples = append(examples, phonenumbers.GetExampleNumberForNonGeoEntity(cc))
				continue
			}
			ndd := phonenumbers.GetNddPrefixForRegion(region, true)
			for _, typ := range types {
				ex := phonenumbers.GetExampleNumberForType(region, typ)
				examples = append(examples, ex)
				if ex != nil && ndd != "" {
					add(cc, ndd+phonenumbers.GetNationalSignificantNumber(ex))
				}
			}
		}
		for _, ex := range examples {
			if ex == nil {
				continue
			}
			national := phonenumbers.GetNationalSignificantNumber(ex)
			add(cc, national)
			add(cc, "0"+national)
			add(cc, national[:len(national)-1])
			add(cc, national+"7")
			for d := range 10 {
				add(cc, national[:len(national)-1]+strconv.Itoa(d))
			}
		}
		for range 20 {
			national := make([]byte, 4+rng.IntN(9))
			for i := range national {
				national[i] = byte('0' + rng.IntN(10))
			}
			add(cc, string(national))
		}
	}
	slices.Sort(phones)
	phones = slices.Compact(phones)

	var sure, valid, sureOfValid int
	for _, p := range phones {
		want, wantOK := viaLibphonenumber(p)
		if wantOK && !InE164Form(want) { // valid, but longer or shorter than E.164 allows
			want, wantOK = "", false
		}
		got, err := e164(p)
		if ok := err == nil; got != want || ok != wantOK {
			t.Errorf("e164(%q) = %q, %v; libphonenumber says %q, %v", p, got, ok, want, wantOK)
		}
		_, isSure := validE164(p)
		if isSure {
			sure++
		}
		if wantOK {
			valid++
			if isSure {
				sureOfValid++
			}
		}
	}
	t.Logf("%d phones of %d calling codes, %d valid; validE164 sure of %d, of %d valid ones", len(phones), len(codes), valid, sure, sureOfValid)
	if valid < 1000 || sureOfValid < valid*3/4 {
		t.Errorf("validE164 was sure of %d of %d valid phones, want at least three quarters of at least 1,000", sureOfValid, valid)
	}
	for _, p := range []string{"+919876543210", "+14155552671", "+447911123456"} {
		if valid, sure := validE164(p); !valid || !sure {
			t.Errorf("validE164(%q) = %v, %v, want true, true", p, valid, sure)
		}
	}
}

// TestE164RefusesValidNumbersE164CannotHold: libphonenumber takes these as valid,
// with 6 national digits or 16 to 17 in all, and the contacts table would refuse
// them (an internal error where the client should hear INVALID).
func TestE164RefusesValidNumbersE164CannotHold(t *testing.T) {
	for _, p := range []string{"+491641", "+989601", "+4930123779185060", "+49301231298415765", "+5980004708581249"} {
		if _, valid := viaLibphonenumber(p); !valid {
			t.Errorf("libphonenumber no longer takes %q: pick another example", p)
		}
		if got, err := e164(p); err == nil {
			t.Errorf("e164(%q) = %q, true; E.164 has 7 to 15 digits", p, got)
		}
	}
}

// InE164Form must say yes exactly where the contacts table's check does (migration
// 20261128000001_init: phone ~ '^\+[1-9][0-9]{6,14}$').
func TestInE164FormIsTheTableCheck(t *testing.T) {
	check := regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	for _, p := range []string{
		"", "+", "+9", "+912345", "+9123456", "+91234567", "+919876543210", "+123456789012345", "+1234567890123456",
		"+0123456789", "919876543210", "+91 98765 43210", "+91-9876543210", "0091987654321", "+９１９８７６５４３２１０",
		"+91987654321a", " +919876543210", "+919876543210 ", "++919876543210",
	} {
		if got, want := InE164Form(p), check.MatchString(p); got != want {
			t.Errorf("InE164Form(%q) = %v, the table's check says %v", p, got, want)
		}
	}
}

// BenchmarkPhoneCheck times the check of a new phone (e164) against libphonenumber's
// own parse, check and format, on phones in E.164 form of a few countries (Argentina's
// take libphonenumber's way: its national prefix may start any number).
func BenchmarkPhoneCheck(b *testing.B) {
	for _, phone := range []string{"+919876543210", "+14155552671", "+447911123456", "+5491123456789"} {
		for _, check := range []struct {
			name string
			f    func(string) (string, bool)
		}{{"ours", func(p string) (string, bool) { e, err := e164(p); return e, err == nil }}, {"libphonenumber", viaLibphonenumber}} {
			b.Run(phone+"/"+check.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := check.f(phone); !ok {
						b.Fatalf("%s is not valid", phone)
					}
				}
			})
		}
	}
}
