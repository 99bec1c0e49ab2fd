package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
)

// rawResponse is an HTTP answer of the API, undecoded.
type rawResponse struct {
	status  int
	header  http.Header
	body    []byte
	decoded response
}

// sendRaw sends a GraphQL request with the given Authorization header ("" for none),
// without failing the test: it may run off the test's goroutine.
func sendRaw(base, method, authorization, query string, vars map[string]any) (rawResponse, error) {
	var req *http.Request
	var err error
	if method == http.MethodGet {
		req, err = http.NewRequest(method, base+"/graphql?query="+url.QueryEscape(query), nil)
	} else {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, err = http.NewRequest(method, base+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	if err != nil {
		return rawResponse{}, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer res.Body.Close()
	out := rawResponse{status: res.StatusCode, header: res.Header}
	if out.body, err = io.ReadAll(res.Body); err != nil {
		return out, err
	}
	if err := json.Unmarshal(out.body, &out.decoded); err != nil {
		return out, fmt.Errorf("decode %q: %w", out.body, err)
	}
	return out, nil
}

// TestUnauthenticated proves that a request without a valid API key is refused with
// 401 and an UNAUTHENTICATED error before anything runs, mutations included.
func TestUnauthenticated(t *testing.T) {
	a := newAPI(t)
	c := mutClient{a}
	c.addSegment("Before", c.addContacts(phones(700_000, 2)...)...)
	// A key whose checksum no longer matches: one character of its random part changed.
	corrupted := []byte(a.key)
	if corrupted[10] == 'A' {
		corrupted[10] = 'B'
	} else {
		corrupted[10] = 'A'
	}
	unknown, err := auth.NewKey() // well-formed, but no workspace has it
	if err != nil {
		t.Fatal(err)
	}
	revokedWS := mutClient{a.as(t)}
	revokedWS.addSegment("Revoked workspace's")
	if _, err := a.store.DB().ExecContext(context.Background(),
		"UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1", revokedWS.ws.ID); err != nil {
		t.Fatal(err)
	}

	const mutation = `mutation { createSegment(input: {name: "Intruder"}) { segment { id } userErrors { code } } }`
	cases := []struct {
		name          string
		authorization string
	}{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"other scheme", "Basic " + string(a.key)},
		{"key without scheme", string(a.key)},
		{"malformed key", "Bearer seg_short"},
		{"key of another service", "Bearer sk_live_" + strings.Repeat("x", 32)},
		{"corrupted key", "Bearer " + string(corrupted)},
		{"truncated key", "Bearer " + string(a.key[:len(a.key)-1])},
		{"key with extra characters", "Bearer " + string(a.key) + "x"},
		{"unknown key", "Bearer " + string(unknown)},
		{"revoked key", "Bearer " + string(revokedWS.key)},
		{"two keys", "Bearer " + string(a.key) + " " + string(a.key)},
	}
	for _, tc := range cases {
		for _, q := range []struct{ method, query string }{
			{http.MethodPost, `{ workspace { id } segments { nodes { name } } }`},
			{http.MethodPost, mutation},
			{http.MethodGet, `{ workspace { id } }`},
		} {
			t.Run(tc.name+"/"+q.method+" "+q.query[:10], func(t *testing.T) {
				res, err := sendRaw(a.url, q.method, tc.authorization, q.query, nil)
				if err != nil {
					t.Fatal(err)
				}
				if res.status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", res.status, res.body)
				}
				errs := res.decoded.Errors
				if len(errs) != 1 || errs[0].Extensions["code"] != "UNAUTHENTICATED" || errs[0].Message == "" {
					t.Errorf("body %s", res.body)
				}
				if res.decoded.Data != nil {
					t.Errorf("data %s", res.decoded.Data)
				}
				if !strings.Contains(res.header.Get("Content-Type"), "application/json") {
					t.Errorf("Content-Type %q", res.header.Get("Content-Type"))
				}
				if strings.Contains(string(res.body), string(a.key)) {
					t.Errorf("the answer repeats the key: %s", res.body)
				}
			})
		}
	}

	t.Run("through the test client", func(t *testing.T) {
		for _, key := range []auth.Key{"", auth.Key(corrupted), unknown} {
			b := *a
			b.t, b.key = t, key
			res := b.post(`{ workspace { id } }`, nil)
			if res.Status != http.StatusUnauthorized || len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "UNAUTHENTICATED" {
				t.Errorf("key %q: status %d, errors %+v", key, res.Status, res.Errors)
			}
		}
	})

	t.Run("nothing was created", func(t *testing.T) {
		var out struct {
			Segments struct {
				Nodes []segment `json:"nodes"`
			} `json:"segments"`
		}
		a.do(`{ segments { nodes { name } } }`, nil, &out)
		if len(out.Segments.Nodes) != 1 || out.Segments.Nodes[0].Name != "Before" {
			t.Errorf("segments %+v", out.Segments.Nodes)
		}
		var n int
		if err := a.store.DB().QueryRowContext(context.Background(),
			"SELECT count(*) FROM segments WHERE name = 'Intruder'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d segments named Intruder", n)
		}
	})

	t.Run("the valid key still works", func(t *testing.T) {
		res, err := sendRaw(a.url, http.MethodPost, "Bearer "+string(a.key), `{ workspace { id } }`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.status != http.StatusOK || len(res.decoded.Errors) != 0 {
			t.Errorf("status %d: %s", res.status, res.body)
		}
	})
}

// TestEachRequestActsForItsWorkspace proves that the key alone decides the workspace:
// a second key of a workspace sees the same data, and concurrent requests of two
// workspaces never see each other's.
func TestEachRequestActsForItsWorkspace(t *testing.T) {
	a := mutClient{newAPI(t)}
	b := mutClient{a.as(t)}
	a.addSegment("Segment of A", a.addContacts(phones(710_000, 2)...)...)
	b.addSegment("Segment of B", b.addContacts(phones(710_000, 3)...)...)
	wsA, wsB := globalid.Encode(globalid.Workspace, a.ws.ID), globalid.Encode(globalid.Workspace, b.ws.ID)

	type view struct {
		Workspace struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"workspace"`
		Segments struct {
			Nodes []struct {
				Name string `json:"name"`
			} `json:"nodes"`
		} `json:"segments"`
		Contacts struct {
			TotalCount int `json:"totalCount"`
		} `json:"contacts"`
		Nodes []*struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
	const query = `query($ids: [ID!]!) { workspace { id name } segments { nodes { name } } contacts { totalCount } nodes(ids: $ids) { id } }`
	check := func(v view, ws, segName string, contacts int, other string) error {
		switch {
		case v.Workspace.ID != ws:
			return fmt.Errorf("workspace %s, want %s", v.Workspace.ID, ws)
		case len(v.Segments.Nodes) != 1 || v.Segments.Nodes[0].Name != segName:
			return fmt.Errorf("segments %+v, want %s only", v.Segments.Nodes, segName)
		case v.Contacts.TotalCount != contacts:
			return fmt.Errorf("%d contacts, want %d", v.Contacts.TotalCount, contacts)
		case len(v.Nodes) != 2 || v.Nodes[0] == nil || v.Nodes[0].ID != ws || v.Nodes[1] != nil:
			return fmt.Errorf("nodes([%s, %s]) = %+v", ws, other, v.Nodes)
		}
		return nil
	}

	t.Run("each client sees its workspace", func(t *testing.T) {
		var va, vb view
		a.on(t).do(query, map[string]any{"ids": []string{wsA, wsB}}, &va)
		b.on(t).do(query, map[string]any{"ids": []string{wsB, wsA}}, &vb)
		if err := check(va, wsA, "Segment of A", 2, wsB); err != nil {
			t.Error("A:", err)
		}
		if err := check(vb, wsB, "Segment of B", 3, wsA); err != nil {
			t.Error("B:", err)
		}
		if va.Workspace.Name == "" || vb.Workspace.Name == "" {
			t.Errorf("workspace names %q, %q", va.Workspace.Name, vb.Workspace.Name)
		}
	})

	t.Run("a second key of the workspace", func(t *testing.T) {
		key, err := auth.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.store.AddAPIKey(context.Background(), a.ws.ID, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix()}); err != nil {
			t.Fatal(err)
		}
		a2 := *a.api
		a2.t, a2.key = t, key
		var v view
		a2.do(query, map[string]any{"ids": []string{wsA, wsB}}, &v)
		if err := check(v, wsA, "Segment of A", 2, wsB); err != nil {
			t.Error(err)
		}
	})

	t.Run("concurrent requests", func(t *testing.T) {
		// A server of its own: the test server records each request's statement
		// counter in the shared client, which concurrent requests would race on. All
		// 20 requests of each key run at once: no bound per caller or workspace.
		srv := httptest.NewServer(server.Handler(a.store, slog.New(slog.NewTextHandler(io.Discard, nil)),
			server.Config{MaxRunningPerCaller: -1, MaxRunningPerWorkspace: -1}))
		defer srv.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, ws, other, name, n := a, wsA, wsB, "Segment of A", 2
				if i%2 == 1 {
					c, ws, other, name, n = b, wsB, wsA, "Segment of B", 3
				}
				res, err := sendRaw(srv.URL, http.MethodPost, "Bearer "+string(c.key), query, map[string]any{"ids": []string{ws, other}})
				if err == nil && (res.status != http.StatusOK || len(res.decoded.Errors) > 0) {
					err = fmt.Errorf("status %d: %s", res.status, res.body)
				}
				var v view
				if err == nil {
					err = json.Unmarshal(res.decoded.Data, &v)
				}
				if err == nil {
					err = check(v, ws, name, n, other)
				}
				if err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// apiState returns what a workspace's own client sees of all its data, for proving
// that another workspace's requests did not change it.
func (c mutClient) apiState() string {
	c.t.Helper()
	res := c.post(`{
		workspace { id name createdAt }
		segments(first: 100) { totalCount nodes { `+segmentFields+` contacts(first: 100) { totalCount nodes { id } } } }
		contacts(first: 100) { totalCount nodes { `+contactFields+` segments { id } } }
	}`, nil)
	if res.Status != http.StatusOK || len(res.Errors) > 0 {
		c.t.Fatalf("status %d, errors %+v", res.Status, res.Errors)
	}
	return string(res.Data)
}

// tenants are two workspaces with look-alike data: the same phones, the same segment
// names.
type tenants struct {
	a, b                 mutClient
	aContacts, bContacts []string
	aSeg, aOther, bSeg   string
	bOnlyPhone           string
}

func newTenants(t *testing.T) tenants {
	t.Helper()
	var x tenants
	x.a = mutClient{newAPI(t)}
	x.b = mutClient{x.a.as(t)}
	shared := phones(720_000, 3)
	x.bOnlyPhone = phones(720_100, 1)[0]
	x.aContacts = x.a.addContacts(shared...)
	x.bContacts = x.b.addContacts(append(slices.Clone(shared), x.bOnlyPhone)...)
	x.aSeg = x.a.addSegment("Festival Buyers", x.aContacts[0], x.aContacts[1])
	x.aOther = x.a.addSegment("Other", x.aContacts[2])
	x.bSeg = x.b.addSegment("Festival Buyers", x.bContacts...)
	x.b.addSegment("Only in B", x.bContacts[3])
	return x
}

// TestOtherWorkspaceIDsInQueries proves that in every query another workspace's IDs
// give exactly the answer of IDs that name nothing, and that nothing of the other
// workspace shows.
func TestOtherWorkspaceIDsInQueries(t *testing.T) {
	x := newTenants(t)
	a, b := x.a, x.b
	wsB := globalid.Encode(globalid.Workspace, b.ws.ID)
	noSegment, noContact := absentID(globalid.Segment, 7), absentID(globalid.Contact, 7)
	noWorkspace := globalid.Encode(globalid.Workspace, 1<<50)
	bStateBefore := b.apiState()

	// Each query is run with B's IDs and with IDs that name nothing; the two answers
	// must be the same, and equal want when it is given.
	const segFields = `id name contactCount`
	queries := []struct {
		name    string
		query   string
		foreign map[string]any // with B's IDs
		unknown map[string]any // with IDs that name nothing
		want    string
	}{
		{"node, segment", `query($id: ID!) { node(id: $id) { id ... on Segment { name } } }`,
			map[string]any{"id": x.bSeg}, map[string]any{"id": noSegment}, `{"node":null}`},
		{"node, contact", `query($id: ID!) { node(id: $id) { id ... on Contact { phone } } }`,
			map[string]any{"id": x.bContacts[0]}, map[string]any{"id": noContact}, `{"node":null}`},
		{"node, workspace", `query($id: ID!) { node(id: $id) { id ... on Workspace { name } } }`,
			map[string]any{"id": wsB}, map[string]any{"id": noWorkspace}, `{"node":null}`},
		{"segment", `query($id: ID!) { segment(id: $id) { ` + segFields + ` } }`,
			map[string]any{"id": x.bSeg}, map[string]any{"id": noSegment}, `{"segment":null}`},
		{"contact", `query($id: ID!) { contact(id: $id) { id phone } }`,
			map[string]any{"id": x.bContacts[3]}, map[string]any{"id": noContact}, `{"contact":null}`},
		{"contactByPhone", `query($p: String!) { contactByPhone(phone: $p) { id } }`,
			map[string]any{"p": x.bOnlyPhone}, map[string]any{"p": "+919899999999"}, `{"contactByPhone":null}`},
		{"contactsByPhone", `query($p: [String!]!) { contactsByPhone(phones: $p) { id } }`,
			map[string]any{"p": []string{x.bOnlyPhone, x.bOnlyPhone}}, map[string]any{"p": []string{"+919899999999", "+919899999998"}}, `{"contactsByPhone":[null,null]}`},
		{"filter any", `query($s: [ID!]) { contacts(filter: {segments: {any: $s}}) { totalCount nodes { id } } }`,
			map[string]any{"s": []string{x.bSeg}}, map[string]any{"s": []string{noSegment}}, `{"contacts":{"totalCount":0,"nodes":[]}}`},
		{"filter any with an own segment", `query($s: [ID!]) { contacts(filter: {segments: {any: $s}}, orderBy: {field: CREATED_AT, direction: ASC}) { totalCount nodes { id } } }`,
			map[string]any{"s": []string{x.bSeg, x.aSeg}}, map[string]any{"s": []string{noSegment, x.aSeg}},
			fmt.Sprintf(`{"contacts":{"totalCount":2,"nodes":[{"id":%q},{"id":%q}]}}`, x.aContacts[0], x.aContacts[1])},
		{"filter all", `query($s: [ID!]) { contacts(filter: {segments: {all: $s}}) { totalCount nodes { id } } }`,
			map[string]any{"s": []string{x.aSeg, x.bSeg}}, map[string]any{"s": []string{x.aSeg, noSegment}}, `{"contacts":{"totalCount":0,"nodes":[]}}`},
		{"filter none", `query($s: [ID!]) { contacts(filter: {segments: {none: $s}}, orderBy: {field: CREATED_AT, direction: ASC}) { totalCount nodes { id } } }`,
			map[string]any{"s": []string{x.bSeg}}, map[string]any{"s": []string{noSegment}},
			fmt.Sprintf(`{"contacts":{"totalCount":3,"nodes":[{"id":%q},{"id":%q},{"id":%q}]}}`, x.aContacts[0], x.aContacts[1], x.aContacts[2])},
		{"filter of all kinds", `query($any: [ID!], $all: [ID!], $none: [ID!]) { contacts(filter: {segments: {any: $any, all: $all, none: $none}}) { totalCount nodes { id } } }`,
			map[string]any{"any": []string{x.aSeg, x.bSeg}, "all": []string{x.aSeg}, "none": []string{x.bSeg}},
			map[string]any{"any": []string{x.aSeg, noSegment}, "all": []string{x.aSeg}, "none": []string{noSegment}}, ""},
		{"nodes", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
			map[string]any{"ids": []string{x.aSeg, x.bSeg, x.bContacts[0], x.aContacts[0], wsB}},
			map[string]any{"ids": []string{x.aSeg, noSegment, noContact, x.aContacts[0], noWorkspace}},
			fmt.Sprintf(`{"nodes":[{"id":%q},null,null,{"id":%q},null]}`, x.aSeg, x.aContacts[0])},
		{"segment and its contacts, several lookups", `query($s: ID!, $c: ID!) { own: segment(id: $s) { contacts { totalCount } } s: segment(id: $s) { id } c: contact(id: $c) { id } n: node(id: $c) { id } }`,
			map[string]any{"s": x.bSeg, "c": x.bContacts[1]}, map[string]any{"s": noSegment, "c": noContact},
			`{"own":null,"s":null,"c":null,"n":null}`},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			a := a.on(t)
			var foreign, unknown json.RawMessage
			a.do(q.query, q.foreign, &foreign)
			a.do(q.query, q.unknown, &unknown)
			if string(foreign) != string(unknown) {
				t.Errorf("with another workspace's IDs:\n %s\nwith unknown IDs:\n %s", foreign, unknown)
			}
			if q.want != "" && string(foreign) != q.want {
				t.Errorf("got  %s\nwant %s", foreign, q.want)
			}
		})
	}

	t.Run("own objects by ID", func(t *testing.T) {
		a := a.on(t)
		var out struct {
			Nodes []*struct {
				ID    string `json:"id"`
				Name  string `json:"name"`
				Phone string `json:"phone"`
			} `json:"nodes"`
		}
		ids := []string{x.aContacts[2], "garbage", x.aSeg, x.aContacts[0], globalid.Encode(globalid.Workspace, a.ws.ID), "", x.aSeg}
		a.do(`query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Segment { name } ... on Contact { phone } } }`, map[string]any{"ids": ids}, &out)
		if len(out.Nodes) != len(ids) {
			t.Fatalf("%d nodes for %d IDs", len(out.Nodes), len(ids))
		}
		for i, id := range ids {
			n := out.Nodes[i]
			if id == "garbage" || id == "" {
				if n != nil {
					t.Errorf("nodes[%d] = %+v for %q", i, n, id)
				}
				continue
			}
			if n == nil || n.ID != id {
				t.Errorf("nodes[%d] = %+v, want %s", i, n, id)
			}
		}
		if out.Nodes[2].Name != "Festival Buyers" || out.Nodes[3].Phone != phones(720_000, 1)[0] {
			t.Errorf("%+v %+v", out.Nodes[2], out.Nodes[3])
		}
		var one struct {
			Node *struct {
				ID string `json:"id"`
			} `json:"node"`
		}
		a.do(`query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": x.aContacts[1]}, &one)
		if one.Node == nil || one.Node.ID != x.aContacts[1] {
			t.Errorf("node = %+v", one.Node)
		}
	})

	t.Run("lists show only the workspace's objects", func(t *testing.T) {
		a := a.on(t)
		var out struct {
			Segments struct {
				TotalCount int       `json:"totalCount"`
				Nodes      []segment `json:"nodes"`
			} `json:"segments"`
			Searched struct {
				TotalCount int `json:"totalCount"`
			} `json:"searched"`
			Contacts struct {
				TotalCount int       `json:"totalCount"`
				Nodes      []contact `json:"nodes"`
			} `json:"contacts"`
			OnlyB struct {
				TotalCount int `json:"totalCount"`
			} `json:"onlyB"`
			Shared struct {
				TotalCount int `json:"totalCount"`
			} `json:"shared"`
			ByPhone *contact `json:"byPhone"`
		}
		a.do(`query($bPhone: String!, $shared: String!) {
			segments(first: 100) { totalCount nodes { id name contactCount } }
			searched: segments(search: "in B") { totalCount }
			contacts(first: 100) { totalCount nodes { id phone segments { id } } }
			onlyB: contacts(search: $bPhone) { totalCount }
			shared: contacts(search: $shared) { totalCount }
			byPhone: contactByPhone(phone: $shared) { id }
		}`, map[string]any{"bPhone": x.bOnlyPhone, "shared": phones(720_000, 1)[0]}, &out)
		segs := idsOf(out.Segments.Nodes)
		slices.Sort(segs)
		want := []string{x.aSeg, x.aOther}
		slices.Sort(want)
		if out.Segments.TotalCount != 2 || !slices.Equal(segs, want) {
			t.Errorf("segments %v (total %d), want %v", segs, out.Segments.TotalCount, want)
		}
		if out.Searched.TotalCount != 0 || out.OnlyB.TotalCount != 0 || out.Shared.TotalCount != 1 {
			t.Errorf("searches found %d, %d, %d; want 0, 0, 1", out.Searched.TotalCount, out.OnlyB.TotalCount, out.Shared.TotalCount)
		}
		if out.Contacts.TotalCount != 3 || len(out.Contacts.Nodes) != 3 {
			t.Errorf("%d contacts", out.Contacts.TotalCount)
		}
		for _, ct := range out.Contacts.Nodes {
			if !slices.Contains(x.aContacts, ct.ID) {
				t.Errorf("contact %s of another workspace", ct.ID)
			}
			for _, s := range ct.Segments {
				if s.ID != x.aSeg && s.ID != x.aOther {
					t.Errorf("contact %s in segment %s of another workspace", ct.ID, s.ID)
				}
			}
		}
		if out.ByPhone == nil || out.ByPhone.ID != x.aContacts[0] {
			t.Errorf("contactByPhone %+v, want %s", out.ByPhone, x.aContacts[0])
		}
	})

	t.Run("segment contacts show only the workspace's contacts", func(t *testing.T) {
		a := a.on(t)
		type conn struct {
			TotalCount int `json:"totalCount"`
			Nodes      []struct {
				ID string `json:"id"`
			} `json:"nodes"`
		}
		var out struct {
			Segment struct {
				ContactCount int  `json:"contactCount"`
				Contacts     conn `json:"contacts"`
			} `json:"segment"`
			Segments struct {
				Nodes []struct {
					ID       string `json:"id"`
					Contacts conn   `json:"contacts"`
					Searched conn   `json:"searched"`
				} `json:"nodes"`
			} `json:"segments"`
		}
		// A single segment and segments in a list take different paths.
		a.do(`query($s: ID!, $p: String!) {
			segment(id: $s) { contactCount contacts(first: 100) { totalCount nodes { id } } }
			segments(first: 100) { nodes { id contacts(first: 100) { totalCount nodes { id } } searched: contacts(search: $p) { totalCount nodes { id } } } }
		}`, map[string]any{"s": x.aSeg, "p": phones(720_000, 1)[0]}, &out)
		if out.Segment.ContactCount != 2 || out.Segment.Contacts.TotalCount != 2 || len(out.Segment.Contacts.Nodes) != 2 {
			t.Errorf("segment: %+v", out.Segment)
		}
		for _, n := range out.Segment.Contacts.Nodes {
			if !slices.Contains(x.aContacts, n.ID) {
				t.Errorf("contact %s of another workspace", n.ID)
			}
		}
		for _, s := range out.Segments.Nodes {
			for _, n := range append(s.Contacts.Nodes, s.Searched.Nodes...) {
				if !slices.Contains(x.aContacts, n.ID) {
					t.Errorf("segment %s lists contact %s of another workspace", s.ID, n.ID)
				}
			}
			if s.ID == x.aSeg && (s.Contacts.TotalCount != 2 || s.Searched.TotalCount != 1) {
				t.Errorf("segment %s: %d contacts, %d found", s.ID, s.Contacts.TotalCount, s.Searched.TotalCount)
			}
		}
	})

	t.Run("B saw nothing change", func(t *testing.T) {
		if after := b.on(t).apiState(); after != bStateBefore {
			t.Errorf("before %s\nafter  %s", bStateBefore, after)
		}
	})
}

// TestOtherWorkspaceIDsInMutations proves that in every mutation another workspace's
// IDs are refused exactly like IDs that name nothing, that no mutation of one
// workspace changes another's data, and that uniqueness is per workspace.
func TestOtherWorkspaceIDsInMutations(t *testing.T) {
	x := newTenants(t)
	a, b := x.a, x.b
	noSegment, noContact := absentID(globalid.Segment, 8), absentID(globalid.Contact, 8)
	bAPI, bDB := b.apiState(), b.dbState()

	// Each mutation is sent with B's IDs and with IDs that name nothing: both must be
	// refused with the same payload, and change nothing anywhere.
	refusals := []struct {
		name             string
		doc              string
		foreign, unknown map[string]any
		want             []wantUserError
	}{
		{"updateSegment", updateSegmentDoc,
			map[string]any{"id": x.bSeg, "name": "Hijacked"}, map[string]any{"id": noSegment, "name": "Hijacked"},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"deleteSegment", deleteSegmentDoc,
			map[string]any{"id": x.bSeg}, map[string]any{"id": noSegment},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"assign own contacts to B's segment", assignDoc,
			map[string]any{"contactIds": x.aContacts, "segmentIds": []string{x.aOther, x.bSeg}},
			map[string]any{"contactIds": x.aContacts, "segmentIds": []string{x.aOther, noSegment}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "segmentIds", "1")}},
		{"assign B's contacts to own segment", assignDoc,
			map[string]any{"contactIds": []string{x.aContacts[2], x.bContacts[3]}, "segmentIds": []string{x.aSeg}},
			map[string]any{"contactIds": []string{x.aContacts[2], noContact}, "segmentIds": []string{x.aSeg}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "1")}},
		{"assign B's contacts to B's segment", assignDoc,
			map[string]any{"contactIds": []string{x.bContacts[0]}, "segmentIds": []string{x.bSeg}},
			map[string]any{"contactIds": []string{noContact}, "segmentIds": []string{noSegment}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "segmentIds", "0")}},
		{"assign with B's and malformed IDs", assignDoc,
			map[string]any{"contactIds": []string{x.bContacts[0], "bad"}, "segmentIds": []string{x.aSeg, x.bSeg}},
			map[string]any{"contactIds": []string{noContact, "bad"}, "segmentIds": []string{x.aSeg, noSegment}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("INVALID", "input", "contactIds", "1"), userErrAt("NOT_FOUND", "input", "segmentIds", "1")}},
		{"remove B's contacts from B's segment", removeDoc,
			map[string]any{"contactIds": x.bContacts, "segmentIds": []string{x.bSeg}},
			map[string]any{"contactIds": []string{noContact, noContact, noContact, noContact}, "segmentIds": []string{noSegment}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "0"), userErrAt("NOT_FOUND", "input", "contactIds", "1"),
				userErrAt("NOT_FOUND", "input", "contactIds", "2"), userErrAt("NOT_FOUND", "input", "contactIds", "3"),
				userErrAt("NOT_FOUND", "input", "segmentIds", "0")}},
		{"remove own contacts from B's segment", removeDoc,
			map[string]any{"contactIds": []string{x.aContacts[0]}, "segmentIds": []string{x.aSeg, x.bSeg}},
			map[string]any{"contactIds": []string{x.aContacts[0]}, "segmentIds": []string{x.aSeg, noSegment}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "segmentIds", "1")}},
		{"createSegment with B's contacts", createSegmentDoc,
			map[string]any{"name": "New", "contactIds": []string{x.aContacts[0], x.bContacts[0]}},
			map[string]any{"name": "New", "contactIds": []string{x.aContacts[0], noContact}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "contactIds", "1")}},
		{"updateContact", updateContactDoc,
			map[string]any{"id": x.bContacts[0], "name": "Hijacked"}, map[string]any{"id": noContact, "name": "Hijacked"},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"updateContact with a phone", updateContactDoc,
			map[string]any{"id": x.bContacts[3], "phone": phones(720_200, 1)[0]}, map[string]any{"id": noContact, "phone": phones(720_200, 1)[0]},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "id")}},
		{"deleteContacts", deleteContactsDoc,
			map[string]any{"ids": []string{x.aContacts[0], x.bContacts[0], x.bContacts[3]}},
			map[string]any{"ids": []string{x.aContacts[0], noContact, noContact}},
			[]wantUserError{userErrAt("NOT_FOUND", "input", "ids", "1"), userErrAt("NOT_FOUND", "input", "ids", "2")}},
	}
	for _, tc := range refusals {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			a, b := a.on(t), b.on(t)
			aBefore := a.dbState()
			var foreign, unknown map[string]json.RawMessage
			a.do(tc.doc, map[string]any{"in": tc.foreign}, &foreign)
			a.do(tc.doc, map[string]any{"in": tc.unknown}, &unknown)
			if asJSON(t, foreign) != asJSON(t, unknown) {
				t.Errorf("with another workspace's IDs:\n %s\nwith unknown IDs:\n %s", asJSON(t, foreign), asJSON(t, unknown))
			}
			for _, raw := range foreign {
				var p struct {
					UserErrors []userError `json:"userErrors"`
				}
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatal(err)
				}
				checkUserErrors(t, p.UserErrors, tc.want...)
			}
			a.unchanged(aBefore)
			b.unchanged(bDB)
		})
	}

	// Accepted mutations of A that touch look-alike data of B.
	t.Run("A's changes leave B alone", func(t *testing.T) {
		a := a.on(t)
		// A segment named like one of B's, a contact with one of B's phones.
		if p := a.createSegment(map[string]any{"name": "ONLY IN B", "contactIds": x.aContacts}); len(p.UserErrors) > 0 {
			t.Fatal(p.UserErrors)
		}
		p := a.upsert(map[string]any{"phone": x.bOnlyPhone, "name": "A's own"}, map[string]any{"phone": phones(720_000, 1)[0], "name": "Renamed in A"})
		checkUserErrors(t, p.UserErrors)
		if p.CreatedCount != 1 || p.UpdatedCount != 1 || p.Contacts[0].ID == x.bContacts[3] || p.Contacts[1].ID != x.aContacts[0] {
			t.Errorf("upsert: %+v", p)
		}
		newContact := p.Contacts[0].ID
		// Phones are unique per workspace: A's own phones are taken, B's are not.
		if u := a.updateContact(map[string]any{"id": x.aContacts[2], "phone": phones(720_001, 1)[0]}); len(u.UserErrors) != 1 || u.UserErrors[0].Code != "TAKEN" {
			t.Errorf("phone of another contact of A: %v", u.UserErrors)
		}
		if u := a.updateContact(map[string]any{"id": newContact, "phone": phones(720_300, 1)[0], "email": "a@example.com"}); len(u.UserErrors) > 0 {
			t.Errorf("update: %v", u.UserErrors)
		}
		if u := a.updateContact(map[string]any{"id": x.aContacts[2], "phone": x.bOnlyPhone}); len(u.UserErrors) > 0 || u.Contact.Phone != x.bOnlyPhone {
			t.Errorf("phone of a contact of B: %+v", u)
		}
		if u := a.updateSegment(map[string]any{"id": x.aOther, "name": "festival buyers"}); len(u.UserErrors) != 1 || u.UserErrors[0].Code != "TAKEN" {
			t.Errorf("rename to an own name: %v", u.UserErrors)
		}
		if u := a.updateSegment(map[string]any{"id": x.aSeg, "name": "Only in b", "description": "renamed"}); len(u.UserErrors) != 1 || u.UserErrors[0].Code != "TAKEN" {
			t.Errorf("rename to an own name: %v", u.UserErrors)
		}
		if u := a.updateSegment(map[string]any{"id": x.aOther, "name": "Festival buyers 2"}); len(u.UserErrors) > 0 {
			t.Errorf("rename: %v", u.UserErrors)
		}
		m := a.assign(append(slices.Clone(x.aContacts), newContact), []string{x.aSeg, x.aOther})
		checkUserErrors(t, m.UserErrors)
		a.checkPayloadCounts(m.Segments)
		m = a.remove(x.aContacts[:1], []string{x.aSeg})
		checkUserErrors(t, m.UserErrors)
		d := a.deleteContacts(x.aContacts[1])
		checkUserErrors(t, d.UserErrors)
		a.checkPayloadCounts(d.Segments)
		if ds := a.deleteSegment(x.aOther); len(ds.UserErrors) > 0 {
			t.Errorf("delete segment: %v", ds.UserErrors)
		}
		a.checkCount(x.aSeg, 2)
	})

	t.Run("B saw nothing change", func(t *testing.T) {
		b := b.on(t)
		if after := b.apiState(); after != bAPI {
			t.Errorf("B's view changed:\nbefore %s\nafter  %s", bAPI, after)
		}
		b.unchanged(bDB)
		b.checkCount(x.bSeg, 4)
		if ct := b.contact(x.bContacts[3]); ct == nil || ct.Name != nil || ct.Phone != x.bOnlyPhone || len(ct.Segments) != 2 {
			t.Errorf("B's contact %+v", ct)
		}
	})

	t.Run("B's changes leave A alone", func(t *testing.T) {
		a, b := a.on(t), b.on(t)
		aAPI, aDB := a.apiState(), a.dbState()
		if p := b.updateSegment(map[string]any{"id": x.bSeg, "name": "Renamed in B"}); len(p.UserErrors) > 0 {
			t.Fatal(p.UserErrors)
		}
		if d := b.deleteContacts(x.bContacts...); len(d.UserErrors) > 0 || len(d.DeletedContactIDs) != 4 {
			t.Fatalf("%+v", d)
		}
		if p := b.upsert(map[string]any{"phone": phones(720_000, 1)[0], "name": "B again"}); p.CreatedCount != 1 {
			t.Fatalf("%+v", p)
		}
		if after := a.apiState(); after != aAPI {
			t.Errorf("A's view changed:\nbefore %s\nafter  %s", aAPI, after)
		}
		a.unchanged(aDB)
	})
}
