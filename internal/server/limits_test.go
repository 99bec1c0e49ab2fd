package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/limits/limitstest"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// reply is an HTTP response of the API, raw and decoded.
type reply struct {
	status int
	header http.Header
	body   string
	res    response
	cost   *limits.Report
}

// send sends a request to the API with the client's key; header holds extra headers
// (Content-Type defaults to application/json when there is a body).
func (a *api) send(method, target string, body []byte, header map[string]string) reply {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+target, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+string(a.key))
	}
	for _, h := range []map[string]string{a.header, header} {
		for k, v := range h {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	out := reply{status: res.StatusCode, header: res.Header, body: string(b)}
	var withCost struct {
		Extensions struct {
			Cost *limits.Report `json:"cost"`
		} `json:"extensions"`
	}
	if json.Unmarshal(b, &out.res) == nil && json.Unmarshal(b, &withCost) == nil {
		out.cost = withCost.Extensions.Cost
	}
	out.res.Status = res.StatusCode
	return out
}

// query POSTs a GraphQL request.
func (a *api) query(q string, vars map[string]any) reply {
	a.t.Helper()
	body, err := json.Marshal(map[string]any{"query": q, "variables": vars})
	if err != nil {
		a.t.Fatal(err)
	}
	return a.send(http.MethodPost, "/graphql", body, nil)
}

// refused checks that r is a refusal with HTTP status and code, and no data.
func (r reply) refused(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status || len(r.res.Errors) != 1 || r.res.Errors[0].Extensions["code"] != code {
		t.Fatalf("status %d, body %.300s; want %d %s", r.status, r.body, status, code)
	}
	if d := string(r.res.Data); d != "" && d != "null" {
		t.Fatalf("refused with data %s", d)
	}
}

// baseline is the number of SQL statements of a request that runs no resolver
// reading the database (authentication's); a resolver that reads adds to it. Each
// request is charged (at least 1 point): the first may send the rate limiter's
// statement, and leaves a reserve that pays for the next ones without one.
func (a *api) baseline() int64 {
	a.t.Helper()
	a.query(`{ __typename }`, nil)
	a.query(`{ __typename }`, nil)
	base := a.statements()
	a.query(`{ segments { totalCount } }`, nil)
	if n := a.statements(); n <= base {
		a.t.Fatalf("a resolver reading the database adds no statement to the %d of a request", base)
	}
	a.query(`{ __typename }`, nil)
	return base
}

// TestSlowBodyTimedOut: a body that does not arrive within the request timeout is
// refused with 408 REQUEST_TIMEOUT, before authentication, and a body sent in
// pieces within it is served. A body sent a byte a second was read for as long as
// it took (256 KB: three days), holding its connection.
func TestSlowBodyTimedOut(t *testing.T) {
	a := newAPIWith(t, server.Config{RequestTimeout: time.Second})
	const body = `{"query":"{ __typename }"}`
	// send sends the body in two pieces, pause apart (the second never, with a
	// negative pause), and reads the answer.
	send := func(key string, pause time.Duration) (status int, reply string) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", key, len(body))
		conn.Write([]byte(body[:10]))
		if pause >= 0 {
			time.Sleep(pause)
			conn.Write([]byte(body[10:]))
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, key := range []string{string(a.key), ""} {
		start := time.Now()
		if status, reply := send(key, -1); status != http.StatusRequestTimeout || !strings.Contains(reply, `"REQUEST_TIMEOUT"`) {
			t.Errorf("key %q: %d %s, want 408 REQUEST_TIMEOUT", key, status, reply)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("answered after %v", d)
		}
	}
	if status, reply := send(string(a.key), 50*time.Millisecond); status != http.StatusOK || !strings.Contains(reply, "__typename") {
		t.Errorf("a body in two pieces 50 ms apart: %d %s", status, reply)
	}
}

// TestRequestTooLarge proves that a body over the cap is refused with 413, a query
// string over it with 414, before authentication (an unauthenticated client gets the
// same), whether the size is declared or the body is chunked; and that a body at the
// cap passes.
func TestRequestTooLarge(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Limits{MaxBodyBytes: 1000}})
	padded := func(n int) []byte { // a valid request of exactly n bytes
		b := []byte(`{"query":"{ __typename }","variables":{"pad":"`)
		b = append(b, bytes.Repeat([]byte("x"), n-len(b)-3)...)
		return append(b, `"}}`...)
	}
	anonymous := *a
	anonymous.key = ""
	for _, c := range []*api{a, &anonymous} {
		c.send(http.MethodPost, "/graphql", padded(1001), nil).refused(t, http.StatusRequestEntityTooLarge, limits.CodeRequestTooLarge)
		q := url.QueryEscape("{ __typename }" + strings.Repeat(" ", 1000))
		c.send(http.MethodGet, "/graphql?query="+q, nil, nil).refused(t, http.StatusRequestURITooLong, limits.CodeRequestTooLarge)
	}
	// Chunked: no Content-Length, the reader stops at the cap.
	req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", io.MultiReader(bytes.NewReader(padded(600)), bytes.NewReader(padded(600))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if req.ContentLength != 0 || res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body of 1200 bytes: status %d (Content-Length %d)", res.StatusCode, req.ContentLength)
	}
	if r := a.send(http.MethodPost, "/graphql", padded(1000), nil); r.status != http.StatusOK || len(r.res.Errors) > 0 {
		t.Errorf("a body at the cap: %d %s", r.status, r.body)
	}
	// The default is 256 KB.
	d := newAPI(t)
	d.send(http.MethodPost, "/graphql", padded(256<<10+1), nil).refused(t, http.StatusRequestEntityTooLarge, limits.CodeRequestTooLarge)
	if r := d.send(http.MethodPost, "/graphql", padded(256<<10), nil); r.status != http.StatusOK {
		t.Errorf("a body of 256 KB: %d %.200s", r.status, r.body)
	}
}

// TestLimitsRefusedBeforeAnyResolver proves that a request over each default limit
// is refused with HTTP 400, its code and no data, having run no resolver (no SQL
// beyond authentication's), and that a request at the limit runs.
func TestLimitsRefusedBeforeAnyResolver(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	base := a.baseline()
	d := limits.Defaults
	// places selects every field of a workspace as often as allowed at n places:
	// n × 201 selections, besides the segments' count (which a run would read).
	places := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "w%d: workspace { %s} ", i, strings.Repeat("id name createdAt __typename ", d.MaxRepeatedFields))
		}
		return "{ segments { totalCount } " + b.String() + "}"
	}
	deep := func(n int) string { // n levels of fields, 1 item per page
		path := []string{"segments", "contacts(first: 1)", "nodes"}
		var b strings.Builder
		for i := range n - 5 {
			b.WriteString(path[i%3] + " { ")
		}
		return `{ segments(first: 1) { nodes { contacts(first: 1) { nodes { ` + b.String() + "id" + strings.Repeat(" }", n-5) + " } } } } }"
	}
	aliases := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "a%d: id ", i)
		}
		return `{ segments { totalCount } workspace { ` + b.String() + "} }"
	}
	for _, tc := range []struct {
		name string
		q    string
		vars map[string]any
		code string
	}{
		// 10,001 tokens (counted before the repeated fields), between comments.
		{"tokens", `{ segments { totalCount } ` + strings.Repeat("__typename #c\n", d.MaxTokens-5) + `}`, nil, limits.CodeMaxTokens},
		{"depth", deep(d.MaxDepth + 1), nil, limits.CodeMaxDepth},
		{"selections", places(d.MaxSelections/(4*d.MaxRepeatedFields+1) + 1), nil, limits.CodeMaxSelections},
		{"aliases", aliases(d.MaxAliases + 1), nil, limits.CodeMaxAliases},
		{"directives", `{ segments { totalCount } __typename ` + strings.Repeat("@include(if: true) ", d.MaxDirectives+1) + `}`, nil, limits.CodeMaxDirectives},
		{"root fields", `{ segments { totalCount } ` + strings.Repeat("... { __typename } ", d.MaxRootFields) + `}`, nil, limits.CodeMaxRootFields},
		{"repeated fields", `{ segments { ` + strings.Repeat("totalCount ", d.MaxRepeatedFields+1) + `} }`, nil, limits.CodeMaxRepeatedFields},
		{"fragments", `{ segments { ...F0 } } ` + func() string {
			var b strings.Builder
			for i := range d.MaxFragments + 1 {
				fmt.Fprintf(&b, "fragment F%d on SegmentConnection { totalCount } ", i)
			}
			return b.String()
		}(), nil, limits.CodeMaxFragments},
		{"a fragment bomb", `{ segments { ...F0 } } ` + func() string {
			var b strings.Builder
			for i := range 30 {
				fmt.Fprintf(&b, "fragment F%d on SegmentConnection { ...F%d ...F%d } ", i, i+1, i+1)
			}
			return b.String() + "fragment F30 on SegmentConnection { totalCount }"
		}(), nil, limits.CodeMaxRepeatedFields},
		{"a fragment cycle", `{ segments { ...A } } fragment A on SegmentConnection { totalCount ...B } fragment B on SegmentConnection { ...A }`, nil, limits.CodeValidationFailed},
		{"list items in variables", `query($ids: [ID!]!) { nodes(ids: $ids) { id } segments { totalCount } }`,
			map[string]any{"ids": make([]string, d.MaxListItems+1)}, limits.CodeMaxListItems},
		{"cost", `{ segments(first: 100) { nodes { contacts(first: 10) { totalCount nodes { id } } } } }`, nil, limits.CodeMaxCost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.query(tc.q, tc.vars)
			status := http.StatusBadRequest
			if tc.code == limits.CodeValidationFailed {
				status = http.StatusOK // invalid documents as application/json (GraphQL over HTTP)
			}
			r.refused(t, status, tc.code)
			if tc.code == limits.CodeValidationFailed && !strings.Contains(r.body, `"locations":[{"line":1,"column":`) {
				t.Errorf("an invalid document's error has no locations: %s", r.body)
			}
			if n := a.statements(); n != base {
				t.Errorf("%d SQL statements, want %d (authentication's)", n, base)
			}
		})
	}
	// At the limits, requests run.
	for name, q := range map[string]string{
		"depth":           deep(d.MaxDepth),
		"selections":      places(d.MaxSelections/(4*d.MaxRepeatedFields+1) - 1),
		"aliases":         aliases(d.MaxAliases),
		"root fields":     `{ segments { totalCount } ` + strings.Repeat("... { __typename } ", d.MaxRootFields-1) + `}`,
		"repeated fields": `{ segments { ` + strings.Repeat("totalCount ", d.MaxRepeatedFields) + `} }`,
		"cost":            `{ segments(first: 80) { nodes { contacts(first: 10) { totalCount nodes { id } } } } }`,
		// Comments and commas are no tokens (graphql-js's maxTokens counts neither).
		"comments beyond the tokens": strings.Repeat("#c\n", d.MaxTokens+1) + `{ segments { totalCount } }`,
		"commas beyond the tokens":   `{ segments { totalCount } ` + strings.Repeat(",", 12_000) + `}`,
	} {
		on := a
		if name == "depth" {
			// 15 fields deep, a query passes a contact's segments four times, each a
			// page per segment: over the cost. Its depth is checked without the cap.
			uncapped := d
			uncapped.MaxCost = -1
			on = newAPIWith(t, server.Config{Limits: uncapped})
		}
		if r := on.query(q, nil); r.status != http.StatusOK || len(r.res.Errors) > 0 {
			t.Errorf("%s at the limit: %d %.300s", name, r.status, r.body)
		}
	}
	// The refusal is 400 whatever the client accepts.
	body, _ := json.Marshal(map[string]any{"query": aliases(d.MaxAliases + 1)})
	a.send(http.MethodPost, "/graphql", body, map[string]string{"Accept": "application/graphql-response+json"}).
		refused(t, http.StatusBadRequest, limits.CodeMaxAliases)
	q := url.QueryEscape(aliases(d.MaxAliases + 1))
	a.send(http.MethodGet, "/graphql?query="+q, nil, nil).refused(t, http.StatusBadRequest, limits.CodeMaxAliases)
	// A persisted query is checked when it is registered, and again whenever it is
	// sent by its hash alone.
	doc := aliases(d.MaxAliases + 1)
	persisted := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": fmt.Sprintf("%x", sha256.Sum256([]byte(doc)))}}
	for _, req := range []map[string]any{{"query": doc, "extensions": persisted}, {"extensions": persisted}} {
		body, _ := json.Marshal(req)
		a.send(http.MethodPost, "/graphql", body, nil).refused(t, http.StatusBadRequest, limits.CodeMaxAliases)
		if n := a.statements(); n != base {
			t.Errorf("persisted: %d SQL statements, want %d", n, base)
		}
	}
}

// TestLimitsConfigurable proves that each limit can be changed, and turned off.
func TestLimitsConfigurable(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Limits{MaxDepth: 3, MaxCost: 5, MaxAliases: -1, MaxTokens: 20}})
	a.query(`{ contact(id: "C_AQ") { segments { contacts { totalCount } } } }`, nil).refused(t, http.StatusBadRequest, limits.CodeMaxDepth)
	a.query(`{ contacts(first: 5) { nodes { id } } }`, nil).refused(t, http.StatusBadRequest, limits.CodeMaxCost)
	a.query(`{ workspace { id name createdAt __typename } a: __typename b: __typename c: __typename d: __typename }`, nil).refused(t, http.StatusBadRequest, limits.CodeMaxTokens)
	if r := a.query(`{ contacts(first: 4) { nodes { a: id b: id } } }`, nil); r.status != http.StatusOK || len(r.res.Errors) > 0 {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// TestCostReported proves that every costed response carries extensions.cost: what
// the operation costs, what it was charged, and the throttle's status (the unlimited
// throttle's by default).
func TestCostReported(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	full := &limits.Status{MaximumAvailable: 1000, CurrentlyAvailable: 1000, RestoreRate: 1000}
	tenLists := `query($ids: [ID!]!) {`
	for i := range 10 {
		tenLists += fmt.Sprintf(` a%d: nodes(ids: $ids) { ... on Contact { attributes } }`, i)
	}
	tenLists += ` }`
	for _, tc := range []struct {
		q    string
		vars map[string]any
		want limits.Report
	}{
		// Nothing read, and yet a request: it costs the minimum.
		{`{ __typename }`, nil, report(1, 1, full)},
		{`{ workspace { id } }`, nil, report(1, 1, full)},
		{`query($n: Int) { contacts(first: $n) { nodes { id segments { id } } } }`, map[string]any{"n": 10}, report(21, 21, full)},
		{`mutation { createSegment(input: {name: "Cost"}) { segment { id } userErrors { code } } }`, nil, report(12, 12, full)},
		// nodes(ids:) costs as a page of as many contacts does (it cost 1 for any number).
		{`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": slices.Repeat([]string{"C_AQ"}, 100)}, report(101, 101, full)},
		{`{ contacts(first: 100) { nodes { id } } }`, nil, report(101, 101, full)},
		{`query($p: [String!]!) { contactsByPhone(phones: $p) { id } }`, map[string]any{"p": slices.Repeat([]string{"+919876543210"}, 100)}, report(101, 101, full)},
		// Refused for its cost: charged the minimum.
		{`{ segments(first: 100) { nodes { contacts(first: 100) { nodes { id } } } } }`, nil, report(1+100*(1+1+100), 1, full)},
		// 10 lists of 100 contacts' attributes, which took 10 points and 16 MB of
		// answer when each contact held 16 KB of them.
		{tenLists, map[string]any{"ids": slices.Repeat([]string{"C_AQ"}, 100)}, report(10*101, 1, full)},
	} {
		r := a.query(tc.q, tc.vars)
		if r.cost == nil || r.cost.RequestedQueryCost != tc.want.RequestedQueryCost || r.cost.ActualQueryCost != tc.want.ActualQueryCost ||
			(r.cost.ThrottleStatus == nil) != (tc.want.ThrottleStatus == nil) ||
			(r.cost.ThrottleStatus != nil && *r.cost.ThrottleStatus != *tc.want.ThrottleStatus) {
			t.Errorf("%s: cost %s, want %+v", tc.q, r.body, tc.want)
		}
	}
	// Requests refused before they are costed (malformed, over a limit) carry none.
	if r := a.query(`{ workspace { id `, nil); r.cost != nil || len(r.res.Errors) != 1 || len(r.res.Data) != 0 { // 200 without data (GraphQL over HTTP)
		t.Errorf("a malformed request: %d %s", r.status, r.body)
	}
	// Nor do refusals of the credential, of a read key's mutation and of a mutation
	// over GET, which the README listed as answers that report their cost.
	ro, _ := a.withKey(t, store.NewAPIKey{Scope: crm.ScopeRead, Name: "read"})
	mutation := `mutation { createSegment(input: {name: "Uncosted"}) { segment { id } } }`
	body, _ := json.Marshal(map[string]any{"query": `{ workspace { id } }`})
	for name, r := range map[string]reply{
		"no key":                a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": "application/json"}, false),
		"a read key's mutation": ro.query(mutation, nil),
		"a mutation over GET":   a.exchange(http.MethodGet, "/graphql?query="+url.QueryEscape(mutation), nil, nil, true),
	} {
		if r.status == http.StatusOK && len(r.res.Errors) == 0 || strings.Contains(r.body, `"cost"`) {
			t.Errorf("%s: %d %s, want a refusal without extensions.cost", name, r.status, r.body)
		}
	}
}

// TestUpsertCostGrowsWithEntries proves that an upsert's requestedQueryCost counts
// what its payload reads under each of its contacts, once per entry, and that a
// partner's largest ordinary sync (reading back the contacts' IDs) still costs 22. It
// was costed as 100 contacts whatever the entries: the segments of 1,000 contacts for
// 121 points.
func TestUpsertCostGrowsWithEntries(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	upsert := func(sel string, n int) reply {
		t.Helper()
		in := make([]map[string]any, n)
		for i, p := range phones(171_000, n) {
			in[i] = map[string]any{"phone": p}
		}
		r := a.query(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { createdCount `+sel+` userErrors { code } } }`,
			map[string]any{"in": map[string]any{"contacts": in}})
		if r.status != http.StatusOK || len(r.res.Errors) > 0 || r.cost == nil {
			t.Fatalf("%d entries, %s: %d %.300s", n, sel, r.status, r.body)
		}
		return r
	}
	for _, tc := range []struct {
		sel     string
		entries int
		want    int // 10, 1 per 100 entries, 1 for userErrors, 1 for the contacts, and what each reads
	}{
		{`contacts { id segments { id } }`, 1, 10 + 1 + 1 + 1},
		{`contacts { id segments { id } }`, 300, 10 + 3 + 1 + 1 + 300},
		{`contacts { id segments { id } }`, 900, 10 + 9 + 1 + 1 + 900},
		// The contacts themselves are the rows the upsert wrote or matched.
		{`contacts { id name attributes }`, 1000, 10 + 10 + 1 + 1},
		{``, 1000, 10 + 10 + 1},
	} {
		if r := upsert(tc.sel, tc.entries); r.cost.RequestedQueryCost != tc.want || r.cost.ActualQueryCost != tc.want {
			t.Errorf("%d entries, %s: cost %+v, want %d", tc.entries, tc.sel, *r.cost, tc.want)
		}
	}
	// The segments of 1,000 contacts read back are over the cost, as ten pages of 100
	// contacts with their segments would be.
	in := make([]map[string]any, 1000)
	for i, p := range phones(172_000, len(in)) {
		in[i] = map[string]any{"phone": p}
	}
	a.query(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { segments { id } } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}).refused(t, http.StatusBadRequest, limits.CodeMaxCost)
}

func report(requested, actual int, status *limits.Status) limits.Report {
	return limits.Report{RequestedQueryCost: requested, ActualQueryCost: actual, ThrottleStatus: status}
}

// fakeThrottle records what it is asked, and answers as told.
type fakeThrottle struct {
	mu     sync.Mutex
	takes  []string // "bucket cost"
	status limits.Status
	err    error
	panics bool
}

func (f *fakeThrottle) Take(_ context.Context, bucket string, cost int) (limits.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panics {
		panic("throttle exploded at /srv/segments/internal/limits/pg.go:42")
	}
	f.takes = append(f.takes, fmt.Sprintf("%s %d", bucket, cost))
	return f.status, f.err
}

func (f *fakeThrottle) taken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.takes...)
}

// TestThrottled proves that a request its bucket cannot pay for is refused with 429,
// THROTTLED, a Retry-After and the bucket's status, before any resolver runs; that
// the bucket comes from the hook, by default one per API key; and that queries
// refused for their cost and GET mutations are charged the minimum, and so refused
// when throttled.
func TestThrottled(t *testing.T) {
	th := &fakeThrottle{status: limits.Status{MaximumAvailable: 100, CurrentlyAvailable: 5, RestoreRate: 2}}
	a := newAPIWith(t, server.Config{Throttle: th, Limits: limits.Defaults})
	base := a.baseline()
	th.mu.Lock()
	th.takes, th.err = nil, limits.ErrThrottled
	th.mu.Unlock()
	r := a.query(`{ segments(first: 10) { nodes { id } } }`, nil)
	r.refused(t, http.StatusTooManyRequests, limits.CodeThrottled)
	if r.header.Get("Retry-After") != "3" { // (11 - 5) / 2 per second
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.cost == nil || r.cost.RequestedQueryCost != 11 || r.cost.ActualQueryCost != 0 || r.cost.ThrottleStatus == nil || *r.cost.ThrottleStatus != th.status {
		t.Errorf("cost %s", r.body)
	}
	if n := a.statements(); n != base {
		t.Errorf("%d SQL statements, want %d", n, base)
	}
	// One bucket per API key by default (ratelimit_test.go: per user for sessions).
	bucket := fmt.Sprintf("workspace:%d/key:", a.ws.ID)
	if got := th.taken(); len(got) != 1 || !strings.HasPrefix(got[0], bucket) || !strings.HasSuffix(got[0], " 11") {
		t.Errorf("takes %v, want [%s<id> 11]", got, bucket)
	}
	// Charged the minimum, and throttled: over the cost, a mutation over GET.
	a.query(`{ segments(first: 100) { nodes { contacts(first: 100) { nodes { id } } } } }`, nil).refused(t, http.StatusTooManyRequests, limits.CodeThrottled)
	a.send(http.MethodGet, "/graphql?query="+url.QueryEscape(`mutation { deleteSegment(input: {id: "S_AQ"}) { deletedSegmentId } }`), nil, nil).
		refused(t, http.StatusTooManyRequests, limits.CodeThrottled)
	if got := th.taken(); len(got) != 3 || !strings.HasSuffix(got[1], " 1") || !strings.HasSuffix(got[2], " 1") {
		t.Errorf("takes %v, want the first, then 1 point each", got)
	}

	// The bucket hook.
	th2 := &fakeThrottle{status: limits.Status{MaximumAvailable: 100, CurrentlyAvailable: 90, RestoreRate: 2}}
	b := newAPIWith(t, server.Config{Throttle: th2, ThrottleBucket: func(ctx context.Context) string {
		p, _ := auth.PrincipalFrom(ctx)
		return fmt.Sprintf("key:%d", p.KeyID)
	}})
	if r := b.query(`{ workspace { id } }`, nil); r.status != http.StatusOK || r.cost == nil || r.cost.ActualQueryCost != 1 || r.cost.ThrottleStatus.CurrentlyAvailable != 90 {
		t.Errorf("%d %s", r.status, r.body)
	}
	if got := th2.taken(); len(got) != 1 || !strings.HasPrefix(got[0], "key:") {
		t.Errorf("takes %v", got)
	}
}

// TestEveryRequestCharged proves that every request is charged at least 1 point:
// one costing nothing, and one refused (parsing, validation, a cap, its cost),
// whose own refusal is answered while its bucket has points, and THROTTLED (429)
// when it has none. They were free: {__typename} ran 1,900 times a second on one key,
// throttled or not, and invalid documents were never charged.
func TestEveryRequestCharged(t *testing.T) {
	th := &fakeThrottle{status: limits.Status{MaximumAvailable: 100, CurrentlyAvailable: 90, RestoreRate: 2}}
	a := newAPIWith(t, server.Config{Throttle: th, Limits: limits.Defaults})
	requests := []struct {
		name, query string
		status      int
		code        string
	}{
		{"costing nothing", `{ __typename }`, http.StatusOK, ""},
		{"malformed", `{ workspace { id `, http.StatusOK, "GRAPHQL_PARSE_FAILED"},
		{"invalid", `{ workspace { nope } }`, http.StatusOK, limits.CodeValidationFailed},
		{"over a cap", `{ a: __typename b: __typename c: __typename ` + strings.Repeat("d: __typename ", 60) + `}`, http.StatusBadRequest, limits.CodeMaxAliases},
		{"over the cost", `{ segments(first: 100) { nodes { contacts(first: 100) { nodes { id } } } } }`, http.StatusBadRequest, limits.CodeMaxCost},
	}
	for _, throttled := range []bool{false, true} {
		th.mu.Lock()
		th.takes, th.err = nil, nil
		if throttled {
			th.err = limits.ErrThrottled
		}
		th.mu.Unlock()
		for _, req := range requests {
			r := a.query(req.query, nil)
			switch {
			case throttled:
				r.refused(t, http.StatusTooManyRequests, limits.CodeThrottled)
				if r.header.Get("Retry-After") == "" || r.cost == nil || r.cost.ActualQueryCost != 0 || r.cost.ThrottleStatus == nil {
					t.Errorf("%s, throttled: Retry-After %q, %s", req.name, r.header.Get("Retry-After"), r.body)
				}
			case req.code == "":
				if r.status != req.status || len(r.res.Errors) > 0 || r.cost == nil || r.cost.RequestedQueryCost != 1 || r.cost.ActualQueryCost != 1 {
					t.Errorf("%s: %d %s, want it to cost 1", req.name, r.status, r.body)
				}
			default:
				if r.status != req.status || len(r.res.Errors) == 0 || r.res.Errors[0].Extensions["code"] != req.code {
					t.Errorf("%s: %d %.300s, want %d %s", req.name, r.status, r.body, req.status, req.code)
				}
			}
		}
		got := th.taken()
		if len(got) != len(requests) {
			t.Errorf("throttled %v: takes %v, want one a request", throttled, got)
		}
		for _, take := range got {
			if !strings.HasSuffix(take, " 1") {
				t.Errorf("throttled %v: takes %v, want 1 point each", throttled, got)
				break
			}
		}
	}
}

// TestThrottleDown proves that when the throttle cannot answer, requests are served
// (within the per-request cost cap), and the failure is logged.
func TestThrottleDown(t *testing.T) {
	th := &fakeThrottle{err: errors.New("connection refused")}
	a := newAPIWith(t, server.Config{Throttle: th})
	r := a.query(`{ workspace { id } }`, nil)
	if r.status != http.StatusOK || len(r.res.Errors) > 0 || r.cost == nil || r.cost.ActualQueryCost != 1 || r.cost.ThrottleStatus != nil {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// TestPageSizesVerified verifies the connections' own limits: first and last in
// 1..100, never both, refused as BAD_USER_INPUT before any SQL of theirs.
func TestPageSizesVerified(t *testing.T) {
	a := newAPI(t)
	base := a.baseline()
	for _, args := range []string{"first: 0", "first: -1", "first: 101", "last: 0", "last: 101", "first: 2147483647", "first: 1, last: 1"} {
		for _, q := range []string{
			`{ contacts(` + args + `) { nodes { id } } }`,
			`{ segments(` + args + `) { nodes { id } } }`,
		} {
			a.fails("BAD_USER_INPUT", q, nil)
			if n := a.statements(); n != base {
				t.Errorf("%s: %d SQL statements, want %d", q, n, base)
			}
		}
	}
	for _, args := range []string{"first: 1", "first: 100", "last: 100"} {
		a.do(`{ contacts(`+args+`) { nodes { id } } segments(`+args+`) { nodes { id } } }`, nil, nil)
	}
}

// TestInputListsRefused verifies the caps of the input lists: 100 IDs per lookup
// and per filter list, 1,000 contacts per bulk mutation (as userErrors TOO_MANY).
func TestInputListsRefused(t *testing.T) {
	a := newAPI(t)
	ids := func(n int, id string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = id
		}
		return out
	}
	a.fails("BAD_USER_INPUT", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids(101, "S_AQ")})
	for _, list := range []string{"any", "all", "none"} {
		a.fails("BAD_USER_INPUT", `query($ids: [ID!]) { contacts(filter: {segments: {`+list+`: $ids}}) { totalCount } }`, map[string]any{"ids": ids(101, "S_AQ")})
	}
	var out struct {
		DeleteContacts struct {
			UserErrors []userError `json:"userErrors"`
		} `json:"deleteContacts"`
	}
	a.do(`mutation($ids: [ID!]!) { deleteContacts(input: {ids: $ids}) { userErrors { field message code } } }`, map[string]any{"ids": ids(1001, "C_AQ")}, &out)
	if e := out.DeleteContacts.UserErrors; len(e) != 1 || e[0].Code != "TOO_MANY" {
		t.Errorf("userErrors %v", e)
	}
	// Past 10,000 items, any list is refused before it is read.
	a.query(`mutation($ids: [ID!]!) { deleteContacts(input: {ids: $ids}) { userErrors { code } } }`, map[string]any{"ids": ids(10_001, "C_AQ")}).
		refused(t, http.StatusBadRequest, limits.CodeMaxListItems)
}

// TestNoSuggestions proves that no error suggests a name of the schema ("Did you
// mean ...?"): unknown fields, arguments, types, enum values and input fields, in the
// document and in the variables.
func TestNoSuggestions(t *testing.T) {
	a := newAPI(t)
	for _, tc := range []struct {
		q    string
		vars map[string]any
	}{
		{`{ workspac { id } }`, nil},                                                 // field
		{`{ workspace { nam } }`, nil},                                               // field of an object
		{`{ contacts(frist: 1) { totalCount } }`, nil},                               // argument
		{`{ contacts(orderBy: {field: NAM, direction: ASC}) { totalCount } }`, nil},  // enum value
		{`{ contacts(orderBy: {feild: NAME, direction: ASC}) { totalCount } }`, nil}, // input field
		{`query($o: ContactOrdr) { contacts(orderBy: $o) { totalCount } }`, nil},     // type
		{`{ workspace { id { x } } }`, nil},                                          // sub-selection of a scalar
		{`{ workspace }`, nil},                                                       // missing sub-selection
		{`{ node(id: "C_AQ") { ... on Contakt { id } } }`, nil},                      // type condition
		{`query($o: ContactOrder) { contacts(orderBy: $o) { totalCount } }`, map[string]any{"o": map[string]any{"field": "NAM", "direction": "ASC"}}},
		{`query($o: ContactOrder) { contacts(orderBy: $o) { totalCount } }`, map[string]any{"o": map[string]any{"feild": "NAME", "direction": "ASC"}}},
		{`query($o: ContactOrder) { contacts(orderBy: $o) { totalCount } }`, map[string]any{"o": map[string]any{"field": "name", "direction": "asc"}}},
		{`query($f: ContactFilter) { contacts(filter: $f) { totalCount } }`, map[string]any{"f": map[string]any{"segment": map[string]any{}}}},
		{`mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } } }`, map[string]any{"in": map[string]any{"nam": "x"}}},
	} {
		r := a.query(tc.q, tc.vars)
		if len(r.res.Errors) == 0 {
			t.Errorf("%s %v: no error", tc.q, tc.vars)
		}
		if strings.Contains(strings.ToLower(r.body), "did you mean") {
			t.Errorf("%s %v: suggests: %s", tc.q, tc.vars, r.body)
		}
	}
}

// TestIntrospectionOff proves that with introspection off, __schema and __type are
// refused before execution (__typename stays), and that it is on by default.
func TestIntrospectionOff(t *testing.T) {
	on := newAPI(t)
	on.do(`{ __schema { queryType { name } } __type(name: "Contact") { name } }`, nil, nil)
	off := newAPIWith(t, server.Config{Introspection: graph.IntrospectionOff})
	for _, q := range []string{
		`{ __schema { queryType { name } } }`,
		`{ __type(name: "Contact") { name } }`,
		`{ ... { __schema { types { name } } } }`,
		`{ ...I } fragment I on Query { __type(name: "Contact") { fields { name } } }`,
	} {
		off.query(q, nil).refused(t, http.StatusBadRequest, limits.CodeIntrospectionDisabled)
	}
	off.do(`{ __typename workspace { __typename } }`, nil, nil)
	// API keys are not sessions.
	sessions := newAPIWith(t, server.Config{Introspection: graph.IntrospectionSessions})
	r := sessions.query(`{ __schema { queryType { name } } }`, nil)
	r.refused(t, http.StatusBadRequest, limits.CodeIntrospectionDisabled)
	// Not "disabled on this server": the dashboard's sessions may introspect.
	if !strings.Contains(r.body, "for API keys") {
		t.Errorf("the refusal of an API key's introspection does not say that it is API keys': %s", r.body)
	}
}

// TestPlaygroundOff proves the playground can be turned off (404), and is on by
// default.
func TestPlaygroundOff(t *testing.T) {
	if r := newAPI(t).send(http.MethodGet, "/", nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, "<html") {
		t.Errorf("playground: %d", r.status)
	}
	if r := newAPIWith(t, server.Config{NoPlayground: true}).send(http.MethodGet, "/", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("playground off: %d", r.status)
	}
}

// TestMutationsNeverOverGET proves that a mutation sent with GET is refused and
// changes nothing, while queries work over GET.
func TestMutationsNeverOverGET(t *testing.T) {
	a := newAPI(t)
	base := a.baseline()
	for _, q := range []string{
		`mutation { createSegment(input: {name: "Over GET"}) { segment { id } } }`,
		`query Q { __typename } mutation M { createSegment(input: {name: "Over GET"}) { segment { id } } }`,
	} {
		target := "/graphql?query=" + url.QueryEscape(q)
		if strings.Contains(q, "query Q") {
			target += "&operationName=M"
		}
		r := a.send(http.MethodGet, target, nil, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodPost || len(r.res.Errors) != 1 { // GraphQL over HTTP: 405
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
		if n := a.statements(); n != base {
			t.Errorf("%d SQL statements, want %d", n, base)
		}
	}
	var out struct {
		Segments struct {
			TotalCount int `json:"totalCount"`
		} `json:"segments"`
	}
	a.do(`{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 0 {
		t.Errorf("%d segments after mutations over GET", out.Segments.TotalCount)
	}
	if r := a.send(http.MethodGet, "/graphql?query="+url.QueryEscape(`{ workspace { id } }`), nil, nil); r.status != http.StatusOK || len(r.res.Errors) > 0 {
		t.Errorf("a query over GET: %d %s", r.status, r.body)
	}
}

// TestOnlyPostAndGet proves that the API speaks GraphQL over POST (JSON) and GET
// only: other methods (OPTIONS too), other content types and WebSocket upgrades are
// refused without running anything.
func TestOnlyPostAndGet(t *testing.T) {
	a := newAPI(t)
	body, _ := json.Marshal(map[string]any{"query": `mutation { createSegment(input: {name: "Other method"}) { segment { id } } }`})
	for _, tc := range []struct {
		method string
		header map[string]string
	}{
		{http.MethodPut, nil},
		{http.MethodPatch, nil},
		{http.MethodDelete, nil},
		{http.MethodPost, map[string]string{"Content-Type": "multipart/form-data; boundary=x"}},
		{http.MethodPost, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{http.MethodPost, map[string]string{"Content-Type": "text/plain"}},
		{http.MethodPost, map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}},
		{http.MethodGet, map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}},
	} {
		if r := a.send(tc.method, "/graphql", body, tc.header); r.status < 400 || r.status >= 500 {
			t.Errorf("%s %v: %d %s", tc.method, tc.header, r.status, r.body)
		}
	}
	if r := a.send(http.MethodOptions, "/graphql", nil, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
		t.Errorf("OPTIONS: %d %v", r.status, r.header)
	}
	var out struct {
		Segments struct {
			TotalCount int `json:"totalCount"`
		} `json:"segments"`
	}
	a.do(`{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 0 {
		t.Errorf("%d segments created", out.Segments.TotalCount)
	}
}

// leaks are what must never reach a client: SQL, Go internals, paths of the machine.
var leaks = []string{"select", "column", "relation", "sqlstate", "pgx", "bun", "goroutine", "runtime error", "nil pointer",
	".go:", "/srv/", "/work/", "/root/", "panic", "exploded", "contact_count"}

// locations are the "locations" of a response's errors, whose "column" is no SQL's.
var locations = regexp.MustCompile(`"locations":\[[^\]]*\]`)

func leaked(body string) string {
	lower := strings.ToLower(locations.ReplaceAllString(body, ""))
	for _, l := range leaks {
		if strings.Contains(lower, l) {
			return l
		}
	}
	return ""
}

// internalError checks that r is an internal error that says nothing but its
// request ID, which the log holds with the details.
func internalError(t *testing.T, r reply, status int, log *logtest.Buffer, detail string) {
	t.Helper()
	if r.status != status || len(r.res.Errors) == 0 || r.res.Errors[0].Extensions["code"] != "INTERNAL_SERVER_ERROR" {
		t.Fatalf("status %d, body %s; want %d INTERNAL_SERVER_ERROR", r.status, r.body, status)
	}
	id, _ := r.res.Errors[0].Extensions["requestId"].(string)
	if id == "" || !strings.Contains(r.res.Errors[0].Message, id) {
		t.Errorf("no request ID: %s", r.body)
	}
	if l := leaked(strings.ReplaceAll(r.body, id, "")); l != "" {
		t.Errorf("the response shows %q: %s", l, r.body)
	}
	if !strings.Contains(log.String(), id) || !strings.Contains(log.String(), detail) {
		t.Errorf("the log lacks the request ID %s or %q:\n%s", id, detail, log.String())
	}
}

// TestInternalErrorsDoNotLeak proves that a failing SQL statement reaches the client
// as a generic error with a request ID, its text only in the log.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	// A database of the test's own, whose schema the test breaks.
	s := storetest.NewStore(t, store.Options{MaxConns: 4, AppName: "limits_test"})
	_, key := storetest.Workspace(t, s)
	var log logtest.Buffer
	srv := httptest.NewServer(server.Handler(s, log.Logger(), server.Config{}))
	t.Cleanup(srv.Close)
	a := &api{t: t, url: srv.URL, key: key}
	if _, err := s.DB().ExecContext(context.Background(), `ALTER TABLE segments RENAME TO segments_gone`); err != nil {
		t.Fatal(err)
	}
	internalError(t, a.query(`{ segments(first: 1) { nodes { id contactCount } } }`, nil), http.StatusOK, &log, `relation \"segments\" does not exist`)
}

// TestPanicsDoNotLeak proves that a panic, in a resolver or before execution,
// reaches the client as a generic error with a request ID, its value and stack only
// in the log.
func TestPanicsDoNotLeak(t *testing.T) {
	s := storetest.Store(t)
	_, key := storetest.Workspace(t, s)
	var log logtest.Buffer
	logger := log.Logger()

	// In a resolver: a handler without a store dereferences nil in the first resolver
	// that reads.
	h := graph.NewHandler(nil, logger, graph.Options{})
	srv := httptest.NewServer(requestid.Middleware(auth.Require(s, logger, h)))
	t.Cleanup(srv.Close)
	a := &api{t: t, url: srv.URL, key: key}
	internalError(t, a.query(`{ segments { totalCount } }`, nil), http.StatusOK, &log, "nil pointer")

	// Before execution: in the throttle.
	srv2 := httptest.NewServer(server.Handler(s, logger, server.Config{Throttle: &fakeThrottle{panics: true}}))
	t.Cleanup(srv2.Close)
	b := &api{t: t, url: srv2.URL, key: key}
	internalError(t, b.query(`{ workspace { id } }`, nil), http.StatusInternalServerError, &log, "exploded")
}

// TestAdversarialCorpusOverHTTP sends every document of the adversarial corpus to
// the server: each is answered (refused with its code, or run), none with a server
// error, and none refused by the limits runs any SQL. The CPU bound itself is
// measured without HTTP, in graph's TestAdversarialCorpusIsDecidedQuickly.
func TestAdversarialCorpusOverHTTP(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	base := a.baseline()
	var slowest time.Duration
	var slowestName string
	for _, doc := range limitstest.Adversarial(limits.Defaults.WithDefaults()) {
		start := time.Now()
		r := a.query(doc.Query, doc.Variables)
		if d := time.Since(start); d > slowest {
			slowest, slowestName = d, doc.Name
		}
		if r.status >= 500 || (len(r.res.Errors) == 0 && (doc.Code != "" || !doc.Valid)) {
			t.Errorf("%s: %d %.300s", doc.Name, r.status, r.body)
			continue
		}
		if doc.Code == "" {
			continue
		}
		if got := r.res.Errors[0].Extensions["code"]; got != doc.Code {
			t.Errorf("%s: code %v, want %s", doc.Name, got, doc.Code)
		}
		if n := a.statements(); n != base {
			t.Errorf("%s: %d SQL statements, want %d", doc.Name, n, base)
		}
	}
	t.Logf("slowest answer: %v (%s)", slowest, slowestName)
}

// FuzzRequestBody sends any body to the whole HTTP handler, on a real database: it
// is always answered, never with a server error or an internal error, never with a
// suggestion. Its seeds are replayed by every go test.
func FuzzRequestBody(f *testing.F) {
	for _, doc := range limitstest.Adversarial(limits.Defaults.WithDefaults()) {
		body, _ := json.Marshal(map[string]any{"query": doc.Query, "variables": doc.Variables})
		if len(body) <= 256<<10 {
			f.Add(body)
		}
	}
	for _, s := range []string{
		`{"query":"{ workspace { id name } }"}`,
		`{"query":"query($n: Int) { contacts(first: $n) { nodes { id } } }","variables":{"n":3}}`,
		`{"query":"mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } userErrors { code } } }","variables":{"in":{"contacts":[{"phone":"+919800000001"}]}}}`,
		`{"query":"{ workspace { id } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"x"}}}`,
		`{"query":"query A { __typename } query B { workspace { id } }","operationName":"C"}`,
		`{"query":"{ workspace { id } }","variables":[]}`,
		`{"query":7}`, `{"query":"{"}`, `{}`, `[]`, `null`, ``, `{"query":"{ __typename }"}{}`,
		`{"query":"{ contacts(after: \"eyJsIjoiYyJ9\") { nodes { id } } }"}`,
		`{"query":"{ node(id: \"S_\\u0000\") { id } }"}`,
	} {
		f.Add([]byte(s))
	}
	a := newAPIWith(f, server.Config{})
	f.Fuzz(func(t *testing.T, body []byte) {
		c := *a
		c.t = t
		r := c.send(http.MethodPost, "/graphql", body, nil)
		if r.status >= 500 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		for _, e := range r.res.Errors {
			if e.Extensions["code"] == "INTERNAL_SERVER_ERROR" {
				t.Fatalf("internal error: %s", r.body)
			}
		}
		if strings.Contains(strings.ToLower(r.body), "did you mean") && !bytes.Contains(bytes.ToLower(body), []byte("did you mean")) {
			t.Fatalf("suggestion: %s", r.body)
		}
	})
}
