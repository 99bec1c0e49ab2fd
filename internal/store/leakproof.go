package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Under row-level security PostgreSQL evaluates a query's own conditions after the
// policy's unless their functions are leakproof, and then cannot use them to choose
// an index: so migrations 20261129000001_rls and
// 20261219000002_attribute_conditions_leakproof declare the built-in functions of the
// indexed conditions leakproof, as a superuser. The declaration lives in the
// database's pg_catalog, which no dump holds: pg_dump and pg_restore into a new
// database, or pg_upgrade, drop it without a word, and then every search and
// attribute condition of the server's role reads the workspace's every contact (at
// 1M contacts, a count of city = Pune read 31,941 buffers in 403 ms instead of ~30
// ms). So every run of the migrations declares them again as a superuser, warning
// when it cannot (Migrate), CheckLeakproof reports them for segments check, and
// RepairLeakproof repairs them for check --repair. A test holds leakproofFunctions
// to the migrations' ALTER FUNCTION ... LEAKPROOF lines.

// Leakproof is a built-in function a migration declares leakproof.
type Leakproof struct {
	// Function is the function as ALTER FUNCTION names it:
	// "pg_catalog.textcat(text, text)".
	Function string
	// Use is the operator or call of the conditions it serves: "||", "lower()".
	Use string
	// Serves is what reads every contact of the workspace under row-level security
	// while it is not leakproof: "searches", "attribute conditions".
	Serves string
}

// leakproofFunctions are the functions the migrations declare leakproof, in their
// order.
var leakproofFunctions = []Leakproof{
	// 20261129000001_rls: the search text's expressions and the NAME order.
	{"pg_catalog.textcat(text, text)", "||", "searches"},
	{"pg_catalog.texticlike(text, text)", "ILIKE", "searches"},
	{"pg_catalog.textlike(text, text)", "LIKE", "searches"},
	{"pg_catalog.lower(text)", "lower()", "searches and the NAME order"},
	// 20261219000002_attribute_conditions_leakproof: the attribute conditions of
	// contact filters.
	{"pg_catalog.jsonb_contains(jsonb, jsonb)", "@>", "attribute conditions"},
	{"pg_catalog.jsonb_exists(jsonb, text)", "?", "attribute conditions"},
}

// String says which function is not leakproof and what for: "function
// pg_catalog.textcat(text, text) (|| of searches) is not leakproof".
func (l Leakproof) String() string {
	return fmt.Sprintf("function %s (%s of %s) is not leakproof", l.Function, l.Use, l.Serves)
}

// Fix is the SQL that declares l leakproof again, as the migrations do.
func (l Leakproof) Fix() string {
	return "ALTER FUNCTION " + l.Function + " LEAKPROOF"
}

// RunBy says who may run Fix: only a superuser may declare a function leakproof.
func (Leakproof) RunBy() string { return "a superuser" }

// notLeakproofSQL returns the functions of its argument (as ALTER FUNCTION names
// them) that are not leakproof in this database, in the argument's order.
const notLeakproofSQL = `
	SELECT l.f FROM unnest(?::text[]) WITH ORDINALITY AS l(f, i)
	JOIN pg_proc p ON p.oid = l.f::regprocedure
	WHERE NOT p.proleakproof
	ORDER BY l.i`

// notLeakproof returns those of leakproofFunctions that are not leakproof, on db.
func notLeakproof(ctx context.Context, db bun.IDB) ([]Leakproof, error) {
	names := make([]string, len(leakproofFunctions))
	for i, l := range leakproofFunctions {
		names[i] = l.Function
	}
	var found []string
	if err := db.NewRaw(notLeakproofSQL, pgdialect.Array(names)).Scan(ctx, &found); err != nil {
		return nil, fmt.Errorf("store: read which functions are leakproof: %w", err)
	}
	var out []Leakproof
	for _, l := range leakproofFunctions {
		for _, f := range found {
			if f == l.Function {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// CheckLeakproof returns the functions the migrations declare leakproof that are not
// leakproof in this database (a dump restored into a new one, a pg_upgrade, or a
// migration run by a role that is no superuser), in the migrations' order. One
// statement; it only reads.
func (s *Store) CheckLeakproof(ctx context.Context) ([]Leakproof, error) {
	return notLeakproof(ctx, s.db)
}

// RepairLeakproof declares leakproof again, as the migrations do, the functions they
// declare that are not, holding the migrations' lock (two sessions altering one
// function at once can fail), and returns those it declared (repaired) and those it
// left (left): all of them unless the role it runs as is a superuser. It is safe
// while the server runs: it changes how PostgreSQL may plan, not what any statement
// returns.
func (s *Store) RepairLeakproof(ctx context.Context) (repaired, left []Leakproof, err error) {
	err = s.holding(ctx, "migrations", "?", migrationLockKey, func(bun.Tx) error {
		repaired, left, err = s.enforceLeakproof(ctx)
		return err
	})
	return repaired, left, err
}

// enforceLeakproof is RepairLeakproof without the lock: the caller holds it.
func (s *Store) enforceLeakproof(ctx context.Context) (repaired, left []Leakproof, err error) {
	found, err := notLeakproof(ctx, s.db)
	if err != nil || len(found) == 0 {
		return nil, nil, err
	}
	// As the migrations ask: a role that is no superuser would fail at the first
	// ALTER FUNCTION.
	super, err := s.Superuser(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !super {
		return nil, found, nil
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, l := range found {
			if _, err := tx.ExecContext(ctx, l.Fix()); err != nil {
				return fmt.Errorf("%s: %w", l.Fix(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: declare functions leakproof: %w", err)
	}
	return found, nil, nil
}

// migrateLeakproof declares leakproof again the functions the migrations declare, as
// every run of the migrations does, and warns of what it found: declared again, or,
// as a role that is no superuser, left, with the SQL and its consequence.
func (s *Store) migrateLeakproof(ctx context.Context) error {
	repaired, left, err := s.enforceLeakproof(ctx)
	if err != nil {
		return err
	}
	if len(repaired) > 0 {
		s.log.Warn("functions the migrations declare leakproof were not (a dump restored into a new database, or pg_upgrade, drops the declarations): declared leakproof again",
			"functions", describeLeakproof(repaired))
	}
	if len(left) > 0 {
		WarnLeakproofLeft(s.log, "migrating", left)
	}
	return nil
}

// WarnLeakproofLeft logs, as a warning, the functions ls that are not leakproof and
// that the role, no superuser, could not declare as it was doing who ("migrating",
// "checking"): with the consequence, and the SQL for
// a superuser to run. A warning, not a failure: where no role is a superuser (a
// managed PostgreSQL) nothing can declare them.
func WarnLeakproofLeft(log *slog.Logger, who string, ls []Leakproof) {
	fix := make([]string, len(ls))
	for i, l := range ls {
		fix[i] = l.Fix()
	}
	log.Warn("functions the migrations declare leakproof are not, and the role is no superuser: under row-level security the server's searches and attribute conditions read every contact of the workspace; have run_by run fix",
		"role_was", who, "functions", describeLeakproof(ls), "fix", strings.Join(fix, "; "), "run_by", Leakproof{}.RunBy())
}

// Superuser reports whether the role s connects as is a superuser.
func (s *Store) Superuser(ctx context.Context) (bool, error) {
	var super bool
	if err := s.db.QueryRowContext(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return false, fmt.Errorf("store: read whether the role is a superuser: %w", err)
	}
	return super, nil
}

// describeLeakproof is ls for a log: "pg_catalog.textcat(text, text) (|| of
// searches), ...".
func describeLeakproof(ls []Leakproof) string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = fmt.Sprintf("%s (%s of %s)", l.Function, l.Use, l.Serves)
	}
	return strings.Join(out, ", ")
}
