package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store/storetest"
)

// cli runs the command and returns its stdout and stderr.
func cli(getenv func(string) string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, getenv, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// printedKey runs a command that must print a key alone on stdout.
func printedKey(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	stdout, stderr, err := cli(getenv, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, stderr)
	}
	key := strings.TrimSuffix(stdout, "\n")
	if _, err := auth.ParseKey(key); err != nil || strings.Contains(key, "\n") {
		t.Fatalf("%v: stdout %q is not a key alone", args, stdout)
	}
	return key
}

// gqlCode sends a request with a bearer credential and returns the HTTP status and the
// first error's code ("" when none), and the data.
func gqlCode(t *testing.T, url, credential, query string) (int, string, json.RawMessage) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+credential)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data   json.RawMessage
		Errors []struct{ Extensions struct{ Code string } }
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	code := ""
	if len(out.Errors) > 0 {
		code = out.Errors[0].Extensions.Code
	}
	return res.StatusCode, code, out.Data
}

const (
	readQuery   = `{ workspace { id name } }`
	writeQuery  = `mutation { createSegment(input: {name: "From the CLI test"}) { segment { id } } }`
	writeQuery2 = `mutation { createSegment(input: {name: "From a rotated key"}) { segment { id } } }`
)

// listRows runs keys list and returns its rows by key ID, each its columns.
func listRows(t *testing.T, getenv func(string) string, workspace string) map[string][]string {
	t.Helper()
	stdout, stderr, err := cli(getenv, "keys", "list", workspace)
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if want := "ID NAME PREFIX SCOPE CREATED EXPIRES LAST USED REVOKED"; strings.Join(strings.Fields(lines[0]), " ") != want {
		t.Fatalf("header %q", lines[0])
	}
	// Columns start where the header's do, counted in characters as tabwriter
	// counts them (a name may be other than ASCII).
	header := lines[0]
	var starts []int
	for _, name := range []string{"ID", "NAME", "PREFIX", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"} {
		starts = append(starts, strings.Index(header, name))
	}
	rows := map[string][]string{}
	for _, line := range lines[1:] {
		l := []rune(line)
		var cols []string
		for i, s := range starts {
			end := len(l)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			cols = append(cols, strings.TrimSpace(string(l[s:end])))
		}
		rows[cols[0]] = cols
	}
	return rows
}

// TestKeysCommands proves the key commands end to end against a running server:
// create (scope, expiry, name; the key alone on stdout), list, rotate with a grace
// period, revoke; and how a workspace is named (name or W_ ID, ambiguity refused).
func TestKeysCommands(t *testing.T) {
	// Without the key cache, so that revocation shows on the very next request (the
	// cache's delay is tested in internal/auth).
	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t), "SEGMENTS_KEY_CACHE_TTL": "0"})
	owner := newWorkspace(t, getenv, "Acme Retail")
	url := start(t, getenv)
	if status, code, _ := gqlCode(t, url, owner, writeQuery); status != 200 || code != "" {
		t.Fatalf("workspace create's key cannot write: %d %s", status, code)
	}

	reader := printedKey(t, getenv, "keys", "create", "Acme Retail", "--scope", "read", "--name", "BI export", "--expires-in", "30d")
	if status, code, _ := gqlCode(t, url, reader, readQuery); status != 200 || code != "" {
		t.Errorf("read key, query: %d %s", status, code)
	}
	if status, code, _ := gqlCode(t, url, reader, writeQuery); status != 200 || code != "FORBIDDEN" {
		t.Errorf("read key, mutation: %d %s, want 200 FORBIDDEN", status, code)
	}
	byDefault := printedKey(t, getenv, "keys", "create", "--name=Default scope", "Acme Retail")
	if _, code, _ := gqlCode(t, url, byDefault, writeQuery); code != "FORBIDDEN" {
		t.Errorf("a key made without --scope can write (%s): the default must be read", code)
	}
	writer := printedKey(t, getenv, "keys", "create", "Acme Retail", "--scope=read_write")
	if _, code, _ := gqlCode(t, url, writer, writeQuery2); code != "" {
		t.Errorf("read_write key, mutation: %s", code)
	}

	rows := listRows(t, getenv, "Acme Retail")
	if len(rows) != 4 {
		t.Fatalf("%d keys listed, want 4: %v", len(rows), rows)
	}
	var readerID, writerID string
	for id, r := range rows {
		switch {
		case r[1] == "BI export":
			readerID = id
			if r[3] != "read" || r[5] == "-" || r[6] == "-" || r[7] != "-" || r[2] != reader[:10] {
				t.Errorf("reader row %q", r)
			}
			if exp, err := time.Parse(time.RFC3339, r[5]); err != nil || time.Until(exp) < 29*24*time.Hour {
				t.Errorf("reader expires %q", r[5])
			}
		case r[2] == writer[:10]:
			writerID = id
			if r[3] != "read_write" || r[5] != "-" || r[1] != "-" {
				t.Errorf("writer row %q", r)
			}
		case r[2] == owner[:10]:
			if r[3] != "read_write" || r[6] == "-" {
				t.Errorf("owner row %q", r)
			}
		}
	}
	if readerID == "" || writerID == "" {
		t.Fatalf("rows %v", rows)
	}

	// Rotation: the old key works during the grace period, next to the new one.
	rotated := printedKey(t, getenv, "keys", "rotate", readerID, "--grace", "1h")
	for _, k := range []string{reader, rotated} {
		if status, code, _ := gqlCode(t, url, k, readQuery); status != 200 || code != "" {
			t.Errorf("after rotation, %s...: %d %s", k[:10], status, code)
		}
	}
	if _, code, _ := gqlCode(t, url, rotated, writeQuery); code != "FORBIDDEN" {
		t.Errorf("the rotated read key writes: %s", code)
	}
	rows = listRows(t, getenv, "Acme Retail")
	if exp, err := time.Parse(time.RFC3339, rows[readerID][5]); err != nil || time.Until(exp) > time.Hour || time.Until(exp) < 58*time.Minute {
		t.Errorf("rotated key expires %q, want in an hour", rows[readerID][5])
	}
	if _, stderr, err := cli(getenv, "keys", "rotate", readerID); err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "already rotated") {
		t.Errorf("rotating twice: %v\n%s", err, stderr)
	}
	// Without grace the old key stops at once.
	writer2 := printedKey(t, getenv, "keys", "rotate", writerID, "--grace", "0")
	if status, _, _ := gqlCode(t, url, writer, readQuery); status != http.StatusUnauthorized {
		t.Errorf("rotated without grace, old key: %d", status)
	}
	if _, code, _ := gqlCode(t, url, writer2, readQuery); code != "" {
		t.Errorf("new key: %s", code)
	}

	// Revocation takes effect on the next request.
	if _, stderr, err := cli(getenv, "keys", "revoke", readerID); err != nil {
		t.Fatalf("revoke: %v\n%s", err, stderr)
	}
	if status, code, _ := gqlCode(t, url, reader, readQuery); status != http.StatusUnauthorized || code != "UNAUTHENTICATED" {
		t.Errorf("revoked key: %d %s", status, code)
	}
	if rows := listRows(t, getenv, "Acme Retail"); rows[readerID][7] == "-" {
		t.Errorf("revoked key listed as %q", rows[readerID])
	}

	// Workspaces by ID; a shared name is refused.
	_, _, data := gqlCode(t, url, owner, readQuery)
	var ws struct{ Workspace struct{ ID string } }
	if err := json.Unmarshal(data, &ws); err != nil || !strings.HasPrefix(ws.Workspace.ID, "W_") {
		t.Fatalf("workspace %s: %v", data, err)
	}
	newWorkspace(t, getenv, "Acme Retail")
	if _, _, err := cli(getenv, "keys", "list", "Acme Retail"); err == nil || !strings.Contains(err.Error(), "several workspaces") {
		t.Errorf("ambiguous name: %v", err)
	}
	if rows := listRows(t, getenv, ws.Workspace.ID); len(rows) != 6 {
		t.Errorf("by ID: %d keys, want 6", len(rows))
	}
	if _, _, err := cli(getenv, "keys", "create", "No Such Workspace"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("unknown workspace: %v", err)
	}
	if _, _, err := cli(getenv, "keys", "revoke", "999999999"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestKeysUsage(t *testing.T) {
	// Where nothing listens: a command line let through cannot make a key anywhere.
	getenv := env(map[string]string{"DATABASE_URL": unreachableDB})
	for _, args := range [][]string{
		{"keys"},
		{"keys", "frobnicate"},
		{"keys", "list"},
		{"keys", "create"},
		{"keys", "create", "Acme", "--scope", "admin"},
		{"keys", "create", "Acme", "--expires-in", "-1h"},
		{"keys", "create", "Acme", "--expires-in", "soon"},
		// A key that expires before it can be used; an empty value (it meant never);
		// more than 100 years, whichever way it is written.
		{"keys", "create", "Acme", "--expires-in", "1ns"},
		{"keys", "create", "Acme", "--expires-in", "1us"},
		{"keys", "create", "Acme", "--expires-in", "59s"},
		{"keys", "create", "Acme", "--expires-in", "0d"},
		{"keys", "create", "Acme", "--expires-in="},
		{"keys", "create", "Acme", "--expires-in", ""},
		{"keys", "create", "Acme", "--expires-in", "36501d"},
		{"keys", "create", "Acme", "--expires-in", "876001h"},
		{"keys", "create", "Acme", "--expires-in", "2562047h"},
		{"keys", "create", "Acme", "--expires-in", "99999999999999999999d"},
		{"keys", "rotate", "1", "--grace", "2562047h"},
		{"keys", "rotate", "1", "--grace="},
		{"keys", "create", "Acme", "--name", strings.Repeat("n", 201)},
		// A name is one line of printable text: these broke keys list's table, and
		// reached the operator's terminal.
		{"keys", "create", "Acme", "--name", "line1\n99  fake  seg_FAKE00  read_write  2026  -  -  -"},
		{"keys", "create", "Acme", "--name", "tab\there"},
		{"keys", "create", "Acme", "--name", "\x1b[2Jcleared"},
		{"keys", "create", "Acme", "--name", "bell\a"},
		{"keys", "create", "Acme", "--name", "abc\u202edcba"},
		{"keys", "rotate"},
		{"keys", "rotate", "abc"},
		{"keys", "rotate", "0"},
		{"keys", "rotate", "1", "--grace", "-1s"},
		{"keys", "rotate", "1", "--grace", "later"},
		{"keys", "revoke", "1", "2"},
		{"keys", "revoke", "--no-such-flag", "1"},
	} {
		_, _, err := cli(getenv, args...)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
	stdout, _, err := cli(getenv, "help", "keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"keys list WORKSPACE", "keys rotate KEY_ID [--grace DURATION]", "W_", "--data-dir"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help keys does not mention %q:\n%s", want, stdout)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"90d", 90 * 24 * time.Hour}, {"36h", 36 * time.Hour}, {"0", 0}, {"1d", 24 * time.Hour},
		{"36500d", 36500 * 24 * time.Hour}, {"876000h", 876000 * time.Hour}} {
		if got, err := parseDays(tc.in); err != nil || got != tc.want {
			t.Errorf("parseDays(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, in := range []string{"", "36501d", "876001h", "2562047h", "-2562047h", "99999999999999999999d", "d", "1.5d"} {
		if got, err := parseDays(in); err == nil {
			t.Errorf("parseDays(%q) = %v, want an error", in, got)
		}
	}
}

// TestServeSessions proves the --jwt-* settings reach the server: with an issuer,
// audience and HS256 secret from the environment and a custom workspace claim, a
// dashboard token acts for its workspace; settings that make no sense stop serve
// before it starts.
func TestServeSessions(t *testing.T) {
	secret := "a shared secret of at least 32 bytes, for the test"
	vars := map[string]string{
		"DATABASE_URL":                 storetest.Database(t),
		"SEGMENTS_JWT_ISSUER":          "https://login.example.com/",
		"SEGMENTS_JWT_AUDIENCE":        "dashboard, segments-api",
		"SEGMENTS_JWT_HS256_SECRET":    secret,
		"SEGMENTS_JWT_WORKSPACE_CLAIM": "https://segments.example/workspace",
	}
	getenv := env(vars)
	key := newWorkspace(t, getenv, "Session Retail")
	url := start(t, getenv)
	_, _, data := gqlCode(t, url, key, readQuery)
	var ws struct{ Workspace struct{ ID, Name string } }
	if err := json.Unmarshal(data, &ws); err != nil {
		t.Fatal(err)
	}
	token := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := jwt.MapClaims{
		"iss": "https://login.example.com/", "aud": "segments-api", "exp": time.Now().Add(time.Minute).Unix(),
		"https://segments.example/workspace": ws.Workspace.ID, "scope": "read_write",
	}
	status, code, data := gqlCode(t, url, token(claims), readQuery)
	if status != 200 || code != "" || !strings.Contains(string(data), "Session Retail") {
		t.Errorf("session: %d %s %s", status, code, data)
	}
	if status, code, _ := gqlCode(t, url, token(claims), writeQuery); status != 200 || code != "" {
		t.Errorf("session with read_write, mutation: %d %s", status, code)
	}
	// Longer than --jwt-max-lifetime, 24 hours by default: refused.
	long := jwt.MapClaims{}
	maps.Copy(long, claims)
	long["exp"] = time.Now().Add(48 * time.Hour).Unix()
	if status, code, _ := gqlCode(t, url, token(long), readQuery); status != http.StatusUnauthorized || code != "UNAUTHENTICATED" {
		t.Errorf("a token valid for 48 hours: %d %s, want 401", status, code)
	}
	delete(claims, "https://segments.example/workspace")
	claims["workspace"] = ws.Workspace.ID
	if status, code, _ := gqlCode(t, url, token(claims), readQuery); status != http.StatusUnauthorized || code != "UNAUTHENTICATED" {
		t.Errorf("workspace in the default claim: %d %s, want 401", status, code)
	}

	for name, args := range map[string][]string{
		"issuer without audience":  {"--jwt-issuer", "https://i.example/", "--jwt-hs256-secret", secret},
		"short secret":             {"--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-hs256-secret", "short"},
		"RS256 without JWKS":       {"--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-hs256-secret", secret, "--jwt-algorithms", "RS256"},
		"alg none":                 {"--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-hs256-secret", secret, "--jwt-algorithms", "none"},
		"JWKS over http":           {"--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-jwks-url", "http://login.example.com/jwks"},
		"secret without an issuer": {"--jwt-hs256-secret", secret},
		"bad refresh interval":     {"--jwt-jwks-min-refresh", "often"},
		"negative max lifetime":    {"--jwt-max-lifetime", "-1h"},
	} {
		_, stderr, err := cli(env(map[string]string{"DATABASE_URL": vars["DATABASE_URL"]}), append([]string{"serve", "--addr", freeAddr(t)}, args...)...)
		if !errors.Is(err, errUsage) {
			t.Errorf("%s: got %v, want a usage error\n%s", name, err, stderr)
		}
	}

	stdout, _, err := cli(env(nil), "help", "serve")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--jwt-issuer", "SEGMENTS_JWT_AUDIENCE", "--jwt-jwks-url", "SEGMENTS_JWT_HS256_SECRET",
		"--jwt-algorithms", "--jwt-workspace-claim", "--jwt-jwks-min-refresh", "--jwt-max-lifetime"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help serve does not mention %s", want)
		}
	}
}

// TestJWTMaxLifetimeSetting proves that --jwt-max-lifetime reaches the verifier, and
// that 0 sets no bound (where the verifier's own 0 means its default).
func TestJWTMaxLifetimeSetting(t *testing.T) {
	secret := "a shared secret of at least 32 bytes, for the test"
	now := time.Now()
	token := func(lifetime time.Duration) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "i", "aud": "a", "iat": now.Unix(), "exp": now.Add(lifetime).Unix(), "workspace": "W_AQ",
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		setting  time.Duration
		lifetime time.Duration
		ok       bool
	}{
		{24 * time.Hour, time.Hour, true},
		{24 * time.Hour, 25 * time.Hour, false},
		{time.Hour, 2 * time.Hour, false},
		{0, 10 * 365 * 24 * time.Hour, true},
	} {
		c := config{jwtIssuer: "i", jwtAudience: "a", jwtSecret: secret, jwtWorkspaceClaim: "workspace", jwtMaxLifetime: tc.setting}
		v, err := c.jwtVerifier(slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), token(tc.lifetime)); (err == nil) != tc.ok {
			t.Errorf("--jwt-max-lifetime %v, a token of %v: %v, want accepted %v", tc.setting, tc.lifetime, err, tc.ok)
		}
	}
}

// TestKeyExpiryOfAMinute: the shortest --expires-in, a minute, makes a key that
// expires in a minute (a shorter one, which expired before it could be used, is a
// usage error: TestKeysUsage).
func TestKeyExpiryOfAMinute(t *testing.T) {
	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t)})
	printedKey(t, getenv, "workspace", "create", "Brief")
	printedKey(t, getenv, "keys", "create", "Brief", "--expires-in", "1m")
	found := 0
	for _, row := range listRows(t, getenv, "Brief") {
		if row[3] == "read" { // the key made above (the workspace's first is read_write)
			found++
			exp, err := time.Parse(time.RFC3339, row[5])
			if left := time.Until(exp); err != nil || left > time.Minute || left < 50*time.Second {
				t.Errorf("--expires-in 1m made a key that expires %q", row[5])
			}
		}
	}
	if found != 1 {
		t.Errorf("%d read keys, want 1", found)
	}
}

// workspaceID runs workspace create and returns the workspace's ID, from its log.
func workspaceID(t *testing.T, getenv func(string) string, name string) string {
	t.Helper()
	_, stderr, err := cli(getenv, "workspace", "create", name)
	if err != nil {
		t.Fatalf("workspace create %q: %v\n%s", name, err, stderr)
	}
	m := regexp.MustCompile(`workspace created.* id=(W_\S+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("workspace create logs no ID:\n%s", stderr)
	}
	return m[1]
}

// TestKeysRefuseAnIDThatIsAlsoAName: an argument that is one workspace's ID and
// another's name (a name made before workspace create refused them) is refused by
// the keys commands, which say how to name each; keys create W_AQ made a key for
// workspace W_AQ when the operator meant the workspace named W_AQ, and keys list
// listed W_AQ's keys. A workspace named by its own ID is no ambiguity.
func TestKeysRefuseAnIDThatIsAlsoAName(t *testing.T) {
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	demo := workspaceID(t, getenv, "Demo")
	impostor := workspaceID(t, getenv, "Impostor")
	conn := storetest.Conn(t, dbURL)
	rename := func(id, name string) {
		t.Helper()
		n, err := globalid.DecodeAs(globalid.Workspace, id)
		if err != nil {
			t.Fatal(err)
		}
		// Behind the store's back, as a name stored before it refused IDs.
		if _, err := conn.Exec(context.Background(), `UPDATE workspaces SET name = $1 WHERE id = $2`, name, n); err != nil {
			t.Fatal(err)
		}
	}
	rename(impostor, demo)

	for _, args := range [][]string{{"keys", "list", demo}, {"keys", "create", demo, "--scope", "read_write"}} {
		stdout, stderr, err := cli(getenv, args...)
		if err == nil || stdout != "" {
			t.Errorf("%v: %v, stdout %q; want it refused\n%s", args, err, stdout, stderr)
			continue
		}
		for _, want := range []string{"ID of", "name of", impostor, `"Demo"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %q does not say %q", args, err, want)
			}
		}
	}
	if rows := listRows(t, getenv, "Demo"); len(rows) != 1 {
		t.Errorf("Demo has %d keys, want its first alone", len(rows))
	}
	if rows := listRows(t, getenv, impostor); len(rows) != 1 {
		t.Errorf("the workspace named %s has %d keys, want its first alone", demo, len(rows))
	}

	rename(demo, demo)
	if _, _, err := cli(getenv, "keys", "list", demo); err == nil || !strings.Contains(err.Error(), "renamed") {
		t.Errorf("two workspaces named %s, one of them by its own ID: %v, want it refused", demo, err)
	}
	rename(impostor, "Impostor")
	if rows := listRows(t, getenv, demo); len(rows) != 1 {
		t.Errorf("a workspace named by its own ID: %d keys, want 1", len(rows))
	}
}

// TestKeysListEscapesNames: keys list shows a name that is not plain printable text
// quoted, with Go's escapes, so that a name stored before names were checked cannot
// break the table: a line break faked a row, a tab shifted the columns, an escape
// sequence reached the operator's terminal and a bidi override reversed the row. A
// name that could be read as quoted, or as none ("-"), is quoted too.
func TestKeysListEscapesNames(t *testing.T) {
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	workspaceID(t, getenv, "Escapes")
	names := map[string]string{
		"line1\n99  fake  seg_FAKE00  read_write  2026  -  -  -": `"line1\n99  fake  seg_FAKE00  read_write  2026  -  -  -"`,
		"tab\there":            `"tab\there"`,
		"\x1b[2Jcleared":       `"\x1b[2Jcleared"`,
		"abc\u202edcba":        `"abc\u202edcba"`,
		"-":                    `"-"`,
		`"quoted"`:             `"\"quoted\""`,
		"Café 👨\u200d👩\u200d👧": `"Café 👨\u200d👩\u200d👧"`,
		"BI export":            "BI export",
		"Café":                 "Café",
	}
	conn := storetest.Conn(t, dbURL)
	for name := range names {
		printedKey(t, getenv, "keys", "create", "Escapes", "--name", "placeholder")
		// Behind the store's back, as a name stored before names were checked.
		if _, err := conn.Exec(context.Background(), `UPDATE api_keys SET name = $1 WHERE name = 'placeholder'`, name); err != nil {
			t.Fatal(err)
		}
	}
	stdout, _, err := cli(getenv, "keys", "list", "Escapes")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stdout, "\n"); n != 1+1+len(names) || strings.ContainsAny(stdout, "\t\x1b\u202e") {
		t.Fatalf("keys list printed %d lines for %d keys, or control characters:\n%s", n, 1+len(names), stdout)
	}
	listed := map[string]bool{}
	for _, row := range listRows(t, getenv, "Escapes") {
		listed[row[1]] = true
	}
	for name, want := range names {
		if !listed[want] {
			t.Errorf("name %q is not listed as %s: %v", name, want, listed)
		}
	}
}
