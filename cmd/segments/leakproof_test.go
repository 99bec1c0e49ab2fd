package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

// leakproofBroken is the line check prints of a function that is not leakproof.
func leakproofBroken(function, use, serves string) string {
	return fmt.Sprintf("broken: function %s (%s of %s) is not leakproof (a dump restored into a new database, or pg_upgrade, drops the declaration, and only a superuser makes it): under row-level security %s read every contact of the workspace; a superuser's \"segments check --repair\" (or migrate) declares it again\n",
		function, use, serves, serves)
}

// TestCheckLeakproof: in a database of its own whose lower and jsonb_contains are no
// longer leakproof (as a restore into a new database leaves them), "segments check"
// prints one line for each and exits 3, twice (it changes nothing); --repair, as
// the superuser the embedded PostgreSQL's owner is, declares them again, printing
// "repaired:" for each, and exits 0, and the next check is clean. Dropped again, a
// migrate declares them again, warning. Before, the check found nothing.
func TestCheckLeakproof(t *testing.T) {
	ctx := context.Background()
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	if _, stderr, err := cli(getenv, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	conn := storetest.Conn(t, dbURL)
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("the database's owner is not a superuser: it may not change which functions are leakproof")
	}
	runCheck := checkCommand(t, getenv)
	drop := func() {
		t.Helper()
		if _, err := conn.Exec(ctx, "ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) NOT LEAKPROOF; ALTER FUNCTION pg_catalog.lower(text) NOT LEAKPROOF"); err != nil {
			t.Fatal(err)
		}
	}
	drop()
	want := leakproofBroken("pg_catalog.lower(text)", "lower()", "searches and the NAME order") +
		leakproofBroken("pg_catalog.jsonb_contains(jsonb, jsonb)", "@>", "attribute conditions")
	for range 2 {
		out, err := runCheck()
		if exitCode(err) != 3 || !strings.HasPrefix(out, want) || !strings.Contains(out, "\nno drift") ||
			!strings.HasSuffix(err.Error(), ": broken: 2 function(s) not leakproof") {
			t.Fatalf("check with two functions not leakproof: %v\n%s\nwant exit status 3, and it to begin with\n%s", err, out, want)
		}
	}
	want = "repaired: function pg_catalog.lower(text) (lower() of searches and the NAME order) is not leakproof: declared leakproof again\n" +
		"repaired: function pg_catalog.jsonb_contains(jsonb, jsonb) (@> of attribute conditions) is not leakproof: declared leakproof again\n"
	if out, err := runCheck("--repair"); err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("check --repair: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}

	drop()
	if _, stderr, err := cli(getenv, "migrate"); err != nil || !strings.Contains(stderr, "declared leakproof again") {
		t.Fatalf("migrate with two functions not leakproof: %v; want a warning that it declared them again\n%s", err, stderr)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after migrate: %v\n%s", err, out)
	}
}

// TestCheckLeakproofAsAnotherRole: a database migrated by a role that is no
// superuser (on a PostgreSQL server of its own: roles are the whole server's) has
// none of the functions leakproof. Check and --repair as that role warn of them on
// stderr, naming them all, with the ALTER FUNCTION for a superuser to run, and
// exit 0 (a managed PostgreSQL may have no superuser to end a failure); serve as it
// starts logs one warning alike. A superuser's check --repair then declares
// them, and the role's check is clean. Before, check found nothing and serve was
// silent.
func TestCheckLeakproofAsAnotherRole(t *testing.T) {
	pg := storetest.Server(t)
	superEnv := env(map[string]string{"DATABASE_URL": pg.URL("segments")})
	if _, stderr, err := cli(superEnv, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	super := storetest.Conn(t, pg.URL("segments"))
	ctx := context.Background()
	var me string
	if err := super.QueryRow(ctx, "SELECT current_user").Scan(&me); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE ROLE lesser LOGIN CREATEROLE PASSWORD 'lesser'", "CREATE DATABASE lesser OWNER lesser"} {
		if _, err := super.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	lesserEnv := env(map[string]string{"DATABASE_URL": strings.Replace(pg.URL("lesser"), me+":"+pg.Password(), "lesser:lesser", 1)})
	if _, stderr, err := cli(lesserEnv, "migrate"); err != nil {
		t.Fatalf("migrate as lesser: %v\n%s", err, stderr)
	}
	runCheck := checkCommand(t, lesserEnv)

	var fix []string
	for _, f := range []string{"textcat(text, text)", "texticlike(text, text)", "textlike(text, text)",
		"lower(text)", "jsonb_contains(jsonb, jsonb)", "jsonb_exists(jsonb, text)"} {
		fix = append(fix, "ALTER FUNCTION pg_catalog."+f+" LEAKPROOF")
	}
	// No superuser: a warning with the SQL, and the exit status of the rest (on a
	// managed PostgreSQL, no role could end a failure).
	checking := `level=WARN msg="functions the migrations declare leakproof are not, and the role is no superuser: under row-level security the server's searches and attribute conditions read every contact of the workspace; have run_by run fix"`
	withFix := `fix="` + strings.Join(fix, "; ") + `" run_by="a superuser"`
	for _, args := range [][]string{{"check"}, {"check", "--repair"}} {
		out, stderr, err := cli(lesserEnv, args...)
		if err != nil || strings.Contains(out, "leakproof") || strings.Count(stderr, checking) != 1 || !strings.Contains(stderr, withFix) {
			t.Errorf("%s as lesser: %v\n%s\n%s\nwant exit status 0, no line of the functions, and one warning with the fix", strings.Join(args, " "), err, out, stderr)
		}
	}

	_, log := startLogged(t, lesserEnv)
	warning := `level=WARN msg="functions the migrations declare leakproof are not, and the role is no superuser: under row-level security the server's searches and attribute conditions read every contact of the workspace; have run_by run fix"`
	if got := strings.Count(log.String(), warning); got != 1 ||
		!strings.Contains(log.String(), `fix="`+strings.Join(fix, "; ")+`" run_by="a superuser"`) {
		t.Errorf("serve as lesser logged %d warnings of the functions, want one, with the fix:\n%s", got, log.String())
	}

	// As the superuser, on lesser's database.
	superLesser := env(map[string]string{"DATABASE_URL": pg.URL("lesser")})
	if out, stderr, err := cli(superLesser, "check", "--repair"); err != nil || !strings.HasPrefix(out, "repaired: function pg_catalog.textcat(text, text)") {
		t.Fatalf("check --repair as the superuser: %v\n%s\n%s", err, out, stderr)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Errorf("check as lesser after the superuser's repair: %v\n%s", err, out)
	}
}
