package crm

// PageArgs selects a page of a connection, Relay style: First (with After) pages
// forward, Last (with Before) pages backward. After and Before are opaque cursors.
type PageArgs struct {
	First  *int
	After  *string
	Last   *int
	Before *string
}

// Validate checks the page size rules: first and last are exclusive and each lies in
// 1..MaxPageSize. Sizes are refused, never clamped, so a caller never receives a
// shorter page than it asked for without knowing why.
func (p PageArgs) Validate() error {
	if p.First != nil && p.Last != nil {
		return Errorf(CodeInvalid, Path("last"), "first and last cannot be used together")
	}
	for _, arg := range []struct {
		name string
		n    *int
	}{{"first", p.First}, {"last", p.Last}} {
		if arg.n != nil && (*arg.n < 1 || *arg.n > MaxPageSize) {
			return Errorf(CodeInvalid, Path(arg.name), "%s must be between 1 and %d, got %d", arg.name, MaxPageSize, *arg.n)
		}
	}
	return nil
}

// CheckCountLimit checks the limit of a connection's count, 1..MaxCountLimit:
// refused, never clamped, like a page size. nil is a limit sent as null, which
// replaces the schema's default (so it is no 0, the client never sent).
func CheckCountLimit(limit *int) error {
	if limit == nil {
		return Errorf(CodeInvalid, Path("limit"), "limit cannot be null: leave it out for the default")
	}
	if *limit < 1 || *limit > MaxCountLimit {
		return Errorf(CodeInvalid, Path("limit"), "limit must be between 1 and %d, got %d", MaxCountLimit, *limit)
	}
	return nil
}

// Backward reports whether the page is counted from its end (last/before).
func (p PageArgs) Backward() bool {
	return p.Last != nil || (p.First == nil && p.Before != nil && p.After == nil)
}

// Size is the number of rows the page holds at most.
func (p PageArgs) Size() int {
	switch {
	case p.First != nil:
		return *p.First
	case p.Last != nil:
		return *p.Last
	}
	return DefaultPageSize
}

// Direction orders a list ascending or descending.
type Direction string

// The two directions.
const (
	Asc  Direction = "ASC"
	Desc Direction = "DESC"
)

// SegmentOrderField is a field segments can be ordered by. Ties are broken by ID.
type SegmentOrderField string

// The orderings of segments.
const (
	SegmentsByCreatedAt    SegmentOrderField = "CREATED_AT"
	SegmentsByUpdatedAt    SegmentOrderField = "UPDATED_AT"
	SegmentsByName         SegmentOrderField = "NAME"
	SegmentsByContactCount SegmentOrderField = "CONTACT_COUNT"
)

// SegmentOrder orders a list of segments.
type SegmentOrder struct {
	Field     SegmentOrderField
	Direction Direction
}

// ContactOrderField is a field contacts can be ordered by. Ties are broken by ID.
type ContactOrderField string

// The orderings of contacts.
const (
	ContactsByCreatedAt ContactOrderField = "CREATED_AT"
	ContactsByUpdatedAt ContactOrderField = "UPDATED_AT"
	ContactsByName      ContactOrderField = "NAME"
	ContactsByPhone     ContactOrderField = "PHONE"
	ContactsByEmail     ContactOrderField = "EMAIL"
)

// ContactOrder orders a list of contacts. Contacts without a name (an email) sort
// after the others in ascending order by name (email).
type ContactOrder struct {
	Field     ContactOrderField
	Direction Direction
}

// Default orderings: newest first, as a dashboard shows them.
var (
	DefaultSegmentOrder = SegmentOrder{Field: SegmentsByCreatedAt, Direction: Desc}
	DefaultContactOrder = ContactOrder{Field: ContactsByCreatedAt, Direction: Desc}
)

// SegmentQuery selects segments.
type SegmentQuery struct {
	// Search matches a substring of the name or the description, ignoring case,
	// accents and the other differences the store's folding takes away.
	Search string
	Order  SegmentOrder
}

// ContactQuery selects contacts.
type ContactQuery struct {
	// Search matches a substring of the name, phone or email, ignoring case, accents
	// and the other differences the store's folding takes away.
	Search   string
	Segments MembershipFilter
	// Conditions are the filter's conditions on the contacts' own fields.
	Conditions ContactConditions
	Order      ContactOrder
}

// MembershipFilter selects contacts by the segments they are in, with set semantics:
// Any keeps contacts in at least one of the segments (an empty, non-nil list keeps
// nobody), All keeps contacts in every one of them, None drops contacts in any of them.
// A nil list does not filter. IDs that name no segment of the workspace name an empty
// segment.
type MembershipFilter struct {
	Any, All, None []int64
}

// IsZero reports whether the filter keeps every contact.
func (f MembershipFilter) IsZero() bool {
	return f.Any == nil && len(f.All) == 0 && len(f.None) == 0
}
