package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

// TestExitLineInLogFormat proves that the line saying why the command died is in the
// log's format: with --log-format json or SEGMENTS_LOG_FORMAT=json, stderr is JSON
// records only, the last one at ERROR with the error and the exit status (the error,
// printed as text over several lines, was what a log pipeline reading JSON lost);
// without, the error's text as before.
func TestExitLineInLogFormat(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		format string // SEGMENTS_LOG_FORMAT
		json   bool
	}{
		{"serve --log-format json", []string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, "", true},
		{"serve SEGMENTS_LOG_FORMAT=json", []string{"serve", "--addr", "127.0.0.1:0"}, "json", true},
		{"serve in text", []string{"serve", "--addr", "127.0.0.1:0"}, "", false},
		// The commands other than serve, migrate as a deploy job foremost, took
		// neither the flag nor the variable.
		{"migrate --log-format json", []string{"migrate", "--log-format", "json"}, "", true},
		{"migrate SEGMENTS_LOG_FORMAT=json", []string{"migrate"}, "json", true},
		{"check SEGMENTS_LOG_FORMAT=json", []string{"check"}, "json", true},
		{"keys list --log-format json", []string{"keys", "list", "Acme", "--log-format", "json"}, "", true},
		{"seed SEGMENTS_LOG_FORMAT=json", []string{"seed"}, "json", true},
		{"migrate in text", []string{"migrate"}, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], c.args...)
			cmd.Env = append(os.Environ(), asCommand+"=1", "DATABASE_URL="+unreachableDB, "SEGMENTS_LOG_FORMAT="+c.format)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("got %v, want exit status 1\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if !c.json {
				if !strings.Contains(stderr.String(), "segments: ") || !strings.Contains(stderr.String(), "127.0.0.1") {
					t.Fatalf("stderr does not say why in text:\n%s", stderr.String())
				}
				return
			}
			var last map[string]any
			for _, l := range lines {
				last = nil
				if err := json.Unmarshal([]byte(l), &last); err != nil {
					t.Fatalf("a line of stderr is no JSON record: %q\n%s", l, stderr.String())
				}
			}
			if msg, _ := last["err"].(string); last["level"] != "ERROR" || last["msg"] != "exiting" ||
				!strings.Contains(msg, "127.0.0.1") || last["exit_status"] != 1.0 {
				t.Fatalf("last record %v, want exiting at ERROR with the error and exit status 1\n%s", last, stderr.String())
			}
		})
	}
}

// TestCommandsLogInJSON proves that the commands other than serve log in JSON with
// --log-format json or SEGMENTS_LOG_FORMAT=json, every line of their stderr a
// record, while what they print on stdout (a key, a listing, a report) stays as it
// is.
func TestCommandsLogInJSON(t *testing.T) {
	db := storetest.Database(t)
	for _, c := range []struct {
		args   []string
		format string // SEGMENTS_LOG_FORMAT
		msg    string // a record stderr must hold, "" for none
		stdout string // what stdout must hold
	}{
		{[]string{"workspace", "create", "Json Retail", "--log-format", "json"}, "", "workspace created", "seg_"},
		{[]string{"keys", "list", "Json Retail"}, "json", "API keys", "PREFIX"},
		{[]string{"migrate", "--log-format", "json"}, "", "", "schema up to date"},
		{[]string{"check"}, "json", "", "no drift"},
		{[]string{"seed", "--log-format=json"}, "", "", "seg_"},
	} {
		stdout, stderr, err := cli(env(map[string]string{"DATABASE_URL": db, "SEGMENTS_LOG_FORMAT": c.format}), c.args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, stderr)
		}
		if !strings.Contains(stdout, c.stdout) || strings.HasPrefix(stdout, "{") {
			t.Errorf("%v: stdout %q, want its own output with %q", c.args, stdout, c.stdout)
		}
		found := c.msg == ""
		for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
			var rec map[string]any
			if l == "" && stderr == "" {
				break
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Errorf("%v: a line of stderr is no JSON record: %q", c.args, l)
				continue
			}
			msg, _ := rec["msg"].(string)
			found = found || strings.HasPrefix(msg, c.msg)
		}
		if !found {
			t.Errorf("%v: stderr has no record %q:\n%s", c.args, c.msg, stderr)
		}
	}
}
