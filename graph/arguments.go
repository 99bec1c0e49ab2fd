package graph

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/model"
	"github.com/segments/segments/graph/scalar"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
)

// checkPayloadArguments checks, before a mutation runs, the arguments its payload's
// selection gives the fields that check theirs when they run: a segment's contacts
// (page size, cursors, search) and a connection's count (limit). Left to those
// fields, a page of 500 asked for in createSegment's payload was refused as
// BAD_USER_INPUT after the segment was created, and a client told its input was bad
// would not know the change was made. Only mutations are checked: a query's refused
// field changes nothing, and its other fields are answered.
func checkPayloadArguments(opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation.Operation != ast.Mutation {
		return nil
	}
	return eachField(opCtx, opCtx.Operation.SelectionSet, nil, func(f graphql.CollectedField, path ast.Path) *gqlerror.Error {
		if err := fieldArguments(f, opCtx.Variables); err != nil {
			return badArgument(path, err)
		}
		return nil
	})
}

// eachField calls visit with each field of sel that executes (fragments spread,
// @skip and @include applied, as graphql.CollectFields does at execution) and its
// path, depth first, until visit returns an error.
func eachField(opCtx *graphql.OperationContext, sel ast.SelectionSet, path ast.Path,
	visit func(f graphql.CollectedField, path ast.Path) *gqlerror.Error) *gqlerror.Error {
	for _, f := range graphql.CollectFields(opCtx, sel, nil) {
		fieldPath := append(path[:len(path):len(path)], ast.PathName(f.Alias))
		if err := visit(f, fieldPath); err != nil {
			return err
		}
		if err := eachField(opCtx, f.Selections, fieldPath, visit); err != nil {
			return err
		}
	}
	return nil
}

// fieldArguments checks f's arguments as its resolver will (segmentContacts, its
// filter as contactFilter reads it; ContactConnection.Count, SegmentConnection.Count).
func fieldArguments(f graphql.CollectedField, vars map[string]any) error {
	def := f.Definition
	if def == nil || len(def.Arguments) == 0 {
		return nil
	}
	args := f.ArgumentMap(vars)
	switch {
	case f.ObjectDefinition.Name == "Segment" && f.Name == "contacts":
		var page crm.PageArgs
		var err error
		if page.First, err = optionalInt(args["first"]); err != nil {
			return err
		}
		if page.Last, err = optionalInt(args["last"]); err != nil {
			return err
		}
		if s, ok := args["after"].(string); ok {
			page.After = &s
		}
		if s, ok := args["before"].(string); ok {
			page.Before = &s
		}
		if s, ok := args["search"].(string); ok {
			if _, err := crm.NormalizeSearch(&s); err != nil {
				return err
			}
		}
		if v := args["filter"]; v != nil {
			filter, err := filterArgument(v)
			if err != nil {
				return err
			}
			if _, _, err := contactFilter(filter); err != nil {
				return err
			}
		}
		order := crm.DefaultContactOrder
		if o, ok := args["orderBy"].(map[string]any); ok {
			field, _ := o["field"].(string)
			direction, _ := o["direction"].(string)
			order = contactOrder(&model.ContactOrder{Field: model.ContactOrderField(field), Direction: model.OrderDirection(direction)})
		}
		return store.CheckContactPage(order, page)
	case f.Name == "count" && def.Arguments.ForName("limit") != nil:
		// The default is in args when the limit was left out: nil is an explicit null.
		limit, err := optionalInt(args["limit"])
		if err != nil {
			return err
		}
		return crm.CheckCountLimit(limit)
	}
	return nil
}

// filterArgument reads a ContactFilter from an argument's value as the request gave
// it (graphql.CollectedField.ArgumentMap: a literal's or a variable's), into what
// gqlgen's generated code gives the resolver: validation has checked its shape, and
// coercion its DateTimes and JSON values (coercion.go).
func filterArgument(v any) (*model.ContactFilter, error) {
	m, _ := v.(map[string]any)
	var f model.ContactFilter
	var err error
	ids := func(v any) []string {
		if v == nil {
			return nil
		}
		out := []string{}
		for _, id := range inputList(v) {
			s, _ := id.(string)
			out = append(out, s)
		}
		return out
	}
	if seg, ok := m["segments"].(map[string]any); ok {
		f.Segments = &model.SegmentMembershipFilter{Any: ids(seg["any"]), All: ids(seg["all"]), None: ids(seg["none"])}
		f.Segments.InAnySegment = optionalBool(seg["inAnySegment"])
	}
	dates := func(v any) (*model.DateTimeRange, error) {
		r, ok := v.(map[string]any)
		if !ok {
			return nil, nil
		}
		out := &model.DateTimeRange{}
		for name, end := range map[string]**time.Time{"from": &out.From, "to": &out.To} {
			if r[name] == nil {
				continue
			}
			t, err := scalar.UnmarshalDateTime(r[name])
			if err != nil {
				return nil, err
			}
			*end = &t
		}
		return out, nil
	}
	if f.CreatedAt, err = dates(m["createdAt"]); err != nil {
		return nil, err
	}
	if f.UpdatedAt, err = dates(m["updatedAt"]); err != nil {
		return nil, err
	}
	f.HasEmail, f.HasName = optionalBool(m["hasEmail"]), optionalBool(m["hasName"])
	for _, c := range inputList(m["attributes"]) {
		a, _ := c.(map[string]any)
		cond := &model.AttributeCondition{Exists: optionalBool(a["exists"])}
		cond.Key, _ = a["key"].(string)
		if a["equals"] != nil {
			if cond.Equals, err = scalar.UnmarshalRawJSON(a["equals"]); err != nil {
				return nil, err
			}
		}
		if a["in"] != nil {
			in := inputList(a["in"])
			cond.In = make([]json.RawMessage, len(in))
			for i, v := range in {
				if cond.In[i], err = scalar.UnmarshalRawJSON(v); err != nil {
					return nil, err
				}
			}
		}
		for name, bound := range map[string]**float64{"atLeast": &cond.AtLeast, "atMost": &cond.AtMost} {
			if a[name] == nil {
				continue
			}
			x, err := graphql.UnmarshalFloat(a[name])
			if err != nil {
				return nil, err
			}
			*bound = &x
		}
		f.Attributes = append(f.Attributes, cond)
	}
	return &f, nil
}

// inputList reads a list argument: a single value given for a list is a list of it,
// as GraphQL's input coercion reads it; nil is none.
func inputList(v any) []any {
	if v == nil {
		return nil
	}
	if list, ok := v.([]any); ok {
		return list
	}
	return []any{v}
}

// optionalBool reads a Boolean argument; nil when absent.
func optionalBool(v any) *bool {
	b, ok := v.(bool)
	if !ok {
		return nil
	}
	return &b
}

// optionalInt reads an Int argument, from a literal or a variable; nil when absent.
func optionalInt(v any) (*int, error) {
	if v == nil {
		return nil, nil
	}
	n, err := graphql.UnmarshalInt(v)
	if err != nil {
		return nil, fmt.Errorf("%v is not an Int: %w", v, err)
	}
	return &n, nil
}

// badArgument is the refusal of a request for the argument err names, shaped as
// presentError shapes the same error when a resolver returns it; without err as its
// cause, which the presenter would present again, at the operation's path.
func badArgument(path ast.Path, err error) *gqlerror.Error {
	if errs := crm.UserErrors(err); errs != nil {
		return badUserInput(path, nil, errs[0].Message, errs[0].Field)
	}
	return badUserInput(path, nil, err.Error(), nil)
}
