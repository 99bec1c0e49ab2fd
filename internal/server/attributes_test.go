package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestAttributesNotAnObject: attributes that are not a JSON object are the client's
// mistake, told as BAD_USER_INPUT naming the value, and change nothing. They were an
// internal error, which the docs tell clients to retry and operators to alert on.
func TestAttributesNotAnObject(t *testing.T) {
	c := mutClient{newAPI(t)}
	existing := c.upsert(map[string]any{"phone": "+919830000001"})
	checkUserErrors(t, existing.UserErrors)
	id := existing.Contacts[0].ID
	before := c.dbState()
	check := func(name string, res response, field string) {
		t.Helper()
		if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_USER_INPUT" ||
			fmt.Sprint(res.Errors[0].Extensions["field"]) != field || !strings.HasPrefix(res.Errors[0].Message, "a JSON object is expected") {
			t.Errorf("%s: %+v, want BAD_USER_INPUT at %s", name, res.Errors, field)
		}
	}
	for kind, attrs := range map[string]any{"array": []any{1, 2}, "string": "x", "number": 3, "boolean": true} {
		check("upsertContacts, "+kind, c.post(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []any{
			map[string]any{"phone": "+919830000002"}, map[string]any{"phone": "+919830000003", "attributes": attrs}}}}),
			"[input contacts 1 attributes]")
		check("updateContact, "+kind, c.post(updateContactDoc, map[string]any{"in": map[string]any{"id": id, "attributes": attrs}}),
			"[input attributes]")
	}
	check("a literal", c.post(`mutation { updateContact(input: {id: "`+id+`", attributes: "x"}) { contact { id } } }`, nil),
		"[input attributes]")
	c.unchanged(before)
}

// TestAttributesMeasuredAsStored: the 16 KB attributes may take is what PostgreSQL
// writes back, with numbers written out in full and strings unescaped but for what
// JSON must escape; measured on the request's encoding instead, 1e16000 took 7 bytes
// (and 100 keys of 1e131071 read back as 13 MB), and "<" took 6.
func TestAttributesMeasuredAsStored(t *testing.T) {
	c := mutClient{newAPI(t)}
	const limit = 16 << 10
	// {"n":1eK} is written {"n":1000...} in K+7 bytes; {"s":"<<..."} in N+8.
	for i, tc := range []struct {
		name   string
		attrs  map[string]any
		stored int // bytes read back; 0: refused as TOO_LONG
	}{
		{"a number at the limit", map[string]any{"n": json.Number(fmt.Sprintf("1e%d", limit-7))}, limit},
		{"a number a byte over", map[string]any{"n": json.Number(fmt.Sprintf("1e%d", limit-6))}, 0},
		{"100 numbers of 131,072 digits", func() map[string]any {
			m := map[string]any{}
			for i := range 100 {
				m[fmt.Sprint("k", i)] = json.Number("1e131071")
			}
			return m
		}(), 0},
		{"a number past PostgreSQL's range", map[string]any{"n": json.Number("1e131072")}, 0},
		// A zero is written "0" whatever its exponent, but PostgreSQL's numeric refuses
		// an exponent of 1,073,741,823 or more either way (it failed the request as an
		// INTERNAL_SERVER_ERROR).
		{"a zero at the largest exponent", map[string]any{"n": json.Number("0e1073741822")}, len(`{"n":0}`)},
		{"a zero with leading zeros in its exponent", map[string]any{"n": json.Number("-0.0e+0001073741822")}, len(`{"n":0}`)},
		{"a zero past the largest exponent", map[string]any{"n": json.Number("0e1073741823")}, 0},
		{"a negative zero far past it", map[string]any{"n": json.Number("-0e99999999999")}, 0},
		{"a zero past the smallest exponent", map[string]any{"n": json.Number("0e-1073741823")}, 0},
		{"markup at the limit", map[string]any{"s": strings.Repeat("<", limit-8)}, limit},
		{"markup a byte over", map[string]any{"s": strings.Repeat(">", limit-7)}, 0},
		{"a backslash and u0000, not a NUL", map[string]any{"s": `\u0000`}, len(`{"s":"\\u0000"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			res := c.post(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []any{
				map[string]any{"phone": fmt.Sprintf("+9198300001%02d", i), "attributes": tc.attrs}}}})
			var out struct {
				UpsertContacts struct {
					Contacts []struct {
						Attributes json.RawMessage `json:"attributes"`
					} `json:"contacts"`
					UserErrors []userError `json:"userErrors"`
				} `json:"upsertContacts"`
			}
			if err := json.Unmarshal(res.Data, &out); err != nil || len(res.Errors) != 0 {
				t.Fatalf("%v %+v", err, res.Errors)
			}
			p := out.UpsertContacts
			if tc.stored == 0 {
				checkUserErrors(t, p.UserErrors, userErrAt("TOO_LONG", "input", "contacts", "0", "attributes"))
				return
			}
			checkUserErrors(t, p.UserErrors)
			if got := p.Contacts[0].Attributes; len(got) != tc.stored {
				t.Errorf("read back %.80s... (%d bytes), want %d bytes", got, len(got), tc.stored)
			}
		})
	}

	nul := c.upsert(map[string]any{"phone": "+919830000011", "attributes": map[string]any{"s": "a\x00b"}})
	checkUserErrors(t, nul.UserErrors, userErrAt("INVALID", "input", "contacts", "0", "attributes"))

	// Such a zero is refused as its entry's error, not the batch's, and by
	// updateContact too, written in the query as in a variable (it was read as the
	// Float 0, and taken).
	before := c.dbState()
	batch := c.upsert(map[string]any{"phone": "+919830000012"}, map[string]any{"phone": "+919830000013", "attributes": map[string]any{"n": json.Number("0e1073741823")}})
	checkUserErrors(t, batch.UserErrors, userErrAt("TOO_LONG", "input", "contacts", "1", "attributes"))
	c.unchanged(before)
	id := c.upsert(map[string]any{"phone": "+919830000014"}).Contacts[0].ID
	updated := c.updateContact(map[string]any{"id": id, "attributes": map[string]any{"n": json.Number("-0.0e2000000000")}})
	checkUserErrors(t, updated.UserErrors, userErrAt("TOO_LONG", "input", "attributes"))
	var lit struct {
		UpdateContact contactPayload `json:"updateContact"`
	}
	c.do(`mutation { updateContact(input: {id: "`+id+`", attributes: {n: 0e1073741823}}) { contact { attributes } userErrors { field message code } } }`, nil, &lit)
	checkUserErrors(t, lit.UpdateContact.UserErrors, userErrAt("TOO_LONG", "input", "attributes"))
}

// TestMergedAttributesBounded: attributes merged into a contact's stored ones, or
// with another entry's for the same phone, may not take it past 16 KB either; the
// upsert or the update is refused whole. Each entry was checked alone, and a
// contact's attributes grew without bound, read with it by every page. Attributes
// over the limit from before it may stay so, or shrink.
func TestMergedAttributesBounded(t *testing.T) {
	c := mutClient{newAPI(t)}
	half := strings.Repeat("x", 10<<10)
	first := c.upsert(map[string]any{"phone": "+919830000020", "attributes": map[string]any{"a": half}})
	checkUserErrors(t, first.UserErrors)
	id := first.Contacts[0].ID
	before := c.dbState()

	grown := c.upsert(map[string]any{"phone": "+919830000021"}, map[string]any{"phone": "+919830000020", "attributes": map[string]any{"b": half}})
	checkUserErrors(t, grown.UserErrors, userErrAt("TOO_LONG", "input", "contacts", "1", "attributes"))
	twice := c.upsert(map[string]any{"phone": "+919830000022", "attributes": map[string]any{"a": half}},
		map[string]any{"phone": "+919830000023"}, map[string]any{"phone": "+919830000022", "attributes": map[string]any{"b": half}})
	checkUserErrors(t, twice.UserErrors, userErrAt("TOO_LONG", "input", "contacts", "2", "attributes"))
	updated := c.updateContact(map[string]any{"id": id, "attributes": map[string]any{"b": half}})
	checkUserErrors(t, updated.UserErrors, userErrAt("TOO_LONG", "input", "attributes"))
	c.unchanged(before)

	// Replacing a key, or removing one for another, stays within the limit.
	replaced := c.upsert(map[string]any{"phone": "+919830000020", "attributes": map[string]any{"a": nil, "b": half}})
	checkUserErrors(t, replaced.UserErrors)
	swapped := c.updateContact(map[string]any{"id": id, "attributes": map[string]any{"b": "short", "c": half}})
	checkUserErrors(t, swapped.UserErrors)
	if p := swapped.Contact; p == nil || len(p.Attributes) != 2 {
		t.Errorf("after the swap: %+v", p)
	}

	// A contact whose attributes grew past the limit before it held may keep them,
	// change its other fields and shrink them; only growing is refused.
	legacy := c.upsert(map[string]any{"phone": "+919830000030", "attributes": map[string]any{"city": "Pune"}})
	checkUserErrors(t, legacy.UserErrors)
	if _, err := c.store.DB().ExecContext(context.Background(),
		`UPDATE contacts SET attributes = attributes || jsonb_build_object('a', repeat('x', 10000), 'b', repeat('y', 10000), 'c', repeat('z', 10000))
		 WHERE workspace_id = $1 AND phone = $2`, c.ws.ID, "+919830000030"); err != nil {
		t.Fatal(err)
	}
	legacyID := legacy.Contacts[0].ID
	for _, step := range []struct {
		name string
		errs func() []userError
	}{
		{"renamed, attributes as they are", func() []userError {
			return c.upsert(map[string]any{"phone": "+919830000030", "name": "Renamed", "attributes": map[string]any{"city": "Pune"}}).UserErrors
		}},
		{"nothing merged", func() []userError {
			return c.updateContact(map[string]any{"id": legacyID, "attributes": map[string]any{}}).UserErrors
		}},
		{"a key shortened", func() []userError {
			return c.upsert(map[string]any{"phone": "+919830000030", "attributes": map[string]any{"city": "Goa"}}).UserErrors
		}},
		{"a key removed, still over", func() []userError {
			return c.updateContact(map[string]any{"id": legacyID, "attributes": map[string]any{"c": nil}}).UserErrors
		}},
	} {
		if errs := step.errs(); len(errs) > 0 {
			t.Errorf("%s: %v", step.name, errs)
		}
	}
	grownAgain := c.updateContact(map[string]any{"id": legacyID, "attributes": map[string]any{"more": "x"}})
	checkUserErrors(t, grownAgain.UserErrors, userErrAt("TOO_LONG", "input", "attributes"))
	grownByUpsert := c.upsert(map[string]any{"phone": "+919830000030", "attributes": map[string]any{"city": "Mumbai"}})
	checkUserErrors(t, grownByUpsert.UserErrors, userErrAt("TOO_LONG", "input", "contacts", "0", "attributes"))
}
