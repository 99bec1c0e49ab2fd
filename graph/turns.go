package graph

// StatementsAtOnce is the most SQL statements of one operation that run at once
// (store.WithStatementTurns), wherever in the operation they come from.
//
// gqlgen resolves a query's root fields concurrently, and the fields of one object
// too, each in a goroutine of its own, and each statement holds a database connection
// while it runs: one request of 20 aliased counts (all --max-root-fields lets
// through, 1 point each) held 20 connections, the whole pool, though the bounds on
// running requests count it as one; so did 20 aliased searches of one segment
// (segment(id:) { a0: contacts(search:) ... }, or a mutation's payload), each a
// statement of its own. Four such requests of one key (its --max-running-per-caller)
// kept another workspace's pages waiting 2.3-4.9 s at the median. Bounded, a request
// holds at most this many connections at once (a transaction one, all along), so
// those bounds bound a caller's share of the pool again.
//
// The bound is on statements rather than on root fields, as it was first, each root
// field with its whole subtree: that left the fields below the root unbounded, and
// made a root lookup by ID give its place up while it waited for its batch. Bounding
// the statements, the root-field bound holds no connection the statement bound does
// not, so there is none.
//
// Two, not one: a dashboard's page may ask for several slow lists in one request,
// and with two at once it waits for the slower of two rather than for their sum;
// yet a caller's 4 requests still hold at most 8 of the pool's 20 connections, and a
// workspace's 8 at most 16. On the benchmark's small workspace, where each statement
// takes a fraction of a millisecond, one, two and unbounded measured alike
// (BenchmarkDashboardRoots, three root fields: 0.9-1.9 ms a request on a loaded
// 2-core machine).
const StatementsAtOnce = 2
