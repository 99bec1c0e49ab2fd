package main

import (
	"flag"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// simpleDefault is a default the code states exactly (one token, no explanation in
// parentheses), which the registered flag and docs/operations.md must show as it is.
func simpleDefault(def string) bool {
	return def != "" && !strings.ContainsAny(def, " ()~")
}

// sameDefault compares a table's default with a flag's, durations by value ("1m"
// is "1m0s").
func sameDefault(table, registered string) bool {
	if table == registered {
		return true
	}
	a, errA := time.ParseDuration(table)
	b, errB := time.ParseDuration(registered)
	return errA == nil && errB == nil && a == b
}

// TestSettingsTable proves that the settings table is the one list of the settings:
// every flag and environment variable serve reads is a row of it, every row of it
// is read, and the defaults the flags are registered with are the table's.
func TestSettingsTable(t *testing.T) {
	var asked []string
	getenv := func(name string) string {
		asked = append(asked, name)
		return ""
	}
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.flags(fs, getenv, true)

	rows := map[string]setting{}
	envs := map[string]bool{}
	for _, s := range settings {
		if s.env == "" || s.usage == "" || s.def == "" {
			t.Errorf("%+v: every setting has an environment variable, a default and a meaning", s)
		}
		if envs[s.env] {
			t.Errorf("%s is in the table twice", s.env)
		}
		envs[s.env] = true
		if s.flag != "" {
			rows[s.flag] = s
		}
	}
	registered := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		registered["--"+f.Name] = true
		s, ok := rows["--"+f.Name]
		switch {
		case !ok:
			t.Errorf("flag --%s is not in the settings table (config.go): add its row", f.Name)
		case !s.readBy("serve"):
			t.Errorf("flag --%s is read by serve, but its row says %q", f.Name, s.commands)
		case simpleDefault(s.def) && f.DefValue != "" && !sameDefault(s.def, f.DefValue): // "": fs.Func states no default
			t.Errorf("flag --%s: registered with default %q, the table says %q", f.Name, f.DefValue, s.def)
		}
	})
	for _, s := range settings {
		if s.flag != "" && s.readBy("serve") && !registered[s.flag] {
			t.Errorf("%s is in the table for serve but not a flag of serve", s.flag)
		}
		if s.readBy("serve") && !slices.Contains(asked, s.env) {
			t.Errorf("%s is in the table for serve but serve does not read it", s.env)
		}
	}
	// A row may stand for the OpenTelemetry SDK's own variables (OTEL_*), which its
	// specification documents.
	otel := slices.ContainsFunc(settings, func(s setting) bool { return strings.Contains(s.usage, "OTEL_*") })
	for _, name := range asked {
		// HOME and XDG_DATA_HOME only place the data directory's default (its row says so).
		if !envs[name] && name != "HOME" && name != "XDG_DATA_HOME" && !(otel && strings.HasPrefix(name, "OTEL_")) {
			t.Errorf("serve reads %s, which is not in the settings table (config.go)", name)
		}
	}
}

// TestServeHelpListsEverySetting proves that "segments serve --help" succeeds and
// shows every setting of serve, each on one line with its flag, environment
// variable, default and meaning; "segments help serve" shows the same.
func TestServeHelpListsEverySetting(t *testing.T) {
	stdout, stderr, err := cli(env(nil), "serve", "--help")
	if err != nil {
		t.Fatalf("serve --help: %v", err)
	}
	help := stdout + stderr
	helpServe, _, err := cli(env(nil), "help", "serve")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(help, "\n")
	n := 0
	for _, s := range settings {
		if !s.readBy("serve") {
			continue
		}
		n++
		found := false
		for _, l := range lines {
			if strings.Contains(l, " "+s.env+" ") && strings.HasPrefix(l, orDash(s.flag)+" ") &&
				strings.Contains(l, s.def) && strings.HasSuffix(l, s.usage) {
				found = true
			}
		}
		if !found {
			t.Errorf("serve --help has no line with %s %s %q %q:\n%s", s.flag, s.env, s.def, s.usage, help)
		}
		if !strings.Contains(helpServe, s.env) {
			t.Errorf("help serve does not show %s", s.env)
		}
	}
	if n < 10 {
		t.Fatalf("only %d settings for serve", n)
	}
}

// TestREADMEConfiguration proves that the Configuration table (docs/operations.md)
// lists every setting of the table (flag and environment variable on one row, and the
// default when it is a plain value), and nothing that is not a setting, so that the
// documentation cannot drift from the code.
func TestREADMEConfiguration(t *testing.T) {
	section := docSection(t, "docs/operations.md", "\n## Configuration\n", "\n## ")
	type row struct{ flag, def string }
	readme := map[string]row{} // by environment variable
	for _, l := range strings.Split(section, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
		if !strings.HasPrefix(l, "|") || len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") || strings.TrimSpace(cells[1]) == "environment" {
			continue
		}
		plain := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "`", "")) }
		readme[plain(cells[1])] = row{flag: plain(cells[0]), def: plain(cells[2])}
	}
	envs := map[string]bool{}
	for _, s := range settings {
		envs[s.env] = true
		r, ok := readme[s.env]
		switch {
		case !ok:
			flagCell := ""
			if s.flag != "" {
				flagCell = "`" + s.flag + "`"
			}
			t.Errorf("docs/operations.md Configuration has no row for %s: add | %s | `%s` | %s | %s |", s.env, flagCell, s.env, s.def, s.usage)
		case r.flag != s.flag:
			t.Errorf("docs/operations.md Configuration: %s has flag %q, the code %q", s.env, r.flag, s.flag)
		case simpleDefault(s.def) && r.def != s.def:
			t.Errorf("docs/operations.md Configuration: %s has default %q, the code %q", s.env, r.def, s.def)
		}
	}
	for name := range readme {
		if !envs[name] {
			t.Errorf("docs/operations.md Configuration lists %s, which is not a setting (config.go)", name)
		}
	}
	if len(readme) == 0 {
		t.Fatal("no rows read from the Configuration table of docs/operations.md")
	}
}

// docSection returns the text of a file of the documentation (a path from the
// repository's root, such as "docs/operations.md") from the line that begins with
// start to the next that begins with end (or the file's end), and fails t when there
// is no start.
func docSection(t *testing.T, file, start, end string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + file)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), start)
	if !ok {
		t.Fatalf("%s has no %q", file, strings.TrimSpace(start))
	}
	section, _, _ = strings.Cut(section, end)
	return section
}

// TestBadSettingsRefusedWhenParsed proves that a listener's address that cannot be
// listened on and an OTLP endpoint that is no http(s) URL stop serve with a usage
// error (exit status 2) naming the flag or variable, before it opens its database:
// they were found only after the embedded PostgreSQL had started, exit status 1.
func TestBadSettingsRefusedWhenParsed(t *testing.T) {
	for _, c := range []struct {
		args []string
		vars map[string]string
		name string // what the error must name
	}{
		{[]string{"--addr", "nonsense"}, nil, "-addr"},
		{[]string{"--addr", "127.0.0.1:70000"}, nil, "-addr"},
		{[]string{"--addr", "bad host:8080"}, nil, "-addr"},
		{nil, map[string]string{"SEGMENTS_ADDR": "nonsense"}, "SEGMENTS_ADDR"},
		{[]string{"--metrics-addr", "bogus"}, nil, "-metrics-addr"},
		{nil, map[string]string{"SEGMENTS_METRICS_ADDR": "127.0.0.1:-1"}, "SEGMENTS_METRICS_ADDR"},
		{[]string{"--debug-addr", "nonsense"}, nil, "-debug-addr"},
		{nil, map[string]string{"SEGMENTS_DEBUG_ADDR": "0.0.0.0:6060"}, "SEGMENTS_DEBUG_ADDR"},
		{[]string{"--otlp-endpoint", "::not a url"}, nil, "--otlp-endpoint"},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "nowhere"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		// 0 removed every deadline, the body's (read before authentication) too.
		{[]string{"--request-timeout", "0"}, nil, "want at least 1s"},
		{nil, map[string]string{"SEGMENTS_REQUEST_TIMEOUT": "0"}, "SEGMENTS_REQUEST_TIMEOUT"},
	} {
		// A database where nothing listens: a setting not refused as it is parsed
		// fails on the database instead, exit status 1, at once.
		vars := map[string]string{"DATABASE_URL": unreachableDB}
		maps.Copy(vars, c.vars)
		_, _, err := cli(env(vars), append([]string{"serve"}, c.args...)...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), c.name) {
			t.Errorf("serve %v %v: got %v (exit status %d), want a usage error naming %s", c.args, c.vars, err, exitCode(err), c.name)
		}
	}
	// What net.Listen takes is taken.
	for _, addr := range []string{"127.0.0.1:8080", ":8080", "[::1]:0", "localhost:http", "[fe80::1%eth0]:80", "db-1.internal:9090"} {
		if err := listenAddr(addr); err != nil {
			t.Errorf("listenAddr(%q) = %v, want it taken", addr, err)
		}
	}
}
