package server_test

import "testing"

func TestSmokeAPI(t *testing.T) {
	a := newAPI(t)
	ids := a.addContacts(phones(1, 3)...)
	seg := a.addSegment("VIP", ids[:2]...)
	var out struct {
		Segments struct {
			TotalCount int       `json:"totalCount"`
			Nodes      []segment `json:"nodes"`
		} `json:"segments"`
	}
	a.do(`{ segments { totalCount nodes { `+segmentFields+` } } }`, nil, &out)
	if out.Segments.TotalCount != 1 || out.Segments.Nodes[0].ID != seg || out.Segments.Nodes[0].ContactCount != 2 {
		t.Fatalf("%+v", out)
	}
	t.Logf("statements: %d", a.statements())
}
