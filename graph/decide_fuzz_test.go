package graph

import (
	"strings"
	"testing"

	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/limits/limitstest"
)

// FuzzDecide sends any document, with the server's limits, through everything that
// accepts or refuses a request before execution (limits, parsing, validation without
// suggestions, introspection policy, cost): it never panics, is decided within
// cpuBound of CPU, refuses with a stable extensions.code on every error, and never
// suggests a name of the schema. Its seeds, the adversarial corpus among them, are
// replayed by every go test.
func FuzzDecide(f *testing.F) {
	for _, doc := range limitstest.Adversarial(limits.Defaults) {
		f.Add(doc.Query, false)
	}
	for _, q := range []string{
		`{ workspace { id name } }`,
		`{ workspac { id } }`,
		`{ contacts(frist: 1) { totalCount } }`,
		`{ contacts(orderBy: {field: NAM, direction: ASC}) { totalCount } }`,
		`query($o: ContactOrdr) { contacts(orderBy: $o) { totalCount } }`,
		`{ ...F } fragment F on Querry { workspace { id } }`,
		`{ node(id: "C_AQ") { ... on Contakt { id } } }`,
		`{ __schema { types { name } } }`,
		`mutation { createSegment(input: {nam: "x"}) { segment { id } } }`,
		`subscription { workspace { id } }`,
		`query A { __typename } query A { __typename }`,
	} {
		f.Add(q, false)
		f.Add(q, true)
	}
	on, off := newExecutor(Options{}), newExecutor(Options{Introspection: IntrospectionOff})
	f.Fuzz(func(t *testing.T, q string, introspectionOff bool) {
		exec := on
		if introspectionOff {
			exec = off
		}
		start := cpuTime()
		errs := decide(exec, limitstest.Doc{Query: q})
		if d := cpuTime() - start; d > cpuBound {
			t.Errorf("decided in %v of CPU, more than %v", d, cpuBound)
		}
		for _, e := range errs {
			if c, _ := e.Extensions["code"].(string); c == "" {
				t.Errorf("an error without extensions.code: %v", e)
			}
			if strings.Contains(strings.ToLower(e.Message), "did you mean") && !strings.Contains(strings.ToLower(q), "did you mean") {
				t.Errorf("suggests: %v", e)
			}
		}
	})
}
