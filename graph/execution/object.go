package execution

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
)

// Object is the field set of one object being resolved, and its marshaler once
// resolved. The generated executor fills it as gqlgen's field set (which it embeds:
// Values, Invalids, ResolveConcurrently, Dispatch), and it writes what that field
// set's MarshalGQL writes (each field's response name and value, in order, a name
// given twice written once) with one allocation for an object of up to eight
// fields. gqlgen's field set costs two allocations to make and, for every object it
// writes, a map of the names written, a copy of every field and an iterator: on a
// page of 50 contacts with their segments, 350 objects and 900 fields.
//
// Only the generated executor's own use of a field set is supported: the embedded
// field set does not know its fields (gqlgen sets them only where it allocates the
// set), so Object has its own ResolveConcurrently, and the set's views (for @defer,
// which InlineDefers removes) and its own MarshalGQL must not be used.
type Object struct {
	graphql.FieldSet
	fields []graphql.CollectedField
}

// The Objects of up to 2, 4 and 8 fields, each allocated with its values: an edge,
// a connection and a segment of the contacts table have two, a segment of the
// segment list five, a contact of the contacts table six.
type (
	object2 struct {
		Object
		values [2]graphql.Marshaler
	}
	object4 struct {
		Object
		values [4]graphql.Marshaler
	}
	object8 struct {
		Object
		values [8]graphql.Marshaler
	}
)

// NewObject returns the Object of an object whose collected fields are fields.
func NewObject(fields []graphql.CollectedField) *Object {
	var o *Object
	switch n := len(fields); {
	case n <= 2:
		o2 := &object2{}
		o2.Values = o2.values[:n:n]
		o = &o2.Object
	case n <= 4:
		o4 := &object4{}
		o4.Values = o4.values[:n:n]
		o = &o4.Object
	case n <= 8:
		o8 := &object8{}
		o8.Values = o8.values[:n:n]
		o = &o8.Object
	default:
		o = &Object{}
		o.Values = make([]graphql.Marshaler, n)
	}
	o.fields = fields
	return o
}

// ResolveConcurrently schedules the resolution of field i for Dispatch, as the
// field set's ResolveConcurrently does for a field not deferred (the only kind
// InlineDefers leaves): with recoverFromPanic, a panic is reported and resolves to
// null; a null in a non-null field (nonNull), or the required null a nullable one's
// failed child leaves, makes the whole object null.
func (o *Object) ResolveConcurrently(oc *graphql.OperationContext, _ *graphql.DeferredGroup, i int, recoverFromPanic, nonNull bool, resolve func(ctx context.Context) graphql.Marshaler) {
	if o.fields[i].IsDeferred() {
		panic("execution: field " + o.fields[i].Alias + " is deferred: its object's fields were not collected with InlineDefers")
	}
	invalid := graphql.RequiredNull
	if nonNull {
		invalid = graphql.Null
	}
	o.Concurrently(i, func(ctx context.Context) (v graphql.Marshaler) {
		defer func() {
			if recoverFromPanic {
				if r := recover(); r != nil {
					oc.Error(ctx, oc.Recover(ctx, r))
					v = graphql.Null
				}
			}
			if v == invalid {
				atomic.AddUint32(&o.Invalids, 1)
			}
		}()
		return resolve(ctx)
	})
}

// MarshalGQL writes the object as a JSON object. Response names are GraphQL names
// (letters, digits and underscores), which JSON needs no escape for.
//
// The values are read when the object is written, as gqlgen's are: its resolvers
// have all returned by then (Dispatch waits for them), so Values is final.
func (o *Object) MarshalGQL(w io.Writer) {
	var seen map[string]bool // only for objects of many fields (written)
	w.Write(openBrace)
	for i := range o.fields {
		name := o.fields[i].Alias
		if i > 0 {
			// gqlgen collects a name once per object; its FieldSet still skips a
			// repeated one, and so does this. The first field is always written.
			if written(o.fields[:i], name, &seen) {
				continue
			}
			w.Write(comma)
		}
		w.Write(quote)
		io.WriteString(w, name)
		w.Write(quoteColon)
		o.Values[i].MarshalGQL(w)
	}
	w.Write(closeBrace)
}

var (
	openBrace  = []byte("{")
	closeBrace = []byte("}")
	comma      = []byte(",")
	quote      = []byte(`"`)
	quoteColon = []byte(`":`)
)

// scanFields is the most fields before a name whose repetition is looked for by
// comparing it with each: objects have a handful, for which that costs less than
// the map gqlgen builds; a selection of hundreds gets a map.
const scanFields = 32

// written reports whether one of fields, the ones before the field named name, has
// that response name. seen is the map of names it builds past scanFields fields.
func written(fields []graphql.CollectedField, name string, seen *map[string]bool) bool {
	if len(fields) <= scanFields {
		for i := range fields {
			if fields[i].Alias == name {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]bool, len(fields)+1)
		for i := range fields {
			(*seen)[fields[i].Alias] = true
		}
	}
	if (*seen)[name] {
		return true
	}
	(*seen)[name] = true
	return false
}
