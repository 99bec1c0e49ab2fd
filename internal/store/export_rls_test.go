package store

// The indexed expressions, for the test that proves row-level security leaves them
// on their indexes (tenant_test.go).
const (
	ContactSearchExpr = contactSearch
	SegmentSearchExpr = segmentSearch
)

// ContactNameOrderExpr is the expression of the contacts' NAME order past its
// null-first part.
var ContactNameOrderExpr = contactsByName.parts[1]

// ForSearch marks a context's statements as searches for term, for the test of the
// setting that goes with them (tenant_test.go).
var ForSearch = forSearch
