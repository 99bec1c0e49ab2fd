package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCrossTenantFromSchema calls every field of Query and Mutation, as the schema
// has them (nothing here lists them by hand), as workspace A with workspace B's IDs
// in every ID argument and every ID field of input objects: B's IDs of each type (the
// right one and the wrong ones), alone and mixed with A's own IDs, one ID slot at a
// time and all at once. Scalars that are required get valid values; phone lookups
// and searches get B's phone and names, lookups by name B's segment's. Each operation selects every scalar of its
// result, nested objects included. None of B's IDs, names, phones or emails may
// appear in any response, and B's rows of every table with a workspace_id (found in
// the catalog, so a new table is covered too) must be byte for byte unchanged.
//
// A new root field that leaks fails it, as does a resolver or store method that
// forgets to scope by workspace: checked by removing the workspace condition of the
// contacts-by-ID query (node, nodes and contact leaked) and of DeleteSegment (B's
// segment deleted, checksums changed) with the server on the owner's connection. On
// the application's role, as here, row-level security stopped both bugs.
func TestCrossTenantFromSchema(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Limits{
		MaxCost: 1_000_000, MaxAliases: 1_000, MaxRootFields: 1_000, MaxSelections: 100_000, MaxTokens: 100_000,
	}})
	b := a.as(t)

	tag := randomTag(t)
	bData := seedTenant(t, b, "B"+tag, 800_000)
	aData := seedTenant(t, a, "A"+tag, 810_000)
	secrets := bData.secrets()
	if len(secrets) < 20 {
		t.Fatalf("too few secrets of B to look for: %v", secrets)
	}

	// Positive control first: B asking with its own IDs sees its data through every
	// root query field, so the generator reaches the data and the search below can
	// find it.
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	g := &opGen{schema: schema, own: bData, other: bData, tag: tag}
	seenAs := map[string]bool{}
	for _, op := range g.operations(schema.Query) {
		res := sendOK(t, b, op)
		if found := leakedSecrets(res.body, secrets); len(found) > 0 {
			seenAs[op.field] = true
		}
	}
	for _, f := range rootFields(schema.Query) {
		if !seenAs[f.Name] {
			t.Errorf("control: B never saw its own data through Query.%s: the generated operations do not reach it", f.Name)
		}
	}

	before := tenantChecksums(t, a.store, b.ws.ID)
	g = &opGen{schema: schema, own: aData, other: bData, tag: tag}
	ops := append(g.operations(schema.Query), g.operations(schema.Mutation)...)
	fields := map[string]int{}
	for _, op := range ops {
		res := sendOK(t, a, op)
		fields[op.field]++
		if found := leakedSecrets(res.body, secrets); len(found) > 0 {
			t.Errorf("%s leaks workspace B's %q\nquery: %s\nvariables: %s\nresponse: %s", op.field, found, op.query, mustJSON(op.vars), res.body)
		}
	}
	for _, f := range append(rootFields(schema.Query), rootFields(schema.Mutation)...) {
		if fields[f.Name] == 0 {
			t.Errorf("no operation generated for %s", f.Name)
		}
	}
	t.Logf("%d operations over %d root fields", len(ops), len(fields))

	after := tenantChecksums(t, a.store, b.ws.ID)
	if len(before) < 5 {
		t.Fatalf("checksums of only %d tables: %v", len(before), before)
	}
	for table, sum := range before {
		if after[table] != sum {
			t.Errorf("workspace B's rows of %s changed", table)
		}
	}
}

// tenantData is what a workspace holds for the cross-tenant test: its IDs by type,
// and the strings that would betray its data in another workspace's responses.
type tenantData struct {
	segments, contacts, workspace []string
	phones, strs                  []string
	// label is in the name of every contact and segment: a search for it finds them.
	label string
}

func (d tenantData) ids(k globalid.Kind) []string {
	switch k {
	case globalid.Segment:
		return d.segments
	case globalid.Contact:
		return d.contacts
	}
	return d.workspace
}

// secrets are the strings of d that must not appear in another workspace's answers;
// IDs in their JSON quotes, so that one ID is not found inside another.
func (d tenantData) secrets() []string {
	var out []string
	for _, id := range slices.Concat(d.segments, d.contacts, d.workspace) {
		out = append(out, `"`+id+`"`)
	}
	out = append(out, d.phones...)
	return append(out, d.strs...)
}

// seedTenant gives c's workspace contacts (with names, emails and attributes) and
// segments (with descriptions) holding them, and its API key a name, all marked with
// label.
func seedTenant(t *testing.T, c *api, label string, phoneBase int) tenantData {
	t.Helper()
	d := tenantData{workspace: []string{globalid.Encode(globalid.Workspace, c.ws.ID)}, label: label}
	// Workspaces of one test share a name: give this one its own.
	wsName := "Workspace" + label
	if _, err := c.store.DB().ExecContext(context.Background(), "UPDATE workspaces SET name = $1 WHERE id = $2", wsName, c.ws.ID); err != nil {
		t.Fatal(err)
	}
	// And its API key a name of its own, which Query.viewer shows to the key alone.
	keyName := "Key" + label
	if _, err := c.store.DB().ExecContext(context.Background(), "UPDATE api_keys SET name = $1 WHERE workspace_id = $2", keyName, c.ws.ID); err != nil {
		t.Fatal(err)
	}
	d.strs = append(d.strs, keyName)
	var in []map[string]any
	for i, p := range phones(phoneBase, 4) {
		name, email := fmt.Sprintf("Name%s%d", label, i), fmt.Sprintf("mail%s%d@example.com", strings.ToLower(label), i)
		attr := fmt.Sprintf("attr%s%d", label, i)
		in = append(in, map[string]any{"phone": p, "name": name, "email": email, "attributes": map[string]any{"secret": attr}})
		d.phones = append(d.phones, p)
		d.strs = append(d.strs, name, email, attr)
	}
	var up struct {
		UpsertContacts struct {
			Contacts []contact `json:"contacts"`
		} `json:"upsertContacts"`
	}
	c.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, &up)
	for _, ct := range up.UpsertContacts.Contacts {
		d.contacts = append(d.contacts, ct.ID)
	}
	for i := range 3 {
		name, desc := fmt.Sprintf("Seg%s%d", label, i), fmt.Sprintf("desc%s%d", label, i)
		var out struct {
			CreateSegment struct {
				Segment segment `json:"segment"`
			} `json:"createSegment"`
		}
		c.do(`mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } } }`,
			map[string]any{"in": map[string]any{"name": name, "description": desc, "contactIds": d.contacts[:i+1]}}, &out)
		d.segments = append(d.segments, out.CreateSegment.Segment.ID)
		d.strs = append(d.strs, name, desc)
	}
	// A deleted contact, whose former ID Query.deletedContacts lists (and which the
	// workspace's deleted_contacts rows hold).
	doomed := c.addContacts(phones(phoneBase+4, 1)...)
	var del struct {
		DeleteContacts struct {
			DeletedContactIDs []string `json:"deletedContactIds"`
		} `json:"deleteContacts"`
	}
	c.do(`mutation($ids: [ID!]!) { deleteContacts(input: {ids: $ids}) { deletedContactIds } }`, map[string]any{"ids": doomed}, &del)
	if !slices.Equal(del.DeleteContacts.DeletedContactIDs, doomed) {
		t.Fatalf("seed %s: deleted %v, want %v", label, del.DeleteContacts.DeletedContactIDs, doomed)
	}
	d.strs = append(d.strs, `"`+doomed[0]+`"`, wsName)
	if len(d.contacts) != 4 || slices.Contains(d.segments, "") {
		t.Fatalf("seed %s: contacts %v, segments %v", label, d.contacts, d.segments)
	}
	return d
}

// operation is one generated GraphQL request.
type operation struct {
	field string
	query string
	vars  map[string]any
}

// idSlot is a place in a root field's arguments that takes IDs.
type idSlot struct {
	path string
	list bool
	// kind is the type of ID the slot's name suggests ("contactIds": contacts); empty
	// when the name does not say.
	kind globalid.Kind
}

// opGen generates operations from the schema: the caller's own IDs are own's, the
// probing ones other's.
type opGen struct {
	schema     *ast.Schema
	own, other tenantData
	tag        string
	n          int
}

var idKinds = []globalid.Kind{globalid.Segment, globalid.Contact, globalid.Workspace}

func rootFields(def *ast.Definition) []*ast.FieldDefinition {
	var out []*ast.FieldDefinition
	for _, f := range def.Fields {
		if !strings.HasPrefix(f.Name, "__") {
			out = append(out, f)
		}
	}
	return out
}

// operations returns the operations probing each field of root (Query or Mutation).
func (g *opGen) operations(root *ast.Definition) []operation {
	var out []operation
	for _, f := range rootFields(root) {
		var slots []idSlot
		for _, arg := range f.Arguments {
			g.slots(arg.Type, arg.Name, arg.Name, "", &slots, map[string]bool{})
		}
		// Each variant maps slot paths to the IDs they get; slots it leaves out get
		// the caller's own IDs of the kind their name suggests.
		// The first variant leaves optional arguments out: a plain list.
		variants := []map[string][]string{{bareVariant: nil}}
		if len(slots) > 0 {
			for _, k := range idKinds {
				all := map[string][]string{}
				for _, s := range slots {
					all[s.path] = g.other.ids(k)
				}
				variants = append(variants, all)
				for _, s := range slots {
					variants = append(variants, map[string][]string{s.path: g.other.ids(k)})
					if s.list { // B's IDs among valid IDs of the caller
						variants = append(variants, map[string][]string{s.path: slices.Concat(g.own.ids(orKind(s.kind)), g.other.ids(k))})
					}
				}
			}
		}
		kind := "query"
		if root == g.schema.Mutation {
			kind = "mutation"
		}
		for _, v := range variants {
			out = append(out, g.operation(kind, f, slots, v))
		}
	}
	return out
}

func orKind(k globalid.Kind) globalid.Kind {
	if k == "" {
		return globalid.Segment
	}
	return k
}

// slots collects the ID slots of a value of type t at path.
func (g *opGen) slots(t *ast.Type, name, path string, kind globalid.Kind, out *[]idSlot, seen map[string]bool) {
	if k := kindOf(name); k != "" {
		kind = k
	}
	list := t.Elem != nil
	for t.Elem != nil {
		t = t.Elem
	}
	if t.NamedType == "ID" {
		*out = append(*out, idSlot{path: path, list: list, kind: kind})
		return
	}
	def := g.schema.Types[t.NamedType]
	if def == nil || def.Kind != ast.InputObject || seen[def.Name] {
		return
	}
	seen[def.Name] = true
	defer delete(seen, def.Name)
	for _, f := range def.Fields {
		g.slots(f.Type, f.Name, path+"."+f.Name, kind, out, seen)
	}
}

func kindOf(name string) globalid.Kind {
	switch n := strings.ToLower(name); {
	case strings.Contains(n, "contact"):
		return globalid.Contact
	case strings.Contains(n, "segment"):
		return globalid.Segment
	case strings.Contains(n, "workspace"):
		return globalid.Workspace
	}
	return ""
}

// operation builds the request for field f with the IDs of variant v.
func (g *opGen) operation(kind string, f *ast.FieldDefinition, slots []idSlot, v map[string][]string) operation {
	var params, args []string
	vars := map[string]any{}
	for _, arg := range f.Arguments {
		val, ok := g.value(arg.Type, arg.Name, arg.Name, "", kind == "mutation", slots, v, map[string]bool{})
		if !ok {
			continue
		}
		params = append(params, fmt.Sprintf("$%s: %s", arg.Name, arg.Type.String()))
		args = append(args, fmt.Sprintf("%s: $%s", arg.Name, arg.Name))
		vars[arg.Name] = val
	}
	q := kind + " Probe"
	if len(params) > 0 {
		q += "(" + strings.Join(params, ", ") + ")"
	}
	q += " { " + f.Name
	if len(args) > 0 {
		q += "(" + strings.Join(args, ", ") + ")"
	}
	q += g.selection(f.Type, 0) + " }"
	return operation{field: f.Name, query: q, vars: vars}
}

// value returns the value of an argument or input field of type t, and whether to send
// it: IDs always, required values always, searches and phone lookups to probe.
func (g *opGen) value(t *ast.Type, name, path string, kind globalid.Kind, mutation bool, slots []idSlot, v map[string][]string, seen map[string]bool) (any, bool) {
	if k := kindOf(name); k != "" {
		kind = k
	}
	required := t.NonNull
	if !required && bare(v) {
		return nil, false
	}
	if t.Elem != nil {
		inner := t.Elem
		for inner.Elem != nil {
			inner = inner.Elem
		}
		if inner.NamedType == "ID" {
			return g.ids(path, kind, v), true
		}
		item, ok := g.value(t.Elem, name, path, kind, mutation, slots, v, seen)
		if !ok && !required {
			return nil, false
		}
		return []any{item}, true
	}
	switch t.NamedType {
	case "ID":
		return g.ids(path, kind, v)[0], true
	case "String":
		switch n := strings.ToLower(name); {
		case (n == "phone" || n == "phones") && !mutation: // phones: each of a list's
			return g.other.phones[0], true // another workspace's phone
		case n == "phone":
			g.n++
			return phones(900_000+g.n, 1)[0], true
		case n == "search" && !bare(v):
			return g.other.label, true
		case n == "name" && !mutation:
			return "seg" + g.other.label + "0", true // another workspace's segment, in other case
		case n == "key": // an attribute condition's: another workspace's contacts' key
			return "secret", true
		case !required:
			return nil, false
		}
		g.n++
		return fmt.Sprintf("Probe%s %d", g.tag, g.n), true
	}
	def := g.schema.Types[t.NamedType]
	if def == nil {
		return nil, false
	}
	switch def.Kind {
	case ast.InputObject:
		if seen[def.Name] {
			return nil, false
		}
		seen[def.Name] = true
		defer delete(seen, def.Name)
		obj := map[string]any{}
		for _, f := range def.Fields {
			if val, ok := g.value(f.Type, f.Name, path+"."+f.Name, kind, mutation, slots, v, seen); ok {
				obj[f.Name] = val
			}
		}
		if len(obj) == 0 && !required {
			return nil, false
		}
		return obj, true
	case ast.Enum:
		if !required {
			return nil, false
		}
		return def.EnumValues[0].Name, true
	}
	if !required {
		return nil, false
	}
	switch t.NamedType {
	case "Int":
		return 10, true
	case "Float":
		return 1.5, true
	case "Boolean":
		return false, true
	case "JSON":
		return map[string]any{"probe": g.tag}, true
	case "JSONValue": // an attribute condition's: another workspace's contact's value
		return "attr" + g.other.label + "0", true
	case "DateTime":
		// Before the seed, so that a list since it (deletedContacts) holds its rows.
		return time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), true
	}
	panic("tenancy test: no value for required " + t.NamedType + " at " + path + ": teach opGen.value")
}

// bareVariant marks the variant that sends required arguments only.
const bareVariant = "(bare)"

func bare(v map[string][]string) bool {
	_, ok := v[bareVariant]
	return ok
}

// ids returns the IDs of the slot at path: the variant's, or the caller's own.
func (g *opGen) ids(path string, kind globalid.Kind, v map[string][]string) []string {
	if ids, ok := v[path]; ok {
		return ids
	}
	return g.own.ids(orKind(kind))
}

// selection selects every field of t's type that takes no required argument: scalars
// and, down to a depth, objects (every implementation of an interface).
func (g *opGen) selection(t *ast.Type, depth int) string { return g.selectionAs(t, depth, "") }

// selectionAs is selection with every field aliased with prefix (the fields of two
// implementations of an interface may not share a name with another type).
func (g *opGen) selectionAs(t *ast.Type, depth int, prefix string) string {
	for t.Elem != nil {
		t = t.Elem
	}
	def := g.schema.Types[t.NamedType]
	switch def.Kind {
	case ast.Scalar, ast.Enum:
		return ""
	}
	if depth >= 5 {
		return ""
	}
	var parts []string
	if def.Kind == ast.Interface || def.Kind == ast.Union {
		parts = append(parts, "__typename")
		for _, impl := range g.schema.GetPossibleTypes(def) {
			parts = append(parts, "... on "+impl.Name+g.selectionAs(ast.NamedType(impl.Name, nil), depth, impl.Name+"_"))
		}
		return " { " + strings.Join(parts, " ") + " }"
	}
	for _, f := range def.Fields {
		if strings.HasPrefix(f.Name, "__") || slices.ContainsFunc(f.Arguments, func(a *ast.ArgumentDefinition) bool { return a.Type.NonNull }) {
			continue
		}
		sub := g.selection(f.Type, depth+1)
		if sub == "" && !isLeaf(g.schema, f.Type) {
			continue
		}
		alias := ""
		if prefix != "" {
			alias = prefix + f.Name + ": "
		}
		parts = append(parts, alias+f.Name+sub)
	}
	if len(parts) == 0 {
		return ""
	}
	return " { " + strings.Join(parts, " ") + " }"
}

func isLeaf(s *ast.Schema, t *ast.Type) bool {
	for t.Elem != nil {
		t = t.Elem
	}
	k := s.Types[t.NamedType].Kind
	return k == ast.Scalar || k == ast.Enum
}

// sendOK sends op as c and fails unless the API understood it: a generated operation
// that does not validate would prove nothing.
func sendOK(t *testing.T, c *api, op operation) rawResponse {
	t.Helper()
	res, err := sendRaw(c.url, http.MethodPost, "Bearer "+string(c.key), op.query, op.vars)
	if err != nil {
		t.Fatalf("%s: %v", op.field, err)
	}
	for _, e := range res.decoded.Errors {
		switch code, _ := e.Extensions["code"].(string); code {
		case "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "INTERNAL_SERVER_ERROR", "":
			t.Fatalf("%s: the API did not take the generated operation (status %d): %s\nquery: %s\nvariables: %s", op.field, res.status, res.body, op.query, mustJSON(op.vars))
		}
	}
	if res.status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", op.field, res.status, res.body)
	}
	return res
}

func leakedSecrets(body []byte, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(string(body), s) {
			found = append(found, s)
		}
	}
	return found
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func randomTag(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "x" + hex.EncodeToString(b)
}

// tenantChecksums returns, for every table with a workspace_id column (and for
// workspaces), a checksum of workspace ws's rows.
func tenantChecksums(t *testing.T, s *store.Store, ws int64) map[string]string {
	t.Helper()
	ctx := context.Background()
	db := s.DB() // the owner's view, which row-level security does not filter
	tables := storetest.Column[string](t, db, `SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attname = 'workspace_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND n.nspname = current_schema()`)
	sort.Strings(tables)
	out := map[string]string{}
	for _, table := range append(tables, "workspaces") {
		col := "workspace_id"
		if table == "workspaces" {
			col = "id"
		}
		var sum string
		q := fmt.Sprintf(`SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM %q t WHERE %s = $1`, table, col)
		if err := db.QueryRowContext(ctx, q, ws).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		// workspace_deletions holds a row only for a workspace being deleted, which
		// the API no longer serves: compared empty.
		if strings.HasPrefix(sum, "0:") && table != "idempotency_keys" && table != "idempotency_budgets" && table != "rate_limit_buckets" &&
			table != "workspace_deletions" {
			t.Fatalf("workspace %d has no rows in %s: nothing to compare", ws, table)
		}
		out[table] = sum
	}
	return out
}
