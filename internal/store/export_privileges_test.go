package store

import (
	"context"

	"github.com/segments/segments/internal/store/migrations"
)

// MigrateWithoutPrivileges has s apply its migrations, leaving the privileges of the
// server's role as they grant them (Migrate then makes them what is declared), for
// the tests that compare the two (privileges_test.go).
func MigrateWithoutPrivileges(ctx context.Context, s *Store) ([]string, error) {
	return s.migrate(ctx, migrations.FS, lockTurns, nil)
}

// DeclaredObjects returns the objects appPrivileges declares, as PrivilegeDrift names
// them ("table workspaces"), with whether it grants PUBLIC anything on each.
func DeclaredObjects() map[string]bool {
	out := map[string]bool{}
	for _, d := range appPrivileges {
		out[d.kind+" "+d.name] = d.public != privNone
	}
	return out
}

// SchemaObjects returns the tables, sequences and functions of s's schema, not of
// an extension, as PrivilegeDrift names them.
func SchemaObjects(ctx context.Context, s *Store) ([]string, error) {
	held, err := s.readPrivileges(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range held {
		if h.Kind != kindColumn {
			out = append(out, h.Kind+" "+h.Name)
		}
	}
	return out, nil
}
