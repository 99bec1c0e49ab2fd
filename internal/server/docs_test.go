package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
)

// The examples of the README and of docs/ run here, so that they cannot rot
// (docs/dashboard.md): every ```graphql block (with the JSON of its "# variables:" comment),
// every gql`...` and graphql(`...`) template of the ```js and ```ts blocks (with the
// object literal of the first "variables:" after it), and every ```sh block that calls
// the README's gql shell function (run by bash and curl, as a reader would). A ```json
// block right after an example is the answer it must give (a subset of it: "…" stands
// for any value); without one, the example must succeed: HTTP 200, no errors, no
// userErrors. Each example runs against a new workspace seeded by seedDocs, whose
// objects the docs' IDs name: S_AQ is its first segment, C_Ag its second contact.

// docFile is a Markdown file of the documentation.
type docFile struct {
	name string // its path from the repository's root: README.md, docs/api.md...
	text string
}

// readDocs returns README.md, then the files of docs/ in the order of their names:
// the README defines the gql shell function that the others' examples call.
func readDocs(t *testing.T) []docFile {
	t.Helper()
	names, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(names) == 0 {
		t.Fatalf("no docs/*.md (%v)", err)
	}
	var files []docFile
	for _, name := range append([]string{"../../README.md"}, names...) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, docFile{strings.TrimPrefix(name, "../../"), string(b)})
	}
	return files
}

// docExample is one example of the docs.
type docExample struct {
	where string // FILE:LINE (kind), such as README.md:120 (sh)
	query string
	vars  map[string]any
	shell string // for shell examples: the block
	calls int    // for shell examples: the gql calls
	want  any    // the answer shown after it, if any
}

// TestReadmeJavaScriptParses checks that every JavaScript and TypeScript block of the
// README and docs/ is valid syntax, as an ES module (node --check: the imports are
// not resolved). The TypeScript blocks must be plain JavaScript, which they are unless
// they annotate types.
func TestReadmeJavaScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("checking the docs' JavaScript needs Node.js: %v", err)
	}
	dir := t.TempDir()
	// A file that is not JavaScript must fail, or the check proves nothing.
	type fileBlock struct {
		file string
		docBlock
	}
	blocks := []fileBlock{{"", docBlock{line: 0, lang: "js", text: "const a = 1;\nconst a = 2;\n"}}}
	for _, f := range readDocs(t) {
		for _, bl := range docBlocks(f.text) {
			blocks = append(blocks, fileBlock{f.name, bl})
		}
	}
	checked := 0
	for i, bl := range blocks {
		if bl.lang != "js" && bl.lang != "jsx" && bl.lang != "ts" {
			continue
		}
		path := fmt.Sprintf("%s/block%d.mjs", dir, i)
		if err := os.WriteFile(path, []byte(bl.text), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(node, "--check", path).CombinedOutput()
		switch {
		case bl.line == 0 && err == nil:
			t.Fatal("node --check accepted a redeclared const")
		case bl.line != 0 && err != nil:
			t.Errorf("%s:%d (%s): %v\n%s", bl.file, bl.line, bl.lang, err, out)
		}
		checked++
	}
	if checked < 2 {
		t.Fatalf("%d JavaScript blocks checked: did the docs' format change?", checked-1)
	}
}

// dashboardDir holds the npm packages (pinned by its package-lock.json; make installs
// them) and the script of TestReadmeDashboardCaches.
const dashboardDir = "testdata/dashboard"

// TestReadmeDashboardCaches runs the JavaScript of docs/dashboard.md ("For the
// dashboard") with the real Apollo Client and urql (Graphcache) against the real server, and
// checks what it says of their caches (testdata/dashboard/run.mjs): after
// assignContactsToSegments, the counts on screen change with no refetch, and the
// ticked contacts' segments match the server's. It fails, too, when the contacts
// are taken out of the page's assignment: the check depends on them.
//
// It needs Node and the packages (make test installs them); SEGMENTS_SKIP_NODE=1
// skips it on a machine without Node.
func TestReadmeDashboardCaches(t *testing.T) {
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(dashboardDir + "/node_modules/@apollo/client/package.json")
	if err != nil || modErr != nil {
		if os.Getenv("SEGMENTS_SKIP_NODE") == "1" {
			t.Skip("SEGMENTS_SKIP_NODE=1: the dashboard snippets of docs/dashboard.md need Node")
		}
		t.Fatalf("the dashboard snippets of docs/dashboard.md need Node (%v) and their packages (%v): run `make internal/server/%s/node_modules/.installed` "+
			"(make test does), or set SEGMENTS_SKIP_NODE=1 to skip it", err, modErr, dashboardDir)
	}
	page, err := os.ReadFile("../../docs/dashboard.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(page)
	if !strings.HasPrefix(section, "# For the dashboard\n") {
		t.Fatal(`docs/dashboard.md does not begin with "# For the dashboard"`)
	}
	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	run := func(t *testing.T, section string) (string, error) {
		b := a.as(t)
		ids := seedDocs(b)
		type jsBlock struct {
			Line int    `json:"line"`
			Text string `json:"text"`
		}
		var blocks []jsBlock
		for _, bl := range docBlocks(section) {
			if bl.lang == "js" || bl.lang == "ts" {
				blocks = append(blocks, jsBlock{bl.line, ids.mapText(bl.text)})
			}
		}
		in, _ := json.Marshal(map[string]any{"url": b.url, "key": b.key, "blocks": blocks,
			"ids": map[string]any{"segments": ids[globalid.Segment], "contacts": ids[globalid.Contact]}})
		path := t.TempDir() + "/input.json"
		if err := os.WriteFile(path, in, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "run.mjs", path)
		cmd.Dir = dashboardDir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Without the contacts of the page's assignment, the ticked contacts' segments
	// are stale in both caches: the check must see it.
	const contacts = "      contacts { id segments { id name } }\n"
	if !strings.Contains(section, contacts) {
		t.Fatalf("the contacts of the assignment of docs/dashboard.md (%q) were not found", contacts)
	}
	out, err := run(t, strings.Replace(section, contacts, "", 1))
	if err == nil || !strings.Contains(out, "Apollo: the table shows contact") || !strings.Contains(out, "urql: the table shows contact") {
		t.Fatalf("without the assignment's contacts, the check passed (%v):\n%s", err, out)
	}
	out, err = run(t, section)
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// TestReadmeExamplesCanFail proves that the checks of TestReadmeExamples catch a
// broken example of each kind, and refuse a file they cannot read.
func TestReadmeExamplesCanFail(t *testing.T) {
	for name, readme := range map[string]string{
		"no examples":          "# x\n\n    indented code is not an example\n",
		"interpolation":        "```js\nconst Q = gql`{ segments { ${fields} } }`;\n```\n",
		"variable not literal": "```js\nconst Q = gql`query($s: String) { segments(search: $s) { totalCount } }`;\nuseQuery(Q, { variables: { s: search } });\n```\n",
		"bad variables":        "```graphql\n{ workspace { id } }\n# variables: {first: 1}\n```\n",
		"gql before defined":   "```sh\ngql '{}'\n```\n",
	} {
		if _, _, err := docExamples(docFile{"README.md", readme}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	const prelude = "```sh\ngql() { curl -s http://127.0.0.1:8080/graphql -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' -d \"$1\" \"${@:2}\"; echo; }\n```\n"
	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	for name, readme := range map[string]string{
		"unknown field":     "```graphql\n{ segments { nodes { colour } } }\n```\n",
		"missing variable":  "```js\nconst Q = gql`query($first: Int!) { segments(first: $first) { totalCount } }`;\n```\n",
		"variable in range": "```js\nconst Q = gql`query($first: Int!) { segments(first: $first) { totalCount } }`;\nuseQuery(Q, { variables: { first: 101 } });\n```\n",
		"userErrors":        "```graphql\nmutation { createSegment(input: {name: \"VIP Users\"}) { userErrors { code } } }\n```\n",
		"another answer":    "```graphql\n{ segments { totalCount } }\n```\n```json\n{\"data\": {\"segments\": {\"totalCount\": 4}}}\n```\n",
		"unknown ID":        "```graphql\n{ segment(id: \"S_v4Q9\") { name } }\n```\n```json\n{\"data\": {\"segment\": {\"name\": \"…\"}}}\n```\n",
		"shell error":       prelude + "```sh\ngql '{\"query\":\"{ segments(first: 0) { totalCount } }\"}'\n```\n",
		"shell userErrors":  prelude + "```sh\ngql '{\"query\":\"mutation { deleteSegment(input: {id: \\\"C_AQ\\\"}) { userErrors { code } } }\"}'\n```\n",
		"shell not JSON":    prelude + "```sh\ngql '{}' -o /dev/null\necho oops\n```\n",
	} {
		examples, pre, err := docExamples(docFile{"README.md", readme})
		if err != nil || len(examples) != 1 {
			t.Errorf("%s: %d examples, %v", name, len(examples), err)
			continue
		}
		if err := runDocExample(a.as(t), pre, examples[0]); err == nil {
			t.Errorf("%s: the example passed", name)
		} else {
			t.Logf("%s: %v", name, strings.SplitN(err.Error(), "\n", 2)[0])
		}
	}
	// The same examples, right, pass: the failures above are the examples' own.
	ok := prelude + "```graphql\n{ segment(id: \"S_Ag\") { name contactCount } }\n```\n```json\n{\"data\": {\"segment\": {\"name\": \"Über Fans\", \"contactCount\": \"…\"}}}\n```\n" +
		"```sh\ngql '{\"query\":\"{ contact(id: \\\"C_Ag\\\") { name } }\"}'\n```\n"
	examples, pre, err := docExamples(docFile{"README.md", ok})
	if err != nil || len(examples) != 2 {
		t.Fatalf("%d examples, %v", len(examples), err)
	}
	for _, ex := range examples {
		if err := runDocExample(a.as(t), pre, ex); err != nil {
			t.Errorf("%s: %v", ex.where, err)
		}
	}
}

// TestReadmeExamples runs the examples of the README and of docs/.
func TestReadmeExamples(t *testing.T) {
	examples, prelude, err := docExamples(readDocs(t)...)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, ex := range examples {
		kinds[ex.where[strings.LastIndex(ex.where, "(")+1:len(ex.where)-1]]++
	}
	// A change to the docs' conventions must not silently leave examples untested.
	for _, k := range []string{"graphql", "js", "ts", "sh"} {
		if kinds[k] == 0 {
			t.Fatalf("no %s example found in the docs (found %v): did their format change?", k, kinds)
		}
	}
	t.Logf("examples: %v", kinds)

	a := newAPIWith(t, server.Config{Limits: limits.Defaults})
	for _, ex := range examples {
		t.Run(ex.where, func(t *testing.T) {
			if err := runDocExample(a.as(t), prelude, ex); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// runDocExample runs an example against a new workspace seeded by seedDocs, and checks
// its answer.
func runDocExample(b *api, prelude string, ex docExample) error {
	ids := seedDocs(b)
	if ex.shell != "" {
		return runDocShellExample(b, prelude, ex, ids)
	}
	body, _ := json.Marshal(map[string]any{"query": ids.mapText(ex.query), "variables": ids.mapValue(ex.vars)})
	req, _ := http.NewRequest(http.MethodPost, b.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(b.key))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	got := map[string]any{}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		return fmt.Errorf("status %d, not JSON: %v", res.StatusCode, err)
	}
	return checkDocAnswer(res.StatusCode, got, ids.mapValue(ex.want))
}

// checkDocAnswer checks an example's answer: the shown one, or a success.
func checkDocAnswer(status int, got map[string]any, want any) error {
	if want != nil {
		if path, ok := docSubset(want, got, "$"); !ok {
			w, _ := json.Marshal(want)
			g, _ := json.Marshal(got)
			return fmt.Errorf("the answer differs from the docs' at %s\ndocs: %s\ngot:  %s", path, w, g)
		}
		return nil
	}
	if status != http.StatusOK || got["errors"] != nil {
		g, _ := json.Marshal(got)
		return fmt.Errorf("status %d: %s", status, g)
	}
	if errs := docUserErrors(got["data"]); len(errs) > 0 {
		return fmt.Errorf("userErrors: %v", errs)
	}
	return nil
}

// docSubset reports whether every value of want is in got (lists element by element,
// objects key by key), and where it is not. The string "…" matches anything.
func docSubset(want, got any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range w {
			gv, present := g[k]
			if !present {
				return path + "." + k, false
			}
			if p, ok := docSubset(v, gv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := docSubset(w[i], g[i], path+"["+strconv.Itoa(i)+"]"); !ok {
				return p, false
			}
		}
		return "", true
	case string:
		if w == "…" {
			return "", true
		}
	}
	return path, reflect.DeepEqual(want, got)
}

// docUserErrors returns the userErrors anywhere in data.
func docUserErrors(data any) []any {
	var out []any
	switch v := data.(type) {
	case map[string]any:
		for k, e := range v {
			if l, ok := e.([]any); ok && k == "userErrors" {
				out = append(out, l...)
			} else {
				out = append(out, docUserErrors(e)...)
			}
		}
	case []any:
		for _, e := range v {
			out = append(out, docUserErrors(e)...)
		}
	}
	return out
}

// runDocShellExample runs a shell block with bash after the README's definition of gql
// (pointed at the test server), with the workspace's key in $KEY: each gql call
// prints one answer per line.
func runDocShellExample(b *api, prelude string, ex docExample, ids docIDs) error {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the docs' shell examples need %s: %v", tool, err)
		}
	}
	script := "set -eu\n" + strings.ReplaceAll(prelude, "http://127.0.0.1:8080", b.url) + "\n" + ids.mapText(ex.shell)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "KEY="+string(b.key))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("bash: %v\n%s\nscript:\n%s", err, stderr.String(), script)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var got map[string]any
		err := dec.Decode(&got)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("answer %d is not JSON: %v\n%s", n+1, err, out)
		}
		n++
		if err := checkDocAnswer(http.StatusOK, got, nil); err != nil {
			return fmt.Errorf("answer %d: %w", n, err)
		}
	}
	if n != ex.calls {
		return fmt.Errorf("%d answers for %d gql calls:\n%s", n, ex.calls, out)
	}
	return nil
}

// docIDs maps the docs' IDs to the seeded workspace's.
type docIDs map[globalid.Kind][]string

var docIDPattern = regexp.MustCompile(`\b[WSC]_[A-Za-z0-9_-]{2,12}\b`)

// mapText replaces the docs' IDs in s.
func (ids docIDs) mapText(s string) string {
	return docIDPattern.ReplaceAllStringFunc(s, ids.mapID)
}

// mapID maps the docs' ID of object n of a kind to the seeded workspace's n-th;
// past those, to an ID of nothing.
func (ids docIDs) mapID(id string) string {
	k, n, err := globalid.Decode(id)
	if err != nil {
		return id
	}
	if l := ids[k]; n <= int64(len(l)) {
		return l[n-1]
	}
	return globalid.Encode(k, 1<<52+n)
}

// mapValue replaces the docs' IDs in the strings of a JSON value.
func (ids docIDs) mapValue(v any) any {
	switch v := v.(type) {
	case string:
		return ids.mapText(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = ids.mapValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = ids.mapValue(e)
		}
		return out
	}
	return v
}

// seedDocs fills the workspace the examples run against, like a small demo workspace:
// ten contacts and three segments, and returns their IDs in creation order.
func seedDocs(b *api) docIDs {
	b.t.Helper()
	var out struct {
		UpsertContacts struct {
			Contacts   []contact   `json:"contacts"`
			UserErrors []userError `json:"userErrors"`
		} `json:"upsertContacts"`
	}
	names := []string{"Aarav Shah", "Diya Patel", "Kabir Singh", "Isha Gupta", "Rohan Mehta",
		"Ananya Iyer", "Vivaan Reddy", "Saanvi Nair", "Arjun Das", "Meera Joshi"}
	// The first two have the phones of a fresh serve --demo workspace's C_AQ and C_Ag
	// (internal/demo; the smallest phones, so they get the first IDs here too), so that
	// an example looking them up by phone answers as both do.
	phones := []string{"+91 70006 77729", "+91 70046 04623"}
	in := make([]map[string]any, len(names))
	for i, name := range names {
		phone := fmt.Sprintf("+91 98%03d %05d", 100+i, 12345+i)
		if i < len(phones) {
			phone = phones[i]
		}
		in[i] = map[string]any{"phone": phone, "name": name,
			"email": strings.ToLower(strings.Fields(name)[0]) + "@example.com", "attributes": map[string]any{"city": "Mumbai"}}
	}
	b.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } userErrors { field message code } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, &out)
	if len(out.UpsertContacts.UserErrors) > 0 {
		b.t.Fatalf("seed: %v", out.UpsertContacts.UserErrors)
	}
	ids := docIDs{globalid.Workspace: {globalid.Encode(globalid.Workspace, b.ws.ID)}}
	for _, c := range out.UpsertContacts.Contacts {
		ids[globalid.Contact] = append(ids[globalid.Contact], c.ID)
	}
	c := ids[globalid.Contact]
	ids[globalid.Segment] = []string{
		b.addSegment("VIP Users", c[0:4]...),
		// Before "VIP Users" by localeCompare, after it by code point, as the API
		// lists a contact's segments: the caches' check sees the difference.
		b.addSegment("Über Fans", c[2:7]...),
		b.addSegment("Unsubscribed", c[6]),
		// Pairs that PostgreSQL's lower() orders otherwise than JavaScript's
		// toLowerCase(), which maps İ to two code points and a final Σ to ς.
		b.addSegment("İzmir Buyers", c[0]),
		b.addSegment("Iznik Tiles", c[0]),
		b.addSegment("ΣΑΣ Club", c[0]),
		b.addSegment("Σαςα Fans", c[0]),
		// An emoji after the fullwidth and halfwidth forms by code point, before them
		// by UTF-16 code unit (a surrogate, U+D83D), as JavaScript compares strings.
		b.addSegment("🔥 Hot leads", c[0]),
		b.addSegment("ＶＩＰ客户", c[0]),
		b.addSegment("ﾌｧﾝ", c[0]),
	}
	return ids
}

// docBlock is a fenced code block of a Markdown file.
type docBlock struct {
	line       int // of the opening fence
	lang, text string
	adjacent   bool // only blank lines since the previous block
}

// docBlocks returns the fenced code blocks of a Markdown text that name their
// language.
func docBlocks(md string) []docBlock {
	var blocks []docBlock
	lines := strings.Split(md, "\n")
	lastEnd := -2
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok || lang == "" || strings.HasPrefix(lang, "`") {
			continue
		}
		start := i
		var text []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			text = append(text, lines[i])
		}
		adjacent := lastEnd >= 0 && strings.TrimSpace(strings.Join(lines[lastEnd+1:start], "")) == ""
		blocks = append(blocks, docBlock{line: start + 1, lang: strings.Fields(lang)[0], text: strings.Join(text, "\n") + "\n", adjacent: adjacent})
		lastEnd = i
	}
	return blocks
}

// docExamples returns the examples of the files, in order, and the definition of the
// gql shell function, which a file's shell examples may call once a file before
// them, or their own, has defined it.
func docExamples(files ...docFile) ([]docExample, string, error) {
	var out []docExample
	prelude := ""
	for _, f := range files {
		var err error
		if out, prelude, err = docFileExamples(f, out, prelude); err != nil {
			return nil, "", err
		}
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("no examples in the docs")
	}
	return out, prelude, nil
}

// docFileExamples appends the examples of a file to out, given the gql shell function
// defined before it, and returns the gql function as the file leaves it.
func docFileExamples(f docFile, out []docExample, prelude string) ([]docExample, string, error) {
	previous := -1 // index in out of the examples of the previous block, if they end it
	for _, bl := range docBlocks(f.text) {
		where := func(kind string) string { return fmt.Sprintf("%s:%d (%s)", f.name, bl.line, kind) }
		first := len(out)
		switch bl.lang {
		case "graphql":
			ex := docExample{where: where("graphql"), query: bl.text}
			for l := range strings.SplitSeq(bl.text, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "# variables:"); ok {
					if err := json.Unmarshal([]byte(v), &ex.vars); err != nil {
						return nil, "", fmt.Errorf("%s: variables: %v", ex.where, err)
					}
				}
			}
			out = append(out, ex)
		case "js", "jsx", "ts", "tsx":
			exs, err := docJSExamples(bl.text, where(bl.lang[:2]))
			if err != nil {
				return nil, "", err
			}
			out = append(out, exs...)
		case "sh", "bash", "shell":
			calls := 0
			for l := range strings.SplitSeq(bl.text, "\n") {
				if strings.HasPrefix(l, "gql() ") {
					prelude = docGqlPrelude(bl.text)
				} else if strings.HasPrefix(l, "gql ") {
					calls++
				}
			}
			if calls > 0 {
				if prelude == "" {
					return nil, "", fmt.Errorf("%s: gql is called before it is defined", where("sh"))
				}
				out = append(out, docExample{where: where("sh"), shell: bl.text, calls: calls})
			}
		case "json":
			if bl.adjacent && previous >= 0 {
				if err := json.Unmarshal([]byte(bl.text), &out[previous].want); err != nil {
					return nil, "", fmt.Errorf("%s: %v", where("json"), err)
				}
			}
		}
		previous = -1
		if len(out) > first {
			previous = len(out) - 1
		}
	}
	return out, prelude, nil
}

// docGqlPrelude returns the shell block that defines gql, without its KEY= line
// (the test sets $KEY).
func docGqlPrelude(block string) string {
	var keep []string
	for l := range strings.SplitSeq(block, "\n") {
		if !strings.HasPrefix(l, "KEY=") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

var docJSTemplate = regexp.MustCompile("(?:\\bgql|\\bgraphql\\(\\s*)`")

// docJSExamples returns the GraphQL templates of a JavaScript block, each with the
// object literal of the first "variables:" that follows it (before the next template).
func docJSExamples(src, where string) ([]docExample, error) {
	locs := docJSTemplate.FindAllStringIndex(src, -1)
	var out []docExample
	for i, loc := range locs {
		end := strings.IndexByte(src[loc[1]:], '`')
		if end < 0 {
			return nil, fmt.Errorf("%s: unterminated template", where)
		}
		query := src[loc[1] : loc[1]+end]
		if strings.Contains(query, "${") {
			return nil, fmt.Errorf("%s: a template with ${...} cannot be run as it is", where)
		}
		rest := src[loc[1]+end:]
		if i+1 < len(locs) {
			rest = src[loc[1]+end : locs[i+1][0]]
		}
		ex := docExample{where: where, query: query}
		if j := strings.Index(rest, "variables:"); j >= 0 {
			v, err := docJSLiteral(rest[j+len("variables:"):])
			if err != nil {
				return nil, fmt.Errorf("%s: variables: %v", where, err)
			}
			ex.vars, _ = v.(map[string]any)
		}
		out = append(out, ex)
	}
	return out, nil
}

// docJSLiteral reads the JavaScript object literal at the start of src (after spaces):
// keys as names or strings, values strings, numbers, true, false, null, arrays and
// objects, trailing commas and comments allowed. Anything else (a variable, a call) is
// an error: an example's variables must be written out.
func docJSLiteral(src string) (any, error) {
	var b strings.Builder
	depth := 0
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == '{' || c == '[':
			depth++
			b.WriteByte(c)
			i++
		case c == '}' || c == ']':
			depth--
			s := strings.TrimSuffix(b.String(), ",") // a trailing comma
			b.Reset()
			b.WriteString(s)
			b.WriteByte(c)
			i++
		case c == ',' || c == ':':
			b.WriteByte(c)
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated string")
			}
			s, err := strconv.Unquote(`"` + strings.ReplaceAll(src[i+1:j], `"`, `\"`) + `"`)
			if err != nil {
				return nil, err
			}
			q, _ := json.Marshal(s)
			b.Write(q)
			i = j + 1
		default:
			j := i
			for j < len(src) && (src[j] == '_' || src[j] == '$' || src[j] == '.' || src[j] == '-' || src[j] == '+' ||
				'a' <= src[j] && src[j] <= 'z' || 'A' <= src[j] && src[j] <= 'Z' || '0' <= src[j] && src[j] <= '9') {
				j++
			}
			word := src[i:j]
			if word == "" {
				return nil, fmt.Errorf("unexpected %q", c)
			}
			rest := strings.TrimLeft(src[j:], " \t")
			switch {
			case strings.HasPrefix(rest, ":") && !strings.ContainsAny(word, ".+-"): // a key
				q, _ := json.Marshal(word)
				b.Write(q)
			case word == "true" || word == "false" || word == "null":
				b.WriteString(word)
			default:
				if _, err := strconv.ParseFloat(word, 64); err != nil {
					return nil, fmt.Errorf("%q is not a literal", word)
				}
				b.WriteString(word)
			}
			i = j
		}
		if depth == 0 {
			break
		}
	}
	var v any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		return nil, fmt.Errorf("%v in %s", err, b.String())
	}
	return v, nil
}
