package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// Page is one page of a keyset-paginated list, in the requested order.
type Page[T any] struct {
	Items           []T
	HasNextPage     bool
	HasPreviousPage bool
	// total is the number of items in the entire list, when totalKnown (see Total).
	total      int
	totalKnown bool
	// cursor writes the cursor of Items[i]. A cursor costs a JSON encoding and a
	// base64 one, and a page read for its nodes needs two at most (pageInfo's start
	// and end), so cursors are written when asked for.
	cursor func(i int) string
}

// Cursor returns the opaque position of Items[i], for after and before.
func (p Page[T]) Cursor(i int) string { return p.cursor(i) }

// Total returns the number of items in the whole list when the page's statement
// knows it: when the page holds all of it (read from neither cursor, with no page
// before or after it), or when the statement counted the list to choose its way (a
// campaign's audience: any of some segments but none of others). The list then
// needs no statement to count it, and the count is read in the page's snapshot.
func (p Page[T]) Total() (n int, known bool) { return p.total, p.totalKnown }

// pageNav is where a page read by pageSelect lies in its list.
type pageNav struct {
	hasNext, hasPrev bool
	// whole: the page is the entire list.
	whole bool
}

// sortKey is one ordering of a list: rows sort by parts (SQL over the column, %[1]s
// standing for it), then by id (unless unique). A cursor keeps the column's raw value
// and the id, and the same parts are applied to both sides of the comparison, so a
// cursor never depends on Go reproducing what PostgreSQL computes (lower(),
// collations).
// Each ordering has an index on (workspace_id, parts..., id), or on (workspace_id,
// parts...) if unique.
type sortKey struct {
	// list and name are written into cursors: a cursor fits only the list and the
	// ordering that made it.
	list   listKind
	name   string
	column string
	cast   string // SQL type of the column: timestamptz, bigint or text
	parts  []string
	// nullable columns have null cursor values.
	nullable bool
	// maxLen is the most characters a text value has: the API's limit for the column.
	maxLen int
	// inPrimaryKey: the table's primary key holds the column (INCLUDE), so that the
	// IDs and sort keys of rows found by primary key come from the key alone.
	inPrimaryKey bool
	// unique: no two rows of a workspace share the column's value (a unique index on
	// (workspace_id, column)), so in any snapshot the rows ordered by parts alone are
	// in the order of parts then id: the pages order by parts alone, which that index
	// serves as it stands (by parts then id, PostgreSQL sorts what it reads again, an
	// Incremental Sort). Cursors still compare parts then id: a row given the
	// cursor's value after its row lost it (a phone moved to another contact) lies on
	// one side of it, by its id.
	unique bool
}

// listKind names the rows a list pages through, in its cursors.
type listKind string

// The kinds of list. Query.contacts and Segment.contacts share contactList: they
// page through the same rows (contacts) in the same orderings over the same
// columns, so a position in one is a valid position in the other (a segment's
// contacts are a subset of the workspace's), and Segment.contacts of segment(id:) is
// read through the same store method as Query.contacts anyway. Segments and contacts
// never share cursors, even for orderings of the same name.
const (
	contactList listKind = "c"
	segmentList listKind = "s"
)

// The orderings of each list.
var (
	segmentsByCreatedAt    = sortKey{list: segmentList, name: "created_at", column: "created_at", cast: "timestamptz", parts: []string{"%[1]s"}}
	segmentsByUpdatedAt    = sortKey{list: segmentList, name: "updated_at", column: "updated_at", cast: "timestamptz", parts: []string{"%[1]s"}}
	segmentsByContactCount = sortKey{list: segmentList, name: "contact_count", column: "contact_count", cast: "bigint", parts: []string{"%[1]s"}}
	segmentsByName         = sortKey{list: segmentList, name: "name", column: "name", cast: "text", maxLen: crm.MaxSegmentName,
		parts: []string{"lower(%[1]s)"}}

	// The contacts' primary key includes both dates (migration 20261202000004).
	contactsByCreatedAt = sortKey{list: contactList, name: "created_at", column: "created_at", cast: "timestamptz", parts: []string{"%[1]s"}, inPrimaryKey: true}
	contactsByUpdatedAt = sortKey{list: contactList, name: "updated_at", column: "updated_at", cast: "timestamptz", parts: []string{"%[1]s"}, inPrimaryKey: true}
	// Contact names may be null: named contacts come first (ascending), ignoring case.
	contactsByName = sortKey{list: contactList, name: "name", column: "name", cast: "text", nullable: true, maxLen: crm.MaxContactName,
		parts: []string{"(%[1]s IS NULL)", "(CASE WHEN %[1]s IS NULL THEN '' ELSE lower(%[1]s) END)"}} // CASE, not coalesce: see migration 20261129000001_rls
	// A phone is unique in the workspace (UNIQUE (workspace_id, phone)), whose index
	// serves the order: no index of its own (migration 20261218000002).
	contactsByPhone = sortKey{list: contactList, name: "phone", column: "phone", cast: "text", maxLen: crm.MaxPhone,
		parts: []string{"%[1]s"}, unique: true}
	// Emails may be null, as names: contacts with one first (ascending), ignoring case
	// (contacts_email, migration 20261218000002).
	contactsByEmail = sortKey{list: contactList, name: "email", column: "email", cast: "text", nullable: true, maxLen: crm.MaxEmail,
		parts: []string{"(%[1]s IS NULL)", "(CASE WHEN %[1]s IS NULL THEN '' ELSE lower(%[1]s) END)"}}
)

// cursor is the decoded content of an opaque cursor: base64url of compact JSON such as
// {"l":"c","k":"created_at","v":"2026-11-28T09:30:00.123456Z","i":42}.
type cursor struct {
	List  listKind `json:"l"`
	Key   string   `json:"k"`
	Value any      `json:"v"`
	ID    int64    `json:"i"`
	// Since is, in the cursors of the change feeds only (contactChanges' and
	// membershipChanges'), the time from which the feed after the cursor holds every
	// deletion (see ContactChanges), as
	// RFC 3339 in UTC; decodeCursor reads it into since.
	Since string `json:"t,omitempty"`
	since time.Time
	// Epoch is, in the cursors of the change feed only, the feed's epoch when the
	// cursor was made (change_feed_epoch, bumped by a restore into a new cluster);
	// 0, before any bump, is left out.
	Epoch int64 `json:"e,omitempty"`
	// Segment and Contact are, in the cursors of the feed of memberships
	// (membershipChangeList) made while a sync from the start lists the current
	// members, the last membership listed; left out once it has listed them all.
	Segment int64 `json:"s,omitempty"`
	Contact int64 `json:"c,omitempty"`
}

// The range of timestamps a cursor may hold: years 1 to 9999, which RFC 3339 can write
// and PostgreSQL's timestamptz holds (its own range is wider). The store passes times
// to PostgreSQL as ISO dates, and PostgreSQL has no year 0: Go's year 0 would fail
// there.
var (
	minCursorTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCursorTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
)

// encode writes c as a cursor: its JSON, base64url without padding, as the feeds'
// cursors (ContactChanges, MembershipChanges) are written, once a page.
func (c cursor) encode() string {
	j, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("store: encode cursor: %v", err)) // numbers and strings
	}
	return base64.RawURLEncoding.EncodeToString(j)
}

// encodeCursor writes the cursor of the row with sort value value and id in the
// ordering key: what json.Marshal writes for the cursor, appended by hand, since a
// page's edges each have one (json.Marshal's reflection cost a contacts page of 50
// edges 80 µs).
func encodeCursor(key sortKey, value any, id int64) string {
	// The names are cursor's JSON tags, which decodeCursor reads; the test
	// TestCursorIsTheJSONOfItsFields holds the two together.
	var buf [128]byte
	b := append(buf[:0], `{"l":"`...)
	b = append(b, key.list...) // the lists and orderings' names need no escape
	b = append(b, `","k":"`...)
	b = append(b, key.name...)
	b = append(b, `","v":`...)
	b = appendCursorValue(b, value)
	b = append(b, `,"i":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, '}')
	var out [192]byte
	return string(base64.RawURLEncoding.AppendEncode(out[:0], b))
}

// appendCursorValue appends the JSON of a cursor's value: a time (as RFC 3339 in
// UTC), a number, a string or null, as json.Marshal writes it.
func appendCursorValue(b []byte, value any) []byte {
	switch v := value.(type) {
	case nil:
		return append(b, "null"...)
	case time.Time:
		b = append(b, '"') // RFC 3339 needs no escape
		b = v.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case int64:
		return strconv.AppendInt(b, v, 10)
	case string:
		if !strings.ContainsFunc(v, needsJSONEscape) {
			b = append(b, '"')
			b = append(b, v...)
			return append(b, '"')
		}
	}
	j, err := json.Marshal(value)
	if err != nil {
		panic(fmt.Sprintf("store: encode cursor: %v", err)) // values are strings, numbers and nil
	}
	return append(b, j...)
}

// needsJSONEscape reports whether json.Marshal writes r other than as itself in a
// string: controls, quotes, backslashes, the HTML characters it escapes, and
// anything not ASCII (invalid UTF-8 and the line separators included).
func needsJSONEscape(r rune) bool {
	return r < 0x20 || r >= utf8.RuneSelf || r == '"' || r == '\\' || r == '<' || r == '>' || r == '&'
}

// decodeCursor reads the cursor given as argument arg and checks that it fits key.
// Every value is checked as strictly as encodeCursor writes it, so that whatever a
// client sends, PostgreSQL never sees a value it rejects: a cursor is either one this
// list could have returned or a BAD_USER_INPUT naming arg, never an internal error.
func decodeCursor(arg, s string, key sortKey) (cursor, error) {
	bad := func(why string) error {
		return crm.Errorf(crm.CodeInvalid, crm.Path(arg), "%s is not a valid cursor for this list: %s", arg, why)
	}
	notOurs := bad("it is not one this API returned")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, notOurs
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || c.ID <= 0 || dec.More() {
		return cursor{}, notOurs
	}
	if c.Key != key.name {
		// Another list's orderings have names of their own (a contacts cursor sent to
		// contactChanges): say which is wrong, the list or its orderBy.
		if c.List != key.list {
			return cursor{}, bad("it was made for another list")
		}
		return cursor{}, bad("it was made for another orderBy")
	}
	v, ok := key.parseValue(c.Value)
	if !ok {
		return cursor{}, notOurs
	}
	c.Value = v
	if key.list == changeList || key.list == membershipChangeList {
		if c.since, ok = parseCursorTime(c.Since); !ok || c.Epoch < 0 {
			return cursor{}, notOurs
		}
	} else if c.Since != "" || c.Epoch != 0 {
		return cursor{}, notOurs
	}
	// A listing position: both or neither, in a cursor of the feed of memberships
	// only. Checked against the list the cursor names, not key's: a real cursor of
	// that feed sent to contactChanges is for another list (checked last), not one
	// this API did not return.
	if (c.Segment != 0 || c.Contact != 0) && (c.List != membershipChangeList || c.Segment <= 0 || c.Contact <= 0) {
		return cursor{}, notOurs
	}
	// The list last: another list's ordering of the same name has values of the same
	// type, and a tampered value is refused for what it is, whatever list it names.
	if c.List != key.list {
		return cursor{}, bad("it was made for another list")
	}
	return c, nil
}

// parseValue checks a cursor's decoded JSON value against the ordering's column and
// returns it as the store passes it to PostgreSQL.
func (key sortKey) parseValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil:
		return nil, key.nullable
	case string:
		switch key.cast {
		case "text":
			// PostgreSQL's text holds no NUL and only valid UTF-8; the API stores at
			// most maxLen characters.
			ok := utf8.ValidString(v) && !strings.ContainsRune(v, 0) && utf8.RuneCountInString(v) <= key.maxLen
			return v, ok
		case "timestamptz":
			return parseCursorTime(v)
		}
	case json.Number:
		if key.cast != "bigint" && key.cast != "xid8" {
			return nil, false
		}
		// Counts and transaction IDs: a non-negative integer written in its shortest
		// form.
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil && n >= 0 && strconv.FormatInt(n, 10) == string(v)
	}
	return nil, false
}

// parseCursorTime reads a time of a cursor exactly as encodeCursor writes it: RFC
// 3339 in UTC, at most microseconds (PostgreSQL's precision), within the range both
// sides can write.
func parseCursorTime(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, v)
	ok := err == nil && t.UTC().Format(time.RFC3339Nano) == v && t.Nanosecond()%1000 == 0 &&
		!t.Before(minCursorTime) && !t.After(maxCursorTime)
	return t, ok
}

// pageQuery describes one page of a list.
type pageQuery struct {
	alias string // table alias of the paged rows, such as "s"
	key   sortKey
	dir   crm.Direction
	args  crm.PageArgs
	// columns is the SQL list of the columns a page selects of its rows; empty: all
	// of them (alias.*).
	columns string
}

// selectList returns the SQL list of the columns a page selects.
func (pq pageQuery) selectList() string {
	if pq.columns != "" {
		return pq.columns
	}
	return pq.alias + ".*"
}

// keyExprs returns the SQL of the sort key over the given column reference.
func (pq pageQuery) keyExprs(ref string) []string {
	out := make([]string, 0, len(pq.key.parts)+1)
	for _, p := range pq.key.parts {
		out = append(out, fmt.Sprintf(p, ref))
	}
	return out
}

// compare returns the condition "row key op cursor", as a row comparison that the
// ordering's index serves.
func (pq pageQuery) compare(op string, c *cursor) (string, []any) {
	left := append(pq.keyExprs(pq.alias+"."+pq.key.column), pq.alias+".id")
	right := append(pq.keyExprs("?::"+pq.key.cast), "?")
	var args []any
	for _, p := range pq.key.parts {
		for range strings.Count(p, "%[1]s") {
			args = append(args, c.Value)
		}
	}
	args = append(args, c.ID)
	return fmt.Sprintf("(%s) %s (%s)", strings.Join(left, ", "), op, strings.Join(right, ", ")), args
}

// orderBy orders q by the sort key, then by id unless the key is unique.
func (pq pageQuery) orderBy(q *bun.SelectQuery, desc bool) *bun.SelectQuery {
	exprs := pq.keyExprs(pq.alias + "." + pq.key.column)
	if !pq.key.unique {
		exprs = append(exprs, pq.alias+".id")
	}
	for _, e := range exprs {
		q = q.OrderExpr(e + direction(desc))
	}
	return q
}

// sortColumns returns the SQL list of the paged rows' id and sort key, the key's
// parts as columns sort_1, sort_2, ..., for a subquery that orderBySorted orders
// the rows of.
func (pq pageQuery) sortColumns() string {
	return pq.alias + ".id, " + pq.sortKeyColumns()
}

// sortKeyColumns returns the SQL list of the sort key's parts as columns sort_1,
// sort_2, ... (sortColumns without the id).
func (pq pageQuery) sortKeyColumns() string {
	cols := make([]string, 0, len(pq.key.parts))
	for i, e := range pq.keyExprs(pq.alias + "." + pq.key.column) {
		cols = append(cols, fmt.Sprintf("%s AS sort_%d", e, i+1))
	}
	return strings.Join(cols, ", ")
}

// orderBySorted orders q by the columns of sortColumns of the rows aliased alias.
// Ordered by them, an outer query keeps its subquery's order without sorting, where
// expressions over the subquery's columns (the NAME order's lower()) would sort every
// row.
func (pq pageQuery) orderBySorted(q *bun.SelectQuery, alias string, desc bool) *bun.SelectQuery {
	return q.OrderExpr(pq.sortedOrder(alias, desc))
}

// sortedOrder returns the SQL of orderBySorted's order, as a window's ORDER BY takes
// it.
func (pq pageQuery) sortedOrder(alias string, desc bool) string {
	parts := make([]string, 0, len(pq.key.parts)+1)
	for i := range pq.key.parts {
		parts = append(parts, fmt.Sprintf("%s.sort_%d%s", alias, i+1, direction(desc)))
	}
	if !pq.key.unique {
		parts = append(parts, alias+".id"+direction(desc))
	}
	return strings.Join(parts, ", ")
}

// direction returns the SQL of an ascending or descending order.
func direction(desc bool) string {
	if desc {
		return " DESC"
	}
	return " ASC"
}

// probed is a row type that carries the probe flag of pageSelect.
type probed interface{ probe() bool }

// fetchPage reads one page. newQuery returns a fresh query that selects the filtered
// rows into dst; fetchPage adds the keyset conditions, the order and the limit.
func fetchPage[R probed](ctx context.Context, newQuery func(dst *[]R) *bun.SelectQuery, pq pageQuery) ([]R, pageNav, error) {
	var all []R
	q, err := pageSelect(newQuery, &all, pq)
	if err != nil {
		return nil, pageNav{}, err
	}
	return runPage(ctx, q, &all, pq)
}

// runPage runs q, a statement of pageSelect or pageSelectEither that selects into
// all, and returns the page it read.
func runPage[R probed](ctx context.Context, q *bun.SelectQuery, all *[]R, pq pageQuery) ([]R, pageNav, error) {
	var err error
	if _, ok := any(new(R)).(columnScanner); ok {
		*all, err = scanRows[R](ctx, q, pq.args.Size()+2)
	} else {
		err = q.Scan(ctx, all)
	}
	if err != nil {
		return nil, pageNav{}, err
	}
	rows, nav := splitPage(*all, pq)
	return rows, nav, nil
}

// columnScanner is a row type that scans itself: dest returns where the column
// named col goes (a pointer pgx can scan into), or nil for a column it does not
// hold. The pages of the dashboard's hot paths scan this way, through pgx
// (queryDirect), rather than through Bun's model reflection, which took most of the
// store's CPU on them.
type columnScanner interface{ dest(col string) any }

// scanRows runs q and scans its rows into Rs, through their columnScanner.
func scanRows[R any](ctx context.Context, q *bun.SelectQuery, capacity int) ([]R, error) {
	return scanRowsOn[R](ctx, nil, q, capacity)
}

// builtQuery is a Bun query that knows its database: a select, a raw statement.
type builtQuery interface {
	bun.Query
	DB() *bun.DB
}

// scanRowsOn is scanRows on conn, a connection with a transaction open (inTxOn), or
// on one of the pool when conn is nil.
func scanRowsOn[R any](ctx context.Context, conn *sql.Conn, q builtQuery, capacity int) ([]R, error) {
	query, err := q.AppendQuery(q.DB().QueryGen(), nil)
	if err != nil {
		return nil, err
	}
	out := make([]R, 0, capacity)
	var dests []any
	scan := func(row pgx.Rows) error {
		if dests == nil {
			dests = make([]any, len(row.FieldDescriptions()))
		}
		out = append(out, *new(R))
		r := any(&out[len(out)-1]).(columnScanner)
		for i, fd := range row.FieldDescriptions() {
			dests[i] = r.dest(fd.Name) // nil, a column the row type does not know, is skipped
		}
		return row.Scan(dests...)
	}
	if conn != nil {
		err = queryDirectOn(ctx, q.DB(), conn, q, string(query), scan)
	} else {
		err = queryDirect(ctx, q.DB(), q, string(query), scan)
	}
	return out, err
}

// pageSelect returns the one statement that reads a page: the page itself (one row
// more than asked, to learn whether another page follows) and, when the page starts
// from a cursor, a probe row from the far side of that cursor (UNION ALL) that says
// whether a page lies beyond it.
func pageSelect[R any](newQuery func(dst *[]R) *bun.SelectQuery, dst *[]R, pq pageQuery) (*bun.SelectQuery, error) {
	b, err := pq.bounds()
	if err != nil {
		return nil, err
	}
	q := b.page(newQuery(dst))
	if probe := pageProbe(b, newQuery); probe != nil {
		q = q.UnionAll(probe)
	}
	return q, nil
}

// pageBounds is where a page lies in its list: its cursors, decoded, and the
// direction it reads its list in.
type pageBounds struct {
	pq            pageQuery
	after, before *cursor
	// later and earlier are the comparisons of "later" and "earlier" in the
	// requested order: greater keys when ascending.
	later, earlier string
	// walkDesc: the page reads its list in descending order of the key. A forward
	// page walks the requested order; a backward page walks it in reverse from its
	// end, and splitPage flips it.
	walkDesc bool
}

// bounds checks the page's arguments and decodes its cursors.
func (pq pageQuery) bounds() (pageBounds, error) {
	if err := pq.args.Validate(); err != nil {
		return pageBounds{}, err
	}
	b := pageBounds{pq: pq, later: ">", earlier: "<"}
	if pq.args.After != nil {
		c, err := decodeCursor("after", *pq.args.After, pq.key)
		if err != nil {
			return pageBounds{}, err
		}
		b.after = &c
	}
	if pq.args.Before != nil {
		c, err := decodeCursor("before", *pq.args.Before, pq.key)
		if err != nil {
			return pageBounds{}, err
		}
		b.before = &c
	}
	if pq.dir == crm.Desc {
		b.later, b.earlier = "<", ">"
	}
	b.walkDesc = (pq.dir == crm.Desc) != pq.args.Backward()
	return b, nil
}

// within adds the conditions of lying between the page's cursors.
func (b pageBounds) within(q *bun.SelectQuery) *bun.SelectQuery {
	if b.after != nil {
		cond, args := b.pq.compare(b.later, b.after)
		q = q.Where(cond, args...)
	}
	if b.before != nil {
		cond, args := b.pq.compare(b.earlier, b.before)
		q = q.Where(cond, args...)
	}
	return q
}

// page makes q, which selects the filtered rows, select the page's rows: between
// the cursors, in the order walked, one more than the page holds.
func (b pageBounds) page(q *bun.SelectQuery) *bun.SelectQuery {
	q = b.within(q.ColumnExpr(b.pq.selectList()).ColumnExpr("false AS probe"))
	return b.pq.orderBy(q, b.walkDesc).Limit(int64(b.pq.args.Size() + 1))
}

// pageProbe returns the probe of pageSelect, read from a fresh query of newQuery, or
// nil when the page starts at an end of its list.
func pageProbe[R any](b pageBounds, newQuery func(dst *[]R) *bun.SelectQuery) *bun.SelectQuery {
	cond, args, ok := b.beyond()
	if !ok {
		return nil
	}
	var unused []R
	probe := newQuery(&unused).ColumnExpr(b.pq.selectList()).ColumnExpr("true AS probe").Where(cond, args...)
	return b.pq.orderBy(probe, !b.walkDesc).Limit(1)
}

// beyond returns the condition that a row lies on the far side of the cursor the
// page starts from, where its probe looks; ok is false when the page starts at an
// end of its list and has no probe.
func (b pageBounds) beyond() (cond string, args []any, ok bool) {
	start, op := b.after, b.earlier+"="
	if b.pq.args.Backward() {
		start, op = b.before, b.later+"="
	}
	if start == nil {
		return "", nil, false
	}
	cond, args = b.pq.compare(op, start)
	return cond, args, true
}

// splitPage takes the rows pageSelect read, in any order of page rows and probe, and
// returns the page in the requested order with where it lies.
func splitPage[R probed](all []R, pq pageQuery) ([]R, pageNav) {
	var probeFound bool
	rows := make([]R, 0, len(all))
	for _, r := range all {
		if r.probe() {
			probeFound = true
		} else {
			rows = append(rows, r)
		}
	}
	size := pq.args.Size()
	more := len(rows) > size
	if more {
		rows = rows[:size]
	}
	nav := pageNav{hasNext: more, hasPrev: probeFound}
	if pq.args.Backward() {
		slices.Reverse(rows)
		nav = pageNav{hasNext: probeFound, hasPrev: more}
	}
	// Read from neither cursor, a page starts at one end of the list; it reads a
	// row more than it holds, so unless it was cut short it reached the other end.
	nav.whole = pq.args.After == nil && pq.args.Before == nil && !more
	return rows, nav
}

// toPage turns fetched rows into a Page of their items. An item's cursor is written
// from its position: its value of the sort key, and its id.
func toPage[R any, T any](rows []R, nav pageNav, key sortKey, item func(*R) T, position func(*T) (any, int64)) Page[T] {
	items := make([]T, len(rows))
	for i := range rows {
		items[i] = item(&rows[i])
	}
	return Page[T]{
		Items:           items,
		HasNextPage:     nav.hasNext,
		HasPreviousPage: nav.hasPrev,
		total:           len(items),
		totalKnown:      nav.whole,
		cursor: func(i int) string {
			value, id := position(&items[i])
			return encodeCursor(key, value, id)
		},
	}
}

// likeEscaper makes %, _ and \ literal in a LIKE pattern. Made once: building a
// Replacer cost 5-6 µs, 2% of the server's CPU for a contact search.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// likePattern turns a search term into a LIKE pattern matching it as a substring:
// %, _ and \ in the term are literal.
func likePattern(term string) string {
	return "%" + likeEscaper.Replace(term) + "%"
}

// countUpTo counts the rows q selects, reading at most limit+1 of them: the result
// is the number of rows if it is at most limit, else limit+1.
func (s *Store) countUpTo(ctx context.Context, q *bun.SelectQuery, limit int) (int, error) {
	var n int
	err := s.db.NewSelect().
		TableExpr("(?) AS counted", q.ColumnExpr("1").Limit(int64(limit)+1)).
		ColumnExpr("count(*)").
		Scan(ctx, &n)
	return n, err
}
