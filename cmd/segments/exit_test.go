package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
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
