package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// Page is one page of a keyset-paginated list, in the requested order.
type Page[T any] struct {
	Items []T
	// Cursors[i] is the opaque position of Items[i], for after and before.
	Cursors         []string
	HasNextPage     bool
	HasPreviousPage bool
}

// sortKey is one ordering of a table: rows sort by parts (SQL over the column, %[1]s
// standing for it), then by id. A cursor keeps the column's raw value and the id, and
// the same parts are applied to both sides of the comparison, so a cursor never
// depends on Go reproducing what PostgreSQL computes (lower(), collations).
// Each ordering has an index on (workspace_id, parts..., id).
type sortKey struct {
	name   string // written into cursors: a cursor fits only the ordering that made it
	column string
	cast   string // SQL type of the column
	parts  []string
	// nullable columns have null cursor values.
	nullable bool
}

var (
	byCreatedAt    = sortKey{name: "created_at", column: "created_at", cast: "timestamptz", parts: []string{"%[1]s"}}
	byUpdatedAt    = sortKey{name: "updated_at", column: "updated_at", cast: "timestamptz", parts: []string{"%[1]s"}}
	byContactCount = sortKey{name: "contact_count", column: "contact_count", cast: "bigint", parts: []string{"%[1]s"}}
	bySegmentName  = sortKey{name: "name", column: "name", cast: "text", parts: []string{"lower(%[1]s)"}}
	// Contact names may be null: named contacts come first (ascending), ignoring case.
	byContactName = sortKey{name: "name", column: "name", cast: "text", nullable: true,
		parts: []string{"(%[1]s IS NULL)", "coalesce(lower(%[1]s), '')"}}
)

// cursor is the decoded content of an opaque cursor.
type cursor struct {
	Key   string `json:"k"`
	Value any    `json:"v"`
	ID    int64  `json:"i"`
}

func encodeCursor(key sortKey, value any, id int64) string {
	if t, ok := value.(time.Time); ok {
		value = t.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(cursor{Key: key.name, Value: value, ID: id})
	if err != nil {
		panic(fmt.Sprintf("store: encode cursor: %v", err)) // values are strings, numbers and nil
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads the cursor given as argument arg and checks that it fits key.
func decodeCursor(arg, s string, key sortKey) (cursor, error) {
	bad := func(why string) error {
		return crm.Errorf(crm.CodeInvalid, crm.Path(arg), "%s is not a valid cursor for this list: %s", arg, why)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad("it is not one this API returned")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var c cursor
	if err := dec.Decode(&c); err != nil || c.ID <= 0 || dec.More() {
		return cursor{}, bad("it is not one this API returned")
	}
	if c.Key != key.name {
		return cursor{}, bad("it was made for another orderBy")
	}
	ok := false
	switch v := c.Value.(type) {
	case nil:
		ok = key.nullable
	case string:
		switch key.cast {
		case "text":
			ok = true
		case "timestamptz":
			t, err := time.Parse(time.RFC3339Nano, v)
			c.Value, ok = t, err == nil
		}
	case json.Number:
		n, err := v.Int64()
		c.Value, ok = n, err == nil && key.cast == "bigint"
	}
	if !ok {
		return cursor{}, bad("it is not one this API returned")
	}
	return c, nil
}

// pageQuery describes one page of a list.
type pageQuery struct {
	alias string // table alias of the paged rows, such as "s"
	key   sortKey
	dir   crm.Direction
	args  crm.PageArgs
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

func (pq pageQuery) orderBy(q *bun.SelectQuery, desc bool) *bun.SelectQuery {
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	for _, e := range append(pq.keyExprs(pq.alias+"."+pq.key.column), pq.alias+".id") {
		q = q.OrderExpr(e + dir)
	}
	return q
}

// probed is a row type that carries the probe flag of pageSelect.
type probed interface{ probe() bool }

// fetchPage reads one page. newQuery returns a fresh query that selects the filtered
// rows into dst; fetchPage adds the keyset conditions, the order and the limit.
func fetchPage[R probed](ctx context.Context, newQuery func(dst *[]R) *bun.SelectQuery, pq pageQuery) (rows []R, hasNext, hasPrev bool, err error) {
	var all []R
	q, err := pageSelect(newQuery, &all, pq)
	if err != nil {
		return nil, false, false, err
	}
	if err := q.Scan(ctx, &all); err != nil {
		return nil, false, false, err
	}
	rows, hasNext, hasPrev = splitPage(all, pq)
	return rows, hasNext, hasPrev, nil
}

// pageSelect returns the one statement that reads a page: the page itself (one row
// more than asked, to learn whether another page follows) and, when the page starts
// from a cursor, a probe row from the far side of that cursor (UNION ALL) that says
// whether a page lies beyond it.
func pageSelect[R any](newQuery func(dst *[]R) *bun.SelectQuery, dst *[]R, pq pageQuery) (*bun.SelectQuery, error) {
	if err := pq.args.Validate(); err != nil {
		return nil, err
	}
	var after, before *cursor
	if pq.args.After != nil {
		c, err := decodeCursor("after", *pq.args.After, pq.key)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	if pq.args.Before != nil {
		c, err := decodeCursor("before", *pq.args.Before, pq.key)
		if err != nil {
			return nil, err
		}
		before = &c
	}

	// "Later" means later in the requested order: greater keys when ascending.
	later, earlier := ">", "<"
	if pq.dir == crm.Desc {
		later, earlier = "<", ">"
	}
	backward := pq.args.Backward()
	// A forward page walks the requested order; a backward page walks it in reverse
	// from its end, and splitPage flips it.
	walkDesc := (pq.dir == crm.Desc) != backward

	q := newQuery(dst).ColumnExpr(pq.alias + ".*").ColumnExpr("false AS probe")
	if after != nil {
		cond, args := pq.compare(later, after)
		q = q.Where(cond, args...)
	}
	if before != nil {
		cond, args := pq.compare(earlier, before)
		q = q.Where(cond, args...)
	}
	q = pq.orderBy(q, walkDesc).Limit(int64(pq.args.Size() + 1))

	start, beyond := after, earlier+"="
	if backward {
		start, beyond = before, later+"="
	}
	if start != nil {
		var unused []R
		cond, args := pq.compare(beyond, start)
		probe := newQuery(&unused).ColumnExpr(pq.alias+".*").ColumnExpr("true AS probe").Where(cond, args...)
		q = q.UnionAll(pq.orderBy(probe, !walkDesc).Limit(1))
	}
	return q, nil
}

// splitPage takes the rows pageSelect read, in any order of page rows and probe, and
// returns the page in the requested order with its neighbours.
func splitPage[R probed](all []R, pq pageQuery) (rows []R, hasNext, hasPrev bool) {
	var probeFound bool
	rows = make([]R, 0, len(all))
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
	if pq.args.Backward() {
		slices.Reverse(rows)
		return rows, probeFound, more
	}
	return rows, more, probeFound
}

// toPage turns fetched rows into a Page, with a cursor per row.
func toPage[R any, T any](rows []R, hasNext, hasPrev bool, key sortKey, item func(*R) (T, any, int64)) Page[T] {
	p := Page[T]{
		Items:           make([]T, len(rows)),
		Cursors:         make([]string, len(rows)),
		HasNextPage:     hasNext,
		HasPreviousPage: hasPrev,
	}
	for i := range rows {
		v, keyValue, id := item(&rows[i])
		p.Items[i] = v
		p.Cursors[i] = encodeCursor(key, keyValue, id)
	}
	return p
}

// likePattern turns a search term into an ILIKE pattern matching it as a substring:
// %, _ and \ in the term are literal.
func likePattern(term string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(term) + "%"
}
