package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestResponsesKeepTheirOwnData sends requests whose responses differ in content
// and size from 8 concurrent clients, and checks that every response is, byte for
// byte, the one the same request got alone, with its length given in Content-Length
// rather than sent in chunks. A response's data is written into a pooled buffer that
// the next response reuses once this one is written (execution.DataBuffer): a buffer
// given back too early would carry another response's bytes.
func TestResponsesKeepTheirOwnData(t *testing.T) {
	a := newAPI(t)
	contacts := a.addContacts(phones(700_000, 60)...)
	const q = `query($id: ID!) { segment(id: $id) { id name contacts(first: 100) { nodes { id phone } } } }`
	var bodies [][]byte
	for i, n := range []int{0, 1, 7, 25, 60} {
		// Names of different lengths, so that no two responses are the same size.
		id := a.addSegment(fmt.Sprintf("Segment %d %s", i, bytes.Repeat([]byte("x"), i*13)), contacts[:n]...)
		body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"id": id}})
		bodies = append(bodies, body)
	}
	// A mutation's payload too, which is written the same way (a rename to the name
	// the segment has changes nothing, and answers the same each time).
	rename, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: UpdateSegmentInput!) { updateSegment(input: $in) { segment { id name contactCount } userErrors { code } } }`,
		"variables": map[string]any{"in": map[string]any{"id": a.addSegment("Renamed", contacts[:3]...), "name": "Renamed"}},
	})
	bodies = append(bodies, rename)

	post := func(body []byte) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+string(a.key))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer res.Body.Close()
		out, err := io.ReadAll(res.Body)
		return res, out, err
	}
	want := make([][]byte, len(bodies))
	for i, body := range bodies {
		res, out, err := post(body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"errors"`)) {
			t.Fatalf("status %d: %s", res.StatusCode, out)
		}
		want[i] = out
	}

	const clients, requests = 8, 60
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for r := range requests {
				i := (c*7 + r*3) % len(bodies)
				res, got, err := post(bodies[i])
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(got, want[i]) {
					t.Errorf("request %d answered\n%s\nwhere alone it answered\n%s", i, got, want[i])
					return
				}
				if res.ContentLength != int64(len(got)) || len(res.TransferEncoding) > 0 {
					t.Errorf("request %d: Content-Length %d, Transfer-Encoding %v, for a body of %d bytes", i, res.ContentLength, res.TransferEncoding, len(got))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestFieldErrorsHaveLocations: an error of a field points at the field in the
// document (locations: line and column), as the spec says an error that can be
// associated with a point of the document should, and as validation's errors did
// already; a field's errors had only their path.
func TestFieldErrorsHaveLocations(t *testing.T) {
	a := newAPI(t)
	seg := a.addSegment("Located")
	body, _ := json.Marshal(map[string]any{"query": "query($s: ID!) {\n  segment(id: $s) {\n    id\n    contacts(after: \"garbage\") { totalCount }\n  }\n}",
		"variables": map[string]any{"s": seg}})
	r := a.send(http.MethodPost, "/graphql", body, nil)
	var out struct {
		Errors []struct {
			Path      []any
			Locations []struct{ Line, Column int }
		}
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || len(out.Errors) != 1 {
		t.Fatalf("%s (%v): want one error", r.body, err)
	}
	if e := out.Errors[0]; fmt.Sprint(e.Path) != "[segment contacts]" || len(e.Locations) != 1 || e.Locations[0].Line != 4 || e.Locations[0].Column != 5 {
		t.Errorf("the error of segment.contacts: %s; want its path and the location 4:5", r.body)
	}

	// So do the refusals of arguments before anything runs.
	body, _ = json.Marshal(map[string]any{"query": "mutation {\n  upsertContacts(input: {contacts: [{phone: \"+919000000009\", attributes: 5}]}) { createdCount }\n}"})
	r = a.send(http.MethodPost, "/graphql", body, nil)
	out.Errors = nil
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || len(out.Errors) != 1 || len(out.Errors[0].Locations) != 1 || out.Errors[0].Locations[0].Line != 2 {
		t.Errorf("a refusal of attributes: %s (%v); want it located at line 2", r.body, err)
	}
}

// TestSeveralOperationsNeedAName: a document of several operations without an
// operationName is refused saying that operationName must name one (GetOperation);
// the refusal said "operation  not found", naming nothing.
func TestSeveralOperationsNeedAName(t *testing.T) {
	a := newAPI(t)
	r := a.query("query A { __typename } query B { workspace { name } }", nil)
	if len(r.res.Errors) != 1 || r.res.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(r.res.Errors[0].Message, "operationName") {
		t.Errorf("%d %s; want GRAPHQL_VALIDATION_FAILED asking for operationName", r.status, r.body)
	}
}
