package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSearchesFoldWhatPeopleType: a term finds the names, emails and descriptions
// written from the same or equivalent text whatever the accents, Arabic and Hebrew
// marks, widths, case beyond lower() (final sigma, dotless i), Latin letters NFKD
// leaves whole (ł, đ, ð, ø, ß, æ, œ, þ, Catalan's l·l), typographic apostrophes and
// quotes, spaces and zero-width characters either is typed with (migration
// 20261216000005_search_folds_text), in
// every way a search is read: contacts' pages and counts, a segment's members, a
// select-all (contactsMatching), and segments' pages and counts. Indic, Thai, CJK and
// Hangul names are still found by their own substrings, and not by their letters
// without their vowel signs; a term matches across neither the contact's fields nor a
// segment's name and description. As the server's role, the terms normalized as the
// API normalizes them.
func TestSearchesFoldWhatPeopleType(t *testing.T) {
	ctx := context.Background()
	owner, s := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	ctx = store.WithWorkspace(ctx, ws.ID)

	contactNames := []string{
		"José García",      // 0
		"مُحَمَّد علي",     // 1: tashkeel
		"مـحـمـد حسن",      // 2: tatweel
		"שָׁלוֹם כהן",      // 3: niqqud
		"ﾔﾏﾀﾞ ﾀﾛｳ",         // 4: half-width kana
		"Order １２３",        // 5: full-width digits
		"ΠΕΛΆΤΕΣ VIP",      // 6: capitals, tonos
		"Işık Yılmaz",      // 7: dotless i
		"nbsp\u2003name",   // 8: stored as "nbsp name"
		"प्रिया शर्मा",     // 9: Devanagari
		"தமிழ்செல்வி",      // 10: Tamil
		"সৌমিত্র বসু",      // 11: Bengali (ৌ decomposes)
		"สมชาย กิ่งแก้ว",   // 12: Thai
		"王小明",              // 13
		"김민준",              // 14: Hangul (decomposes)
		"Anna",             // 15: the separator's
		"Zoë\u00a0Old",     // 16: written with its no-break space, as an older server stored it
		"Ｃｏｍｐａｎｙ\u200bＬｔｄ", // 17: full-width, a zero-width space inside (as stored before names dropped it)
		"Łódź Wójcik",      // 18: stroke
		"Đặng Thị Hương",   // 19: Vietnamese đ
		"Ærø Færgeri",      // 20: ligature, slashed o
		"Straße Müller",    // 21: sharp s
		"Zoë O’Brien",      // 22: the apostrophe of iOS's smart punctuation
		"Þóra Guðrún",      // 23: eth, thorn
		"Col·legi Œuvre",   // 24: Catalan's middle dot, œ
		"Ħal Ŧ Ŋ",          // 25
	}
	var in []crm.ContactInput
	for i, name := range contactNames {
		in = append(in, crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", 4_700_000+i), ContactDetails: crm.ContactDetails{Name: crm.Some(&name)}})
	}
	up, err := s.UpsertContacts(ctx, ws.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	ids := crm.ContactIDs(up.Contacts)
	// The texts an older server or SQL wrote, which the API would have cleaned.
	storetest.Exec(t, owner.DB(), `UPDATE contacts SET name = $1 WHERE id = $2`, contactNames[16], ids[16])
	storetest.Exec(t, owner.DB(), `UPDATE contacts SET name = $1 WHERE id = $2`, contactNames[17], ids[17])
	everyone, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Everyone", ContactIDs: ids})
	if err != nil {
		t.Fatal(err)
	}

	contactCases := []struct {
		term string
		want []int // indexes of contactNames
	}{
		{"jose", []int{0}}, {"Jose Garcia", []int{0}}, {"JOSÉ GARCÍA", []int{0}},
		{"محمد", []int{1, 2}}, {"مُحَمَّد", []int{1, 2}},
		{"שלום", []int{3}}, {"שָׁלוֹם", []int{3}},
		{"ヤマダ", []int{4}}, {"ﾔﾏﾀﾞ", []int{4}}, {"ﾀﾛｳ", []int{4}},
		{"123", []int{5}}, {"order １２３", []int{5}},
		{"πελάτες", []int{6}}, {"ΠΕΛΑΤΕΣ", []int{6}},
		{"ışık", []int{7}}, {"IŞIK", []int{7}}, {"Isik yilmaz", []int{7}},
		{"nbsp\u2003name", []int{8}}, {"nbsp name", []int{8}}, {"nbsp\u00a0name", []int{8}},
		{"प्रिया", []int{9}}, {"शर्मा", []int{9}}, {"परय", nil}, {"शरम", nil},
		{"செல்வி", []int{10}}, {"சலவ", nil},
		{"সৌমি", []int{11}}, {"বসু", []int{11}}, {"সম", nil},
		{"กิ่งแก้ว", []int{12}}, {"กงกว", nil},
		{"小明", []int{13}}, {"민준", []int{14}},
		{"zoe old", []int{16}}, {"company ltd", nil}, {"companyltd", []int{17}}, {"ｃｏｍｐａｎｙ", []int{17}},
		{"lodz", []int{18}}, {"ŁÓDŹ", []int{18}}, {"lódź", []int{18}},
		{"dang", []int{19}}, {"ĐẶNG", []int{19}}, {"huong", []int{19}},
		{"aero", []int{20}}, {"aerø", []int{20}}, {"ærø", []int{20}}, {"faergeri", []int{20}},
		{"strasse", []int{21}}, {"STRASSE", []int{21}}, {"straße", []int{21}}, {"STRAẞE", []int{21}},
		{"zoe o'brien", []int{22}}, {"o’brien", []int{22}}, {"o‘brien", []int{22}}, {"oʼbrien", []int{22}}, {"o＇brien", []int{22}},
		{"thora gudrun", []int{23}}, {"ÞÓRA GUÐRÚN", []int{23}},
		{"collegi oeuvre", []int{24}}, {"col·legi", []int{24}}, {"coŀlegi", []int{24}},
		{"hal t n", []int{25}},
		// The name, phone and email are joined by newlines, which a term cannot hold.
		{"anna\u2029+9197", nil}, {"anna +9197", nil}, {"anna", []int{15}},
	}
	for i, c := range contactCases {
		term := normalizedSearch(t, c.term)
		var want []int64
		for _, i := range c.want {
			want = append(want, ids[i])
		}
		slices.Sort(want)
		cq := crm.ContactQuery{Search: term, Order: crm.DefaultContactOrder}
		page, err := s.Contacts(ctx, ws.ID, cq, crm.PageArgs{First: ptr(50)})
		if err != nil {
			t.Fatal(err)
		}
		if got := sortedIDs(crm.ContactIDs(page.Items)); !slices.Equal(got, want) {
			t.Errorf("contacts(search: %q): %v, want %v", c.term, got, want)
		}
		if n, err := s.CountContacts(ctx, ws.ID, cq); err != nil || n != len(want) {
			t.Errorf("count of contacts(search: %q): %d (%v), want %d", c.term, n, err, len(want))
		}
		members, err := s.ContactsOfSegments(ctx, ws.ID, []int64{everyone.ID}, crm.ContactQuery{Search: term, Order: crm.DefaultContactOrder}, crm.PageArgs{First: ptr(50)})
		if err != nil {
			t.Fatal(err)
		}
		if got := sortedIDs(crm.ContactIDs(members[everyone.ID].Items)); !slices.Equal(got, want) {
			t.Errorf("a segment's contacts(search: %q): %v, want %v", c.term, got, want)
		}
		target, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("Target %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AssignContactsMatching(ctx, ws.ID, cq, []int64{target.ID}, store.WithoutSegments)
		if err != nil || got.Matched != len(want) {
			t.Errorf("assignContactsToSegments(select: {search: %q}): matched %d (%v), want %d", c.term, got.Matched, err, len(want))
		}
	}

	segmentCases := []struct {
		name        string
		description *string
		terms       []string
	}{
		{"Holi\u00a0Buyers 2026", nil, []string{"holi\u00a0buyers", "holi buyers", "HOLI BUYERS 2026"}},
		{"Diwali\u200bBuyers", nil, []string{"diwali\u200bbuyers", "diwalibuyers"}}, // stored as "DiwaliBuyers"
		{"Season", ptr("Festival\u00a0buyers of the season"), []string{"festival buyers", "festival\u00a0buyers"}},
		{"Café Crème", nil, []string{"cafe creme", "CAFÉ", "crème"}},
		{"ΠΕΛΆΤΕΣ", nil, []string{"πελάτες", "πελατεσ"}},
		{"Işık Club", nil, []string{"ışık", "IŞIK", "isik"}},
		{"عملاء مُمَيَّزون", nil, []string{"مميزون"}},
		{"ग्राहक सूची", nil, []string{"ग्राहक", "सूची"}},
		{"Łódź Đà Nẵng", ptr("Straße O’Neil’s “VIP”"), []string{"lodz da nang", "strasse o'neil's \"vip\"", "o‘neil"}},
	}
	made := map[string]int64{}
	for _, c := range segmentCases {
		seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: c.name, Description: c.description})
		if err != nil {
			t.Fatal(err)
		}
		made[c.name] = seg.ID
	}
	for _, c := range segmentCases {
		for _, term := range c.terms {
			sq := crm.SegmentQuery{Search: normalizedSearch(t, term), Order: crm.SegmentOrder{Field: crm.SegmentsByCreatedAt, Direction: crm.Desc}}
			page, err := s.Segments(ctx, ws.ID, sq, crm.PageArgs{First: ptr(50)})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, seg := range page.Items {
				got = append(got, seg.ID)
			}
			if !slices.Contains(got, made[c.name]) {
				t.Errorf("segments(search: %q) did not find %q: %v", term, c.name, got)
			}
			if n, err := s.CountSegments(ctx, ws.ID, sq); err != nil || n != len(got) {
				t.Errorf("count of segments(search: %q): %d (%v), want %d", term, n, err, len(got))
			}
		}
	}
	// A term across a segment's name and description, or letters without their signs.
	for _, term := range []string{"season festival", "गराहक", "सच"} {
		if n, err := s.CountSegments(ctx, ws.ID, crm.SegmentQuery{Search: normalizedSearch(t, term)}); err != nil || n != 0 {
			t.Errorf("segments(search: %q) found %d (%v), want none", term, n, err)
		}
	}
}

// TestSearchFoldsAway: crm.SearchFoldsAway, which makes a term no search before any
// statement, says a character folds to nothing but spaces exactly when
// segments_search_fold makes it so, over every code point of the planes that hold
// characters, 0-3 and 14 (but NUL, which a term cannot hold, and the surrogates,
// which are none): its Go copy of the characters the function removes is the
// function's. Planes 4-13 are unassigned and 15-16 private: no character there
// decomposes, and neither side removes one, which Go is asked alone (the function
// takes 4 µs a character; all of them, 4-5 s). A term is no search when each of its
// characters is such: each decomposes (NFKD) on its own, and the rest of the folding
// removes, maps or composes character by character (the one pair it maps, "l·",
// holds an l, kept).
func TestSearchFoldsAway(t *testing.T) {
	owner := storetest.Store(t)
	inSQL := storetest.Column[int64](t, owner.DB(), `SELECT r FROM generate_series(1, x'3ffff'::int) r
		WHERE r NOT BETWEEN x'd800'::int AND x'dfff'::int AND segments_search_fold(chr(r)) ~ '^ *$'
		UNION ALL
		SELECT r FROM generate_series(x'e0000'::int, x'effff'::int) r WHERE segments_search_fold(chr(r)) ~ '^ *$'
		ORDER BY 1`)
	var inGo []int64
	for r := rune(1); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) || !crm.SearchFoldsAway(string(r)) {
			continue
		}
		if 0x40000 <= r && r < 0xE0000 || r >= 0xF0000 {
			t.Errorf("crm.SearchFoldsAway takes %U, outside the planes that hold characters, for no search", r)
		}
		inGo = append(inGo, int64(r))
	}
	if !slices.Equal(inGo, inSQL) {
		for _, r := range inSQL {
			if !slices.Contains(inGo, r) {
				t.Errorf("segments_search_fold leaves nothing of %U but spaces; crm.SearchFoldsAway takes it for a search", r)
			}
		}
		for _, r := range inGo {
			if !slices.Contains(inSQL, r) {
				t.Errorf("crm.SearchFoldsAway takes %U for no search; segments_search_fold keeps something of it", r)
			}
		}
	}
	if len(inSQL) < 250 { // the marks of the class alone are 200
		t.Errorf("%d code points fold away: is the test's statement right?", len(inSQL))
	}
}

// normalizedSearch is term as the API hands it to the store (crm.NormalizeSearch).
func normalizedSearch(t *testing.T, term string) string {
	t.Helper()
	got, err := crm.NormalizeSearch(&term)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sortedIDs(ids []int64) []int64 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}
