// Package execution is the run-time half of this project's changes to gqlgen's
// generated executor; internal/codegen, which cmd/graphgen runs at `go generate`,
// writes the other half into it. Six changes, all for things gqlgen offers no
// setting for:
//
//   - Lists (lists.go): gqlgen marshals the elements of every list of objects in
//     goroutines of their own, so that resolvers of sibling elements can wait on a
//     dataloader together (a page of 50 contacts loads their segments in one
//     statement, not 50). Where no resolver under the elements can wait (the
//     segment list's names and counts; a contacts page whose segments its resolver
//     fetched with the page and reported with Preloaded), a goroutine only costs its
//     spawn, stack growth and a wake-up of the other core, and MarshalList marshals
//     the elements one after the other (with the table of concurrently resolved
//     Fields the generator writes), their contexts allocated together. In make
//     bench that took our server's CPU per request down 10-15% on the segment list
//     (W1), and 20-30% twice on the contacts page (W3): once for the segments
//     under each contact, once for the contacts themselves.
//   - @defer (defer.go): gqlparser's schema declares @defer and gqlgen defers
//     fields for it, but this API answers every operation in one response, with no
//     incremental delivery to carry deferred fields later: they came back null,
//     with no error. The executor now collects an object's fields with every
//     @defer inlined (InlineDefers), as the incremental delivery proposal lets a
//     server do, so deferred fields arrive in the one response.
//   - Objects (object.go): gqlgen's field set, as it writes an object, builds a
//     map of the names written and copies every field, to guard against a name
//     its field collection never repeats. Object writes the same bytes with a scan
//     of the names before: a fifth of the segment list's allocations (W1: 2,140 to
//     1,726 per request) and a sixth of the contacts page's (W3: 11,963 to 9,999).
//     It is also the field set the executor resolves the object into, allocated
//     with room for its values: one allocation where gqlgen makes three. With the
//     field contexts of a list's elements made together (MarshalList) and the
//     strings below, W1 went from 1,359 to 1,054 allocations a request and W3 from
//     6,428 to 4,873.
//   - Strings (strings.go, ids.go): gqlgen marshals a string through a closure
//     over it, allocated for every string of a response. A string that is a field
//     of its object is marshalled from the field's address instead (String), which
//     an interface holds without an allocation, and a global ID is appended by its
//     object straight into the response (GlobalID), never made a string.
//   - Collected fields (fields.go): gqlgen looks up an object's fields in its
//     cache with a key it allocates for every object; CollectFields keeps them
//     in the operation (WithOperation), looked up without one.
//   - Data buffers (data.go): gqlgen writes each operation's data into a new
//     buffer, grown by doubling to the response's size. The executor takes one
//     from a pool instead (DataBuffer), and the transport gives it back once the
//     response is written (ReleaseData): W3 421 to 324 kB allocated a request
//     (with the transport writing the data without a copy), W1 116 to 91.
//
// With the element contexts, the IDs and the collected fields, W1 went from 1,044
// to 795 allocations a request and W3 from 4,359 to 2,763.
package execution
