package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

func TestMain(m *testing.M) {
	// Tests that need a real process of the command (signals, exit codes) run this
	// test binary again as the command itself.
	if os.Getenv(asCommand) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(storetest.Main(m))
}

// asCommand, set to 1 in the environment, makes the test binary act as the command.
const asCommand = "SEGMENTS_TEST_AS_COMMAND"

// env returns a getenv that knows only vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// start runs "segments serve" until the test ends, and returns its base URL.
func start(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	url, _ := startLogged(t, getenv, args...)
	return url
}

// startLogged is start that also returns what serve writes to stderr, its log.
func startLogged(t *testing.T, getenv func(string) string, args ...string) (string, *logtest.Buffer) {
	t.Helper()
	// freeAddr's port is free when it returns, not when serve listens: another
	// test's process (a PgBouncer, a database) may take it in between. Serve then
	// exits at once; try another port.
	for attempt := 1; ; attempt++ {
		url, stderr, err := startAt(t, freeAddr(t), getenv, args...)
		if err == nil {
			return url, stderr
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// startAt runs serve on addr until the test ends and returns its URL and its stderr,
// or the error of a serve that exited before it answered.
func startAt(t *testing.T, addr string, getenv func(string) string, args ...string) (string, *logtest.Buffer, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stdout, stderr logtest.Buffer
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", addr}, args...), getenv, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v\n%s", err, stderr.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(url + "/livez")
		if err == nil {
			res.Body.Close()
			return url, &stderr, nil
		}
		select {
		case err := <-done:
			done <- nil // for the cleanup, which waits for serve to return
			return "", nil, fmt.Errorf("serve exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// workspaceName asks the API which workspace key acts for.
func workspaceName(t *testing.T, url, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", strings.NewReader(`{"query":"{ workspace { name } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			Workspace struct{ Name string } `json:"workspace"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Data.Workspace.Name
}

// newWorkspace runs "segments workspace create" and returns its stdout, which must
// be the key alone.
func newWorkspace(t *testing.T, getenv func(string) string, name string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"workspace", "create", name}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("workspace create: %v\n%s", err, stderr.String())
	}
	key := strings.TrimSuffix(stdout.String(), "\n")
	if strings.Contains(key, "\n") {
		t.Fatalf("stdout holds more than the key: %q", stdout.String())
	}
	if _, err := auth.ParseKey(key); err != nil {
		t.Fatalf("stdout %q is not an API key: %v", key, err)
	}
	return key
}

func TestServeWithDatabaseURL(t *testing.T) {
	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t)})
	url := start(t, getenv)
	// A workspace created while the server runs works at once.
	key := newWorkspace(t, getenv, "Acme Retail")
	if got := workspaceName(t, url, key); got != "Acme Retail" {
		t.Fatalf("workspace %q, want Acme Retail", got)
	}
	res, err := http.Get(url + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res, err = http.Get(url + "/")
	if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("playground: %v %v", res, err)
	}
}

// TestServeLogsNetHTTPsLines: the lines net/http logs itself (here an accept error:
// the process is out of file descriptors) are records of the server's log, WARN in
// its JSON. They went to the process's stderr as plain text, past --log-format json.
func TestServeLogsNetHTTPsLines(t *testing.T) {
	p := startProcess(t, storetest.Database(t), "--log-format", "json")
	pid := p.cmd.Process.Pid
	var limit unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &limit); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Room for two more descriptors, then ten connections: accept fails.
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(len(open) + 2), Max: limit.Max}, nil); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(p.url, "http://")
	for range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for found := false; !found; {
		for _, rec := range p.stderr.JSONLines(t) { // fails at a line that is not JSON
			if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, "http: Accept error") {
				found = true
				if rec["level"] != "WARN" || !strings.Contains(msg, "too many open files") {
					t.Errorf("net/http's accept error: %v", rec)
				}
			}
		}
		if !found && time.Now().After(deadline) {
			t.Fatalf("net/http's accept error is not in the server's log:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &limit, nil); err != nil {
		t.Fatal(err)
	}
}

func TestServeWithEmbeddedDatabase(t *testing.T) {
	getenv := env(map[string]string{"SEGMENTS_DATA_DIR": storetest.ServerDir(t)})

	// Before any server: the command starts the database itself, and stops it after.
	first := newWorkspace(t, getenv, "First")
	url := start(t, getenv, "--demo")
	// While the server runs: the command joins the server's database.
	second := newWorkspace(t, getenv, "Second")
	for key, want := range map[string]string{first: "First", second: "Second"} {
		if got := workspaceName(t, url, key); got != want {
			t.Fatalf("workspace %q, want %q", got, want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"seed"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("seed: %v\n%s", err, stderr.String())
	}
	if got := workspaceName(t, url, strings.TrimSpace(stdout.String())); got != "Demo" {
		t.Fatalf("seed key acts for %q, want Demo", got)
	}
}

// TestServeStartsItsDatabaseAgain: a serve whose embedded PostgreSQL was killed failed
// every request with 503 until it was restarted itself, while /livez said 200.
func TestServeStartsItsDatabaseAgain(t *testing.T) {
	dir := storetest.ServerDir(t)
	getenv := env(map[string]string{"SEGMENTS_DATA_DIR": dir})
	key := newWorkspace(t, getenv, "Kept")
	url, log := startLogged(t, getenv)
	b, err := os.ReadFile(filepath.Join(dir, "pgdata", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, err := status(url + "/readyz"); err == nil && code == http.StatusOK && strings.Contains(log.String(), "it runs again") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's database was not started again within 60 s\n%s", log.String())
		}
	}
	if got := workspaceName(t, url, key); got != "Kept" {
		t.Fatalf("after the database was started again, the key acts for %q, want Kept\n%s", got, log.String())
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr.String())
	}
	// A newer version of the service migrated this database further.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(),
		"INSERT INTO bun_migrations (name, group_id, migrated_at) VALUES ('29991231000000_future', 99, now())"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"migrate"}, {"serve", "--addr", freeAddr(t)}, {"workspace", "create", "X"}, {"check"}, {"check", "--repair"}} {
		err := run(context.Background(), args, getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "newer version") {
			t.Errorf("%v: got %v, want a refusal naming the newer version", args, err)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"workspace"}, {"workspace", "create"}, {"serve", "--no-such-flag"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, env(nil), &stdout, &stderr)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"help", "serve"}, env(nil), &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DATABASE_URL", "SEGMENTS_ADDR", "--data-dir"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help serve does not mention %s:\n%s", want, stdout.String())
		}
	}
}

// TestDatabaseURLWithAnAt: a database URL whose password holds an '@' not
// percent-encoded is refused before anything connects, as a setting that does not
// parse (exit status 2), in words that echo none of it. pgx took the rest of the
// password for the host, and the command failed to connect with "lookup
// retPW7@127.0.0.1: no such host". Encoded, or in a keyword/value string, it is the
// password.
func TestDatabaseURLWithAnAt(t *testing.T) {
	const bad = "postgres://segments:Sec@retPW7@127.0.0.1:1/x"
	for _, c := range []struct {
		name string
		args []string
	}{
		{"DATABASE_URL", []string{"migrate"}},
		{"DATABASE_URL", []string{"serve", "--addr", "127.0.0.1:0"}},
		{"SEGMENTS_APP_DATABASE_URL", []string{"serve", "--addr", "127.0.0.1:0"}},
	} {
		vars := map[string]string{"DATABASE_URL": unreachableDB, c.name: bad}
		_, stderr, err := cli(env(vars), c.args...)
		if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), c.name+": more than one '@'") || !strings.Contains(err.Error(), "%40") {
			t.Errorf("%s %v: exit status %d: %v, want 2 and the problem named", c.name, c.args, exitCode(err), err)
		}
		for _, part := range []string{"Sec", "retPW7"} {
			if err != nil && strings.Contains(err.Error()+stderr, part) {
				t.Errorf("%s %v: the refusal shows %q: %v", c.name, c.args, part, err)
			}
		}
	}
	for _, good := range []string{
		"postgres://segments:Sec%40retPW7@127.0.0.1:1/x?connect_timeout=2",
		"host=127.0.0.1 port=1 user=segments password=Sec@retPW7 dbname=x connect_timeout=2",
	} {
		// Parsed, it reaches the connection, which fails (nothing listens there).
		_, _, err := cli(env(map[string]string{"DATABASE_URL": good}), "migrate")
		if err == nil || exitCode(err) != 1 || strings.Contains(err.Error(), "'@'") {
			t.Errorf("%s: %v (exit status %d), want a failure to connect", good, err, exitCode(err))
		}
	}
}

// unreachableDB is a DATABASE_URL where nothing listens: a command that gets past its
// command line fails on it at once, which no usage error does.
const unreachableDB = "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"

// TestFlagsAfterArguments proves that every command takes its flags after its
// arguments as well as before (workspace create took "Beta --data-dir d" for the
// workspace's name), and that a command given arguments it does not take refuses
// them with a usage error rather than ignore them.
func TestFlagsAfterArguments(t *testing.T) {
	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t)})
	for _, name := range [][]string{{"Beta"}, {"Acme", "Retail"}} {
		args := append(append([]string{"workspace", "create"}, name...), "--data-dir", t.TempDir())
		printedKey(t, getenv, args...)
		if _, stderr, err := cli(getenv, "keys", "list", strings.Join(name, " ")); err != nil {
			t.Errorf("%v made no workspace %q: %v\n%s", args, strings.Join(name, " "), err, stderr)
		}
	}
	bad := env(map[string]string{"DATABASE_URL": unreachableDB})
	for _, args := range [][]string{
		{"seed", "extra", "junk"},
		{"migrate", "junk"},
		{"serve", "--addr", "127.0.0.1:0", "extra-arg"},
		{"serve", "--demo", "extra-arg"}, // --demo takes no value
		{"check", "--repair", "now"},
		{"bench-data", "--contacts", "10", "more"},
		{"workspace", "create", "--data-dir", t.TempDir()},
		// A flag that needs a value, given last without one: it took the "--" that
		// ends the flags for its value (a cluster in ./--, a key named --).
		{"workspace", "create", "Foo", "--data-dir"},
		{"migrate", "--data-dir"},
		{"keys", "create", "W_AQ", "--name"},
		// Or followed by another flag, or by "--": it took that for its value.
		{"migrate", "--data-dir", "--help"},
		{"workspace", "create", "Foo", "--data-dir", "--", "bar"},
		{"keys", "create", "W_AQ", "--name", "--data-dir", t.TempDir()},
		{"migrate", "--data-dir="}, // a cluster in the working directory
		// One WORKSPACE: these looked for a workspace named "W_AQ extra".
		{"keys", "list", "W_AQ", "extra"},
		{"keys", "create", "Acme", "Retail", "--scope", "read"},
		{"version", "--data-dir", "x"},
	} {
		_, _, err := cli(bad, args...)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestHelp proves that help names commands exactly: an unknown one, or a part of a
// name ("e", of "serve"), is a usage error, not an empty or another command's list of
// settings; that "keys --help" and "workspace --help" print their command's help and
// succeed; and that the keys' help says how long a running server may still accept a
// revoked key.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "bogus"}, {"help", "e"}, {"help", "keys", "frobnicate"}, {"help", "serve", "now"}} {
		stdout, _, err := cli(env(nil), args...)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 || strings.Contains(stdout, "Settings of") {
			t.Errorf("%v: %v, want a usage error and no settings\n%s", args, err, stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "--help"}, "keys list WORKSPACE"},
		{[]string{"keys", "-h"}, "keys list WORKSPACE"},
		{[]string{"workspace", "--help"}, "workspace create NAME"},
		{[]string{"workspace", "-h"}, "workspace create NAME"},
		{[]string{"help", "keys", "create"}, "keys create WORKSPACE"},
		{[]string{"help", "workspace", "create"}, "workspace create NAME"},
		{[]string{"help", "keys"}, "--key-cache-ttl"},
		{[]string{"help", "help"}, "segments help [command]"}, // as the usage lists it
	} {
		stdout, stderr, err := cli(env(nil), tc.args...)
		if err != nil || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%v: %v, want success and %q\n%s%s", tc.args, err, tc.want, stdout, stderr)
		}
	}
	stdout, _, err := cli(env(nil), "help", "keys")
	if err != nil || strings.Contains(stdout, "SEGMENTS_ADDR") || !strings.Contains(stdout, "DATABASE_URL") {
		t.Errorf("help keys: %v, want the settings keys reads and not serve's\n%s", err, stdout)
	}
}

// TestWorkspaceCreateChecksTheName proves that workspace create (and bench-data
// --workspace) refuses, before it opens the database, a name the store would not
// keep: spelled as a workspace's ID (workspace create W_AQ hid workspace W_AQ from
// the key commands, which acted on W_AQ instead), with control characters (a line
// break, BEL, ESC, a bidi override), or longer than 200 characters; and that a name
// another workspace has is made but warned of on stderr, naming the other's ID.
func TestWorkspaceCreateChecksTheName(t *testing.T) {
	bad := env(map[string]string{"DATABASE_URL": unreachableDB})
	for _, name := range []string{"W_AQ", "W_Aw", " W_AQ ", "line1\nline2", "bell\a", "clear\x1b[2J", "abc\u202edcba",
		strings.Repeat("n", 201), strings.Repeat("n", 100_000)} {
		for _, args := range [][]string{{"workspace", "create", name}, {"bench-data", "--workspace", name}} {
			stdout, _, err := cli(bad, args...)
			if !errors.Is(err, errUsage) || exitCode(err) != 2 || stdout != "" {
				t.Errorf("%s %s: %v, stdout %q; want a usage error", args[0], crm.QuoteInput(name), err, stdout)
			} else if strings.ContainsAny(err.Error(), "\n\a\x1b\u202e") {
				t.Errorf("%s %s: the error holds the name's control characters: %q", args[0], crm.QuoteInput(name), err)
			}
		}
	}

	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t)})
	_, stderr, err := cli(getenv, "workspace", "create", "Twin")
	if err != nil || strings.Contains(stderr, "level=WARN") {
		t.Fatalf("first Twin: %v\n%s", err, stderr)
	}
	first := regexp.MustCompile(`id=(W_\S+)`).FindStringSubmatch(stderr)
	if first == nil {
		t.Fatalf("workspace create logs no ID:\n%s", stderr)
	}
	stdout, stderr, err := cli(getenv, "workspace", "create", "Twin")
	if err != nil || !strings.HasPrefix(stdout, "seg_") {
		t.Fatalf("second Twin: %v, stdout %q\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, first[1]) {
		t.Errorf("a second workspace named Twin is not warned of, with the first's ID %s:\n%s", first[1], stderr)
	}
	_, stderr, err = cli(getenv, "workspace", "create", " Cafe\u0301\n")
	if err != nil || !strings.Contains(stderr, `workspace=Café `) {
		t.Errorf("workspace create does not say the name it keeps (Café): %v\n%s", err, stderr)
	}
}

// TestServeOnReadOnlyDatabase: a server starts on a database that takes no writes
// (default_transaction_read_only for maintenance, a hot standby after a failover)
// whose schema is up to date, and answers queries; writes are UNAVAILABLE. It could
// not start at all: it migrated and set its roles' defaults, writes refused there, so
// every server restarted during the window stayed down.
func TestServeOnReadOnlyDatabase(t *testing.T) {
	if storetest.ThroughPgBouncer() {
		t.Skip("PgBouncer's pooled sessions were begun writable")
	}
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	key := newWorkspace(t, getenv, "Standby")
	// A server ran here before: the requests' role has its login.
	if _, err := store.AppURL(context.Background(), dbURL); err != nil {
		t.Fatal(err)
	}
	conn := storetest.Conn(t, dbURL)
	if _, err := conn.Exec(context.Background(),
		`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}

	url, log := startLogged(t, getenv)
	if got := workspaceName(t, url, key); got != "Standby" {
		t.Fatalf("a server started on a read-only database: the key acts for %q, want Standby\n%s", got, log.String())
	}
	if _, code, _ := gqlCode(t, url, key, writeQuery); code != "UNAVAILABLE" {
		t.Errorf("a write to a read-only database: %q, want UNAVAILABLE", code)
	}
	if !strings.Contains(log.String(), "database is read-only") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("the log does not say the database is read-only, or says it as an error:\n%s", log.String())
	}

	// One that lacks a migration this binary needs is refused, saying why.
	if _, err := conn.Exec(context.Background(), `BEGIN READ WRITE;
		DELETE FROM bun_migrations WHERE name = (SELECT max(name) FROM bun_migrations); COMMIT`); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--addr", freeAddr(t)}, getenv, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "takes no writes now") || !strings.Contains(err.Error(), "lacks migrations") {
		t.Errorf("serve on a read-only database that lacks a migration: %v, want a refusal saying so", err)
	}
}
