package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/graph/scalar"
	"github.com/segments/segments/internal/crm"
)

// strictInputs refuses, after validation and before anything runs, the input values
// that gqlparser (v2.5.64) lets through and the GraphQL spec's input coercion does
// not:
//
//   - in variables, as gqlparser refuses the others (GRAPHQL_VALIDATION_FAILED at
//     ["variable", name, ...], no data): an enum value in another case ("name" for
//     NAME: gqlparser compares them case-insensitively, and gqlgen's enum then failed
//     as an internal error when its field ran), a string for an Int or a Float
//     ("3"), a number for a String, an Int outside 32 bits; its words for a
//     scalar's value are the ones the transport gives gqlparser's own refusals
//     (explainVariable), which named a Go type ("cannot use string as Boolean");
//   - in the arguments, from variables or literals, a JSON that is not an object
//     or a DateTime that is not RFC 3339, as BAD_USER_INPUT naming the argument
//     (400, no data): the scalar's unmarshaling refused it only when its field ran,
//     so that a mutation's earlier root fields were applied while the response said
//     data: null;
//   - a variable of a nullable type sent as null where it is used for a non-null
//     value (which validation allows when the variable or the argument has a
//     default), as GRAPHQL_VALIDATION_FAILED at ["variable", name]: the spec's field
//     error, before anything runs. It reached the resolvers as a null or a "null",
//     and failed as an internal error after a mutation had been made, panicked in
//     @skip(if:), or was read as no ID at all;
//   - in a JSON or JSONValue written in a variable's default, a number that a
//     float64 (which gqlparser reads it into) does not hold exactly, as
//     GRAPHQL_VALIDATION_FAILED at ["variable", name, ...]: 9007199254740993.0 was
//     stored as 9007199254740992, where a variable's value keeps every digit. Such a
//     number written in an argument is read as a variable's value is: validation
//     made it a variable (exactLiterals), whose value is set first here.
type strictInputs struct {
	schema *ast.Schema
	// holdsChecked names the input types whose values can hold a JSON or a DateTime
	// somewhere: the arguments' walk (objects) skips the others, such as a list of
	// 10,000 IDs.
	holdsChecked map[string]bool
}

var (
	_ graphql.HandlerExtension        = (*strictInputs)(nil)
	_ graphql.OperationContextMutator = (*strictInputs)(nil)
)

func (*strictInputs) ExtensionName() string { return "StrictInputs" }

func (e *strictInputs) Validate(es graphql.ExecutableSchema) error {
	e.schema = es.Schema()
	e.holdsChecked = map[string]bool{"JSON": true, "JSONValue": true, "DateTime": true}
	var holds func(name string, seen map[string]bool) bool
	holds = func(name string, seen map[string]bool) bool {
		def := e.schema.Types[name]
		if e.holdsChecked[name] || def == nil || def.Kind != ast.InputObject || seen[name] {
			return e.holdsChecked[name]
		}
		seen[name] = true
		for _, f := range def.Fields {
			if holds(f.Type.Name(), seen) {
				return true
			}
		}
		return false
	}
	for name := range e.schema.Types {
		if holds(name, map[string]bool{}) {
			e.holdsChecked[name] = true
		}
	}
	return nil
}

// inputPath is the path to an input value as a walk descends: a field's name, or a
// list's index. It is kept as a stack and made an error's path only for an error,
// so that walking a bulk input allocates nothing for each of its elements.
type inputPath []inputStep

// inputStep is a field's name, or, when name is "", a list's index.
type inputStep struct {
	name  string
	index int
}

func (p *inputPath) push(name string, index int) { *p = append(*p, inputStep{name, index}) }
func (p *inputPath) pop()                        { *p = (*p)[:len(*p)-1] }

// ast is p as a GraphQL error's path.
func (p inputPath) ast() ast.Path {
	out := make(ast.Path, len(p))
	for i, s := range p {
		if s.name == "" {
			out[i] = ast.PathIndex(s.index)
		} else {
			out[i] = ast.PathName(s.name)
		}
	}
	return out
}

// strings is p as extensions.field names an argument's element.
func (p inputPath) strings() []string {
	out := make([]string, len(p))
	for i, s := range p {
		if out[i] = s.name; s.name == "" {
			out[i] = strconv.Itoa(s.index)
		}
	}
	return out
}

func (e *strictInputs) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	if opCtx.Variables == nil {
		opCtx.Variables = map[string]any{}
	}
	literalValues(op, opCtx.Variables) // before anything reads the arguments
	if ref := refusalFrom(ctx); ref != nil && ref.method == http.MethodGet && op.Operation != ast.Query {
		return nil // the transport refuses it next (405), whatever its inputs
	}
	path := make(inputPath, 0, 8)
	for _, v := range op.VariableDefinitions {
		path = append(path[:0], inputStep{name: "variable"}, inputStep{name: v.Variable})
		// A default is written in the query, and read as arguments are.
		if raw, ok := e.inexactLiteral(v.Type, v.DefaultValue, &path); !ok {
			return at(&gqlerror.Error{Message: inexactMessage(raw), Path: path.ast(), Extensions: map[string]any{"code": errcode.ValidationFailed}},
				v.DefaultValue.Position)
		}
		value, ok := opCtx.Variables[v.Variable]
		if !ok {
			continue
		}
		if err := e.value(v.Type, value, &path); err != nil {
			return err
		}
	}
	if err := nullWhereNonNull(op, opCtx.Variables); err != nil {
		return err
	}
	if !e.takesChecked(op.SelectionSet, nil) {
		return nil // most operations: no field's arguments to walk
	}
	err := eachField(opCtx, op.SelectionSet, nil, func(f graphql.CollectedField, path ast.Path) *gqlerror.Error {
		if f.Definition == nil || len(f.Arguments) == 0 {
			return nil
		}
		var args map[string]any
		for _, a := range f.Definition.Arguments {
			if !e.holdsChecked[a.Type.Name()] {
				continue
			}
			if args == nil {
				args = f.ArgumentMap(opCtx.Variables)
			}
			if v, ok := args[a.Name]; ok {
				if err := e.objects(a.Type, v, path, &inputPath{{name: a.Name}}); err != nil {
					return at(err, f.Position)
				}
			}
		}
		return nil
	})
	// A mutation's refused arguments answer 400 (nothing changed), as
	// checkPayloadArguments' do; a query's, 200 with application/json, as its other
	// request errors (docs/api.md's table of codes).
	if err != nil && op.Operation == ast.Mutation {
		if ref := refusalFrom(ctx); ref != nil {
			ref.status = http.StatusBadRequest
		}
	}
	return err
}

// takesChecked reports whether a field of ss, through its fragments, has an argument
// that can hold a JSON or a DateTime: a walk of the document that allocates nothing,
// before the arguments' walk, which does.
func (e *strictInputs) takesChecked(ss ast.SelectionSet, seen map[*ast.FragmentDefinition]bool) bool {
	for _, sel := range ss {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Definition != nil && len(s.Arguments) > 0 {
				for _, a := range s.Definition.Arguments {
					if e.holdsChecked[a.Type.Name()] {
						return true
					}
				}
			}
			if e.takesChecked(s.SelectionSet, seen) {
				return true
			}
		case *ast.InlineFragment:
			if e.takesChecked(s.SelectionSet, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || seen[s.Definition] {
				continue
			}
			if seen == nil {
				seen = map[*ast.FragmentDefinition]bool{}
			}
			seen[s.Definition] = true
			if e.takesChecked(s.Definition.SelectionSet, seen) {
				return true
			}
		}
	}
	return false
}

// value checks a variable's coerced value v of type t, at path (which it extends as
// it descends and restores).
func (e *strictInputs) value(t *ast.Type, v any, path *inputPath) *gqlerror.Error {
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
			path.push("", i)
			err := e.value(t.Elem, list.Index(i).Interface(), path)
			path.pop()
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
			path.push(f.Name, 0)
			err := e.value(f.Type, fv, path)
			path.pop()
			if err != nil {
				return err
			}
		}
		return nil
	case ast.Enum:
		s, _ := v.(string)
		if def.EnumValues.ForName(s) == nil {
			problem = fmt.Sprintf("%s is not a valid %s (enum values are case-sensitive)", scalar.Describe(v), def.Name)
		}
	case ast.Scalar:
		problem = scalarProblem(def.Name, v)
	}
	if problem == "" {
		return nil
	}
	if def.Kind == ast.Scalar {
		problem = variableMessage(*path, problem)
	}
	return &gqlerror.Error{
		Message:    problem,
		Path:       path.ast(),
		Extensions: map[string]any{"code": errcode.ValidationFailed},
	}
}

// apiSchema is the API's schema, for the transport, which answers a variable that
// gqlparser refused before any extension ran (explainVariable).
var apiSchema = generated.NewExecutableSchema(generated.Config{}).Schema()

// variableMessage is problem, a scalar's refusal of a value, said of the variable at
// path (["variable", name, ...]) as graphql-js says it ("Variable "$f" got invalid
// value ..."), with the place in the value when it is not the variable's whole value.
func variableMessage(path inputPath, problem string) string {
	var b strings.Builder
	b.WriteString(`Variable "$`)
	b.WriteString(path[1].name)
	b.WriteString(`" got an invalid value`)
	if len(path) > 2 {
		b.WriteString(` at "`)
		b.WriteString(path[1].name)
		for _, s := range path[2:] {
			if s.name == "" {
				b.WriteString("[" + strconv.Itoa(s.index) + "]")
			} else {
				b.WriteString("." + s.name)
			}
		}
		b.WriteString(`"`)
	}
	b.WriteString(": ")
	b.WriteString(problem)
	return b.String()
}

// explainVariable rewrites err, gqlparser's refusal of a variable's value
// (validator.VariableValues, before strictInputs runs), as strictInputs words its
// own when the value is a scalar's: gqlparser names the Go type it decoded, or
// another value ("cannot use value 0 as Int" for 5.5, "cannot use string as Boolean"
// for 1, "cannot use slice as Int" for [1]), where the client needs the value it sent
// and the type expected. Only those type mismatches (messages "cannot use ...") are
// rewritten: a null refused ("cannot be null"), an enum value, a missing field and
// strictInputs' own errors (nullWhereNonNull's among them) are left as they are.
// vars are the variables after gqlparser's coercion, which it writes back into
// nested maps (a single value sent for a list is a list of one there), so they hold
// the value sent only where coercion failed, the one err names. op may be nil (a
// document that did not validate).
func explainVariable(schema *ast.Schema, op *ast.OperationDefinition, vars map[string]any, err *gqlerror.Error) {
	if op == nil || len(err.Path) < 2 || err.Path[0] != ast.PathName("variable") || !strings.HasPrefix(err.Message, "cannot use ") {
		return
	}
	name, _ := err.Path[1].(ast.PathName)
	d := op.VariableDefinitions.ForName(string(name))
	v, ok := vars[string(name)]
	if d == nil || !ok {
		return
	}
	t := d.Type
	path := inputPath{{name: "variable"}, {name: string(name)}}
	for _, step := range err.Path[2:] {
		switch s := step.(type) {
		case ast.PathIndex:
			if t.Elem == nil {
				return
			}
			t = t.Elem
			if list, isList := v.([]any); isList {
				if int(s) >= len(list) {
					return
				}
				v = list[s]
			} else if s != 0 {
				return // else a single value, which is a list of one
			}
			path.push("", int(s))
		case ast.PathName:
			def := schema.Types[t.Name()]
			fields, isObject := v.(map[string]any)
			if t.Elem != nil || def == nil || def.Kind != ast.InputObject || !isObject || def.Fields.ForName(string(s)) == nil {
				return
			}
			t = def.Fields.ForName(string(s)).Type
			if v, ok = fields[string(s)]; !ok {
				return
			}
			path.push(string(s), 0)
		}
	}
	if def := schema.Types[t.Name()]; v != nil && t.Elem == nil && def != nil && def.Kind == ast.Scalar {
		if problem := scalarProblem(def.Name, v); problem != "" {
			err.Message = variableMessage(path, problem)
		}
	}
}

// scalarProblem says why v cannot be a value of the scalar name, "" when it can.
func scalarProblem(name string, v any) string {
	switch name {
	case "Int":
		n, ok := number(v)
		raw, isJSON := v.(json.Number)
		switch {
		case !ok:
			return fmt.Sprintf("Int cannot represent %s", scalar.Describe(v))
		case n != math.Trunc(n):
			return fmt.Sprintf("Int cannot represent %s: it is not a whole number", scalar.Describe(v))
		case n < math.MinInt32 || n > math.MaxInt32:
			return fmt.Sprintf("Int cannot represent %s: it is not a 32-bit integer", scalar.Describe(v))
		case isJSON && strings.ContainsAny(string(raw), ".eE"):
			// gqlparser reads a variable's Int as JSON's integers only.
			return fmt.Sprintf("Int cannot represent %s: write it as an integer, without a fraction or an exponent", scalar.Describe(v))
		}
	case "Boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("Boolean cannot represent %s", scalar.Describe(v))
		}
	case "Float":
		if _, ok := number(v); !ok {
			return fmt.Sprintf("Float cannot represent %s", scalar.Describe(v))
		}
	case "String":
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("String cannot represent %s", scalar.Describe(v))
		}
	case "ID":
		if _, ok := v.(string); ok {
			return ""
		}
		if n, ok := number(v); !ok || n != math.Trunc(n) {
			return fmt.Sprintf("ID cannot represent %s: an ID is a string or an integer", scalar.Describe(v))
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

// objects checks that every JSON in the argument value v of type t is an object, and
// every DateTime RFC 3339, as the scalars' unmarshaling will (scalar.UnmarshalObject,
// scalar.UnmarshalDateTime); arg is the argument path
// of v (which it extends as it descends and restores), path the field's.
func (e *strictInputs) objects(t *ast.Type, v any, path ast.Path, arg *inputPath) *gqlerror.Error {
	if v == nil || !e.holdsChecked[t.Name()] {
		return nil
	}
	if t.Elem != nil {
		list := reflect.ValueOf(v)
		if list.Kind() != reflect.Slice { // a single value is a list of one, and named so
			arg.push("", 0)
			defer arg.pop()
			return e.objects(t.Elem, v, path, arg)
		}
		for i := range list.Len() {
			arg.push("", i)
			err := e.objects(t.Elem, list.Index(i).Interface(), path, arg)
			arg.pop()
			if err != nil {
				return err
			}
		}
		return nil
	}
	switch t.NamedType {
	case "JSON":
		if _, err := scalar.UnmarshalObject(v); err != nil {
			return badUserInput(path, nil, err.Error(), arg.strings())
		}
		return nil
	case "JSONValue": // any JSON value
		return nil
	case "DateTime":
		if _, err := scalar.UnmarshalDateTime(v); err != nil {
			return badUserInput(path, nil, err.Error(), arg.strings())
		}
		return nil
	}
	fields, _ := v.(map[string]any) // an input object: holdsChecked knows no other
	for _, f := range e.schema.Types[t.NamedType].Fields {
		if fv, ok := fields[f.Name]; ok {
			arg.push(f.Name, 0)
			err := e.objects(f.Type, fv, path, arg)
			arg.pop()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// inexactLiteral returns the first number of a JSON in the value v of type t, a
// variable's default as written in the query, that gqlparser does not read exactly
// (exactNumber), and false; or true when there is none. gqlparser reads a literal
// Float into a float64, and the attributes then kept its nearest value, not the
// number written; a variable's value keeps every digit (json.Number). arg is the path
// of v (which it extends as it descends and restores), left at the number's JSON when
// it finds one.
func (e *strictInputs) inexactLiteral(t *ast.Type, v *ast.Value, arg *inputPath) (string, bool) {
	if v == nil || v.Kind == ast.Variable || !e.holdsChecked[t.Name()] {
		return "", true
	}
	if t.Elem != nil {
		if v.Kind != ast.ListValue { // a single value is a list of one, and named so
			arg.push("", 0)
			if raw, ok := e.inexactLiteral(t.Elem, v, arg); !ok {
				return raw, false
			}
			arg.pop()
			return "", true
		}
		for i, c := range v.Children {
			arg.push("", i)
			if raw, ok := e.inexactLiteral(t.Elem, c.Value, arg); !ok {
				return raw, false
			}
			arg.pop()
		}
		return "", true
	}
	if t.NamedType == "JSON" || t.NamedType == "JSONValue" {
		return inexactNumber(v)
	}
	def := e.schema.Types[t.NamedType]
	for _, c := range v.Children { // an input object: holdsChecked knows no other
		if f := def.Fields.ForName(c.Name); f != nil {
			arg.push(c.Name, 0)
			if raw, ok := e.inexactLiteral(f.Type, c.Value, arg); !ok {
				return raw, false
			}
			arg.pop()
		}
	}
	return "", true
}

// inexactMessage says why the number raw, written in a variable's default, is refused.
func inexactMessage(raw string) string {
	return fmt.Sprintf("the number %s, written in a variable's default, cannot be kept exactly: send it in the variable's value, which keeps every digit",
		crm.QuoteInput(raw))
}

// inexactNumber returns the first number of the JSON literal v that gqlparser does
// not read exactly (exactNumber), and false; or true when there is none.
func inexactNumber(v *ast.Value) (string, bool) {
	switch v.Kind {
	case ast.IntValue, ast.FloatValue:
		if !exactNumber(v) {
			return v.Raw, false
		}
	case ast.ListValue, ast.ObjectValue:
		for _, c := range v.Children {
			if raw, ok := inexactNumber(c.Value); !ok {
				return raw, false
			}
		}
	}
	return "", true
}

// sameNumber reports whether the decimal numbers a and b (JSON's or GraphQL's
// spelling) are equal, by their digits and exponents: "1.10" and "1.1" are, and
// "9007199254740993.0" and "9.007199254740992e+15" are not. An exponent too large for
// an int is no number a float64 holds.
func sameNumber(a, b string) bool {
	da, ea, oka := decimal(a)
	db, eb, okb := decimal(b)
	return oka && okb && da == db && ea == eb
}

// decimal returns the number s as its sign and significant digits, and the exponent
// of their last digit; zero is "0" with the exponent 0.
func decimal(s string) (digits string, exp int, ok bool) {
	sign := ""
	if rest, neg := strings.CutPrefix(s, "-"); neg {
		sign, s = "-", rest
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil {
			return "", 0, false
		}
		s, exp = s[:i], e
	}
	whole, frac, _ := strings.Cut(s, ".")
	digits = strings.TrimLeft(whole+frac, "0")
	exp -= len(frac)
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	if trimmed == "" {
		return "0", 0, true
	}
	return sign + trimmed, exp, true
}

// nullWhereNonNull refuses a variable sent as null that op uses where a non-null value
// is expected (Value.ExpectedType, which validation sets on every value): an argument,
// an input object's field, a list's element or a directive's argument. Validation lets
// a nullable variable stand there when it or the argument has a default, for when it
// is left out; sent as null, it is the spec's field error (CoerceArgumentValues).
func nullWhereNonNull(op *ast.OperationDefinition, vars map[string]any) *gqlerror.Error {
	var nulls map[string]bool
	for _, d := range op.VariableDefinitions {
		if v, ok := vars[d.Variable]; ok && v == nil && !d.Type.NonNull {
			if nulls == nil {
				nulls = map[string]bool{}
			}
			nulls[d.Variable] = true
		}
	}
	if nulls == nil {
		return nil // most operations: no variable is null
	}
	var found *ast.Value
	var inValue func(v *ast.Value)
	inValue = func(v *ast.Value) {
		switch {
		case v == nil || found != nil:
		case v.Kind == ast.Variable:
			if nulls[v.Raw] && v.ExpectedType != nil && v.ExpectedType.NonNull {
				found = v
			}
		default:
			for _, c := range v.Children {
				inValue(c.Value)
			}
		}
	}
	inDirectives := func(ds ast.DirectiveList) {
		for _, d := range ds {
			for _, a := range d.Arguments {
				inValue(a.Value)
			}
		}
	}
	seen := map[*ast.FragmentDefinition]bool{}
	var inSelections func(ss ast.SelectionSet)
	inSelections = func(ss ast.SelectionSet) {
		for _, sel := range ss {
			if found != nil {
				return
			}
			// The arguments of a field that is skipped are not coerced (the spec's
			// CollectFields leaves it out first), but those of @skip and @include are.
			switch s := sel.(type) {
			case *ast.Field:
				if inDirectives(s.Directives); found != nil || skipped(s.Directives, vars) {
					continue
				}
				for _, a := range s.Arguments {
					inValue(a.Value)
				}
				inSelections(s.SelectionSet)
			case *ast.InlineFragment:
				if inDirectives(s.Directives); found != nil || skipped(s.Directives, vars) {
					continue
				}
				inSelections(s.SelectionSet)
			case *ast.FragmentSpread:
				if inDirectives(s.Directives); found != nil || skipped(s.Directives, vars) {
					continue
				}
				if s.Definition != nil && !seen[s.Definition] {
					seen[s.Definition] = true
					inDirectives(s.Definition.Directives)
					inSelections(s.Definition.SelectionSet)
				}
			}
		}
	}
	inDirectives(op.Directives)
	inSelections(op.SelectionSet)
	if found == nil {
		return nil
	}
	return at(&gqlerror.Error{
		Message: fmt.Sprintf("Variable \"$%s\" is null where a non-null %s is expected: send a value, or leave the variable out to use its default",
			found.Raw, found.ExpectedType.String()),
		Path:       ast.Path{ast.PathName("variable"), ast.PathName(found.Raw)},
		Extensions: map[string]any{"code": errcode.ValidationFailed},
	}, found.Position)
}

// skipped reports whether directives skip what they are on: @skip(if: true), or
// @include(if: false), with the variables' values.
func skipped(directives ast.DirectiveList, vars map[string]any) bool {
	for _, d := range directives {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		var on bool
		if a := d.Arguments.ForName("if"); a != nil {
			switch a.Value.Kind {
			case ast.BooleanValue:
				on = a.Value.Raw == "true"
			case ast.Variable:
				on, _ = vars[a.Value.Raw].(bool)
			}
		}
		if on == (d.Name == "skip") {
			return true
		}
	}
	return false
}

// at is err located at pos in the document (locations), as validation's errors are;
// pos may be nil.
func at(err *gqlerror.Error, pos *ast.Position) *gqlerror.Error {
	if pos != nil {
		err.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return err
}
