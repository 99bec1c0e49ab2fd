package main

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Where the server's code names an extensions.code: a constant whose name begins
// with code or Code, a WriteError call's literal code, or a "code" key's literal.
var (
	codeConst   = regexp.MustCompile(`(?m)^\s*(?:const\s+)?[Cc]ode\w*\s+(?:\w+\s+)?=\s+"([A-Z][A-Z_]+)"`)
	codeWritten = regexp.MustCompile(`WriteError\(w, [^,]+, "([A-Z][A-Z_]+)"`)
	codeKeyed   = regexp.MustCompile(`"code":\s*"([A-Z][A-Z_]+)"`)
	codeCell    = regexp.MustCompile("`([A-Z][A-Z_]+)`")
)

// gqlgenCodes are the codes gqlgen sets itself, which the server's code never
// names: a document that does not parse or validate (its executor) and an unknown
// persisted query (its APQ extension).
var gqlgenCodes = []string{"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "PERSISTED_QUERY_NOT_FOUND"}

// notAnswered are codes of the code that no client reads in an answer's errors,
// with where the docs document them.
var notAnswered = map[string]string{
	"CLIENT_CLOSED_REQUEST": "the outcome of a request whose client left (docs/observability.md)",
	"ERROR":                 "a metric's label for an error without a code (docs/observability.md)",
}

// TestREADMEListsEveryErrorCode proves that the table of top-level error codes
// (docs/api.md, Errors) has a row for every extensions.code the server answers with,
// and none that it does not: partners write their retries from that table, and it
// lacked METHOD_NOT_ALLOWED, BAD_REQUEST and four more the server sent. The codes of
// userErrors (internal/crm) are a field of mutations' payloads, listed in docs/partners.md.
func TestREADMEListsEveryErrorCode(t *testing.T) {
	section := docSection(t, "docs/api.md", "\n| `extensions.code` |", "\n\n")
	listed := map[string]bool{}
	for _, l := range strings.Split(section, "\n") {
		cells := strings.Split(l, "|")
		if !strings.HasPrefix(l, "| `") || len(cells) < 5 {
			continue
		}
		for _, m := range codeCell.FindAllStringSubmatch(cells[1], -1) {
			listed[m[1]] = true
		}
	}

	used := map[string]string{} // code: where the code names it first
	for _, c := range gqlgenCodes {
		used[c] = "gqlgen"
	}
	root := filepath.Join("..", "..")
	for _, dir := range []string{"graph", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
				strings.Contains(path, "generated") || strings.Contains(path, filepath.Join("internal", "crm")) {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, re := range []*regexp.Regexp{codeConst, codeWritten, codeKeyed} {
				for _, m := range re.FindAllStringSubmatch(string(src), -1) {
					if _, ok := used[m[1]]; !ok {
						used[m[1]] = path
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, code := range slices.Sorted(maps.Keys(used)) {
		if _, ok := notAnswered[code]; ok {
			continue
		}
		if !listed[code] {
			t.Errorf("%s: the table of error codes (docs/api.md, Errors) has no row for %s", used[code], code)
		}
	}
	for code := range listed {
		if _, ok := used[code]; !ok {
			t.Errorf("the table of error codes (docs/api.md) lists %s, which the server does not answer with", code)
		}
	}
	if len(used) < 30 || len(listed) < 10 {
		t.Fatalf("%d codes in the code, %d in the table: did the code's or docs/api.md's form change?", len(used), len(listed))
	}
}
