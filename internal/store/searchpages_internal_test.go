package store

import (
	"testing"

	"github.com/segments/segments/internal/crm"
)

// TestWhichSearchesBoundTheirWalk proves which pages searchPageSelect reads: searches
// in any order whose term has three letters or digits in a row, of all the contacts
// or those in none of some segments.
func TestWhichSearchesBoundTheirWalk(t *testing.T) {
	byName := crm.ContactOrder{Field: crm.ContactsByName, Direction: crm.Asc}
	for _, c := range []struct {
		q    crm.ContactQuery
		want bool
	}{
		{crm.ContactQuery{Search: "vikram", Order: byName}, true},
		{crm.ContactQuery{Search: "+91 98", Order: byName}, false}, // no three in a row
		{crm.ContactQuery{Search: "+91 987", Order: byName}, true},
		{crm.ContactQuery{Search: "zz", Order: byName}, false},
		{crm.ContactQuery{Search: "a.b.c", Order: byName}, false},
		{crm.ContactQuery{Search: "विक्रम", Order: byName}, true}, // letters and marks of any script
		{crm.ContactQuery{Search: "", Order: byName}, false},
		{crm.ContactQuery{Search: "vikram", Order: crm.DefaultContactOrder}, true},
		{crm.ContactQuery{Search: "vikram", Order: crm.ContactOrder{Field: crm.ContactsByUpdatedAt, Direction: crm.Asc}}, true},
		{crm.ContactQuery{Order: crm.DefaultContactOrder}, false},
		{crm.ContactQuery{Search: "vikram", Order: byName, Segments: crm.MembershipFilter{None: []int64{1}}}, true},
		{crm.ContactQuery{Search: "vikram", Order: byName, Segments: crm.MembershipFilter{Any: []int64{1}}}, false},
		{crm.ContactQuery{Search: "vikram", Order: byName, Segments: crm.MembershipFilter{All: []int64{1}}}, false},
	} {
		if got := walksBounded(c.q); got != c.want {
			t.Errorf("%q order %v filter %+v: %v, want %v", c.q.Search, c.q.Order, c.q.Segments, got, c.want)
		}
	}
}
