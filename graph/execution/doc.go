// Package execution is the run-time half of this project's changes to gqlgen's
// generated executor; internal/codegen, which cmd/graphgen runs at `go generate`,
// writes the other half into it. Two changes, both for things gqlgen offers no
// setting for:
//
//   - Lists (lists.go): the elements of a list are marshalled with a goroutine each
//     only where that can help, that is where a resolver under them may wait for a
//     dataloader's batch (MarshalList, with the table of concurrently resolved
//     Fields the generator writes, and what resolvers report with Preloaded).
//   - @defer (defer.go): gqlparser's schema declares @defer and gqlgen defers
//     fields for it, but this API answers every operation in one response, with no
//     incremental delivery to carry deferred fields later: they came back null,
//     with no error. The executor now collects an object's fields with every
//     @defer inlined (InlineDefers), as the incremental delivery proposal lets a
//     server do, so deferred fields arrive in the one response.
package execution
