package server_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/graph"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
)

// exchange sends exactly the given headers (and the client's key, when key is set):
// unlike send, it adds no Content-Type.
func (a *api) exchange(method, target string, body []byte, header map[string]string, key bool) reply {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+target, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if key {
		req.Header.Set("Authorization", "Bearer "+string(a.key))
	}
	for k, v := range header {
		req.Header.Set(k, v)
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
	_ = json.Unmarshal(b, &out.res)
	out.res.Status = res.StatusCode
	return out
}

// hasData reports whether a response body has a "data" entry (even null).
func (r reply) hasData() bool {
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(r.body), &m)
	_, ok := m["data"]
	return ok
}

// code is the extensions.code of the response's only error, or "" if it has not
// exactly one.
func (r reply) code() string {
	if len(r.res.Errors) != 1 {
		return ""
	}
	c, _ := r.res.Errors[0].Extensions["code"].(string)
	return c
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

const (
	ctJSON = "application/json"
	ctGR   = "application/graphql-response+json"
)

// TestGraphQLHTTPMethods proves that /graphql serves GET and POST only: anything else
// is 405 with "Allow: GET, POST", with or without a key, and nothing runs (not even
// the key's lookup).
func TestGraphQLHTTPMethods(t *testing.T) {
	a := newAPI(t)
	body := jsonBody(map[string]any{"query": `mutation { createSegment(input: {name: "Other method"}) { segment { id } } }`})
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodHead, "PROPFIND"} {
		for _, key := range []bool{true, false} {
			r := a.exchange(method, "/graphql", body, map[string]string{"Content-Type": ctJSON}, key)
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
				t.Errorf("%s (key %v): %d Allow %q %s", method, key, r.status, r.header.Get("Allow"), r.body)
			}
			if method != http.MethodHead && r.code() != graph.CodeMethodNotAllowed {
				t.Errorf("%s: %s", method, r.body)
			}
			if n := a.statements(); n != 0 {
				t.Errorf("%s: %d SQL statements, want 0", method, n)
			}
		}
	}
	var out struct {
		Segments struct{ TotalCount int } `json:"segments"`
	}
	a.do(`{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 0 {
		t.Errorf("%d segments created", out.Segments.TotalCount)
	}
}

// TestGraphQLHTTPContentType proves that a POST body must be application/json, in
// UTF-8 (charset absent or utf-8): anything else is 415 before anything runs.
func TestGraphQLHTTPContentType(t *testing.T) {
	a := newAPI(t)
	body := jsonBody(map[string]any{"query": `{ __typename }`})
	for _, ct := range []string{"", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x", "application/graphql", "application/graphql-response+json",
		"application/json; charset=latin1", "application/jsonx", "application/json; ="} {
		r := a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ct}, true)
		if r.status != http.StatusUnsupportedMediaType || r.code() != graph.CodeUnsupportedMediaType {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
		if n := a.statements(); n != 0 {
			t.Errorf("Content-Type %q: %d SQL statements, want 0", ct, n)
		}
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8", "application/json; charset=utf8"} {
		r := a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ct}, true)
		if r.status != http.StatusOK || len(r.res.Errors) > 0 {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
}

// TestGraphQLHTTPContentEncoding proves that a POST body in a content coding is 415
// with Accept-Encoding: identity (RFC 9110 §15.5.16), before anything runs. The body
// was read as it came: gzipped, it was 400 "not a JSON object"; plain JSON labelled
// br ran.
func TestGraphQLHTTPContentEncoding(t *testing.T) {
	a := newAPI(t)
	create := jsonBody(map[string]any{"query": `mutation { createSegment(input: {name: "Coded"}) { segment { id } } }`})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(create)
	zw.Close()
	for coding, body := range map[string][]byte{"gzip": gz.Bytes(), "br": create, "x-unknown": create, "identity, gzip": gz.Bytes(), "GZIP": gz.Bytes()} {
		for _, key := range []bool{true, false} {
			r := a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Content-Encoding": coding}, key)
			if r.status != http.StatusUnsupportedMediaType || r.code() != graph.CodeUnsupportedMediaType || r.header.Get("Accept-Encoding") != "identity" {
				t.Errorf("Content-Encoding %q (key %v): %d Accept-Encoding %q %s", coding, key, r.status, r.header.Get("Accept-Encoding"), r.body)
			}
			if n := a.statements(); n != 0 {
				t.Errorf("Content-Encoding %q: %d SQL statements, want 0", coding, n)
			}
		}
	}
	var out struct {
		Segments struct{ TotalCount int } `json:"segments"`
	}
	a.do(`{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 0 {
		t.Errorf("%d segments created", out.Segments.TotalCount)
	}
	for _, coding := range []string{"identity", "Identity", " identity , identity"} {
		body := jsonBody(map[string]any{"query": `{ __typename }`})
		if r := a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Content-Encoding": coding}, true); r.status != http.StatusOK || len(r.res.Errors) > 0 {
			t.Errorf("Content-Encoding %q: %d %s", coding, r.status, r.body)
		}
	}
}

// TestGraphQLHTTPAccept proves the content negotiation: the response's Content-Type
// follows Accept, and an Accept that allows neither JSON type is 406.
func TestGraphQLHTTPAccept(t *testing.T) {
	a := newAPI(t)
	body := jsonBody(map[string]any{"query": `{ __typename }`})
	for _, accept := range []string{"text/html", "application/xml", "application/json;q=0", "application/json; charset=iso-8859-1"} {
		r := a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Accept": accept}, true)
		if r.status != http.StatusNotAcceptable || r.code() != graph.CodeNotAcceptable {
			t.Errorf("Accept %q: %d %s", accept, r.status, r.body)
		}
	}
	for accept, want := range map[string]string{
		"":                                    ctJSON,
		"*/*":                                 ctJSON,
		"application/json":                    ctJSON,
		ctGR:                                  ctGR,
		ctGR + ", application/json;q=0.9":     ctGR,
		"application/json, " + ctGR + ";q=.5": ctJSON,
	} {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			var r reply
			if method == http.MethodPost {
				r = a.exchange(method, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Accept": accept}, true)
			} else {
				r = a.exchange(method, "/graphql?query="+url.QueryEscape(`{ __typename }`), nil, map[string]string{"Accept": accept}, true)
			}
			if r.status != http.StatusOK || r.header.Get("Content-Type") != want+"; charset=utf-8" || string(r.res.Data) != `{"__typename":"Query"}` {
				t.Errorf("%s Accept %q: %d %q %s", method, accept, r.status, r.header.Get("Content-Type"), r.body)
			}
		}
	}
}

// TestGraphQLHTTPRefusalsNegotiated: the refusals made before the GraphQL transport
// (a missing key, another method, another body type) have the media type the
// client's Accept chose and Vary: Accept, as the transport's answers do. They were
// application/json whatever the client accepted.
func TestGraphQLHTTPRefusalsNegotiated(t *testing.T) {
	a := newAPI(t)
	body := jsonBody(map[string]any{"query": `{ __typename }`})
	for _, accept := range []string{ctJSON, ctGR} {
		for name, r := range map[string]reply{
			"no key":           a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Accept": accept}, false),
			"PUT":              a.exchange(http.MethodPut, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Accept": accept}, true),
			"a text body":      a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": "text/plain", "Accept": accept}, true),
			"a coded body":     a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Content-Encoding": "br", "Accept": accept}, true),
			"a bad cursor":     a.exchange(http.MethodPost, "/graphql", jsonBody(map[string]any{"query": `{ contacts(after: "x") { totalCount } }`}), map[string]string{"Content-Type": ctJSON, "Accept": accept}, true),
			"a body too large": a.exchange(http.MethodPost, "/graphql", bytes.Repeat([]byte(" "), 256<<10+1), map[string]string{"Content-Type": ctJSON, "Accept": accept}, true),
		} {
			if r.status == http.StatusOK && name != "a bad cursor" || r.code() == "" {
				t.Errorf("%s as %s: %d %s, want a refusal", name, accept, r.status, r.body)
			}
			if got := r.header.Get("Content-Type"); got != accept+"; charset=utf-8" || !slices.Contains(r.header.Values("Vary"), "Accept") || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s as %s: Content-Type %q, Vary %q, Cache-Control %q", name, accept, got, r.header.Values("Vary"), r.header.Get("Cache-Control"))
			}
		}
	}
	// A document that did not validate is not kept for its Idempotency-Key (it ran
	// nothing): sent again as application/graphql-response+json, it is answered 400 in
	// that type, not replayed as the 200 of application/json it was first.
	invalid := jsonBody(map[string]any{"query": `mutation { createSegment(input: {name: "x"}) { nope } }`})
	key := newKey()
	for _, tc := range []struct {
		accept string
		status int
	}{{ctJSON, http.StatusOK}, {ctGR, http.StatusBadRequest}} {
		r := a.exchange(http.MethodPost, "/graphql", invalid, map[string]string{"Content-Type": ctJSON, "Accept": tc.accept, "Idempotency-Key": key}, true)
		if r.status != tc.status || r.header.Get("Content-Type") != tc.accept+"; charset=utf-8" || r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("as %s: %d %q replayed %q", tc.accept, r.status, r.header.Get("Content-Type"), r.header.Get("Idempotent-Replayed"))
		}
	}
}

// TestGraphQLHTTPStatus proves the status codes of GraphQL over HTTP, for both
// response types: a request that is not well-formed is 400 with BAD_REQUEST; a
// request that fails before execution (parse, validation, variable coercion, an
// unknown persisted query) has no "data" and is 400 as
// application/graphql-response+json, 200 as application/json; an executed request
// is 200 with "data", whatever its errors.
func TestGraphQLHTTPStatus(t *testing.T) {
	a := newAPI(t)
	post := func(body []byte, accept string) reply {
		return a.exchange(http.MethodPost, "/graphql", body, map[string]string{"Content-Type": ctJSON, "Accept": accept}, true)
	}
	q := `{ __typename }`
	malformed := map[string][]byte{
		"no body":               nil,
		"empty body":            {},
		"not JSON":              []byte(`{ "not a JSON`),
		"trailing data":         []byte(`{"query": "{ __typename }"} {}`),
		"an array":              jsonBody([]any{map[string]any{"query": q}}),
		"a string":              jsonBody(q),
		"null":                  []byte(`null`),
		"no query":              jsonBody(map[string]any{"qeury": q}),
		"null query":            jsonBody(map[string]any{"query": nil}),
		"empty query":           jsonBody(map[string]any{"query": ""}),
		"query a number":        jsonBody(map[string]any{"query": 0}),
		"query an object":       jsonBody(map[string]any{"query": map[string]any{"obj": "ect"}}),
		"operationName false":   jsonBody(map[string]any{"query": q, "operationName": false}),
		"operationName array":   jsonBody(map[string]any{"query": q, "operationName": []string{"x"}}),
		"variables a string":    jsonBody(map[string]any{"query": q, "variables": "{}"}),
		"variables an array":    jsonBody(map[string]any{"query": q, "variables": []any{}}),
		"variables 0":           jsonBody(map[string]any{"query": q, "variables": 0}),
		"extensions a string":   jsonBody(map[string]any{"query": q, "extensions": "x"}),
		"extensions false":      jsonBody(map[string]any{"query": q, "extensions": false}),
		"persisted query empty": jsonBody(map[string]any{"extensions": map[string]any{}}),
		// gqlgen's refusals of a persisted query's extension had no code.
		"persisted query a string": jsonBody(map[string]any{"query": q, "extensions": map[string]any{"persistedQuery": "x"}}),
		"persisted query version 2": jsonBody(map[string]any{"query": q, "extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 2, "sha256Hash": strings.Repeat("0", 64)}}}),
		"persisted query of another hash": jsonBody(map[string]any{"query": q, "extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("0", 64)}}}),
		// A hash that is none was looked up: PERSISTED_QUERY_NOT_FOUND.
		"persisted query without a hash": jsonBody(map[string]any{"extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1}}}),
		"persisted query of an empty hash": jsonBody(map[string]any{"extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": ""}}}),
		"persisted query of a short hash": jsonBody(map[string]any{"extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": "abc"}}}),
	}
	// JSON nested deeper than encoding/json decodes is said to be so: it was "not a
	// JSON object with a query".
	deep := strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001)
	malformed["variables nested 10,001 deep"] = []byte(`{"query": "{ __typename }", "variables": {"a": ` + deep + `}}`)
	// A parameter's key twice: encoding/json ran the last "query", a proxy or WAF
	// reading the first would miss a mutation behind a query.
	malformed["a repeated query"] = []byte(`{"query": "{ __typename }", "query": "mutation { __typename }"}`)
	malformed["repeated variables"] = []byte(`{"query": "{ __typename }", "variables": {}, "variables": null}`)
	for name, body := range malformed {
		for _, accept := range []string{ctJSON, ctGR} {
			r := post(body, accept)
			if r.status != http.StatusBadRequest || r.code() != graph.CodeBadRequest || r.hasData() {
				t.Errorf("%s as %s: %d %s", name, accept, r.status, r.body)
			}
			if strings.Contains(name, "nested") && !strings.Contains(r.body, "nests more than 10,000 levels deep") {
				t.Errorf("%s as %s: %s", name, accept, r.body)
			}
			if strings.Contains(name, "repeated") && !strings.Contains(r.body, "more than once") {
				t.Errorf("%s as %s: %s", name, accept, r.body)
			}
			if r.header.Get("Content-Type") != accept+"; charset=utf-8" {
				t.Errorf("%s as %s: Content-Type %q", name, accept, r.header.Get("Content-Type"))
			}
		}
	}
	// The same over GET: url.Values.Get ran the first query=.
	for _, params := range []string{"query=%7B+__typename+%7D&query=%7B+workspace+%7B+id+%7D+%7D", "query=%7B+__typename+%7D&operationName=&operationName=Q"} {
		r := a.exchange(http.MethodGet, "/graphql?"+params, nil, map[string]string{"Accept": ctJSON}, true)
		if r.status != http.StatusBadRequest || r.code() != graph.CodeBadRequest || r.hasData() || !strings.Contains(r.body, "more than once") {
			t.Errorf("GET %s: %d %s", params, r.status, r.body)
		}
	}
	unknown := sha256.Sum256([]byte("{ never sent }"))
	requestErrors := map[string]struct {
		body []byte
		code string
	}{
		"parse":             {jsonBody(map[string]any{"query": "{"}), "GRAPHQL_PARSE_FAILED"},
		"validation":        {jsonBody(map[string]any{"query": "{ noSuchField }"}), "GRAPHQL_VALIDATION_FAILED"},
		"unknown operation": {jsonBody(map[string]any{"query": q, "operationName": "Nope"}), "GRAPHQL_VALIDATION_FAILED"},
		"coercion": {jsonBody(map[string]any{"query": `query($id: ID!) { node(id: $id) { id } }`,
			"variables": map[string]any{"id": nil}}), "GRAPHQL_VALIDATION_FAILED"},
		"persisted query not found": {jsonBody(map[string]any{"extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(unknown[:])}}}), "PERSISTED_QUERY_NOT_FOUND"},
	}
	for name, tc := range requestErrors {
		for accept, status := range map[string]int{ctJSON: http.StatusOK, ctGR: http.StatusBadRequest} {
			r := post(tc.body, accept)
			if r.status != status || r.code() != tc.code || r.hasData() {
				t.Errorf("%s as %s: %d %s, want %d %s without data", name, accept, r.status, r.body, status, tc.code)
			}
		}
	}
	// Limits are refused with their own status, whatever the media type.
	b := newAPIWith(t, server.Config{Limits: limits.Limits{MaxDepth: 2}})
	for _, accept := range []string{ctJSON, ctGR} {
		r := b.exchange(http.MethodPost, "/graphql", jsonBody(map[string]any{"query": `{ segments { nodes { contacts { totalCount } } } }`}),
			map[string]string{"Content-Type": ctJSON, "Accept": accept}, true)
		if r.status != http.StatusBadRequest || r.code() != limits.CodeMaxDepth || r.hasData() {
			t.Errorf("over a limit as %s: %d %s", accept, r.status, r.body)
		}
	}
	// Executed: 200 with data, with or without errors; null parameters are absent ones.
	for _, accept := range []string{ctJSON, ctGR} {
		for _, body := range [][]byte{
			jsonBody(map[string]any{"query": q, "variables": nil, "operationName": nil, "extensions": nil}),
			jsonBody(map[string]any{"query": `query Q { __typename } query R { workspace { id } }`, "operationName": "Q", "extensions": map[string]any{"some": "value"}}),
			jsonBody(map[string]any{"query": `query($n: String!) { __type(name: $n) { name } }`, "variables": map[string]any{"n": "Segment"}}),
		} {
			if r := post(body, accept); r.status != http.StatusOK || len(r.res.Errors) > 0 || !r.hasData() {
				t.Errorf("%s as %s: %d %s", body, accept, r.status, r.body)
			}
		}
		r := post(jsonBody(map[string]any{"query": `{ segments(first: 1000) { totalCount } }`}), accept)
		if r.status != http.StatusOK || r.code() != "BAD_USER_INPUT" || !r.hasData() {
			t.Errorf("an execution error as %s: %d %s", accept, r.status, r.body)
		}
	}
}

// TestGraphQLHTTPGet proves GET: the parameters in the URL (variables and extensions
// as JSON), queries only; a mutation is 405 with "Allow: POST" and runs nothing.
func TestGraphQLHTTPGet(t *testing.T) {
	a := newAPI(t)
	seg := a.addSegment("Over GET")
	get := func(params url.Values, accept string) reply {
		return a.exchange(http.MethodGet, "/graphql?"+params.Encode(), nil, map[string]string{"Accept": accept}, true)
	}
	r := get(url.Values{
		"query":         {`query A { __typename } query B($id: ID!) { segment(id: $id) { name } }`},
		"operationName": {"B"},
		"variables":     {`{"id": "` + seg + `"}`},
		"extensions":    {`{"some": "value"}`},
	}, ctGR)
	if r.status != http.StatusOK || string(r.res.Data) != `{"segment":{"name":"Over GET"}}` || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET: %d %s, Cache-Control %q (want no-store)", r.status, r.body, r.header.Get("Cache-Control"))
	}
	for name, params := range map[string]url.Values{
		"no query":                {},
		"variables not JSON":      {"query": {`{ __typename }`}, "variables": {`{"id":`}},
		"variables not an object": {"query": {`{ __typename }`}, "variables": {`["x"]`}},
		"extensions not JSON":     {"query": {`{ __typename }`}, "extensions": {`nope`}},
		"variables nested 10,001 deep": {"query": {`{ __typename }`},
			"variables": {`{"a": ` + strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001) + `}`}},
	} {
		for _, accept := range []string{ctJSON, ctGR} {
			if r := get(params, accept); r.status != http.StatusBadRequest || r.code() != graph.CodeBadRequest || r.hasData() {
				t.Errorf("%s as %s: %d %s", name, accept, r.status, r.body)
			} else if strings.Contains(name, "nested") && !strings.Contains(r.body, "variables nests more than 10,000 levels deep") {
				t.Errorf("%s as %s: %s, want it said that they nest too deeply", name, accept, r.body)
			}
		}
	}
	if r := a.exchange(http.MethodGet, "/graphql?query=%zz", nil, nil, true); r.status != http.StatusBadRequest || r.code() != graph.CodeBadRequest {
		t.Errorf("a malformed URL: %d %s", r.status, r.body)
	}
	base := a.baseline()
	for _, params := range []url.Values{
		{"query": {`mutation { deleteSegment(input: {id: "` + seg + `"}) { deletedSegmentId } }`}},
		{"query": {`query Q { __typename } mutation M { deleteSegment(input: {id: "` + seg + `"}) { deletedSegmentId } }`}, "operationName": {"M"}},
	} {
		for _, accept := range []string{ctJSON, ctGR} {
			r := get(params, accept)
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodPost || r.code() != graph.CodeMethodNotAllowed || r.hasData() {
				t.Errorf("a mutation over GET as %s: %d Allow %q %s", accept, r.status, r.header.Get("Allow"), r.body)
			}
			if n := a.statements(); n != base {
				t.Errorf("a mutation over GET: %d SQL statements, want %d (authentication's)", n, base)
			}
		}
	}
	var out struct {
		Segment *struct{ Name string } `json:"segment"`
	}
	a.do(`query($id: ID!) { segment(id: $id) { name } }`, map[string]any{"id": seg}, &out)
	if out.Segment == nil {
		t.Error("the segment was deleted over GET")
	}
}

// TestGraphQLHTTPPersistedQueries proves automatic persisted queries end to end,
// over POST and GET: an unknown hash asks for the query, the query with its hash
// registers it, and then the hash alone runs it.
func TestGraphQLHTTPPersistedQueries(t *testing.T) {
	a := newAPI(t)
	doc := `query Count { segments { totalCount } }`
	sum := sha256.Sum256([]byte(doc))
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	getHash := func() reply {
		return a.exchange(http.MethodGet, "/graphql?"+url.Values{"extensions": {ext}}.Encode(), nil, nil, true)
	}
	if r := getHash(); r.status != http.StatusOK || r.code() != "PERSISTED_QUERY_NOT_FOUND" || r.hasData() {
		t.Fatalf("unknown hash: %d %s", r.status, r.body)
	}
	r := a.exchange(http.MethodPost, "/graphql", []byte(`{"query":`+string(jsonBody(doc))+`,"extensions":`+ext+`}`),
		map[string]string{"Content-Type": ctJSON}, true)
	if r.status != http.StatusOK || string(r.res.Data) != `{"segments":{"totalCount":0}}` {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := getHash(); r.status != http.StatusOK || string(r.res.Data) != `{"segments":{"totalCount":0}}` {
		t.Errorf("GET by hash: %d %s", r.status, r.body)
	}
	// Another workspace does not find it: it ran, it would tell that someone had sent
	// the document (whose literals may be a phone number, a search term).
	other := a.as(t)
	byHash := []byte(`{"extensions":` + ext + `}`)
	if r := other.exchange(http.MethodPost, "/graphql", byHash, map[string]string{"Content-Type": ctJSON}, true); r.code() != "PERSISTED_QUERY_NOT_FOUND" || r.hasData() {
		t.Errorf("another workspace's hash: %d %s", r.status, r.body)
	}
	r = a.exchange(http.MethodPost, "/graphql", []byte(`{"extensions":`+ext+`}`), map[string]string{"Content-Type": ctJSON}, true)
	if r.status != http.StatusOK || string(r.res.Data) != `{"segments":{"totalCount":0}}` {
		t.Errorf("POST by hash: %d %s", r.status, r.body)
	}
	// The hash of another document is refused, not registered.
	r = a.exchange(http.MethodPost, "/graphql", []byte(`{"query":`+string(jsonBody(`{ workspace { id } }`))+`,"extensions":`+ext+`}`),
		map[string]string{"Content-Type": ctJSON, "Accept": ctGR}, true)
	if r.status != http.StatusBadRequest || r.hasData() || !strings.Contains(strings.ToLower(r.body), "hash") {
		t.Errorf("a wrong hash: %d %s", r.status, r.body)
	}
}

// TestGraphQLHTTPBodyTooLarge proves that an oversized body is 413 before anything
// reads it, whether its length is declared or not.
func TestGraphQLHTTPBodyTooLarge(t *testing.T) {
	a := newAPIWith(t, server.Config{Limits: limits.Limits{MaxBodyBytes: 1024, MaxCost: 100_000}})
	big := jsonBody(map[string]any{"query": `{ __typename }`, "variables": map[string]any{"pad": strings.Repeat("x", 2000)}})
	if r := a.exchange(http.MethodPost, "/graphql", big, map[string]string{"Content-Type": ctJSON}, true); r.status != http.StatusRequestEntityTooLarge || r.code() != limits.CodeRequestTooLarge {
		t.Errorf("declared length: %d %s", r.status, r.body)
	}
	// Chunked: no Content-Length.
	req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Content-Type", ctJSON)
	req.Header.Set("Authorization", "Bearer "+string(a.key))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength != 0 {
		t.Errorf("chunked: %d (request length %d)", res.StatusCode, req.ContentLength)
	}
	if r := a.exchange(http.MethodPost, "/graphql", jsonBody(map[string]any{"query": `{ __typename }`}), map[string]string{"Content-Type": ctJSON}, true); r.status != http.StatusOK {
		t.Errorf("within the limit: %d %s", r.status, r.body)
	}
}
