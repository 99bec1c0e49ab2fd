package execution

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// collectKey names the fields collected for objects of one type (by its satisfies
// slice, one per type in the generated executor) selected with one selection set
// (by the address of its first selection and its length, as gqlgen's cache does).
type collectKey struct {
	sel       *ast.Selection
	n         int
	satisfies *string
}

// CollectFields returns the fields selected with sel of an object of a type that
// satisfies satisfies, as graphql.CollectFields collects them, with every @defer
// inlined (InlineDefers). In an operation's context (WithOperation) they are
// collected once per selection set and type, as gqlgen caches them, but looked up
// without an allocation: gqlgen's lookup takes the selection set's address through
// reflect.ValueOf, which boxes the slice on the heap, for every object of a
// response (350 on a contacts page of 50 with their segments). The objects of a
// list share their selection and type, so all but the first find their fields
// here.
func CollectFields(ctx context.Context, oc *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	op := operationOf(ctx)
	if op == nil || len(sel) == 0 || len(satisfies) == 0 {
		return InlineDefers(graphql.CollectFields(oc, sel, satisfies))
	}
	key := collectKey{&sel[0], len(sel), &satisfies[0]}
	op.mu.Lock()
	fields, ok := op.collected[key]
	op.mu.Unlock()
	if ok {
		return fields
	}
	fields = InlineDefers(graphql.CollectFields(oc, sel, satisfies))
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.collected == nil {
		op.collected = map[collectKey][]graphql.CollectedField{}
	}
	if cached, ok := op.collected[key]; ok { // collected meanwhile by a sibling
		return cached
	}
	op.collected[key] = fields
	return fields
}
