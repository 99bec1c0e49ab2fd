package graph

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// literalPrefix begins the names of the variables exactLiterals declares, followed
// by the number they hold as written ("literal 12345678901234567890123"). A space,
// which no GraphQL name holds, keeps them apart from any variable a client declares.
const literalPrefix = "literal "

// maxLiteralDeclarations bounds the variable declarations exactLiterals adds to a
// document: one per distinct number in each operation, since a fragment that holds
// the number may be spread into any of them. Without it, 400 operations beside 4,000
// numbers (37 KB, within the token cap) took 4.9 s and 452 MB to validate, before
// any cost limit. 10,000 is twice the numbers one operation of the largest filter
// or upsert holds; past it the document is refused, and variables carry the numbers.
const maxLiteralDeclarations = 10_000

// exactLiterals is gqlparser's ValuesOfCorrectType (without suggestions), after a
// step that reads the numbers written in a JSON or JSONValue argument as a variable's
// value is read: every digit kept, as written. gqlparser (v2.5.64) reads an Int into
// an int64 and a Float into a float64 (ast.Value.Value): a number past them failed
// the input object around it ("Expected value of type AttributeCondition!", no path),
// and would panic as its field's arguments were read; one a float64 does not hold
// exactly (9007199254740993.0, 1e-400) was refused where a variable kept it; and the
// attributes kept 1.10 as 1.1, where a variable's kept 1.10. Each Float, and each Int
// past an int64, where validation meets it, becomes a reference to a variable named
// literalPrefix and the number, which every operation of the document declares
// (JSONValue, nullable, used) and strictInputs sets to the number as written
// (json.Number) before anything reads the arguments. The document is cached so
// changed, and each request sets the variables anew.
//
// Only the values of arguments are read so, not a variable's default: gqlgen
// coerces a default (validator.VariableValues) before any extension can set a
// variable, so a default's number past an int64 or a float64 is refused by
// validation as before, and one a float64 does not hold exactly by strictInputs.
var exactLiterals = core.Rule{
	Name: "ExactLiteralsValuesOfCorrectType",
	RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		l := literals{declared: map[string]*ast.VariableDefinition{}, addError: addError}
		observers.OnVariable(func(_ *core.Walker, v *ast.VariableDefinition) {
			if v.DefaultValue != nil {
				l.markDefault(v.DefaultValue)
			}
		})
		// A JSON's value is read where its parent is: the input object of which it is
		// a field, the field or directive of which it is an argument. The walk meets
		// a value after its children, so that every rule has met the number as a
		// number, and before ValuesOfCorrectType reads the parent (registered next).
		observers.OnValue(func(w *core.Walker, v *ast.Value) {
			if v.Kind != ast.ObjectValue || v.Definition == nil || v.Definition.Kind != ast.InputObject || l.inDefault[v] {
				return
			}
			for _, c := range v.Children {
				l.numbersOf(w, c.Value)
			}
		})
		observers.OnField(func(w *core.Walker, f *ast.Field) {
			for _, a := range f.Arguments {
				l.numbersOf(w, a.Value)
			}
		})
		observers.OnDirective(func(w *core.Walker, d *ast.Directive) {
			for _, a := range d.Arguments {
				l.numbersOf(w, a.Value)
			}
		})
		// Its messages print a value as the document now holds it: a rewritten number
		// as "$literal 1.10", where the client wrote 1.10. The space makes the prefix
		// no client's variable, so removing it gives back what was written.
		written := func(options ...core.ErrorOption) {
			addError(append(options, func(err *gqlerror.Error) {
				err.Message = strings.ReplaceAll(err.Message, "$"+literalPrefix, "")
			})...)
		}
		rules.ValuesOfCorrectTypeRuleWithoutSuggestions.RuleFunc(observers, written)
	},
}

// literals is what exactLiterals keeps of a document as it validates it.
type literals struct {
	// inDefault holds the values of the variables' defaults, which stay as written.
	inDefault map[*ast.Value]bool
	// declared holds the variables declared so far, by name.
	declared map[string]*ast.VariableDefinition
	// declarations counts them in every operation, up to maxLiteralDeclarations;
	// refused is whether the error that passing it reports was reported.
	declarations int
	refused      bool
	addError     core.AddErrFunc
}

// markDefault adds v, a variable's default, and every value within it to inDefault.
func (l *literals) markDefault(v *ast.Value) {
	if l.inDefault == nil {
		l.inDefault = map[*ast.Value]bool{}
	}
	l.inDefault[v] = true
	for _, c := range v.Children {
		l.markDefault(c.Value)
	}
}

// numbersOf makes every Float of v, and every Int past an int64, when v is a JSON or
// a JSONValue, a reference to its variable.
func (l *literals) numbersOf(w *core.Walker, v *ast.Value) {
	if v == nil || v.Definition == nil || (v.Definition.Name != "JSON" && v.Definition.Name != "JSONValue") {
		return
	}
	var walk func(v *ast.Value)
	walk = func(v *ast.Value) {
		switch v.Kind {
		case ast.FloatValue:
			l.variable(w, v)
		case ast.IntValue:
			if !exactNumber(v) {
				l.variable(w, v)
			}
		case ast.ListValue, ast.ObjectValue:
			for _, c := range v.Children {
				walk(c.Value)
			}
		}
	}
	walk(v)
}

// variable makes the number v a reference to the variable holding it, which every
// operation of w's document declares.
func (l *literals) variable(w *core.Walker, v *ast.Value) {
	name := literalPrefix + v.Raw
	def := l.declared[name]
	if def == nil {
		if l.declarations+len(w.Document.Operations) > maxLiteralDeclarations {
			if !l.refused {
				l.refused = true
				l.addError(core.Message("A document may write at most %d numbers in JSON arguments, each counted once for every operation of the document: send them in variables.", maxLiteralDeclarations), core.At(v.Position))
			}
			return
		}
		l.declarations += len(w.Document.Operations)
		for _, op := range w.Document.Operations {
			d := &ast.VariableDefinition{
				Variable:   name,
				Type:       ast.NamedType("JSONValue", v.Position),
				Definition: w.Schema.Types["JSONValue"],
				Position:   v.Position,
				Used:       true, // for NoUnusedVariables: by one operation, or none
			}
			op.VariableDefinitions = append(op.VariableDefinitions, d)
			if def == nil {
				def = d
			}
		}
		l.declared[name] = def
	}
	v.Kind, v.Raw, v.VariableDefinition = ast.Variable, name, def
	// A fragment that another operation spreads is walked again: its variable, of a
	// nullable type, may stand for a list's non-null element (in: [JSONValue!]).
	v.ExpectedTypeHasDefault = true
}

// exactNumber reports whether gqlparser reads the number v as written: an Int that
// an int64 holds, a Float that a float64 holds exactly ("1.10" is 1.1; not
// "9007199254740993.0", "1e-400" or "1e400").
func exactNumber(v *ast.Value) bool {
	if v.Kind == ast.IntValue {
		_, err := strconv.ParseInt(v.Raw, 10, 64)
		return err == nil
	}
	f, err := strconv.ParseFloat(v.Raw, 64)
	return err == nil && sameNumber(v.Raw, strconv.FormatFloat(f, 'g', -1, 64))
}

// literalValues sets, in vars, the variables exactLiterals declared in op: each to
// its number as written.
func literalValues(op *ast.OperationDefinition, vars map[string]any) {
	for _, d := range op.VariableDefinitions {
		if n, ok := strings.CutPrefix(d.Variable, literalPrefix); ok {
			vars[d.Variable] = json.Number(n)
		}
	}
}
