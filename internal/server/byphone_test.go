package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
)

const contactsByPhoneDoc = `query($p: [String!]!) { contactsByPhone(phones: $p) { id phone } }`

// byPhone runs contactsByPhone and returns the ID found for each phone ("" for null)
// and the response, errors included.
func (a *api) byPhone(phones ...string) ([]string, response) {
	a.t.Helper()
	res := a.post(contactsByPhoneDoc, map[string]any{"p": phones})
	var out struct{ ContactsByPhone []*contact }
	if res.Status != http.StatusOK || json.Unmarshal(res.Data, &out) != nil || out.ContactsByPhone == nil {
		a.t.Fatalf("contactsByPhone(%q): status %d, data %s, errors %+v", phones, res.Status, res.Data, res.Errors)
	}
	ids := make([]string, len(out.ContactsByPhone))
	for i, c := range out.ContactsByPhone {
		if c != nil {
			ids[i] = c.ID
		}
	}
	return ids, res
}

// TestContactsByPhone holds contactsByPhone to contactByPhone's reading of each phone
// (trunk zeros, other scripts' digits, the fullwidth plus), in input order with
// duplicates and misses, never another workspace's contact, a refused phone null at
// its own index with contactByPhone's BAD_USER_INPUT, and 100 phones in one statement.
// The field did not exist: mapping 1,000 phones to IDs took 50 requests of 20
// contactByPhone fields.
func TestContactsByPhone(t *testing.T) {
	a := newAPI(t)
	ids := map[string]string{
		"uk": a.listAddContact("+447911123418", nil, nil),
		"id": a.listAddContact("+6281234567817", nil, nil),
		"ae": a.listAddContact("+971501234501", nil, nil),
		"in": a.listAddContact("+919876500001", nil, nil),
	}
	other := a.as(t)
	other.listAddContact("+919899999999", nil, nil)
	on := func(a *api, t *testing.T) *api {
		b := *a
		b.t = t
		return &b
	}

	t.Run("order, duplicates, misses and formats", func(t *testing.T) {
		a := on(a, t)
		got, res := a.byPhone(
			"+44 (0) 7911 123418",
			"+919876500001",
			"+919800000000", // no one's
			"+٩١ ٠ ٩٨٧٦٥ ٠٠٠٠١",
			"+62 0812-3456-7817",
			"+919899999999",    // another workspace's
			"＋９７１ ５０ １２３ ４５０１", // fullwidth
			"0044 (0)7911 123418",
			"+919876500001",
		)
		want := []string{ids["uk"], ids["in"], "", ids["in"], ids["id"], "", ids["ae"], ids["uk"], ids["in"]}
		if !slices.Equal(got, want) || len(res.Errors) > 0 {
			t.Errorf("got %q, errors %+v\nwant %q", got, res.Errors, want)
		}
		// Each as contactByPhone finds it.
		for _, p := range []string{"+44 (0) 7911 123418", "+٩١ ٠ ٩٨٧٦٥ ٠٠٠٠١", "＋９７１ ５０ １２３ ４５０１"} {
			var one struct{ ContactByPhone *contact }
			a.do(`query($p: String!) { contactByPhone(phone: $p) { id } }`, map[string]any{"p": p}, &one)
			if many, _ := a.byPhone(p); one.ContactByPhone == nil || many[0] != one.ContactByPhone.ID {
				t.Errorf("%q: contactsByPhone %q, contactByPhone %+v", p, many, one.ContactByPhone)
			}
		}
		if got, _ := a.byPhone([]string{}...); len(got) != 0 {
			t.Errorf("no phones: %q", got)
		}
	})

	t.Run("another workspace's phone", func(t *testing.T) {
		got, res := on(other, t).byPhone("+447911123418", "+919899999999")
		if got[0] != "" || got[1] == "" || len(res.Errors) > 0 {
			t.Errorf("from the other workspace: %q %+v", got, res.Errors)
		}
	})

	t.Run("phones contactByPhone refuses", func(t *testing.T) {
		a := on(a, t)
		res := a.post(`query($p: [String!]!) { found: contactsByPhone(phones: $p) { id } }`,
			map[string]any{"p": []string{"+919876500001", "+91 98765 HELLO", "98765 00001", "+447911123418"}})
		var out struct{ Found []*contact }
		if err := json.Unmarshal(res.Data, &out); err != nil || len(out.Found) != 4 ||
			out.Found[0] == nil || out.Found[0].ID != ids["in"] || out.Found[1] != nil || out.Found[2] != nil ||
			out.Found[3] == nil || out.Found[3].ID != ids["uk"] {
			t.Fatalf("status %d, data %s", res.Status, res.Data)
		}
		if res.Status != http.StatusOK || len(res.Errors) != 2 {
			t.Fatalf("status %d, errors %+v, want 200 and 2", res.Status, res.Errors)
		}
		for i, e := range res.Errors {
			at := i + 1
			field, _ := json.Marshal(e.Extensions["field"])
			if e.Extensions["code"] != "BAD_USER_INPUT" || e.Extensions["argument"] != "phones" ||
				fmt.Sprint(e.Path) != fmt.Sprintf("[found %d]", at) || string(field) != fmt.Sprintf(`["phones","%d"]`, at) {
				t.Errorf("error %d: %+v, want BAD_USER_INPUT at [found %d], field [phones %d]", i, e, at, at)
			}
		}
	})

	t.Run("stored phones the plans now refuse or write otherwise", func(t *testing.T) {
		a := on(a, t)
		// As TestKnownPhonesAreTheirContacts: given exactly as a contact has it, the
		// phone is that contact's, before its E.164 form's.
		const legacy, prefixed, rewritten = "+9112345", "+4407911123456", "+447911123456"
		var stored []string
		for _, phone := range []string{legacy, prefixed} {
			if _, err := a.store.DB().Exec(`INSERT INTO contacts (workspace_id, phone) VALUES ($1, $2)`, a.ws.ID, phone); err != nil {
				t.Fatal(err)
			}
			stored = append(stored, phone)
		}
		rewrittenID := a.listAddContact(rewritten, nil, nil)
		got, res := a.byPhone(legacy, prefixed, rewritten, "+44 07911 123456", "+91 12345")
		if got[0] == "" || got[1] == "" || got[0] == got[1] || got[1] == rewrittenID || got[2] != rewrittenID || got[3] != rewrittenID || got[4] != "" {
			t.Errorf("%q (rewritten %s) for %q", got, rewrittenID, stored)
		}
		if len(res.Errors) != 1 || fmt.Sprint(res.Errors[0].Path) != "[contactsByPhone 4]" {
			t.Errorf("errors %+v, want one for +91 12345", res.Errors)
		}
		if got, _ := a.as(t).byPhone(legacy); got[0] != "" {
			t.Errorf("another workspace found %s", got[0])
		}
	})

	t.Run("limits and statements", func(t *testing.T) {
		a := on(a, t)
		phones := make([]string, 100)
		for i := range phones {
			phones[i] = fmt.Sprintf("+9198765%05d", i)
		}
		base := a.baseline()
		a.do(`{ contactByPhone(phone: "+919876500001") { id } }`, nil, nil)
		one := a.statements()
		got, _ := a.byPhone(phones...)
		if n := a.statements(); n != one || one != base+1 {
			t.Errorf("100 phones: %d statements, one contactByPhone %d, a request %d", n, one, base)
		}
		if got[1] != ids["in"] || slices.ContainsFunc(append(got[:1:1], got[2:]...), func(id string) bool { return id != "" }) {
			t.Errorf("100 phones: %q", got)
		}
		msg := a.fails("BAD_USER_INPUT", contactsByPhoneDoc, map[string]any{"p": append(phones, "+919876500001")})
		if n := a.statements(); n != base {
			t.Errorf("101 phones: %d statements (%s), want the %d of a request", n, msg, base)
		}
		res := a.post(contactsByPhoneDoc, map[string]any{"p": append(phones, "+919876500001")})
		if string(res.Data) != "null" || res.Errors[0].Extensions["argument"] != "phones" {
			t.Errorf("101 phones: data %s, errors %+v", res.Data, res.Errors)
		}
	})
}

// TestUpsertCreatedContactIDs: createdContactIds names the contacts the call created,
// each once in the order of its first entry, not those it found; none with
// userErrors; and a retry with the Idempotency-Key replays it, where the same upsert
// run again creates nothing. Before, a partner that initialises new contacts could
// not tell them from the rest (createdCount alone).
func TestUpsertCreatedContactIDs(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	old := c.upsert(map[string]any{"phone": "+919800000101"}, map[string]any{"phone": "+919800000102"})
	checkUserErrors(t, old.UserErrors)
	if !slices.Equal(old.CreatedContactIDs, []string{old.Contacts[0].ID, old.Contacts[1].ID}) {
		t.Fatalf("first upsert: %+v", old)
	}

	p := c.upsert(
		map[string]any{"phone": "+919800000203", "name": "New B"}, // new, sorted after the next one
		map[string]any{"phone": "+91 98000 00102", "name": "Known"},
		map[string]any{"phone": "+919800000201", "name": "New A"},
		map[string]any{"phone": "+919800000203", "name": "New B again"},
		map[string]any{"phone": "+919800000101"},
	)
	checkUserErrors(t, p.UserErrors)
	want := []string{p.Contacts[0].ID, p.Contacts[2].ID}
	if !slices.Equal(p.CreatedContactIDs, want) || p.CreatedCount != 2 || p.Contacts[1].ID != old.Contacts[1].ID {
		t.Errorf("createdContactIds %q (createdCount %d), want %q", p.CreatedContactIDs, p.CreatedCount, want)
	}

	refused := c.upsert(map[string]any{"phone": "+919800000301"}, map[string]any{"phone": "12345"})
	if len(refused.UserErrors) != 1 || refused.CreatedContactIDs == nil || len(refused.CreatedContactIDs) != 0 {
		t.Errorf("refused: %+v", refused)
	}

	body := idemBody(upsertContactsDoc, map[string]any{"in": map[string]any{"contacts": []map[string]any{
		{"phone": "+919800000101"}, {"phone": "+919800000401"}, {"phone": "+919800000402"},
	}}})
	key := newKey()
	first := a.idemPost(body, key)
	var p1 upsertPayload
	first.payload(t, &p1)
	if want := []string{p1.Contacts[1].ID, p1.Contacts[2].ID}; !slices.Equal(p1.CreatedContactIDs, want) {
		t.Errorf("keyed: %q, want %q", p1.CreatedContactIDs, want)
	}
	a.idemPost(body, key).sameAs(t, first)
	var again upsertPayload
	a.idemPost(body).payload(t, &again)
	if len(again.CreatedContactIDs) != 0 || again.CreatedCount != 0 {
		t.Errorf("unkeyed, run again: %+v", again)
	}
}
