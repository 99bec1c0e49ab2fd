// Package migrations holds the versioned SQL that builds the database, embedded in the
// binary so that a deployed server migrates without its source tree.
//
// Files are named YYYYMMDDHHMMSS_name.tx.up.sql (and .tx.down.sql); each runs in one
// transaction. Never edit a migration that has landed: add a new one. The role's
// statement_timeout (see store.Options) holds in migrations too: one that may run
// long, such as an index on a big table, starts with SET LOCAL statement_timeout = 0.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
