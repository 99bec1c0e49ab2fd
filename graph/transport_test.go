package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/generated"
)

// TestResponseMediaType proves the Accept negotiation: refusals first (406), then
// qualities, specificity and the client's order.
func TestResponseMediaType(t *testing.T) {
	const gr, js = MediaTypeGraphQLResponse, MediaTypeJSON
	for _, tc := range []struct {
		accept string
		want   string // "" is 406
	}{
		{"text/html", ""},
		{"application/xml, text/*", ""},
		{"application/json;q=0", ""},
		{"application/json; charset=latin1", ""},
		{"application/graphql-response+json;q=0, application/json;q=0", ""},
		{"*/*;q=0", ""},
		{"application/json;q=oops", ""},
		{"", js},
		{"*/*", js},
		{"application/*", js},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", js},
		{"application/json", js},
		{"application/json; charset=utf-8", js},
		{"application/json; charset=UTF8", js},
		{"application/graphql-response+json", gr},
		{"application/graphql-response+json, application/json", gr},
		{"application/json, application/graphql-response+json", js},
		{"application/graphql-response+json,application/json;q=0.9", gr}, // Apollo Client
		{"application/graphql-response+json;q=0.5, application/json", js},
		{"application/json;q=0, */*", gr},
		{"*/*, application/graphql-response+json", gr},
		{"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed", gr}, // urql
	} {
		got, ok := ResponseMediaType(tc.accept)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Accept %q: %q %v, want %q", tc.accept, got, ok, tc.want)
		}
	}
}

// TestCaches proves that the caches NewHandler installs are on: a document sent again
// is the parsed document of the first request (neither parsed nor validated again),
// and a persisted query round-trips by its hash alone.
func TestCaches(t *testing.T) {
	srv := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: &Resolver{}}))
	srv.AddTransport(httpTransport{})
	useCaches(srv)
	var docs []*ast.QueryDocument
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		docs = append(docs, graphql.GetOperationContext(ctx).Doc)
		return next(ctx)
	})
	post := func(body map[string]any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return rec.Code, out
	}

	// Without the cache each request would parse its own document.
	q := `{ __typename }`
	post(map[string]any{"query": q})
	post(map[string]any{"query": q})
	post(map[string]any{"query": `{ t: __typename }`})
	if len(docs) != 3 || docs[0] != docs[1] || docs[1] == docs[2] {
		t.Fatalf("documents %p, want the first two the same and the third another", docs)
	}

	// Automatic persisted queries: unknown hash, then hash and query, then hash alone.
	doc := `query Persisted { __typename }`
	sum := sha256.Sum256([]byte(doc))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	status, out := post(map[string]any{"extensions": ext})
	if errs, _ := out["errors"].([]any); status != http.StatusOK || len(errs) != 1 ||
		errs[0].(map[string]any)["extensions"].(map[string]any)["code"] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("unknown hash: %d %v", status, out)
	}
	if _, has := out["data"]; has {
		t.Errorf("unknown hash answered with data: %v", out)
	}
	for _, body := range []map[string]any{{"query": doc, "extensions": ext}, {"extensions": ext}} {
		status, out := post(body)
		if status != http.StatusOK || out["errors"] != nil || out["data"].(map[string]any)["__typename"] != "Query" {
			t.Fatalf("%v: %d %v", body, status, out)
		}
	}
	// A wrong hash for a query is refused, not stored under the wrong hash.
	bad := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(make([]byte, 32))}}
	if status, out := post(map[string]any{"query": doc, "extensions": bad}); status != http.StatusOK || out["errors"] == nil || out["data"] != nil {
		t.Fatalf("wrong hash: %d %v", status, out)
	}
}

// marshalled is the response marshalResponse writes, its parts joined.
func marshalled(resp *graphql.Response) ([]byte, error) {
	head, data, tail, err := marshalResponse(resp)
	return slices.Concat(head, data, tail), err
}

// TestMarshalResponse proves that marshalResponse writes what json.Marshal writes for
// every shape of response (data alone, null, errors, extensions, incremental
// delivery), byte for byte when no string holds <, > or &, and the same JSON when one
// does.
func TestMarshalResponse(t *testing.T) {
	hasNext := true
	for _, resp := range []*graphql.Response{
		{Data: json.RawMessage(`{"segments":{"nodes":[{"id":"S_1","name":"VIP"}]}}`)},
		{},
		{Data: json.RawMessage(`null`), Errors: gqlerror.List{{Message: "no", Extensions: map[string]any{"code": "NOT_FOUND"}}}},
		{Data: json.RawMessage(`{"a":1}`), Extensions: map[string]any{"cost": map[string]any{"requestedQueryCost": 3}}},
		{Data: json.RawMessage(`{"a":1}`), Errors: gqlerror.List{{Message: "x"}}, Extensions: map[string]any{"b": 2}},
		{Data: json.RawMessage(`{"a":1}`), Label: "l", HasNext: &hasNext},
	} {
		got, err := marshalled(resp)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(resp)
		if !bytes.Equal(got, want) {
			t.Errorf("marshalResponse wrote\n%s\njson.Marshal writes\n%s", got, want)
		}
	}
	resp := &graphql.Response{Data: json.RawMessage(`{"name":"Tom & Jerry <3"}`)}
	got, _ := marshalled(resp)
	want, _ := json.Marshal(resp)
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("marshalResponse wrote %s, not the JSON of %s", got, want)
	}
}

// TestReadParamsFromBody pins what readParams takes from a POST's body, read in one
// pass since the variables of a bulk mutation are most of its bytes: the four keys
// exactly as the spec spells them, numbers as written, the last of a repeated key,
// and for a body that is not JSON the body's error even where a value before the
// fault had the wrong type.
func TestReadParamsFromBody(t *testing.T) {
	const q = `{ __typename }`
	for _, tc := range []struct {
		name, body string
		want       graphql.RawParams
		err        string
	}{
		{"all four", `{"query": "` + q + `", "operationName": "Op", "variables": {"n": 12345678901234567890, "in": {"a": [1.5, null, true]}}, "extensions": {"e": "x"}}`,
			graphql.RawParams{Query: q, OperationName: "Op",
				Variables:  map[string]any{"n": json.Number("12345678901234567890"), "in": map[string]any{"a": []any{json.Number("1.5"), nil, true}}},
				Extensions: map[string]any{"e": "x"}}, ""},
		{"nulls and unknown keys", `{"query": "` + q + `", "operationName": null, "variables": null, "extensions": null, "other": {"x": [1, {"y": 2}]}}`,
			graphql.RawParams{Query: q}, ""},
		// encoding/json took the last "query", a proxy or WAF may read the first: a
		// mutation passed behind a query.
		{"a repeated query", `{"query": "` + q + `", "query": "mutation { x }"}`, graphql.RawParams{}, repeatedParam("query").Error()},
		{"a repeated operationName", `{"query": "` + q + `", "operationName": "A", "operationName": null}`, graphql.RawParams{}, repeatedParam("operationName").Error()},
		{"repeated variables", `{"query": "` + q + `", "variables": {"a": 1}, "variables": {"b": 2}}`, graphql.RawParams{}, repeatedParam("variables").Error()},
		{"repeated extensions", `{"extensions": null, "query": "` + q + `", "extensions": {}}`, graphql.RawParams{}, repeatedParam("extensions").Error()},
		{"another key repeated", `{"x": 1, "query": "` + q + `", "x": 2}`, graphql.RawParams{Query: q}, ""},
		{"keys in another case are other keys", `{"Query": "` + q + `", "query": "` + q + `", "VARIABLES": {"a": 1}}`,
			graphql.RawParams{Query: q}, ""},
		{"query a number", `{"query": 1}`, graphql.RawParams{}, "query must be a string"},
		{"operationName an array", `{"query": "` + q + `", "operationName": ["x"]}`, graphql.RawParams{}, "operationName must be a string"},
		{"variables a string", `{"query": "` + q + `", "variables": "{}"}`, graphql.RawParams{}, "variables must be a JSON object"},
		{"extensions false", `{"query": "` + q + `", "extensions": false}`, graphql.RawParams{}, "extensions must be a JSON object"},
		{"the first wrong type", `{"variables": [], "query": 1}`, graphql.RawParams{}, "variables must be a JSON object"},
		{"a wrong type before a fault", `{"query": 1, "variables": {"a": }}`, graphql.RawParams{}, errBody.Error()},
		{"not JSON", `{"query": "` + q, graphql.RawParams{}, errBody.Error()},
		{"an array", `[{"query": "` + q + `"}]`, graphql.RawParams{}, errBody.Error()},
		{"null", `null`, graphql.RawParams{}, errBody.Error()},
		{"empty", ``, graphql.RawParams{}, errBody.Error()},
		{"trailing data", `{"query": "` + q + `"} {}`, graphql.RawParams{}, errBody.Error()},
		{"trailing space", `{"query": "` + q + `"}` + " \n", graphql.RawParams{Query: q}, ""},
		{"no query", `{"variables": {}}`, graphql.RawParams{}, "the request has no query"},
		// Latin-1's é in a variable, and in the query: encoding/json made each a U+FFFD,
		// and a mutation stored "Caf\uFFFD buyers".
		{"a variable not UTF-8", `{"query": "` + q + `", "variables": {"n": "Caf` + "\xe9" + ` buyers"}}`, graphql.RawParams{}, errNotUTF8.Error()},
		{"a query not UTF-8", `{"query": "{ segments(search: \"Caf` + "\xe9" + `\") { totalCount } }"}`, graphql.RawParams{}, errNotUTF8.Error()},
		// Half of a surrogate pair, escaped: made U+FFFD and stored (a JavaScript
		// client cutting a string inside an emoji).
		{"a lone low surrogate in a variable", `{"query": "` + q + `", "variables": {"n": "Caf\udce9 buyers"}}`, graphql.RawParams{}, errLoneSurrogate.Error()},
		{"a lone high surrogate at a variable's end", `{"query": "` + q + `", "variables": {"n": "cut \ud83d"}}`, graphql.RawParams{}, errLoneSurrogate.Error()},
		{"a high surrogate before another", `{"query": "` + q + `", "variables": {"n": "\ud83d\ud83d"}}`, graphql.RawParams{}, errLoneSurrogate.Error()},
		{"a lone surrogate in the query's string", `{"query": "{ segments(search: \"Tea\\udce9\") { totalCount } }"}`, graphql.RawParams{}, errLoneSurrogate.Error()},
		{"a surrogate in braces in the query", `{"query": "{ segments(search: \"\\u{D83D}\") { totalCount } }"}`, graphql.RawParams{}, errLoneSurrogate.Error()},
		// A comment or a block string escapes nothing: the text is no character.
		{"a surrogate's text in a comment", `{"query": "# see \\ud83d docs\n` + q + `"}`, graphql.RawParams{Query: "# see \\ud83d docs\n" + q}, ""},
		{"a surrogate's text in a block string", `{"query": "{ segments(search: \"\"\"\\udce9\"\"\") { totalCount } }"}`,
			graphql.RawParams{Query: `{ segments(search: """\udce9""") { totalCount } }`}, ""},
		{"a pair", `{"query": "` + q + `", "variables": {"n": "\ud83d\ude00"}}`,
			graphql.RawParams{Query: q, Variables: map[string]any{"n": "😀"}}, ""},
		{"an escaped backslash before u", `{"query": "` + q + `", "variables": {"n": "C:\\udce9"}}`,
			graphql.RawParams{Query: q, Variables: map[string]any{"n": `C:\udce9`}}, ""},
		{"UTF-8 beyond ASCII", `{"query": "` + q + `", "variables": {"n": "Café 🎉 खरीदार"}}`,
			graphql.RawParams{Query: q, Variables: map[string]any{"n": "Café 🎉 खरीदार"}}, ""},
		// Valid JSON, deeper than encoding/json decodes: it was errBody.
		{"variables nested 10,001 deep", `{"query": "` + q + `", "variables": {"a": ` + strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001) + `}}`,
			graphql.RawParams{}, errTooDeep.Error()},
		{"an unknown key nested 10,001 deep", `{"query": "` + q + `", "x": ` + strings.Repeat(`{"a":`, 10_001) + `1` + strings.Repeat("}", 10_001) + `}`,
			graphql.RawParams{}, errTooDeep.Error()},
	} {
		r := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader([]byte(tc.body)))
		got, err := readParams(r)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: %v, want the error %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !reflect.DeepEqual(*got, tc.want):
			t.Errorf("%s: %+v, want %+v", tc.name, *got, tc.want)
		}
	}
}

// TestReadParamsFromURL: a GET's parameters must be UTF-8 too, percent-encoded or not.
func TestReadParamsFromURL(t *testing.T) {
	for _, tc := range []struct{ name, query, err string }{
		{"UTF-8", "query=%7B+segments%28search%3A+%22Caf%C3%A9%22%29+%7B+totalCount+%7D+%7D", ""},
		{"Latin-1 in the query", "query=%7B+segments%28search%3A+%22Caf%E9%22%29+%7B+totalCount+%7D+%7D", errNotUTF8.Error()},
		{"Latin-1 in the variables", "query=%7B+__typename+%7D&variables=%7B%22n%22%3A%22Caf%E9%22%7D", errNotUTF8.Error()},
		{"Latin-1 in a parameter's name", "query=%7B+__typename+%7D&%FF=1", errNotUTF8.Error()},
		{"a lone surrogate in the variables", "query=%7B+__typename+%7D&variables=%7B%22n%22%3A%22%5Cudce9%22%7D", errLoneSurrogate.Error()},
		// url.Values.Get took the first query=, where a body's reader took the last.
		{"a repeated query", "query=%7B+__typename+%7D&query=mutation+%7B+x+%7D", repeatedParam("query").Error()},
		{"a repeated operationName", "query=%7B+__typename+%7D&operationName=A&operationName=", repeatedParam("operationName").Error()},
		{"repeated variables", "query=%7B+__typename+%7D&variables=%7B%7D&variables=%7B%7D", repeatedParam("variables").Error()},
		{"repeated extensions", "query=%7B+__typename+%7D&extensions=%7B%7D&extensions=", repeatedParam("extensions").Error()},
		{"another parameter repeated", "query=%7B+__typename+%7D&x=1&x=2", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/graphql?"+tc.query, nil)
		_, err := readParams(r)
		if got := fmt.Sprint(err); (tc.err == "" && err != nil) || (tc.err != "" && got != tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

// TestLoneSurrogateScanIsLinear: a document of 256 KB of "\u{" without a closing
// brace took 0.5 s to scan, each searching the rest for its brace.
func TestLoneSurrogateScanIsLinear(t *testing.T) {
	doc := strings.Repeat(`"\u{`, 64<<10)
	start := time.Now()
	loneSurrogate(doc, true)
	if d := time.Since(start); d > 100*time.Millisecond { // linear: about a millisecond
		t.Errorf("scanning %d bytes took %v", len(doc), d)
	}
}

// BenchmarkReadParams reads the body of a partner's sync of 1,000 contacts, as
// BenchmarkSyncContacts (internal/server) sends it.
func BenchmarkReadParams(b *testing.B) {
	var in bytes.Buffer
	for i := range 1000 {
		if i > 0 {
			in.WriteByte(',')
		}
		fmt.Fprintf(&in, `{"phone":"+9197%08d","name":"Synced %d","attributes":{"city":"Pune","source":"sync","visits":%d}}`, i, i, i)
	}
	body := []byte(`{"query":"mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { createdCount } }","variables":{"in":{"contacts":[` + in.String() + `]}}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		if _, err := readParams(r); err != nil {
			b.Fatal(err)
		}
	}
}
