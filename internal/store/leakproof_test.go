package store_test

import (
	"context"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/migrations"
	"github.com/segments/segments/internal/store/storetest"
)

// declaredLeakproof finds a migration's ALTER FUNCTION f(...) LEAKPROOF, and f(...);
// not NOT LEAKPROOF.
var declaredLeakproof = regexp.MustCompile(`(?i)ALTER\s+FUNCTION\s+([^;]+?\))\s+LEAKPROOF\b`)

// TestLeakproofFunctionsAreTheMigrations: the functions the store declares leakproof
// again (and check reports) are those the migrations' up files declare leakproof, in
// their order: a migration that declares one more must add it to
// store.leakproofFunctions, or a restore that drops it would go unnoticed.
func TestLeakproofFunctionsAreTheMigrations(t *testing.T) {
	ups, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, name := range ups {
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range declaredLeakproof.FindAllStringSubmatch(string(b), -1) {
			declared = append(declared, strings.Join(strings.Fields(m[1]), " "))
		}
	}
	var listed []string
	for _, l := range store.LeakproofFunctions() {
		listed = append(listed, l.Function)
		if l.Use == "" || l.Serves == "" {
			t.Errorf("%s: says neither what it is nor what it serves", l.Function)
		}
	}
	if len(declared) < 6 || !slices.Equal(declared, listed) {
		t.Fatalf("the migrations declare leakproof\n%s\nthe store lists\n%s", strings.Join(declared, "\n"), strings.Join(listed, "\n"))
	}
}

// requireSuperuser skips a test that changes which functions are leakproof unless the
// database's owner is a superuser (the embedded PostgreSQL's is): none other may.
func requireSuperuser(t *testing.T, s *store.Store) {
	t.Helper()
	var super bool
	if err := s.DB().QueryRowContext(context.Background(), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("the database's owner is not a superuser: it may not change which functions are leakproof")
	}
}

// leakproofLines is ls as String says them.
func leakproofLines(ls []store.Leakproof) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

// TestLeakproofDroppedIsRepaired: in a database of its own whose textcat and
// jsonb_exists are no longer leakproof (as after a restore into a new database),
// CheckLeakproof returns those two, in the migrations' order, twice (it changes
// nothing); RepairLeakproof as a superuser declares them again and returns them as
// repaired; so does Migrate, warning of them. Before, nothing noticed.
func TestLeakproofDroppedIsRepaired(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	requireSuperuser(t, s)
	if found, err := s.CheckLeakproof(ctx); err != nil || len(found) > 0 {
		t.Fatalf("CheckLeakproof of a database migrated by a superuser: %v, %v; want none", leakproofLines(found), err)
	}
	drop := func() {
		storetest.Exec(t, s.DB(), "ALTER FUNCTION pg_catalog.jsonb_exists(jsonb, text) NOT LEAKPROOF; ALTER FUNCTION pg_catalog.textcat(text, text) NOT LEAKPROOF")
	}
	want := []string{
		"function pg_catalog.textcat(text, text) (|| of searches) is not leakproof",
		"function pg_catalog.jsonb_exists(jsonb, text) (? of attribute conditions) is not leakproof",
	}
	drop()
	for range 2 {
		found, err := s.CheckLeakproof(ctx)
		if err != nil || !slices.Equal(leakproofLines(found), want) {
			t.Fatalf("CheckLeakproof found\n%s\n%v; want\n%s", strings.Join(leakproofLines(found), "\n"), err, strings.Join(want, "\n"))
		}
	}
	repaired, left, err := s.RepairLeakproof(ctx)
	if err != nil || !slices.Equal(leakproofLines(repaired), want) || len(left) > 0 {
		t.Fatalf("RepairLeakproof as a superuser repaired %v, left %v, %v; want the two repaired", leakproofLines(repaired), leakproofLines(left), err)
	}
	if found, err := s.CheckLeakproof(ctx); err != nil || len(found) > 0 {
		t.Fatalf("CheckLeakproof after the repair: %v, %v; want none", leakproofLines(found), err)
	}
	if repaired, left, err := s.RepairLeakproof(ctx); err != nil || len(repaired)+len(left) > 0 {
		t.Fatalf("a second RepairLeakproof repaired %v, left %v, %v; want nothing", leakproofLines(repaired), leakproofLines(left), err)
	}

	drop()
	var log logtest.Buffer
	s2, err := store.Open(ctx, url, store.Options{MaxConns: 2, Log: log.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if found, err := s.CheckLeakproof(ctx); err != nil || len(found) > 0 {
		t.Errorf("CheckLeakproof after Migrate: %v, %v; want none", leakproofLines(found), err)
	}
	if !strings.Contains(log.String(), `declared leakproof again" functions="pg_catalog.textcat(text, text) (|| of searches), pg_catalog.jsonb_exists(jsonb, text) (? of attribute conditions)"`) {
		t.Errorf("Migrate's log does not say it declared the two leakproof again:\n%s", log.String())
	}
}

// TestLeakproofLeftByAnotherRole: a database migrated by a role that is no superuser
// (on a PostgreSQL server of its own: roles are the whole server's) has none of the
// functions leakproof. CheckLeakproof returns them all; RepairLeakproof as that role
// repairs none and returns them all as left, each with the ALTER FUNCTION to have a
// superuser run; Migrate as that role warns, naming them, the consequence and the SQL, and
// succeeds; the SQL, run by the superuser, makes them leakproof.
func TestLeakproofLeftByAnotherRole(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t)
	owner := storetest.MigratedStore(t, pg.URL("segments"), store.Options{MaxConns: 2})
	var me string
	if err := owner.DB().QueryRowContext(ctx, "SELECT current_user").Scan(&me); err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, owner.DB(), `CREATE ROLE lesser LOGIN CREATEROLE PASSWORD 'lesser'`)
	storetest.Exec(t, owner.DB(), `CREATE DATABASE lesser OWNER lesser`)
	lesserURL := strings.Replace(pg.URL("lesser"), me+":"+pg.Password(), "lesser:lesser", 1)
	var log logtest.Buffer
	lesser := storetest.MigratedStore(t, lesserURL, store.Options{MaxConns: 2, Log: log.Logger()})

	all := store.LeakproofFunctions()
	found, err := lesser.CheckLeakproof(ctx)
	if err != nil || !slices.Equal(found, all) {
		t.Fatalf("CheckLeakproof of a database migrated by a role that is no superuser: %v, %v; want them all", leakproofLines(found), err)
	}
	repaired, left, err := lesser.RepairLeakproof(ctx)
	if err != nil || len(repaired) > 0 || !slices.Equal(left, all) {
		t.Fatalf("RepairLeakproof as a role that is no superuser repaired %v, left %v, %v; want none repaired, all left", leakproofLines(repaired), leakproofLines(left), err)
	}
	var fix []string
	for _, l := range left {
		fix = append(fix, l.Fix())
		if l.RunBy() != "a superuser" {
			t.Errorf("%s: run by %q, want a superuser", l, l.RunBy())
		}
	}
	if fix[0] != "ALTER FUNCTION pg_catalog.textcat(text, text) LEAKPROOF" {
		t.Errorf("the fix of %s is %q", left[0], fix[0])
	}
	for _, want := range []string{
		`msg="functions the migrations declare leakproof are not, and the role is no superuser: under row-level security the server's searches and attribute conditions read every contact of the workspace`,
		`functions="pg_catalog.textcat(text, text) (|| of searches), `,
		`fix="` + strings.Join(fix, "; ") + `" run_by="a superuser"`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("Migrate as a role that is no superuser: its log lacks %s:\n%s", want, log.String())
		}
	}
	super, err := store.Open(ctx, pg.URL("lesser"), store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	storetest.Exec(t, super.DB(), strings.Join(fix, "; "))
	if found, err := lesser.CheckLeakproof(ctx); err != nil || len(found) > 0 {
		t.Errorf("CheckLeakproof after the superuser ran the fix: %v, %v; want none", leakproofLines(found), err)
	}
}
