package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/graph/generated"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
)

// withKey makes a new API key of a's workspace and returns a client using it.
func (a *api) withKey(t testing.TB, nk store.NewAPIKey) (*api, crm.APIKey) {
	t.Helper()
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	nk.Hash, nk.Prefix = key.Hash(), key.Prefix()
	k, err := a.store.CreateAPIKey(context.Background(), a.ws.ID, nk)
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.t, b.key = t, key
	return &b, k
}

// using returns a client of a's server with the given key.
func (a *api) using(t testing.TB, key auth.Key) *api {
	b := *a
	b.t, b.key = t, key
	return &b
}

// snapshot digests every row of the workspace's segments, contacts and memberships.
func (a *api) snapshot() string {
	a.t.Helper()
	var s string
	err := a.store.DB().QueryRowContext(context.Background(), `SELECT md5(
		coalesce((SELECT string_agg(s::text, ',' ORDER BY id) FROM segments s WHERE workspace_id = $1), '') || '|' ||
		coalesce((SELECT string_agg(c::text, ',' ORDER BY id) FROM contacts c WHERE workspace_id = $1), '') || '|' ||
		coalesce((SELECT string_agg(m::text, ',' ORDER BY segment_id, contact_id) FROM memberships m WHERE workspace_id = $1), ''))`,
		a.ws.ID).Scan(&s)
	if err != nil {
		a.t.Fatal(err)
	}
	return s
}

// forbidden checks that res is the refusal of a mutation: HTTP 200, one FORBIDDEN
// error and no data entry, as every refusal before execution: it was "data": null,
// which says the operation ran.
func forbidden(t testing.TB, res response) {
	t.Helper()
	if res.Status != http.StatusOK || len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "FORBIDDEN" || res.Data != nil {
		t.Fatalf("status %d, data %s, errors %+v; want 200, one FORBIDDEN error and no data", res.Status, res.Data, res.Errors)
	}
}

// mutationRequest builds a request for the mutation field f of the schema, with a
// value for every argument and input field (required or not, but for contactsMatching
// beside contactIds, which excludes it): IDs name the given
// segment or contact, by the field's name, phones are new, names unique.
func mutationRequest(t testing.TB, schema *ast.Schema, f *ast.FieldDefinition, segmentID, contactID string, seq *int) (string, map[string]any) {
	t.Helper()
	var value func(typ *ast.Type, field, parent string) any
	value = func(typ *ast.Type, field, parent string) any {
		if typ.Elem != nil {
			return []any{value(typ.Elem, field, parent)}
		}
		def := schema.Types[typ.NamedType]
		if def == nil {
			t.Fatalf("unknown type %s", typ.NamedType)
		}
		switch def.Kind {
		case ast.InputObject:
			m := map[string]any{}
			for _, fd := range def.Fields {
				// Of the contacts of a bulk change, given by contactIds or by
				// contactsMatching (exactly one), the IDs.
				if fd.Name == "contactsMatching" && def.Fields.ForName("contactIds") != nil {
					continue
				}
				m[fd.Name] = value(fd.Type, fd.Name, def.Name)
			}
			return m
		case ast.Enum:
			return def.EnumValues[0].Name
		}
		*seq++
		field = strings.ToLower(field)
		switch typ.NamedType {
		case "ID":
			if strings.Contains(field, "segment") || (!strings.Contains(field, "contact") && strings.Contains(parent, "Segment")) {
				return segmentID
			}
			return contactID
		case "String":
			switch field {
			case "phone":
				return fmt.Sprintf("+9197%08d", 40_000_000+*seq)
			case "email":
				return fmt.Sprintf("m%d@example.com", *seq)
			}
			return fmt.Sprintf("%s %s %d", parent, field, *seq)
		case "Int":
			return 1
		case "Float":
			return 1.5
		case "Boolean":
			return true
		case "JSON":
			return map[string]any{"via": parent}
		}
		t.Fatalf("no test value for scalar %s (field %s of %s): teach mutationRequest", typ.NamedType, field, parent)
		return nil
	}
	var decls, args []string
	vars := map[string]any{}
	for i, a := range f.Arguments {
		name := fmt.Sprintf("a%d", i)
		decls = append(decls, "$"+name+": "+a.Type.String())
		args = append(args, a.Name+": $"+name)
		vars[name] = value(a.Type, a.Name, f.Name)
	}
	doc := "mutation"
	if len(decls) > 0 {
		doc += "(" + strings.Join(decls, ", ") + ")"
	}
	doc += " { " + f.Name
	if len(args) > 0 {
		doc += "(" + strings.Join(args, ", ") + ")"
	}
	return doc + " { __typename } }", vars
}

// TestReadOnlyKeyCannotMutate proves that a key with the read scope gets FORBIDDEN on
// every mutation of the schema (enumerated from the schema itself, so a new mutation
// is covered the day it is added), before any resolver runs: the request sends one
// SQL statement, the authentication, and the workspace's data stays byte for byte the
// same; the same request with a read_write key does run. Queries work with the read
// key.
func TestReadOnlyKeyCannotMutate(t *testing.T) {
	rw := mutClient{newAPI(t)}
	ro, roKey := rw.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "BI export"})
	if roKey.Scope != crm.ScopeRead {
		t.Fatalf("key scope %s", roKey.Scope)
	}
	cIDs := rw.addContacts(phones(720_000, 3)...)
	rw.addSegment("Readable", cIDs...)

	t.Run("queries work", func(t *testing.T) {
		ro := ro.using(t, ro.key)
		var out struct {
			Segments struct{ TotalCount int }
			Contacts struct{ TotalCount int }
		}
		ro.do(`{ workspace { id } segments { totalCount } contacts { totalCount } }`, nil, &out)
		if out.Segments.TotalCount != 1 || out.Contacts.TotalCount != 3 {
			t.Errorf("%+v", out)
		}
		res, err := sendRaw(ro.url, http.MethodGet, "Bearer "+string(ro.key), `{ segments { totalCount } }`, nil)
		if err != nil || res.status != http.StatusOK || len(res.decoded.Errors) != 0 {
			t.Errorf("GET: %v, %d %s", err, res.status, res.body)
		}
	})

	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	var mutations []*ast.FieldDefinition
	for _, f := range schema.Mutation.Fields {
		if !strings.HasPrefix(f.Name, "__") {
			mutations = append(mutations, f)
		}
	}
	if len(mutations) < 8 {
		t.Fatalf("only %d mutations in the schema", len(mutations))
	}
	seq := 0
	for _, f := range mutations {
		t.Run(f.Name, func(t *testing.T) {
			rw, ro := rw.on(t), ro.using(t, ro.key)
			contact := rw.addContacts(fmt.Sprintf("+9196%08d", 30_000_000+len(f.Name)*1000+seq))[0]
			seg := rw.addSegment("For "+f.Name, contact)
			doc, vars := mutationRequest(t, schema, f, seg, contact, &seq)
			before := rw.snapshot()

			forbidden(t, ro.post(doc, vars))
			if n := ro.statements(); n != 1 {
				t.Errorf("%d SQL statements, want 1 (the key's authentication)", n)
			}
			if rw.snapshot() != before {
				t.Fatalf("the data changed: %s %v", doc, vars)
			}

			// The request is valid and reaches the resolver with a read_write key.
			res := rw.post(doc, vars)
			if res.Status != http.StatusOK || len(res.Errors) != 0 {
				t.Fatalf("read_write key: status %d, errors %+v\n%s %v", res.Status, res.Errors, doc, vars)
			}
			if n := rw.statements(); n < 2 {
				t.Errorf("read_write key: %d statements: the resolver did not run", n)
			}
		})
	}

	t.Run("a document's mutation is refused, its query runs", func(t *testing.T) {
		ro := ro.using(t, ro.key)
		const doc = `query Q { workspace { id } } mutation M { createSegment(input: {name: "Sneaky"}) { segment { id } } }`
		body := func(op string) response {
			res, err := sendRawOp(ro.url, "Bearer "+string(ro.key), doc, op)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := body("Q"); res.Status != http.StatusOK || len(res.Errors) != 0 {
			t.Errorf("query: %d %+v", res.Status, res.Errors)
		}
		forbidden(t, body("M"))
	})

	t.Run("the message says why", func(t *testing.T) {
		ro := ro.using(t, ro.key)
		msg := ro.fails("FORBIDDEN", `mutation { deleteSegment(input: {id: "S_AQ"}) { deletedSegmentId } }`, nil)
		if !strings.Contains(msg, "read") {
			t.Errorf("message %q", msg)
		}
	})

	t.Run("403 without data as application/graphql-response+json", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, ro.url+"/graphql", strings.NewReader(`{"query":"mutation { deleteSegment(input: {id: \"S_AQ\"}) { deletedSegmentId } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/graphql-response+json")
		req.Header.Set("Authorization", "Bearer "+string(ro.key))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var out map[string]json.RawMessage
		if err := json.Unmarshal(body, &out); err != nil || res.StatusCode != http.StatusForbidden || out["data"] != nil || !strings.Contains(string(out["errors"]), `"FORBIDDEN"`) {
			t.Errorf("%d %s (%v), want 403, FORBIDDEN and no data entry", res.StatusCode, body, err)
		}
	})

	t.Run("validation errors come first", func(t *testing.T) {
		ro := ro.using(t, ro.key)
		res := ro.post(`mutation { createSegment(input: {nme: "x"}) { segment { id } } }`, nil)
		if len(res.Errors) == 0 || res.Errors[0].Extensions["code"] == "FORBIDDEN" {
			t.Errorf("errors %+v", res.Errors)
		}
	})
}

// sendRawOp posts a document with an operation name.
func sendRawOp(base, authorization, query, operation string) (response, error) {
	body := fmt.Sprintf(`{"query":%q,"operationName":%q}`, query, operation)
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", authorization)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	var out response
	err = json.NewDecoder(res.Body).Decode(&out)
	out.Status = res.StatusCode
	return out, err
}

// refusedKey checks that the client's key gets 401 UNAUTHENTICATED, told "invalid API
// key" as a key that never existed is: an expired or revoked key is not told apart.
func refusedKey(t testing.TB, c *api) {
	t.Helper()
	res := c.post(`{ workspace { id } }`, nil)
	if res.Status != http.StatusUnauthorized || len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "UNAUTHENTICATED" ||
		res.Errors[0].Message != "invalid API key" {
		t.Fatalf("status %d, errors %+v; want 401 UNAUTHENTICATED", res.Status, res.Errors)
	}
}

// works checks that the client's key reads its workspace.
func works(t testing.TB, c *api) {
	t.Helper()
	c.t = t
	var out struct{ Workspace struct{ ID string } }
	c.do(`{ workspace { id } }`, nil, &out)
}

// TestKeyExpiryRotationRevocation proves the life of a partner key: an expired key is
// refused; a rotated key keeps working for its grace period next to its replacement
// (same name and scope, same lifetime), then stops; a revoked key is refused on the
// very next request (keys are not cached).
func TestKeyExpiryRotationRevocation(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := a.store.DB().ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	newKey := func() auth.Key {
		k, err := auth.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rotate := func(id int64, grace time.Duration) (crm.APIKey, crm.APIKey, auth.Key, error) {
		k := newKey()
		old, added, err := a.store.RotateAPIKey(ctx, id, grace, store.NewAPIKey{Hash: k.Hash(), Prefix: k.Prefix()})
		return old, added, k, err
	}
	invalid := func(err error) bool {
		var e *crm.Error
		return errors.As(err, &e) && e.Code == crm.CodeInvalid
	}

	t.Run("expiry", func(t *testing.T) {
		c, k := a.withKey(t, store.NewAPIKey{ExpiresIn: time.Hour})
		if k.ExpiresAt == nil || time.Until(*k.ExpiresAt) < 59*time.Minute || time.Until(*k.ExpiresAt) > 61*time.Minute {
			t.Fatalf("expires %v", k.ExpiresAt)
		}
		works(t, c)
		exec("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", k.ID)
		refusedKey(t, c)
	})

	t.Run("rotation with a grace period", func(t *testing.T) {
		c1, k1 := a.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "Warehouse sync"})
		works(t, c1)
		old, added, key2, err := rotate(k1.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c2 := a.using(t, key2)
		if added.Scope != crm.ScopeRead || added.Name != "Warehouse sync" || added.ExpiresAt != nil || added.WorkspaceID != a.ws.ID {
			t.Errorf("replacement %+v", added)
		}
		if old.ReplacedBy != added.ID || old.ExpiresAt == nil || time.Until(*old.ExpiresAt) < 59*time.Minute || time.Until(*old.ExpiresAt) > 61*time.Minute {
			t.Errorf("old key %+v", old)
		}
		works(t, c1) // during the grace period
		works(t, c2)
		forbidden(t, c2.post(intruderMutation, nil)) // the same scope
		if _, _, _, err := rotate(k1.ID, time.Hour); !invalid(err) {
			t.Errorf("rotating a rotated key: %v", err)
		}
		exec("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", k1.ID) // the grace period ends
		refusedKey(t, c1)
		works(t, c2)
	})

	t.Run("rotation without grace", func(t *testing.T) {
		c1, k1 := a.withKey(t, store.NewAPIKey{Scope: crm.ScopeReadWrite})
		_, _, key2, err := rotate(k1.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		refusedKey(t, c1)
		mutClient{a.using(t, key2)}.addSegment("Written with a rotated key")
	})

	t.Run("rotation keeps the lifetime", func(t *testing.T) {
		_, k1 := a.withKey(t, store.NewAPIKey{ExpiresIn: 90 * 24 * time.Hour})
		old, added, _, err := rotate(k1.ID, 7*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if added.ExpiresAt == nil || added.ExpiresAt.Sub(added.CreatedAt).Round(time.Second) != 90*24*time.Hour {
			t.Errorf("replacement expires %v, made %v", added.ExpiresAt, added.CreatedAt)
		}
		if old.ExpiresAt.Sub(added.CreatedAt).Round(time.Second) != 7*24*time.Hour {
			t.Errorf("old key expires %v", old.ExpiresAt)
		}
		// A grace period longer than the key's own life does not extend it.
		_, k3 := a.withKey(t, store.NewAPIKey{ExpiresIn: time.Hour})
		old3, _, _, err := rotate(k3.ID, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !old3.ExpiresAt.Equal(*k3.ExpiresAt) {
			t.Errorf("expiry moved from %v to %v", k3.ExpiresAt, old3.ExpiresAt)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		c, k := a.withKey(t, store.NewAPIKey{})
		works(t, c)
		revoked, err := a.store.RevokeAPIKey(ctx, k.ID)
		if err != nil || revoked.RevokedAt == nil {
			t.Fatalf("%+v, %v", revoked, err)
		}
		refusedKey(t, c) // the very next request
		again, err := a.store.RevokeAPIKey(ctx, k.ID)
		if err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
			t.Errorf("revoking again: %+v, %v", again, err)
		}
		if _, _, _, err := rotate(k.ID, time.Hour); !invalid(err) {
			t.Errorf("rotating a revoked key: %v", err)
		}
		var e *crm.Error
		if _, err := a.store.RevokeAPIKey(ctx, 1<<50); !errors.As(err, &e) || e.Code != crm.CodeNotFound {
			t.Errorf("revoking no key: %v", err)
		}
	})

	t.Run("keys are listed", func(t *testing.T) {
		ks, err := a.store.APIKeys(ctx, a.ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ks) < 8 || !slices.IsSortedFunc(ks, func(x, y crm.APIKey) int { return int(x.ID - y.ID) }) {
			t.Errorf("%d keys", len(ks))
		}
		for _, k := range ks {
			if k.WorkspaceID != a.ws.ID || !strings.HasPrefix(k.Prefix, "seg_") || len(k.Prefix) != 10 {
				t.Errorf("%+v", k)
			}
		}
	})
}

// TestLastUsedWrittenOncePerMinute proves that a key's last-used time is recorded by
// the authentication statement itself (the request still sends one statement) and
// written at most once a minute: further requests leave the row untouched (same xmin),
// and 40 concurrent requests on a key last used over a minute ago write it once.
func TestLastUsedWrittenOncePerMinute(t *testing.T) {
	// The 40 concurrent requests below wait for their turn rather than being refused
	// (429 past DefaultMaxWaitingPerCaller, when they arrive faster than they run, as
	// under -race and pgbouncer): the test is of the write, not of admission.
	a := newAPIWith(t, server.Config{MaxWaitingPerCaller: -1, MaxWaitingPerWorkspace: -1})
	ctx := context.Background()
	c, k := a.withKey(t, store.NewAPIKey{})
	row := func() (lastUsed *time.Time, xmin string) {
		t.Helper()
		if err := a.store.DB().QueryRowContext(ctx, "SELECT last_used_at, xmin::text FROM api_keys WHERE id = $1", k.ID).
			Scan(&lastUsed, &xmin); err != nil {
			t.Fatal(err)
		}
		return lastUsed, xmin
	}
	if used, _ := row(); used != nil {
		t.Fatalf("a new key was used at %v", used)
	}
	works(t, c)
	if n := c.statements(); n != 1 {
		t.Errorf("%d statements, want 1 (the authentication, which also wrote the last use)", n)
	}
	first, xmin := row()
	if first == nil || time.Since(*first) > time.Minute {
		t.Fatalf("last used %v", first)
	}
	for range 20 {
		works(t, c)
		if n := c.statements(); n != 1 {
			t.Errorf("%d statements, want 1", n)
		}
	}
	if used, x := row(); !used.Equal(*first) || x != xmin {
		t.Errorf("row written again within the minute: last used %v (was %v), xmin %s (was %s)", used, first, x, xmin)
	}

	// A minute later (moved back in the database), the next request writes it, once,
	// however many arrive at the same time.
	exec := func(q string) {
		t.Helper()
		if _, err := a.store.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	table := fmt.Sprintf("test_touches_%d", k.ID)
	exec(fmt.Sprintf(`CREATE TABLE %[1]s (at timestamptz NOT NULL DEFAULT now());
		CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO %[1]s DEFAULT VALUES; RETURN NULL; END $$;
		CREATE TRIGGER %[1]s AFTER UPDATE OF last_used_at ON api_keys FOR EACH ROW WHEN (NEW.id = %[2]d) EXECUTE FUNCTION %[1]s();`, table, k.ID))
	t.Cleanup(func() {
		exec(fmt.Sprintf("DROP TRIGGER %[1]s ON api_keys; DROP FUNCTION %[1]s(); DROP TABLE %[1]s;", table))
	})
	exec(fmt.Sprintf("UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = %d", k.ID))
	exec(fmt.Sprintf("TRUNCATE %s", table))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			res, err := sendRaw(a.url, http.MethodPost, "Bearer "+string(c.key), `{ workspace { id } }`, nil)
			if err == nil && res.status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", res.status, res.body)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var writes int
	if err := a.store.DB().QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&writes); err != nil {
		t.Fatal(err)
	}
	if writes != 1 {
		t.Errorf("40 concurrent requests wrote last_used_at %d times, want 1", writes)
	}
	if used, _ := row(); used == nil || time.Since(*used) > 10*time.Second {
		t.Errorf("last used %v", used)
	}
}
