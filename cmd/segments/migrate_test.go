package main

import (
	"bytes"
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/store/migrations"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCheckDoesNotMigrate: "segments check" (and --repair) on a database that lacks
// this binary's last migration refuses, naming it, unchecked, and leaves
// bun_migrations as it was; "migrate --status" lists it as pending, changing
// nothing, and exits 0. Before, check applied it: run by an operator as an upgrade's
// pre-flight, it left the servers of the version before refusing to start.
func TestCheckDoesNotMigrate(t *testing.T) {
	ctx := context.Background()
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"migrate"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr.String())
	}
	// The database as the version before left it: without this binary's last migration.
	ups, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	last := strings.TrimSuffix(ups[len(ups)-1], ".tx.up.sql")
	id, _, _ := strings.Cut(last, "_")
	down, err := fs.ReadFile(migrations.FS, last+".tx.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn := storetest.Conn(t, dbURL)
	if _, err := conn.Exec(ctx, string(down)+";DELETE FROM bun_migrations WHERE name = '"+id+"'"); err != nil {
		t.Fatal(err)
	}
	before := appliedMigrations(t, conn)

	for _, args := range [][]string{{"check"}, {"check", "--repair"}} {
		stdout.Reset()
		stderr.Reset()
		err := run(ctx, args, getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "lacks 1 migration(s) this binary has ("+last+")") || exitCode(err) != 1 {
			t.Errorf("%v on a database that lacks %s: %v (exit status %d), want a refusal naming it (exit status 1)\n%s", args, last, err, exitCode(err), stdout.String())
		}
		if got := appliedMigrations(t, conn); !slices.Equal(got, before) {
			t.Fatalf("%v changed bun_migrations: %d rows before, %d after", args, len(before), len(got))
		}
	}

	stdout.Reset()
	if err := run(ctx, []string{"migrate", "--status"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("migrate --status: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != len(ups) {
		t.Errorf("migrate --status printed %d lines, want one per migration (%d):\n%s", len(lines), len(ups), stdout.String())
	}
	decls, err := migrations.Declarations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	older := "stop"
	if decls[id].KeepRunning {
		older = "keep-running"
	}
	if want := "pending\t" + last + "\t" + older; lines[len(lines)-1] != want {
		t.Errorf("migrate --status's last line: %q, want %q", lines[len(lines)-1], want)
	}
	if want := "applied\t20261128000001_init\tstop"; lines[0] != want {
		t.Errorf("migrate --status's first line: %q, want %q", lines[0], want)
	}
	if got := appliedMigrations(t, conn); !slices.Equal(got, before) {
		t.Fatal("migrate --status changed bun_migrations")
	}

	// Migrated, check checks. The log names the migration in full, as --status does
	// (it gave the ID alone).
	stderr.Reset()
	if err := run(ctx, []string{"migrate"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr.String())
	}
	if want := `msg="migration applied" name=` + last + "\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("migrate logged no %s:\n%s", want, stderr.String())
	}
	stdout.Reset()
	if err := run(ctx, []string{"check"}, getenv, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "no drift") {
		t.Errorf("check after migrate: %v\n%s", err, stdout.String())
	}
}

// appliedMigrations returns bun_migrations' names, in order.
func appliedMigrations(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name FROM bun_migrations ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}
