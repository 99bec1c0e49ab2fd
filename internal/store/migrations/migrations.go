// Package migrations holds the versioned SQL that builds the database, embedded in the
// binary so that a deployed server migrates without its source tree.
//
// Files are named YYYYMMDDHHMMSS_name.tx.up.sql (and .tx.down.sql); each runs in one
// transaction. Never edit a migration that has landed: add a new one. The role's
// statement_timeout (see store.Options) holds in migrations too: one that may run
// long, such as an index on a big table, starts with SET LOCAL statement_timeout = 0.
// Each migration's transaction waits for a lock at most its turn's lock_timeout (100
// ms to 5 s) and runs again if it could not take one (store.Migrate): write it so
// that running it again after a rollback is the same as running it once, which a
// transaction gives, and so that what it locks it holds briefly, since requests
// queue behind it while it runs.
//
// Each up file's first line says whether servers older than the migration may keep
// running on the database it migrated: "-- older servers: keep running: WHY" when it
// only adds what they do not use or cannot tell from before (a table, a column with
// a default or nullable, an index, a trigger, a function's body), "-- older servers:
// stop: WHY" otherwise. The migrator records it in the database
// (migration_compatibility), where a binary that does not know the migration reads
// it: it starts beside it, warning, only when it says keep running (store.Migrate).
// A file without the line counts as stop; a test refuses it.
package migrations

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS

// header is an up file's first line: what servers older than the migration may do.
var header = regexp.MustCompile(`^-- older servers: (keep running|stop)(:|$)`)

// Declaration is what a migration says of the servers older than it.
type Declaration struct {
	File        string // its up file
	KeepRunning bool   // they may keep running on the database it migrated
	Declared    bool   // its first line says so; without, it counts as stop
}

// Declarations reads what each up file of fsys declares, by the migration's ID (the
// digits before its name's first underscore, which Bun records).
func Declarations(fsys fs.FS) (map[string]Declaration, error) {
	names, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		return nil, err
	}
	out := make(map[string]Declaration, len(names))
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		first := ""
		if sc.Scan() {
			first = sc.Text()
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", name, err)
		}
		id, _, _ := strings.Cut(name, "_")
		d := Declaration{File: name}
		if m := header.FindStringSubmatch(first); m != nil {
			d.Declared, d.KeepRunning = true, m[1] == "keep running"
		}
		out[id] = d
	}
	return out, nil
}

// Names returns the full names of the migrations of fsys (ID_name, as Bun's
// Migration.String and migrate --status spell them), oldest first.
func Names(fsys fs.FS) ([]string, error) {
	files, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(files)) // Glob sorts them, and IDs are timestamps
	for i, f := range files {
		names[i] = strings.TrimSuffix(strings.TrimSuffix(f, ".up.sql"), ".tx")
	}
	return names, nil
}
