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
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
