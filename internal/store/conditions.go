package store

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/segments/segments/internal/crm"
)

// conditionConds returns the SQL of the field conditions c of a ContactQuery on the
// contact c, one sqlCond each: none when c is zero, so that a query without them
// sends the statements it always did. contactQuery adds them to every statement that
// reads contacts, and the ways that could not apply them are not taken when there
// are any: a page is then PostgreSQL's plan of contactQuery (contactsPageSelect),
// a count reads the contacts it counts (countContacts), as the select-alls do.
//
//   - The dates are ranges of the columns of contacts_created_at and
//     contacts_updated_at.
//   - An attribute's equals and in are containment (@>), and for an array or an
//     object equality of the key's value too; exists is the key operator (?). The
//     GIN index contacts_attributes serves both (migration 20261218000001): a value
//     or key no contact has is found absent at once, where reading the workspace
//     took 0.2-0.4 s at 1M contacts. exists: false and atLeast and atMost (a
//     number's comparison) no index serves: they test each contact read. A count
//     of exists: false alone is the workspace's contacts less those with the key
//     (countComplement).
//   - hasEmail: false and hasName: false are the partial indexes
//     contacts_without_email and contacts_without_name (migration
//     20261219000001), which count them index-only; a count of hasEmail: true or
//     hasName: true alone is the workspace's contacts less those (countComplement).
//   - inAnySegment looks the contact up in memberships_contact.
func conditionConds(ws workspaceArg, c crm.ContactConditions) []sqlCond {
	if c.IsZero() {
		return nil
	}
	var conds []sqlCond
	// A range's ends come as PostgreSQL's microseconds: the API rounds a finer one up
	// (scalar.UnmarshalDateTime), which keeps the comparisons exact.
	dates := func(column string, r crm.TimeRange) {
		if r.From != nil {
			conds = append(conds, sqlCond{"c." + column + " >= ?", []any{*r.From}})
		}
		if r.To != nil {
			conds = append(conds, sqlCond{"c." + column + " < ?", []any{*r.To}})
		}
	}
	dates("created_at", c.CreatedAt)
	dates("updated_at", c.UpdatedAt)
	has := func(column string, v *bool) {
		if v == nil {
			return
		}
		if *v {
			conds = append(conds, sqlCond{"c." + column + " IS NOT NULL", nil})
		} else {
			conds = append(conds, sqlCond{"c." + column + " IS NULL", nil})
		}
	}
	has("email", c.HasEmail)
	has("name", c.HasName)
	if c.InAnySegment != nil {
		exists := "EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = ? AND m.contact_id = c.id)"
		if !*c.InAnySegment {
			exists = "NOT " + exists
		}
		conds = append(conds, sqlCond{exists, []any{ws}})
	}
	for _, a := range c.Attributes {
		conds = append(conds, attributeCond(a))
	}
	return conds
}

// attributeCond is the SQL of attribute condition a on the contact c.
func attributeCond(a crm.AttributeCondition) sqlCond {
	// equal is the condition that the key's value is the JSON v: containment, which
	// the index serves and is equality for a string, number or boolean (a key's
	// value contains another only of its own type: ["Pune"] does not contain
	// "Pune"); an array or object is then compared whole ([1, 2] contains [2]).
	// Containment alone is estimated from the column's statistics, and the
	// comparison as 0.5% more: at 1M contacts, city = Pune (82,986) was estimated
	// 80,499 rows alone, 402 with the comparison, which favours reading every match
	// and sorting them over walking a page's order.
	equal := func(v json.RawMessage) sqlCond {
		contains := sqlCond{"c.attributes @> ?::jsonb", []any{attributeObject(a.Key, v)}}
		if b := bytes.TrimLeft(v, " \t\r\n"); len(b) > 0 && (b[0] == '[' || b[0] == '{') {
			return sqlCond{"(" + contains.sql + " AND c.attributes -> ? = ?::jsonb)", append(contains.args, a.Key, string(v))}
		}
		return contains
	}
	switch {
	case a.Equals != nil:
		return equal(a.Equals)
	case a.In != nil:
		if len(a.In) == 0 {
			return sqlCond{"false", nil}
		}
		var sqls []string
		var args []any
		for _, v := range a.In {
			e := equal(v)
			sqls, args = append(sqls, e.sql), append(args, e.args...)
		}
		return sqlCond{"(" + strings.Join(sqls, " OR ") + ")", args}
	case a.Exists != nil:
		// \? is Bun's literal ?, the key operator.
		if *a.Exists {
			return sqlCond{`c.attributes \? ?`, []any{a.Key}}
		}
		return sqlCond{`NOT (c.attributes \? ?)`, []any{a.Key}}
	}
	// A number's range: the value is cast only where it is a number (CASE: AND
	// does not order its operands), and compared as numeric, which holds every
	// number an attribute may (float8 does not: 1e400).
	var bounds []string
	args := []any{a.Key}
	if a.AtLeast != nil {
		bounds = append(bounds, "(c.attributes ->> ?)::numeric >= ?::numeric")
		args = append(args, a.Key, strconv.FormatFloat(*a.AtLeast, 'g', -1, 64))
	}
	if a.AtMost != nil {
		bounds = append(bounds, "(c.attributes ->> ?)::numeric <= ?::numeric")
		args = append(args, a.Key, strconv.FormatFloat(*a.AtMost, 'g', -1, 64))
	}
	return sqlCond{"CASE WHEN jsonb_typeof(c.attributes -> ?) = 'number' THEN " + strings.Join(bounds, " AND ") + " ELSE false END", args}
}

// attributeObject is the JSON object of the one key key with the value v, as a
// containment test of the attributes writes it.
func attributeObject(key string, v json.RawMessage) string {
	b, err := json.Marshal(map[string]json.RawMessage{key: v})
	if err != nil {
		panic("store: attribute condition: " + err.Error()) // v is valid JSON (crm.ContactConditions.Check)
	}
	return string(b)
}

// segmentedSQL counts a workspace's contacts in at least one segment and in none of
// the segments ANY(?) names, from the segments' bitmaps: per chunk, the OR of every
// segment's bits, less the OR of the listed ones'. Its placeholders take the list
// and the workspace. At 1M contacts in 1,000 segments it reads 31,000 chunks (19
// MB), where looking each contact up in its memberships took 1.1-3.5 s.
const segmentedSQL = `SELECT coalesce(sum(bit_count(bits)), 0) FROM (
	SELECT bit_or(bits) & ~coalesce(bit_or(bits) FILTER (WHERE segment_id = ANY(?)), B'0'::bit(32768)) AS bits
	  FROM segment_bitmaps WHERE workspace_id = ? GROUP BY chunk) AS g`

// countSegmented returns the count of cq when its only field condition is
// InAnySegment and it has no search, and true; else false. Being in a segment is
// implied by an Any or All list, and contradicts it: the count is then the lists'
// own, or 0. Otherwise it is the bitmaps' (segmentedSQL), with None; and its
// complement in the workspace's counters, where None adds nothing.
func (s *Store) countSegmented(ctx context.Context, ws workspaceArg, cq crm.ContactQuery) (int, bool, error) {
	c := cq.Conditions
	if cq.Search != "" || c.InAnySegment == nil || c.Attributes != nil || c.HasEmail != nil || c.HasName != nil ||
		!c.CreatedAt.IsZero() || !c.UpdatedAt.IsZero() {
		return 0, false, nil
	}
	in, f := *c.InAnySegment, cq.Segments
	if f.Any != nil || len(f.All) > 0 {
		if !in {
			return 0, true, nil
		}
		n, err := s.countContacts(ctx, ws, crm.ContactQuery{Segments: f})
		return n, true, err
	}
	none := f.None
	if !in {
		none = nil
	}
	var n int
	q := segmentedSQL
	args := []any{pgdialect.Array(none), ws}
	if none == nil {
		args[0] = pgdialect.Array([]int64{})
	}
	if !in {
		q, args = "SELECT ("+allContactsSQL+") - ("+segmentedSQL+")", append([]any{ws}, args...)
	}
	err := s.db.NewRaw(q, args...).Scan(ctx, &n)
	return n, true, err
}

// countComplement returns the count of cq when it is one condition alone (no
// search, no segment list, no other condition) that no index serves but whose
// opposite one does, and true; else false. hasEmail: true, hasName: true and an
// attribute's exists: false read every contact of the workspace to count it (0.2-1.1 s
// at 1M contacts); their opposites are counted from contacts_without_email,
// contacts_without_name and contacts_attributes. So the count is the workspace's
// contacts (its counters) less the opposite's, in one statement: one snapshot, in
// which the counters and the contacts agree (their triggers write both in the same
// transaction). Where most contacts have the key, PostgreSQL reads the workspace for
// the opposite as it did for the condition: no slower than before.
func (s *Store) countComplement(ctx context.Context, ws workspaceArg, cq crm.ContactQuery) (int, bool, error) {
	opposite, ok := complemented(cq)
	if !ok {
		return 0, false, nil
	}
	var rows []contactRow
	var n int
	err := s.db.NewRaw("SELECT ("+allContactsSQL+") - (?)", ws, s.contactQuery(&rows, ws, opposite).ColumnExpr("count(*)")).Scan(ctx, &n)
	return n, true, err
}

// complemented returns the query of the workspace's contacts that cq does not
// select, when countComplement counts cq by it, and true; else false.
func complemented(cq crm.ContactQuery) (crm.ContactQuery, bool) {
	c := cq.Conditions
	if cq.Search != "" || !cq.Segments.IsZero() || !c.CreatedAt.IsZero() || !c.UpdatedAt.IsZero() || c.InAnySegment != nil {
		return crm.ContactQuery{}, false
	}
	no, yes := false, true
	switch {
	case c.HasEmail != nil && *c.HasEmail && c.HasName == nil && len(c.Attributes) == 0:
		return crm.ContactQuery{Conditions: crm.ContactConditions{HasEmail: &no}}, true
	case c.HasName != nil && *c.HasName && c.HasEmail == nil && len(c.Attributes) == 0:
		return crm.ContactQuery{Conditions: crm.ContactConditions{HasName: &no}}, true
	case c.HasEmail == nil && c.HasName == nil && len(c.Attributes) == 1 &&
		c.Attributes[0].Exists != nil && !*c.Attributes[0].Exists:
		return crm.ContactQuery{Conditions: crm.ContactConditions{Attributes: []crm.AttributeCondition{{Key: c.Attributes[0].Key, Exists: &yes}}}}, true
	}
	return crm.ContactQuery{}, false
}
