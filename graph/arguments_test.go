package graph

import (
	"reflect"
	"testing"

	"github.com/segments/segments/graph/model"
)

// TestFilterArgumentReadsEveryField: filterArgument copies by hand what gqlgen's
// generated code decodes of a ContactFilter (a mutation's payload checks its
// Segment.contacts filter before the mutation runs, when the generated decoder is not
// yet bound). A filter with every field given must come back with every field set,
// so a field added to ContactFilter, SegmentMembershipFilter, DateTimeRange or
// AttributeCondition fails here until filterArgument reads it.
func TestFilterArgumentReadsEveryField(t *testing.T) {
	every := map[string]any{
		"segments":  map[string]any{"any": []any{"S_1"}, "all": []any{"S_2"}, "none": []any{"S_3"}, "inAnySegment": true},
		"createdAt": map[string]any{"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"},
		"updatedAt": map[string]any{"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"},
		"hasEmail":  true,
		"hasName":   false,
		"attributes": []any{map[string]any{
			"key": "city", "equals": "Pune", "in": []any{"Pune"}, "exists": true, "atLeast": 1.0, "atMost": 2.0,
		}},
	}
	f, err := filterArgument(every)
	if err != nil {
		t.Fatal(err)
	}
	// The model's input structs are walked into; their values (a time, a bool) are
	// checked as set.
	modelPkg := reflect.TypeFor[model.ContactFilter]().PkgPath()
	var unset func(path string, v reflect.Value)
	unset = func(path string, v reflect.Value) {
		switch {
		case v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Type().PkgPath() == modelPkg:
			unset(path, v.Elem())
		case v.Kind() == reflect.Struct && v.Type().PkgPath() == modelPkg:
			for i := range v.NumField() {
				unset(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Pointer && v.Len() > 0:
			for i := range v.Len() {
				unset(path+"[]", v.Index(i))
			}
		case v.IsZero():
			t.Errorf("%s is not read by filterArgument", path)
		}
	}
	unset("ContactFilter", reflect.ValueOf(f))
}
