package migrations

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// bigTableBuild matches a statement that builds an index or a constraint on a table
// that grows with the workspaces' data: it reads the whole table, 1.6-2.1 s per
// million contacts for the contacts' primary key.
var bigTableBuild = regexp.MustCompile(`(?is)^\s*(CREATE\s+(UNIQUE\s+)?INDEX\b[^;]*\bON\s+(contacts|memberships|segment_bitmaps)\b|ALTER\s+TABLE\s+(contacts|memberships|segment_bitmaps)\b[^;]*\bADD\s+(CONSTRAINT|PRIMARY|UNIQUE))`)

// TestBigBuildsHaveNoStatementTimeout: a migration that builds an index or a constraint
// on a big table sets statement_timeout to 0 before it (the package's rule): the role's
// timeout (15 s for the server) holds in migrations, and a build past it failed with
// 57014, which no retry helps, and the server could not start (20261202000004, from
// about 7M contacts). The first migration, which builds its indexes on empty tables,
// is the exception.
func TestBigBuildsHaveNoStatementTimeout(t *testing.T) {
	names, err := fs.Glob(FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, "20261128000001_") {
			continue
		}
		b, err := fs.ReadFile(FS, name)
		if err != nil {
			t.Fatal(err)
		}
		unlimited := false
		for _, stmt := range statements(string(b)) {
			if regexp.MustCompile(`(?i)^\s*SET\s+LOCAL\s+statement_timeout\s*=\s*0\b`).MatchString(stmt) {
				unlimited = true
			}
			if bigTableBuild.MatchString(stmt) && !unlimited {
				t.Errorf("%s builds on a big table without SET LOCAL statement_timeout = 0 before it:\n%s", name, strings.TrimSpace(stmt))
			}
		}
	}
}

// statements splits sql at the semicolons outside dollar-quoted bodies, with its
// comment lines left out.
func statements(sql string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, line := range strings.SplitAfter(sql, "\n") {
		if !quoted && strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		for _, part := range strings.SplitAfter(line, ";") {
			cur.WriteString(part)
			if strings.Count(part, "$$")%2 == 1 {
				quoted = !quoted
			}
			if !quoted && strings.HasSuffix(part, ";") {
				out = append(out, cur.String())
				cur.Reset()
			}
		}
	}
	return append(out, cur.String())
}

// TestEveryMigrationDeclaresOlderServers: every migration says, on its up file's first
// line, whether servers older than it may keep running beside it: a binary that does
// not know a migration reads that to decide whether it may start (store.Migrate), and
// one that says nothing counts as stop, refusing old servers a harmless migration.
func TestEveryMigrationDeclaresOlderServers(t *testing.T) {
	decls, err := Declarations(FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(decls) == 0 {
		t.Fatal("no migrations found")
	}
	for id, d := range decls {
		if !d.Declared {
			t.Errorf("%s (%s) does not begin with \"-- older servers: keep running: WHY\" or \"-- older servers: stop: WHY\"", d.File, id)
		}
	}
}
