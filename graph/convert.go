package graph

import (
	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
)

// decodeIDs decodes the global IDs of kind k given as input field; malformed ones and
// IDs of another type become INVALID problems naming their index.
func decodeIDs(k globalid.Kind, field string, ids []string) ([]int64, crm.Errors) {
	out := make([]int64, len(ids))
	var errs crm.Errors
	for i, id := range ids {
		n, err := decodeID(k, field, id)
		if err != nil {
			err.Field = crm.Path(field, i)
			errs = append(errs, err)
		}
		out[i] = n
	}
	return out, errs
}

func decodeID(k globalid.Kind, field, id string) (int64, *crm.Error) {
	n, err := globalid.DecodeAs(k, id)
	if err != nil {
		return 0, crm.Errorf(crm.CodeInvalid, crm.Path(field), "%s is not a %s ID", crm.QuoteInput(id), kindName[k])
	}
	return n, nil
}

var kindName = map[globalid.Kind]string{
	globalid.Workspace: "workspace",
	globalid.Segment:   "segment",
	globalid.Contact:   "contact",
}

func pageArgs(first *int, after *string, last *int, before *string) crm.PageArgs {
	return crm.PageArgs{First: first, After: after, Last: last, Before: before}
}

func segmentOrder(o *model.SegmentOrder) crm.SegmentOrder {
	if o == nil {
		return crm.DefaultSegmentOrder
	}
	return crm.SegmentOrder{Field: crm.SegmentOrderField(o.Field), Direction: crm.Direction(o.Direction)}
}

func contactOrder(o *model.ContactOrder) crm.ContactOrder {
	if o == nil {
		return crm.DefaultContactOrder
	}
	return crm.ContactOrder{Field: crm.ContactOrderField(o.Field), Direction: crm.Direction(o.Direction)}
}

// contactFilter decodes a contact filter: its segment lists (membershipFilter) and
// its conditions on the contacts' fields. Every problem of either is refused at
// once, each at its path from "filter".
func contactFilter(f *model.ContactFilter) (crm.MembershipFilter, crm.ContactConditions, error) {
	segments, segErr := membershipFilter(f)
	conds := contactConditions(f)
	if err := append(crm.Errors(crm.UserErrors(segErr)), crm.Prefixed(crm.UserErrors(conds.Check()), "filter")...); len(err) > 0 {
		return segments, conds, err
	}
	return segments, conds, segErr
}

// contactConditions reads the conditions of f besides its segment lists, unchecked
// (crm.ContactConditions.Check). An empty list of attribute conditions is none.
func contactConditions(f *model.ContactFilter) crm.ContactConditions {
	var c crm.ContactConditions
	if f == nil {
		return c
	}
	timeRange := func(r *model.DateTimeRange) crm.TimeRange {
		if r == nil {
			return crm.TimeRange{}
		}
		return crm.TimeRange{From: r.From, To: r.To}
	}
	c.CreatedAt, c.UpdatedAt = timeRange(f.CreatedAt), timeRange(f.UpdatedAt)
	c.HasEmail, c.HasName = f.HasEmail, f.HasName
	if f.Segments != nil {
		c.InAnySegment = f.Segments.InAnySegment
	}
	for _, a := range f.Attributes {
		c.Attributes = append(c.Attributes, crm.AttributeCondition{
			Key: a.Key, Equals: a.Equals, In: a.In, Exists: a.Exists, AtLeast: a.AtLeast, AtMost: a.AtMost,
		})
	}
	return c
}

// membershipFilter decodes a segment membership filter; malformed IDs are refused.
func membershipFilter(f *model.ContactFilter) (crm.MembershipFilter, error) {
	if f == nil || f.Segments == nil {
		return crm.MembershipFilter{}, nil
	}
	var out crm.MembershipFilter
	var errs crm.Errors
	for _, list := range []struct {
		name string
		ids  []string
		dst  *[]int64
	}{{"any", f.Segments.Any, &out.Any}, {"all", f.Segments.All, &out.All}, {"none", f.Segments.None, &out.None}} {
		if list.ids == nil {
			continue
		}
		if err := crm.CheckCount(list.name, len(list.ids), crm.MaxFilterSegments); err != nil {
			return out, crm.Errors(crm.Prefixed(crm.UserErrors(err), "filter", "segments"))
		}
		ids, bad := decodeIDs(globalid.Segment, list.name, list.ids)
		*list.dst, errs = ids, append(errs, crm.Prefixed(bad, "filter", "segments")...)
	}
	return out, errs.Err()
}

func optional[T any](o graphql.Omittable[T]) crm.Optional[T] {
	v, set := o.ValueOK()
	return crm.Optional[T]{Value: v, Set: set}
}

func contactDetails(name, email graphql.Omittable[*string], attrs graphql.Omittable[map[string]any]) crm.ContactDetails {
	return crm.ContactDetails{Name: optional(name), Email: optional(email), Attributes: optional(attrs)}
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
