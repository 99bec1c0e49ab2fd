package store

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/uptrace/bun"
)

// A page of the members of segments (Segment.contacts; a page of an audience with an
// Any or All list) can be read two ways, and each is far the cheaper in some cases.
// Walking the contacts in the page's order and keeping the members reads about
// limit × N / k contacts, for k members among the workspace's N spread over the
// order (the benchmark's are: the walks read 0.7-1.3 times that), about 2 µs each.
// Reading the members first and sorting them reads k, about 4 µs each. At 1M
// contacts (EXPLAIN ANALYZE, warm, pages of 50, serial plans), walking and members
// first: 890 members, 118 and 4-6 ms; 1,783, 62 and 8-10; 4,473, 30 and 21; 8,991,
// 8.6 and 30-38; 18,166, 4.1 and 54-65; 50,000, 1.5 and 116. So a page's statement
// holds both ways, and PostgreSQL reads the members first when k² ≤
// membersFirstFactor × limit × N (7,100 members at 1M contacts for pages of 50),
// k and N from the counters (segments.contact_count, contact_counts), which the
// statement reads itself.
const membersFirstFactor = 1

// A walk costs what the estimate says only when the members are spread over the
// order. Members that cluster far from where the walk starts (a segment of contacts
// imported a year ago, paged newest first) make it read up to the whole list: 2.3-3.7
// s for segments of 20,000 and 100,000 such members at 1M contacts. So a walk reads
// at most walkLimitFactor times the rows the estimate gives (for k the largest
// segment of an Any list, which its union holds at least), and when that does not
// fill the page the statement reads the members first instead, whose cost k bounds:
// 115 and 250 ms for those two segments. Members spread over the order fill the page
// well within the limit.
const walkLimitFactor = 4

// twoWayPage is a page of the members of segments that its statement reads either
// way (see membersFirstFactor and walkLimitFactor).
type twoWayPage[R any] struct {
	// list selects the rows before the membership condition: the workspace's
	// contacts, or those a search finds.
	list func(dst *[]R) *bun.SelectQuery
	// walked adds the membership condition as a walk tests it on each row; first
	// adds it as reading the members first does, from the candidates.
	walked, first func(q *bun.SelectQuery) *bun.SelectQuery
	// gate is the SQL condition of reading the members first from the start, and
	// limit the SQL (bigint) of the most rows of list a walk reads; neither may
	// name a column of the paged rows.
	gate, limit         string
	gateArgs, limitArgs []any
}

// twoWayPageSelect returns the statement of the page p describes:
//
//	WITH walk_plan AS (SELECT gate AS members_first, limit AS walk_limit),
//	     walk AS (the page of the first walk_limit rows of list that walked keeps,
//	              unless members_first),
//	     walk_choice AS (SELECT members_first, or the walk filled no page and
//	                     stopped at its limit)
//	SELECT page.* FROM (the walk's page, and its probe, unless walk_choice;
//	                    the page of first, and its probe, if walk_choice) AS page
//
// PostgreSQL evaluates each condition once, as the statement starts (or once per
// outer row in a lateral subquery), and never starts a branch whose condition is
// false: the walk, when the members come first; the members, when the walk filled
// the page.
func twoWayPageSelect[R any](p twoWayPage[R], dst *[]R, pq pageQuery) (*bun.SelectQuery, error) {
	b, err := pq.bounds()
	if err != nil {
		return nil, err
	}
	db := p.list(dst).DB()
	// Every branch selects the same columns by name: the walk's rows carry their
	// sort keys too (below).
	pq.columns = columnsOf[R](db, pq.alias)
	b.pq = pq
	plan := db.NewSelect().
		ColumnExpr("("+p.gate+") AS members_first", p.gateArgs...).
		ColumnExpr("("+p.limit+") AS walk_limit", p.limitArgs...)

	// The walk reads list in the page's order, at most walk_limit rows, then keeps
	// the members. The rows carry their sort keys as columns (sort_1, ...), so that
	// the outer query's order is the inner one's, which PostgreSQL then keeps
	// without sorting: ordered by expressions over the subquery's columns (the
	// NAME order's lower()), it would sort every row the walk read.
	inner := b.within(p.list(dst).ColumnExpr(pq.alias + ".*"))
	for i, e := range pq.keyExprs(pq.alias + "." + pq.key.column) {
		inner = inner.ColumnExpr(fmt.Sprintf("%s AS sort_%d", e, i+1))
	}
	inner = pq.orderBy(inner.Where("NOT (SELECT members_first FROM walk_plan)"), b.walkDesc)
	// Bun writes no LIMIT of an expression: it follows the inner query's ORDER BY.
	walk := p.walked(db.NewSelect().TableExpr("(? LIMIT (SELECT walk_limit FROM walk_plan)) AS "+pq.alias, inner)).
		ColumnExpr(pq.columns).ColumnExpr("false AS probe")
	dir := " ASC"
	if b.walkDesc {
		dir = " DESC"
	}
	for i := range pq.key.parts {
		walk = walk.OrderExpr(fmt.Sprintf("%s.sort_%d%s", pq.alias, i+1, dir))
	}
	walk = walk.OrderExpr(pq.alias + ".id" + dir).Limit(int64(pq.args.Size() + 1))

	// The walk stopped at its limit when list holds walk_limit rows within the
	// cursors: rows of the list it never read may be members.
	var unused []R
	listed := b.within(p.list(&unused).ColumnExpr("1"))
	choice := db.NewSelect().TableExpr("walk_plan").
		ColumnExpr("members_first OR ((SELECT count(*) FROM walk) <= ? AND (SELECT count(*) FROM (? LIMIT (SELECT walk_limit FROM walk_plan)) AS listed) = walk_limit) AS members_first",
			pq.args.Size(), listed)

	const membersFirst = "(SELECT members_first FROM walk_choice)"
	page := db.NewSelect().TableExpr("walk").ColumnExpr("walk.*").Where("NOT " + membersFirst)
	// The walk's probe walks from the cursor without a limit: a cursor of this list
	// finds its own row, a member, at once.
	if probe := pageProbe(b, func(dst *[]R) *bun.SelectQuery { return p.walked(p.list(dst)).Where("NOT " + membersFirst) }); probe != nil {
		page = page.UnionAll(probe)
	}
	first := func(dst *[]R) *bun.SelectQuery { return p.first(p.list(dst)).Where(membersFirst) }
	page = page.UnionAll(b.page(first(dst)))
	if probe := pageProbe(b, first); probe != nil {
		page = page.UnionAll(probe)
	}
	// The union in a subquery: Bun writes a query's WITH inside the parentheses of
	// its first UNION member, where the others would not see it.
	return db.NewSelect().With("walk_plan", plan).With("walk", walk).With("walk_choice", choice).
		TableExpr("(?) AS page", page).ColumnExpr("page.*"), nil
}

// columnsOf returns the SQL list of the columns that rows of type R hold, of the
// table aliased alias.
func columnsOf[R any](db *bun.DB, alias string) string {
	fields := db.Dialect().Tables().Get(reflect.TypeFor[R]()).Fields
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = alias + "." + string(f.SQLName)
	}
	return strings.Join(cols, ", ")
}
