package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// logCall finds a call that logs a warning or an error (on a logger named log or
// logger), and logMessage, within it, its literal message (its start, when the message
// is built: "listener of "+what).
var (
	logCall    = regexp.MustCompile(`(?i:log(?:ger)?)\.(?:Warn|Error)(?:Context)?\(`)
	logMessage = regexp.MustCompile(logCall.String() + `(?:[\w.]+(?:\(\))?, )?"([^"]+)"`)
)

// TestREADMEListsTheLogsToAlertOn proves that the table of the lines the server
// logs at WARN and ERROR (docs/observability.md) names every such line of the
// server's code, and no line the code no longer logs: an operator alerts on that
// table. A row's message ending in "..." stands for every message that begins so,
// and a row names a message by its start (the statistics' warning goes on after a
// semicolon).
func TestREADMEListsTheLogsToAlertOn(t *testing.T) {
	section := docSection(t, "docs/observability.md", "\n**Logs.**", "\n**Metrics.**")
	var rows []string
	for _, l := range strings.Split(section, "\n") {
		cells := strings.Split(l, "|")
		if !strings.HasPrefix(l, "| `") || len(cells) < 4 {
			continue
		}
		rows = append(rows, strings.TrimSuffix(strings.Trim(strings.TrimSpace(cells[2]), "`"), "..."))
	}

	var logged []string // "path: message"
	root := filepath.Join("..", "..")
	for _, dir := range []string{"cmd/segments", "graph", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "generated") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			messages := logMessage.FindAllStringSubmatch(string(src), -1)
			if calls := len(logCall.FindAllString(string(src), -1)); calls != len(messages) {
				t.Errorf("%s logs %d warnings or errors, %d of them with a message this test can read: begin each message with a string literal", path, calls, len(messages))
			}
			for _, m := range messages {
				logged = append(logged, path+": "+m[1])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	used := make([]bool, len(rows))
	for _, l := range logged {
		_, msg, _ := strings.Cut(l, ": ")
		found := false
		for i, row := range rows {
			if strings.HasPrefix(msg, row) {
				found, used[i] = true, true
			}
		}
		if !found {
			t.Errorf("%s: the table of warnings and errors (docs/observability.md, Logs) has no row for %q", l, msg)
		}
	}
	for i, row := range rows {
		if !used[i] {
			t.Errorf("the table of warnings and errors (docs/observability.md) lists %q, which the code does not log", row)
		}
	}
	if len(logged) < 15 || len(rows) < 10 {
		t.Fatalf("%d messages logged, %d rows read: did the code's or docs/observability.md's form change?", len(logged), len(rows))
	}
}
