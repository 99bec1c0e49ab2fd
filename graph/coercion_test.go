package graph

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler"

	"github.com/segments/segments/graph/generated"
)

// TestVariableMessages proves that a variable's value a scalar cannot take is refused
// with a message that names the value sent, as JSON, and the type expected, at the
// variable's path: whether gqlparser refused it first (validator.VariableValues,
// which named a Go type or another value: "cannot use value 0 as Int" for 5.5) or
// strictInputs did; in the variable itself, an input object's field or a list's
// element.
func TestVariableMessages(t *testing.T) {
	srv := handler.New(generated.NewExecutableSchema(generated.Config{Resolvers: &Resolver{}}))
	srv.AddTransport(httpTransport{})
	srv.Use(&strictInputs{})
	const (
		intQ    = `query($f:Int){ segments(first:$f){ totalCount } }`
		filterQ = `query($f:ContactFilter){ contacts(filter:$f){ totalCount } }`
		// null for these is refused before the resolvers run.
		idQ         = `query($f:ID!){ segment(id:$f){ name } }`
		nonNullIntQ = `query($f:Int!){ segments(first:$f){ totalCount } }`
		defaultIDQ  = `query($f:ID = "S_1"){ segment(id:$f){ name } }`
	)
	for _, tc := range []struct {
		query, vars string
		code        string
		path        string // the error's path, as JSON
		want        string
	}{
		// Int, the variable's whole value.
		{intQ, `5.5`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent 5.5, a number: it is not a whole number`},
		{intQ, `5.0`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent 5.0, a number: write it as an integer, without a fraction or an exponent`},
		{intQ, `1e2`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent 1e2, a number: write it as an integer, without a fraction or an exponent`},
		{intQ, `100.0`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent 100.0, a number: write it as an integer, without a fraction or an exponent`},
		{intQ, `[1]`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent [1], a list`},
		{intQ, `{}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent {}, an object`},
		{intQ, `true`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent true, a boolean`},
		{intQ, `"3"`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent "3", a string`},
		{intQ, `3000000000`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" got an invalid value: Int cannot represent 3000000000, a number: it is not a 32-bit integer`},
		// Boolean, an input object's field.
		{filterQ, `{"hasEmail":1}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","hasEmail"]`,
			`Variable "$f" got an invalid value at "f.hasEmail": Boolean cannot represent 1, a number`},
		{filterQ, `{"hasName":"true"}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","hasName"]`,
			`Variable "$f" got an invalid value at "f.hasName": Boolean cannot represent "true", a string`},
		{filterQ, `{"hasName":[true]}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","hasName"]`,
			`Variable "$f" got an invalid value at "f.hasName": Boolean cannot represent [true], a list`},
		// String and Float, fields of a list's element.
		{filterQ, `{"attributes":[{"key":["a"]}]}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","attributes",0,"key"]`,
			`Variable "$f" got an invalid value at "f.attributes[0].key": String cannot represent ["a"], a list`},
		{filterQ, `{"attributes":[{"key":5}]}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","attributes",0,"key"]`,
			`Variable "$f" got an invalid value at "f.attributes[0].key": String cannot represent 5, a number`},
		{filterQ, `{"attributes":{"key":"a","atLeast":true}}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","attributes",0,"atLeast"]`,
			`Variable "$f" got an invalid value at "f.attributes[0].atLeast": Float cannot represent true, a boolean`},
		{filterQ, `{"attributes":[{"key":"a","atMost":"1"}]}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","attributes",0,"atMost"]`,
			`Variable "$f" got an invalid value at "f.attributes[0].atMost": Float cannot represent "1", a string`},
		// ID, a list's elements.
		{filterQ, `{"segments":{"any":["S_1",5.5]}}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","segments","any",1]`,
			`Variable "$f" got an invalid value at "f.segments.any[1]": ID cannot represent 5.5, a number: an ID is a string or an integer`},
		{filterQ, `{"segments":{"all":[true]}}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","segments","all",0]`,
			`Variable "$f" got an invalid value at "f.segments.all[0]": ID cannot represent true, a boolean: an ID is a string or an integer`},
		{filterQ, `{"segments":{"none":[["S_1"]]}}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","segments","none",0]`,
			`Variable "$f" got an invalid value at "f.segments.none[0]": ID cannot represent ["S_1"], a list: an ID is a string or an integer`},
		// A single value for a list: gqlparser makes it a list of one in the variables
		// (coerced in place), and strictInputs refuses the element; its words stay.
		{filterQ, `{"segments":{"all":5.5}}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","segments","all",0]`,
			`Variable "$f" got an invalid value at "f.segments.all[0]": ID cannot represent 5.5, a number: an ID is a string or an integer`},
		// null where a non-null value is expected: gqlparser's refusal, and nullWhereNonNull's
		// for a nullable variable with a default, are left as they are.
		{idQ, `null`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`cannot be null`},
		{nonNullIntQ, `null`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`cannot be null`},
		{filterQ, `{"attributes":[{"key":null}]}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","attributes",0,"key"]`,
			`cannot be null`},
		{filterQ, `{"segments":{"any":[null]}}`, "GRAPHQL_VALIDATION_FAILED", `["variable","f","segments","any",0]`,
			`cannot be null`},
		{defaultIDQ, `null`, "GRAPHQL_VALIDATION_FAILED", `["variable","f"]`,
			`Variable "$f" is null where a non-null ID! is expected: send a value, or leave the variable out to use its default`},
		// DateTime, our scalar: refused naming the argument (BAD_USER_INPUT), as before.
		{filterQ, `{"createdAt":{"from":5}}`, "BAD_USER_INPUT", `["contacts"]`,
			`a DateTime is a string in RFC 3339 form with a time and a zone, such as "2026-12-01T00:00:00Z", not 5, a number`},
	} {
		body, _ := json.Marshal(map[string]any{"query": tc.query, "variables": map[string]json.RawMessage{"f": json.RawMessage(tc.vars)}})
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var out struct {
			Errors []struct {
				Message    string          `json:"message"`
				Path       json.RawMessage `json:"path"`
				Extensions map[string]any  `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Errors) != 1 {
			t.Errorf("%s with %s: %d %s", tc.query, tc.vars, rec.Code, rec.Body)
			continue
		}
		e := out.Errors[0]
		if e.Message != tc.want || string(e.Path) != tc.path || e.Extensions["code"] != tc.code {
			t.Errorf("$f = %s:\n got %s at %s: %q\nwant %s at %s: %q", tc.vars, e.Extensions["code"], e.Path, e.Message, tc.code, tc.path, tc.want)
		}
	}
}
