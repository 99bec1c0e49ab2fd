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
