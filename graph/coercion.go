package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/scalar"
)

// strictInputs refuses, after validation and before anything runs, the input values
// that gqlparser (v2.5.64) lets through and the GraphQL spec's input coercion does
// not:
//
//   - in variables, as gqlparser refuses the others (GRAPHQL_VALIDATION_FAILED at
//     ["variable", name, ...], no data): an enum value in another case ("name" for
//     NAME: gqlparser compares them case-insensitively, and gqlgen's enum then failed
//     as an internal error when its field ran), a string for an Int or a Float
//     ("3"), a number for a String, an Int outside 32 bits;
//   - in the arguments, from variables or literals, a JSON that is not an object,
//     as BAD_USER_INPUT naming the argument (400, no data): the scalar's
//     unmarshaling refused it only when its field ran, so that a mutation's earlier
//     root fields were applied while the response said data: null.
type strictInputs struct {
	schema *ast.Schema
}

var (
	_ graphql.HandlerExtension        = (*strictInputs)(nil)
	_ graphql.OperationContextMutator = (*strictInputs)(nil)
)

func (*strictInputs) ExtensionName() string { return "StrictInputs" }

func (e *strictInputs) Validate(es graphql.ExecutableSchema) error {
	e.schema = es.Schema()
	return nil
}

func (e *strictInputs) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	if ref := refusalFrom(ctx); ref != nil && ref.method == http.MethodGet && op.Operation != ast.Query {
		return nil // the transport refuses it next (405), whatever its inputs
	}
	for _, v := range op.VariableDefinitions {
		value, ok := opCtx.Variables[v.Variable]
		if !ok {
			continue
		}
		if err := e.value(v.Type, value, &ast.Path{ast.PathName("variable"), ast.PathName(v.Variable)}); err != nil {
			return err
		}
	}
	err := eachField(opCtx, op.SelectionSet, nil, func(f graphql.CollectedField, path ast.Path) *gqlerror.Error {
		if f.Definition == nil || len(f.Arguments) == 0 {
			return nil
		}
		args := f.ArgumentMap(opCtx.Variables)
		for _, a := range f.Definition.Arguments {
			if v, ok := args[a.Name]; ok {
				if err := e.objects(a.Type, v, path, []string{a.Name}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		if ref := refusalFrom(ctx); ref != nil {
			ref.status = http.StatusBadRequest
		}
	}
	return err
}

// value checks a variable's coerced value v of type t, at path (which it extends as
// it descends and restores).
func (e *strictInputs) value(t *ast.Type, v any, path *ast.Path) *gqlerror.Error {
	if v == nil {
		return nil // gqlparser refused a null where the type is non-null
	}
	if t.Elem != nil {
		list := reflect.ValueOf(v)
		if list.Kind() != reflect.Slice {
			return e.value(t.Elem, v, path) // a single value is a list of one
		}
		// []any as decoded, or a single value that gqlparser made a list of its type.
		for i := range list.Len() {
			*path = append(*path, ast.PathIndex(i))
			err := e.value(t.Elem, list.Index(i).Interface(), path)
			*path = (*path)[:len(*path)-1]
			if err != nil {
				return err
			}
		}
		return nil
	}
	def := e.schema.Types[t.NamedType]
	if def == nil {
		return nil
	}
	var problem string
	switch def.Kind {
	case ast.InputObject:
		fields, _ := v.(map[string]any)
		for _, f := range def.Fields {
			fv, ok := fields[f.Name]
			if !ok {
				continue
			}
			*path = append(*path, ast.PathName(f.Name))
			err := e.value(f.Type, fv, path)
			*path = (*path)[:len(*path)-1]
			if err != nil {
				return err
			}
		}
		return nil
	case ast.Enum:
		s, _ := v.(string)
		if def.EnumValues.ForName(s) == nil {
			problem = fmt.Sprintf("%s is not a valid %s (enum values are case-sensitive)", describe(v), def.Name)
		}
	case ast.Scalar:
		problem = scalarProblem(def.Name, v)
	}
	if problem == "" {
		return nil
	}
	return &gqlerror.Error{
		Message:    problem,
		Path:       append(ast.Path(nil), *path...),
		Extensions: map[string]any{"code": errcode.ValidationFailed},
	}
}

// scalarProblem says why v cannot be a value of the scalar, "" when it can.
func scalarProblem(scalar string, v any) string {
	switch scalar {
	case "Int":
		n, ok := number(v)
		switch {
		case !ok:
			return fmt.Sprintf("Int cannot represent %s", describe(v))
		case n != math.Trunc(n):
			return fmt.Sprintf("Int cannot represent %s: it is not a whole number", describe(v))
		case n < math.MinInt32 || n > math.MaxInt32:
			return fmt.Sprintf("Int cannot represent %s: it is not a 32-bit integer", describe(v))
		}
	case "Float":
		if _, ok := number(v); !ok {
			return fmt.Sprintf("Float cannot represent %s", describe(v))
		}
	case "String":
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("String cannot represent %s", describe(v))
		}
	case "ID":
		if _, ok := v.(string); ok {
			return ""
		}
		if n, ok := number(v); !ok || n != math.Trunc(n) {
			return fmt.Sprintf("ID cannot represent %s: an ID is a string or an integer", describe(v))
		}
	}
	return ""
}

// number reads a numeric value as JSON decoding (UseNumber) and gqlparser's coercion
// leave them; false for anything else, strings included.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// describe names a value in an error message: JSON's spelling and its kind.
func describe(v any) string {
	kind := "a number"
	switch v.(type) {
	case string:
		kind = "a string"
	case bool:
		kind = "a boolean"
	case []any:
		kind = "a list"
	case map[string]any:
		kind = "an object"
	}
	if n, ok := v.(json.Number); ok {
		return string(n) + ", " + kind
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > 40 {
		return kind
	}
	return string(b) + ", " + kind
}

// objects checks that every JSON in the argument value v of type t is an object, as
// the scalar's unmarshaling will (scalar.UnmarshalObject); field is the argument
// path of v, path the field's.
func (e *strictInputs) objects(t *ast.Type, v any, path ast.Path, field []string) *gqlerror.Error {
	if v == nil {
		return nil
	}
	if t.Elem != nil {
		list := reflect.ValueOf(v)
		if list.Kind() != reflect.Slice { // a single value is a list of one, and named so
			return e.objects(t.Elem, v, path, append(field[:len(field):len(field)], "0"))
		}
		for i := range list.Len() {
			item := list.Index(i).Interface()
			if err := e.objects(t.Elem, item, path, append(field[:len(field):len(field)], strconv.Itoa(i))); err != nil {
				return err
			}
		}
		return nil
	}
	def := e.schema.Types[t.NamedType]
	switch {
	case def == nil:
	case def.Kind == ast.InputObject:
		fields, _ := v.(map[string]any)
		for _, f := range def.Fields {
			if fv, ok := fields[f.Name]; ok {
				if err := e.objects(f.Type, fv, path, append(field[:len(field):len(field)], f.Name)); err != nil {
					return err
				}
			}
		}
	case def.Name == "JSON":
		if _, err := scalar.UnmarshalObject(v); err != nil {
			return badUserInput(path, nil, err.Error(), field)
		}
	}
	return nil
}
