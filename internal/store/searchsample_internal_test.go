package store

import "testing"

// TestSearchSampleHolds proves how the store tells the terms that no entry of the
// search histogram's copy holds: by their trigrams of three ASCII letters or digits,
// case aside, and of nothing else.
func TestSearchSampleHolds(t *testing.T) {
	set := &trigramSet{}
	for _, trigram := range []string{"vik", "ikr", "kra", "ram", "917", "177", "zzz", "000"} {
		set.add(trigram)
	}
	known := searchSample{trigrams: set}
	for _, c := range []struct {
		term string
		want bool
	}{
		{"vikram", true},
		{"VIKRAM", true},   // lowercased, as lower() has it
		{"vikrama", false}, // "ama" is in no entry
		{"ram vik", true},  // each word's trigrams
		{"+91 77", true},   // no trigram: no telling
		{"+91 779", false}, // "779"
		{"9177", true},     // "917", "177"
		{"विक्रम", true},   // no ASCII trigram: no telling
		{"zzzé", true},     // "zzz"; "zzé" is no ASCII trigram
		{"éq9x", false},    // "q9x"
		{"0ar0jh", false},  // a tag of the benchmark's emails
		{"", true},
	} {
		if got := known.mayHold(c.term); got != c.want {
			t.Errorf("%q: %v, want %v", c.term, got, c.want)
		}
	}
	if !(searchSample{}).mayHold("vikrama") {
		t.Error("without a copy, a term is held by none")
	}
	var n int
	for _, w := range set {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	if n != 8 {
		t.Errorf("the set holds %d trigrams, want 8", n)
	}
}
