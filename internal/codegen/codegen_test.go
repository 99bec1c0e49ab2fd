package codegen

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/segments/segments/graph/scalar"
)

// exec is the shape of the code gqlgen v0.17.98 generates for an operation's data,
// a list and an object.
var exec = `func (e *executableSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	return func(ctx context.Context) *graphql.Response {
		{
			` + dataRewrite.old + `
			return &graphql.Response{Data: buf.Bytes()}
		}
	}
}

func (ec *executionContext) marshalNItem(ctx context.Context, sel ast.SelectionSet, v []*Item) graphql.Marshaler {
	ret := ` + listsRewrite.old + `
		return ec.marshalItem(ctx, sel, v[i])
	})
	return ret
}

func (ec *executionContext) _Item(ctx context.Context, sel ast.SelectionSet, obj *Item) graphql.Marshaler {
	` + fieldsRewrite.old + `itemImplementors)

	` + objectRewrite.old + `	` + groupRewrite.old + `
	out.Dispatch(ctx)
	if out.Invalids > 0 {
		return graphql.Null
	}

	if n := len(deferred.Defers); n > 0 {
		atomic.AddInt32(&ec.Deferred, int32(min(n, math.MaxInt32)))
` + objectReturn

// leaf is leafTemplate filled in, and the field context of a leaf or an object.
func leaf(fn, value, typ, marshal string, scalar bool) (function, fieldContext string) {
	function = strings.NewReplacer("FUNC", fn, "OBJECT", "*Item", "FIELDCONTEXT", "fieldContext"+fn, "VALUE", value, "TYPE", typ, "MARSHAL", marshal, "NONNULL", "true").Replace(leafTemplate)
	kind := "NewScalarFieldContext"
	if !scalar {
		kind = "NewFieldContext"
	}
	return function, "func (ec *executionContext) fieldContext" + fn + "(_ context.Context, field graphql.CollectedField) (fc *graphql.FieldContext, err error) {\n\treturn graphql." + kind + "(\"Item\", field)\n}\n"
}

// leafSource is leaf's function and field context together.
func leafSource(fn, value, typ, marshal string, scalar bool) string {
	function, fc := leaf(fn, value, typ, marshal, scalar)
	return function + fc
}

// leaves are the fields TestRewriteExec rewrites (or not), as gqlgen writes them.
var leaves = leafSource("_Item_name", "obj.Name", "string", "marshalNString2string", true) +
	leafSource("_Item_id", "obj.GlobalID()", "string", "marshalNID2string", true) +
	leafSource("_Item_key", "obj.Key()", "string", "marshalNID2string", true) +
	leafSource("_Item_label", "obj.Label()", "string", "marshalNString2string", true) +
	leafSource("_Item_note", "obj.Note", "*string", "marshalOString2ᚖstring", true) +
	leafSource("_Item_createdAt", "obj.CreatedAt", "time.Time", "marshalNDateTime2timeᚐTime", true) +
	leafSource("_Item_kind", "obj.Kind", "model.Kind", "marshalNKind2modelᚐKind", true) +
	leafSource("_Item_tags", "obj.Tags", "[]string", "marshalOString2ᚕstringᚄ", true) +
	leafSource("_Item_owner", "obj.Owner", "*Owner", "marshalOOwner2ᚖOwner", false)

func TestRewriteExec(t *testing.T) {
	got, err := RewriteExec([]byte(exec + leaves))
	if err != nil {
		t.Fatal(err)
	}
	// The leaves whose marshal function needs no field context read their value
	// directly, string fields from their address (a method's string by value), a
	// global ID from its object (any other method's ID by value); the
	// zero time still takes gqlgen's way (it is marshalled to null, an
	// error at the field's path); an enum, a list and an object keep gqlgen's way.
	for fn, want := range map[string]string{
		"_Item_name":      "\treturn stringField(&obj.Name)\n}\n",
		"_Item_label":     "\treturn ec.marshalNString2string(ctx, field.Selections, obj.Label())\n}\n",
		"_Item_id":        "\treturn globalIDField(obj)\n}\n",
		"_Item_key":       "\treturn ec.marshalNID2string(ctx, field.Selections, obj.Key())\n}\n",
		"_Item_note":      "\treturn optionalStringField(obj.Note)\n}\n",
		"_Item_createdAt": "\tif v := obj.CreatedAt; !v.IsZero() {\n\t\treturn ec.marshalNDateTime2timeᚐTime(ctx, field.Selections, v)\n\t}\n\treturn graphql.ResolveField(\n",
		"_Item_kind":      "\treturn graphql.ResolveField(\n",
		"_Item_tags":      "\treturn graphql.ResolveField(\n",
		"_Item_owner":     "\treturn graphql.ResolveField(\n",
	} {
		header := "func (ec *executionContext) " + fn + "(ctx context.Context, field graphql.CollectedField, obj *Item) (ret graphql.Marshaler) {\n"
		if !strings.Contains(string(got), header+want) {
			t.Errorf("%s rewritten to something other than\n%s%s\nin:\n%s", fn, header, want, got)
		}
	}
	if n := strings.Count(string(got), "graphql.ResolveField("); n != 4 {
		t.Errorf("%d fields left to gqlgen's way, want 4", n)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "generated.go", "package generated\n"+string(got), 0); err != nil {
		t.Errorf("rewritten executor is not Go: %v", err)
	}

	// The whole executor, exactly.
	name, nameContext := leaf("_Item_name", "obj.Name", "string", "marshalNString2string", true)
	got, err = RewriteExec([]byte(exec + name + nameContext))
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(name, "\n")
	want := exec + header + "\n\treturn stringField(&obj.Name)\n}\n" + nameContext
	for _, r := range rewrites {
		want = strings.Replace(want, r.old, r.new, 1)
	}
	if string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{
		"marshalList(ctx, sel, len(v), func",
		"fields := collectFields(ctx, ec.OperationContext, sel, itemImplementors)",
		"var deferred graphql.DeferredGroup",
		"out := newObject(fields)\n",
		"buf := bytes.NewBuffer(responseData())\n\t\t\tdata.MarshalGQL(buf)\n",
	} {
		if !strings.Contains(string(got), s) {
			t.Errorf("rewritten without %q", s)
		}
	}

	// An executor that does any of it some other way is refused, not passed on.
	exec := exec + leafSource("_Item_name", "obj.Name", "string", "marshalNString2string", true)
	for name, src := range map[string]string{
		"no leaf in a known form":            strings.Replace(exec, "\t\tnil,\n", "\t\tec.directives,\n", 1),
		"no executor":                        "package generated\n",
		"a worker limit":                     exec + strings.Replace(exec, "len(v), 0, false", "len(v), 8, false", 1),
		"no list marshalling":                strings.Replace(exec, listsRewrite.old, "nil", 1),
		"fields collected elsewhere":         exec + "func f() { graphql.CollectFields(ec.OperationContext, other, nil) }\n",
		"an object without its @defer group": exec + strings.Replace(strings.Replace(exec, listsRewrite.old, "", 1), groupRewrite.old, "", 1),
		"an object returned another way":     strings.Replace(exec, "\treturn out\n", "\treturn &out\n", 1),
		"a field set of other fields":        strings.Replace(exec, "graphql.NewFieldSet(fields)", "graphql.NewFieldSet(fields[1:])", 1),
		"a field set made elsewhere":         exec + "func f() { graphql.NewFieldSet(nil) }\n",
		"data written elsewhere":             exec + "func f() { var b bytes.Buffer }\n",
	} {
		if _, err := RewriteExec([]byte(src)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestExecutionSource(t *testing.T) {
	src, err := ExecutionSource("generated", map[string][]string{"Segment": {"contacts"}, "Contact": {"segments", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), ExecutionFile, src, 0); err != nil {
		t.Fatalf("not Go: %v\n%s", err, src)
	}
	// Sorted by type, so that regenerating reproduces the file.
	s := string(src)
	if !strings.Contains(s, `"Contact": {"segments": true, "a": true},`) || strings.Index(s, `"Contact"`) > strings.Index(s, `"Segment"`) {
		t.Errorf("table not as given, sorted by type:\n%s", s)
	}
	for _, f := range []string{"func marshalList(", "func collectFields(", "func newObject(", "func globalIDField["} {
		if !strings.Contains(s, f) {
			t.Errorf("no %s in:\n%s", f, s)
		}
	}
}

// TestLeafMarshalers checks leafMarshalers' claims against gqlgen's marshalling:
// the values they marshal directly are never marshalled to null (which would need
// the field's context to report), and the values their conditions leave out are.
func TestLeafMarshalers(t *testing.T) {
	for name, m := range map[string]graphql.Marshaler{
		"marshalNString2string":                 graphql.MarshalString(""),
		"marshalNID2string":                     graphql.MarshalID(""),
		"marshalNBoolean2bool":                  graphql.MarshalBoolean(false),
		"marshalNInt2int":                       graphql.MarshalInt(0),
		"marshalNInt2int64":                     graphql.MarshalInt64(0),
		"marshalNDateTime2timeᚐTime":            scalar.MarshalDateTime(time.Unix(0, 0)),
		"marshalNJSON2encodingᚋjsonᚐRawMessage": scalar.MarshalRawJSON(json.RawMessage("{}")),
	} {
		if _, ok := leafMarshalers[name]; !ok {
			t.Errorf("%s is not in leafMarshalers", name)
		}
		if m == graphql.Null {
			t.Errorf("%s: a value it marshals directly is null", name)
		}
	}
	if len(leafMarshalers) != 7 {
		t.Errorf("leafMarshalers has %d entries, this test checks 7", len(leafMarshalers))
	}
	if scalar.MarshalDateTime(time.Time{}) != graphql.Null {
		t.Error("the zero time is no longer null: marshalNDateTime2timeᚐTime's condition is not needed")
	}
	if scalar.MarshalRawJSON(nil) != graphql.Null {
		t.Error("nil JSON is no longer null: marshalNJSON2encodingᚋjsonᚐRawMessage's condition is not needed")
	}
}
