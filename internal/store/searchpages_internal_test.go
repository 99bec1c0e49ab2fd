package store

import (
	"testing"

	"github.com/segments/segments/internal/crm"
)

// TestWhichSearchesBoundTheirWalk proves which pages searchPageSelect reads: searches
// of all the contacts or those in none of some segments, in any order if the term has
// three letters or digits in a row (hasTrigram), else in any but the creation's; and
// which terms have them.
func TestWhichSearchesBoundTheirWalk(t *testing.T) {
	byName := crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}
	for _, c := range []struct {
		q    crm.ContactQuery
		want bool
	}{
		{crm.ContactQuery{Search: "vikram", Order: byName}, true},
		{crm.ContactQuery{Search: "+91 98", Order: byName}, true}, // no three in a row
		{crm.ContactQuery{Search: "+91 987", Order: byName}, true},
		{crm.ContactQuery{Search: "zz", Order: byName}, true},
		{crm.ContactQuery{Search: "m s", Order: byName}, true},
		{crm.ContactQuery{Search: "विक्रम", Order: byName}, true}, // letters and marks of any script
		{crm.ContactQuery{Search: "", Order: byName}, false},
		{crm.ContactQuery{Search: "vikram", Order: crm.DefaultContactOrder}, true},
		{crm.ContactQuery{Search: "vikram", Order: crm.ContactOrder{Field: crm.ContactsByUpdatedAt, Direction: crm.Asc}}, true},
		{crm.ContactQuery{Order: crm.DefaultContactOrder}, false},
		{crm.ContactQuery{Search: "m s", Order: crm.DefaultContactOrder}, false},
		{crm.ContactQuery{Search: "m s", Order: crm.ContactOrder{Field: crm.ContactsByCreatedAt, Direction: crm.Asc}}, false},
		{crm.ContactQuery{Search: "m s", Order: crm.ContactOrder{Field: crm.ContactsByUpdatedAt, Direction: crm.Desc}}, true},
		{crm.ContactQuery{Search: "m s", Order: crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Desc}, Segments: crm.MembershipFilter{None: []int64{1}}}, true},
		{crm.ContactQuery{Search: "vikram", Order: byName, Segments: crm.MembershipFilter{None: []int64{1}}}, true},
		{crm.ContactQuery{Search: "vikram", Order: byName, Segments: crm.MembershipFilter{Any: []int64{1}}}, false},
		{crm.ContactQuery{Search: "vikram", Order: byName, Segments: crm.MembershipFilter{All: []int64{1}}}, false},
	} {
		if got := walksBounded(c.q); got != c.want {
			t.Errorf("%q order %v filter %+v: %v, want %v", c.q.Search, c.q.Order, c.q.Segments, got, c.want)
		}
	}
	for term, want := range map[string]bool{"vikram": true, "+91 98": false, "+91 987": true, "zz": false, "m s": false, "a.b.c": false, "विक्रम": true} {
		if got := hasTrigram(term); got != want {
			t.Errorf("hasTrigram(%q): %v, want %v", term, got, want)
		}
	}
}
