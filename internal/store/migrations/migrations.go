// Package migrations holds the versioned SQL that builds the database, embedded in the
// binary so that a deployed server migrates without its source tree.
//
// Files are named YYYYMMDDHHMMSS_name.tx.up.sql (and .tx.down.sql); each runs in one
// transaction. Never edit a migration that has landed: add a new one.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
