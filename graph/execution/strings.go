package execution

import (
	"io"

	"github.com/99designs/gqlgen/graphql"
)

// String returns the marshaler of the string at p, a field of a resolved object,
// which it reads when the response is written (its object is not changed after it
// resolves). It writes what graphql.MarshalString writes without allocating: a
// struct of one pointer is held in an interface as it is, where MarshalString
// allocates a closure over the string for every string of a response (a page of 50
// contacts with their segments has 400).
func String(p *string) graphql.Marshaler { return stringAt{p} }

// OptionalString is String for a nullable field: null where p is nil, as
// gqlgen's marshalling of a *string writes it.
func OptionalString(p *string) graphql.Marshaler {
	if p == nil {
		return graphql.Null
	}
	return stringAt{p}
}

type stringAt struct{ p *string }

// MarshalGQL writes the string as graphql.MarshalString does (its closure, used
// here in place, stays on the stack).
func (s stringAt) MarshalGQL(w io.Writer) { graphql.MarshalString(*s.p).MarshalGQL(w) }
