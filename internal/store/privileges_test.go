package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// migratedWithoutPrivileges returns a store on a new database that the migrations
// alone built, whose privileges Migrate has not made what is declared.
func migratedWithoutPrivileges(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.Database(t), store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := store.MigrateWithoutPrivileges(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPrivilegesDeclareEveryObject: the declaration of the server role's privileges
// (store.appPrivileges) names every table, sequence and function the migrations make,
// and nothing they do not. A migration that makes one must say what the role holds
// on it: Migrate and check leave an object the declaration does not name as it is,
// so a table the role must not write would otherwise keep whatever a restore or the
// schema's default privileges gave it.
func TestPrivilegesDeclareEveryObject(t *testing.T) {
	s := migratedWithoutPrivileges(t)
	objects, err := store.SchemaObjects(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	declared := store.DeclaredObjects()
	for _, o := range objects {
		if _, ok := declared[o]; !ok {
			t.Errorf("the migrations make %s, which store.appPrivileges does not declare: say what the server's role and PUBLIC hold on it", o)
		}
	}
	for o := range declared {
		if !slices.Contains(objects, o) {
			t.Errorf("store.appPrivileges declares %s, which the migrations do not make", o)
		}
	}
}

// TestMigrationsGrantWhatIsDeclared: on a database the migrations alone built, the
// server's role and PUBLIC hold exactly the privileges declared, object by object,
// columns included; no SECURITY DEFINER function may be called by PUBLIC (every role
// of the cluster: it runs as the owner, above row-level security); and the schema's
// default privileges give the role nothing, so that a table made again by
// pg_restore --clean, the way the restore probe did, grants the role nothing but what
// the dump grants (before 20261213000001 it could write change_feed_epoch).
func TestMigrationsGrantWhatIsDeclared(t *testing.T) {
	ctx := context.Background()
	s := migratedWithoutPrivileges(t)
	drift, err := s.CheckPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drift {
		t.Errorf("the migrations and the declaration differ: %s", d)
	}
	for _, f := range storetest.Column[string](t, s.DB(), `SELECT p.oid::regprocedure::text FROM pg_proc p
		WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef AND has_function_privilege('public', p.oid, 'EXECUTE')`) {
		t.Errorf("PUBLIC may call the SECURITY DEFINER function %s", f)
	}
	for o, public := range store.DeclaredObjects() {
		var definer bool
		if fn, ok := strings.CutPrefix(o, "function "); ok && public {
			if err := s.DB().QueryRowContext(ctx, "SELECT prosecdef FROM pg_proc WHERE oid = $1::regprocedure", fn).Scan(&definer); err != nil {
				t.Fatal(err)
			}
		}
		if definer {
			t.Errorf("the declaration lets PUBLIC call %s, which is SECURITY DEFINER", o)
		}
	}
	for _, acl := range storetest.Column[string](t, s.DB(), `SELECT d.defaclacl::text FROM pg_default_acl d
		WHERE EXISTS (SELECT FROM aclexplode(d.defaclacl) a WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1))`, store.AppRole) {
		t.Errorf("the default privileges give the server's role %s", acl)
	}

	// change_feed_epoch made again as pg_restore --clean makes it: the table, its
	// row, and the dump's grant.
	storetest.Exec(t, s.DB(), `BEGIN;
		CREATE TEMP TABLE epoch AS TABLE change_feed_epoch;
		DROP TABLE change_feed_epoch;
		CREATE TABLE change_feed_epoch (
			one boolean PRIMARY KEY DEFAULT true CHECK (one), system_identifier bigint, epoch bigint NOT NULL DEFAULT 0);
		INSERT INTO change_feed_epoch TABLE epoch;
		GRANT SELECT ON change_feed_epoch TO `+store.AppRole+`;
		COMMIT`)
	var writes bool
	if err := s.DB().QueryRowContext(ctx, "SELECT has_table_privilege($1, 'change_feed_epoch', 'INSERT, UPDATE, DELETE')", store.AppRole).Scan(&writes); err != nil {
		t.Fatal(err)
	}
	if writes {
		t.Error("the server's role may write change_feed_epoch made again")
	}
}

// restoreDamage does to the database of owner what pg_restore --clean into it did to
// a database migrated before 20261213000001 (the restore probe), and a GRANT or
// REVOKE by hand may: the server's role may write workspaces and api_keys, and a
// column of api_keys; it may not delete segments; PUBLIC may call a SECURITY DEFINER
// function; and migration_compatibility is made again under the default privileges
// such a database had. It returns what CheckPrivileges should report, as lines.
func restoreDamage(t *testing.T, owner *store.Store) []string {
	t.Helper()
	role := store.AppRole
	storetest.Exec(t, owner.DB(), `BEGIN;
		GRANT INSERT, UPDATE, DELETE ON workspaces, api_keys TO `+role+`;
		GRANT UPDATE (revoked_at) ON api_keys TO `+role+`;
		REVOKE DELETE ON segments FROM `+role+`;
		GRANT EXECUTE ON FUNCTION segments_workspace_rows() TO PUBLIC;
		ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO `+role+`;
		CREATE TABLE restored (LIKE migration_compatibility INCLUDING ALL);
		INSERT INTO restored TABLE migration_compatibility;
		DROP TABLE migration_compatibility;
		ALTER TABLE restored RENAME TO migration_compatibility;
		ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM `+role+`;
		COMMIT`)
	return []string{
		"column api_keys.revoked_at: segments_app holds UPDATE beyond what is declared (none)",
		"function segments_workspace_rows(): PUBLIC holds EXECUTE beyond what is declared (none)",
		"table api_keys: segments_app holds INSERT, UPDATE, DELETE beyond what is declared (none)",
		"table migration_compatibility: segments_app holds SELECT, INSERT, UPDATE, DELETE beyond what is declared (none)",
		"table segments: segments_app lacks DELETE of what is declared (SELECT, INSERT, UPDATE, DELETE)",
		"table workspaces: segments_app holds INSERT, UPDATE, DELETE beyond what is declared (SELECT)",
	}
}

// lines is drift as PrivilegeDrift.String says it.
func lines(drift []store.PrivilegeDrift) []string {
	var out []string
	for _, d := range drift {
		out = append(out, d.String())
	}
	return out
}

// appWrites has the server's role, connected at appURL, try to mint an API key for
// workspace ws, rename it and delete one of its segments, each in a transaction
// rolled back, and returns their errors.
func appWrites(t *testing.T, appURL string, ws, segment int64) (mint, rename, del error) {
	t.Helper()
	ctx := context.Background()
	conn := storetest.Conn(t, appURL)
	try := func(sql string) error {
		_, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; SET LOCAL app.workspace_id = '%d'; %s", ws, sql))
		if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			t.Fatal(rerr)
		}
		return err
	}
	return try(fmt.Sprintf(`INSERT INTO api_keys (workspace_id, key_hash, prefix) VALUES (%d, '\x00', 'seg_mint')`, ws)),
		try(fmt.Sprintf("UPDATE workspaces SET name = 'taken' WHERE id = %d", ws)),
		try(fmt.Sprintf("DELETE FROM segments WHERE id = %d", segment))
}

// permissionDenied reports whether err is PostgreSQL's refusal of a privilege on
// table (not row-level security's, which has the same SQLSTATE).
func permissionDenied(err error, table string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501" && pgErr.Message == "permission denied for table "+table
}

// TestRestoredPrivilegesAreRepaired: after the restore's damage (restoreDamage) the
// server's role can mint an API key and rename its workspace. CheckPrivileges
// reports each object, one line each, and changes nothing; RepairPrivileges revokes
// what is extra and grants what is missing, after which the role is refused those
// writes (permission denied), deletes segments again, and a check finds nothing.
func TestRestoredPrivilegesAreRepaired(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := storetest.Workspace(t, owner)
	var segment int64
	if err := owner.DB().QueryRowContext(ctx, "INSERT INTO segments (workspace_id, name) VALUES ($1, 'x') RETURNING id", ws.ID).Scan(&segment); err != nil {
		t.Fatal(err)
	}
	if drift, err := owner.CheckPrivileges(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("a database just migrated: %v, %v; want no drift", lines(drift), err)
	}

	want := restoreDamage(t, owner)
	mint, rename, _ := appWrites(t, appURL, ws.ID, segment)
	if mint != nil || rename != nil {
		t.Fatalf("after the damage, the server's role could not mint a key (%v) or rename its workspace (%v): the test proves nothing", mint, rename)
	}
	checkThenRepair(t, owner, want)
	mint, rename, del := appWrites(t, appURL, ws.ID, segment)
	if !permissionDenied(mint, "api_keys") || !permissionDenied(rename, "workspaces") {
		t.Errorf("after the repair, minting a key: %v; renaming the workspace: %v; want permission denied for both", mint, rename)
	}
	if del != nil {
		t.Errorf("after the repair, deleting a segment: %v", del)
	}
	if again, left, err := owner.RepairPrivileges(ctx); err != nil || len(again)+len(left) > 0 {
		t.Errorf("a second repair: %v, %v, %v; want nothing to do", lines(again), lines(left), err)
	}
}

// TestMigrateRepairsPrivileges: every run of the migrations makes the privileges of
// the server's role what is declared, warning of what it found: a server restarted
// after a restore (restoreDamage) takes from its role what it must not hold.
// Before, only migration_compatibility's were taken back.
func TestMigrateRepairsPrivileges(t *testing.T) {
	url := storetest.Database(t)
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	migrateRepairs(t, url, owner, restoreDamage(t, owner))
}

// TestMigrateLeavesNewerPrivileges: a binary started beside a newer version's
// migrations (each declaring that older servers keep running) leaves the privileges
// of the server's role as they are: the newer migrations may grant it what this
// binary's declaration does not know, and taking that back would break the newer
// servers.
func TestMigrateLeavesNewerPrivileges(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	fsys := withMigration(t, "29990101000002_newer_grant", "-- older servers: keep running: a grant\nSELECT 1")
	if _, err := store.MigrateFrom(ctx, s, fsys, time.Second, 1, 0); err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, s.DB(), "GRANT INSERT ON workspaces TO "+store.AppRole) // as the newer version's migration
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var inserts bool
	if err := s.DB().QueryRowContext(ctx, "SELECT has_table_privilege($1, 'workspaces', 'INSERT')", store.AppRole).Scan(&inserts); err != nil {
		t.Fatal(err)
	}
	if !inserts {
		t.Error("Migrate beside a newer version's migrations took back a privilege they granted")
	}
}

// TestCheckGuardsSchemaDatabaseAndDefaults: around the tables, the server's role may
// make objects of its own in the schema the owner's unqualified names resolve in
// (CREATE on the schema, or on the database: a schema named as the owner comes first
// in its search path), grant what it holds to any role (a grant option), and get
// every table made later (default privileges, for it or PUBLIC). CheckPrivileges
// reports each, one line each; RepairPrivileges (as every Migrate) takes them back,
// leaves what the role needs (USAGE on the schema, PUBLIC's CONNECT and TEMPORARY),
// and then the role is refused a table of its own. Before, the check found nothing.
func TestCheckGuardsSchemaDatabaseAndDefaults(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var db, schema, me string
	if err := owner.DB().QueryRowContext(ctx, "SELECT current_database(), current_schema(), current_user").Scan(&db, &schema, &me); err != nil {
		t.Fatal(err)
	}
	role := store.AppRole
	storetest.Exec(t, owner.DB(), fmt.Sprintf(`BEGIN;
		GRANT CREATE ON SCHEMA %[2]s TO %[3]s;
		GRANT CREATE, TEMPORARY ON DATABASE %[1]s TO %[3]s;
		GRANT CREATE ON DATABASE %[1]s TO PUBLIC;
		GRANT SELECT ON segments TO %[3]s WITH GRANT OPTION;
		ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT ON TABLES TO %[3]s;
		ALTER DEFAULT PRIVILEGES IN SCHEMA %[2]s GRANT SELECT ON TABLES TO PUBLIC;
		COMMIT`, pgx.Identifier{db}.Sanitize(), pgx.Identifier{schema}.Sanitize(), role))
	want := []string{
		"table segments: segments_app holds SELECT with grant option, which is never declared",
		"database " + db + ": segments_app holds CREATE, TEMPORARY beyond what is declared (CONNECT at most)",
		"database " + db + ": PUBLIC holds CREATE beyond what is declared (CONNECT, TEMPORARY at most)",
		"default privileges of role " + me + " in schema " + schema + " on tables: PUBLIC holds SELECT beyond what is declared (none)",
		"default privileges of role " + me + " on tables: segments_app holds SELECT, INSERT beyond what is declared (none)",
		"schema " + schema + ": segments_app holds CREATE beyond what is declared (USAGE)",
	}
	ownTable := func() error { // in a transaction rolled back
		conn := storetest.Conn(t, appURL)
		_, err := conn.Exec(ctx, "BEGIN; CREATE TABLE "+pgx.Identifier{schema, "app_own"}.Sanitize()+" (x int)")
		if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			t.Fatal(rerr)
		}
		return err
	}
	if err := ownTable(); err != nil {
		t.Fatalf("the server's role could not make a table in the schema after the grant (%v): the test proves nothing", err)
	}
	checkThenRepair(t, owner, want)
	var pgErr *pgconn.PgError
	if err := ownTable(); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("the server's role making a table in the schema after the repair: %v; want permission denied", err)
	}
	var usage, temp, grantable bool
	if err := owner.DB().QueryRowContext(ctx, `SELECT has_schema_privilege($1, current_schema(), 'USAGE'),
		has_database_privilege($1, current_database(), 'TEMPORARY'), has_table_privilege($1, 'segments', 'SELECT WITH GRANT OPTION')`,
		role).Scan(&usage, &temp, &grantable); err != nil {
		t.Fatal(err)
	}
	if !usage || !temp || grantable {
		t.Errorf("after the repair the role has USAGE of the schema: %v, TEMPORARY through PUBLIC: %v, a grant option: %v; want true, true, false", usage, temp, grantable)
	}
}

// TestCheckGuardsRoleAttributesAndMemberships: on a PostgreSQL server of its own (the
// role is the whole server's: its attributes would reach every other test), the
// server's role given BYPASSRLS, CREATEDB, CREATEROLE and REPLICATION, and made a
// member of pg_read_all_data, pg_write_all_data and the tables' owner. With
// BYPASSRLS it reads every workspace. CheckPrivileges reports each; Migrate, as the
// superuser it runs as, takes them back, warning of what it found, after which the
// role sees its own workspace alone. Then, migrating as a role that is no superuser
// (with CREATEROLE, owning its database), the server's role made SUPERUSER and a
// member of pg_write_all_data: Migrate takes the membership back and leaves the
// attribute, warning of the one as changed and of the other as left, with the
// statement to run as a superuser, which check --repair reports too (not as
// repaired). Before, the check found none of it.
func TestCheckGuardsRoleAttributesAndMemberships(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t)
	url := pg.URL("segments")
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := storetest.Workspace(t, owner)
	storetest.Workspace(t, owner)
	var me string
	if err := owner.DB().QueryRowContext(ctx, "SELECT current_user").Scan(&me); err != nil {
		t.Fatal(err)
	}
	role := store.AppRole
	storetest.Exec(t, owner.DB(), fmt.Sprintf(`ALTER ROLE %[1]s BYPASSRLS CREATEDB CREATEROLE REPLICATION;
		GRANT pg_read_all_data, pg_write_all_data TO %[1]s; GRANT %[2]s TO %[1]s WITH ADMIN OPTION`, role, pgx.Identifier{me}.Sanitize()))
	want := []string{
		"role pg_read_all_data: segments_app is a member, which is never declared",
		"role pg_write_all_data: segments_app is a member, which is never declared",
		"role " + me + ": segments_app is a member with the admin option, which is never declared",
		"role segments_app: segments_app holds CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS beyond what is declared (none)",
	}
	workspaces := func() int {
		conn := storetest.Conn(t, appURL)
		var n int
		if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; SET LOCAL app.workspace_id = '%d'", a.ID)); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM workspaces").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := workspaces(); n != 2 {
		t.Fatalf("with BYPASSRLS the server's role sees %d workspaces, want both: the test proves nothing", n)
	}
	drift, err := owner.CheckPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(drift); !slices.Equal(got, want) {
		t.Fatalf("CheckPrivileges found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	migrateRepairs(t, url, owner, want)
	if n := workspaces(); n != 1 {
		t.Errorf("after Migrate the server's role sees %d workspaces, want its own", n)
	}

	// Migrated by a role that is no superuser.
	storetest.Exec(t, owner.DB(), `CREATE ROLE lesser LOGIN CREATEROLE PASSWORD 'lesser'`)
	storetest.Exec(t, owner.DB(), `CREATE DATABASE lesser OWNER lesser`)
	lesserURL := strings.Replace(pg.URL("lesser"), me+":"+pg.Password(), "lesser:lesser", 1)
	lesser := storetest.MigratedStore(t, lesserURL, store.Options{MaxConns: 2})
	storetest.Exec(t, owner.DB(), "ALTER ROLE "+role+" SUPERUSER; GRANT pg_write_all_data TO "+role)
	var log logtest.Buffer
	s2, err := store.Open(ctx, lesserURL, store.Options{MaxConns: 2, Log: log.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	superuser := "role segments_app: segments_app holds SUPERUSER beyond what is declared (none)"
	// The warning of what it changed names the membership alone; the one of what is
	// left, SUPERUSER, with the statement and who may run it.
	if !strings.Contains(log.String(), `revoked and granted to match" role=segments_app privileges="role pg_write_all_data: segments_app is a member, which is never declared"`) ||
		!strings.Contains(log.String(), `still differ`) || !strings.Contains(log.String(), `privileges="`+superuser+`" fix="ALTER ROLE segments_app NOSUPERUSER" run_by="a superuser"`) {
		t.Errorf("Migrate as a role that is no superuser: its log does not say it took the membership back and left SUPERUSER, with how to fix it:\n%s", log.String())
	}
	repaired, left, err := lesser.RepairPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, got2 := lines(repaired), lines(left); len(got) > 0 || !slices.Equal(got2, []string{superuser}) {
		t.Errorf("RepairPrivileges as a role that is no superuser repaired %v and left %v; want nothing repaired, %q left", got, got2, superuser)
	}
	if len(left) == 1 && left[0].Fix() != "ALTER ROLE segments_app NOSUPERUSER" {
		t.Errorf("the fix of %s is %q", left[0], left[0].Fix())
	}
	storetest.Exec(t, owner.DB(), "ALTER ROLE "+role+" NOSUPERUSER")
}

// TestRepairTakesBackAnotherRolesGrants: a privilege granted to the server's role by
// another role than the tables' owner (one given it with the grant option) is that
// role's grant alone: a superuser's REVOKE runs as the owner and takes back nothing,
// though it succeeds. On a PostgreSQL server of its own (roles are the whole
// server's), grantor_x gives the server's role INSERT on api_keys and SELECT on
// segments with the grant option. CheckPrivileges names the grantor; Fix, run as the
// superuser, takes both back, and so does RepairPrivileges as the superuser, returning
// them as repaired. Migrating as a role that is no superuser nor a member of
// grantor_x, RepairPrivileges repairs what the owner granted, returns only that as
// repaired, and leaves grantor_x's, whose Fix, run by the superuser, takes it back;
// once a member of grantor_x, that role repairs it too. Before, the superuser's
// repair left both and returned them as repaired.
func TestRepairTakesBackAnotherRolesGrants(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t)
	url := pg.URL("segments")
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	var me string
	if err := owner.DB().QueryRowContext(ctx, "SELECT current_user").Scan(&me); err != nil {
		t.Fatal(err)
	}
	role := store.AppRole
	// grant has grantor_x grant what the store's database's owner gives it.
	grant := func(s *store.Store) {
		t.Helper()
		storetest.Exec(t, s.DB(), `BEGIN;
			GRANT INSERT ON api_keys TO grantor_x WITH GRANT OPTION;
			GRANT SELECT ON segments TO grantor_x WITH GRANT OPTION;
			SET LOCAL ROLE grantor_x;
			GRANT INSERT ON api_keys TO `+role+`;
			GRANT SELECT ON segments TO `+role+` WITH GRANT OPTION;
			COMMIT`)
	}
	// held says whether the server's role may insert into api_keys, and grant SELECT
	// on segments.
	held := func(s *store.Store) (insert, option bool) {
		t.Helper()
		if err := s.DB().QueryRowContext(ctx, `SELECT has_table_privilege($1, 'api_keys', 'INSERT'),
			has_table_privilege($1, 'segments', 'SELECT WITH GRANT OPTION')`, role).Scan(&insert, &option); err != nil {
			t.Fatal(err)
		}
		return insert, option
	}
	storetest.Exec(t, owner.DB(), "CREATE ROLE grantor_x")
	grant(owner)
	want := []string{
		"table api_keys: segments_app holds INSERT beyond what is declared (none), granted by role grantor_x",
		"table segments: segments_app holds SELECT with grant option, which is never declared, granted by role grantor_x",
	}
	drift, err := owner.CheckPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(drift); !slices.Equal(got, want) {
		t.Errorf("CheckPrivileges found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range drift {
		if !d.Repairable() || !slices.Equal(d.Grantors(), []string{"grantor_x"}) {
			t.Errorf("%s: repairable by the superuser %v, grantors %v; want true, grantor_x", d, d.Repairable(), d.Grantors())
		}
		storetest.Exec(t, owner.DB(), d.Fix()) // what check prints, run as the superuser
	}
	if insert, option := held(owner); insert || option {
		t.Errorf("after the superuser ran each Fix, the server's role may insert into api_keys: %v, grant SELECT on segments: %v; want neither", insert, option)
	}

	grant(owner)
	repaired, left, err := owner.RepairPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(repaired); !slices.Equal(got, want) || len(left) > 0 {
		t.Fatalf("RepairPrivileges as the superuser repaired\n%s\nand left %v; want\n%s", strings.Join(got, "\n"), lines(left), strings.Join(want, "\n"))
	}
	if insert, option := held(owner); insert || option {
		t.Fatalf("after RepairPrivileges as the superuser, the server's role may insert into api_keys: %v, grant SELECT on segments: %v; want neither", insert, option)
	}

	// Migrated by a role that is no superuser, nor a member of grantor_x.
	storetest.Exec(t, owner.DB(), `CREATE ROLE lesser LOGIN CREATEROLE PASSWORD 'lesser'`)
	storetest.Exec(t, owner.DB(), `CREATE DATABASE lesser OWNER lesser`)
	lesserURL := strings.Replace(pg.URL("lesser"), me+":"+pg.Password(), "lesser:lesser", 1)
	lesser := storetest.MigratedStore(t, lesserURL, store.Options{MaxConns: 2})
	super, err := store.Open(ctx, pg.URL("lesser"), store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	grant(super)
	storetest.Exec(t, super.DB(), "GRANT UPDATE ON workspaces TO "+role) // recorded as the owner's
	repaired, left, err = lesser.RepairPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fix := []string{
		"SET ROLE grantor_x; REVOKE INSERT ON TABLE public.api_keys FROM segments_app CASCADE; RESET ROLE",
		"SET ROLE grantor_x; REVOKE GRANT OPTION FOR SELECT ON TABLE public.segments FROM segments_app CASCADE; RESET ROLE",
	}
	if got, got2 := lines(repaired), lines(left); !slices.Equal(got, []string{"table workspaces: segments_app holds UPDATE beyond what is declared (SELECT)"}) ||
		!slices.Equal(got2, want) {
		t.Fatalf("RepairPrivileges as a role that may not act for grantor_x repaired\n%s\nand left\n%s\nwant the workspaces' UPDATE repaired and\n%s\nleft",
			strings.Join(got, "\n"), strings.Join(got2, "\n"), strings.Join(want, "\n"))
	}
	for i, d := range left {
		if d.Repairable() || d.Fix() != fix[i] || d.RunBy() != "a superuser, or a member of role grantor_x" {
			t.Errorf("%s: repairable %v, fix %q by %q; want false, %q by a superuser, or a member of role grantor_x", d, d.Repairable(), d.Fix(), d.RunBy(), fix[i])
		}
		storetest.Exec(t, super.DB(), d.Fix())
	}
	if insert, option := held(super); insert || option {
		t.Fatalf("after the superuser ran each Fix, the server's role may insert into api_keys: %v, grant SELECT on segments: %v; want neither", insert, option)
	}
	grant(super)
	storetest.Exec(t, owner.DB(), "GRANT grantor_x TO lesser")
	if repaired, left, err = lesser.RepairPrivileges(ctx); err != nil || !slices.Equal(lines(repaired), want) || len(left) > 0 {
		t.Fatalf("RepairPrivileges as a member of grantor_x: repaired %v, left %v, %v; want\n%s", lines(repaired), lines(left), err, strings.Join(want, "\n"))
	}
	if insert, option := held(super); insert || option {
		t.Errorf("after RepairPrivileges as a member of grantor_x, the server's role may insert into api_keys: %v, grant SELECT on segments: %v; want neither", insert, option)
	}
}

// checkThenRepair holds CheckPrivileges to finding the drift want, twice (the check
// changes nothing), RepairPrivileges to repairing all of it and leaving nothing, and
// a check after it to finding none.
func checkThenRepair(t *testing.T, owner *store.Store, want []string) {
	t.Helper()
	ctx := context.Background()
	for range 2 {
		drift, err := owner.CheckPrivileges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := lines(drift); !slices.Equal(got, want) {
			t.Fatalf("CheckPrivileges found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	repaired, left, err := owner.RepairPrivileges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(repaired); !slices.Equal(got, want) || len(left) > 0 {
		t.Fatalf("RepairPrivileges repaired\n%s\nand left %v; want\n%s", strings.Join(got, "\n"), lines(left), strings.Join(want, "\n"))
	}
	if drift, err := owner.CheckPrivileges(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("after the repair: %v, %v; want no drift", lines(drift), err)
	}
}

// migrateRepairs holds a store opened on url and migrated to repairing the drift
// want: owner's check finds none after, and the migration's log names what it
// repaired.
func migrateRepairs(t *testing.T, url string, owner *store.Store, want []string) {
	t.Helper()
	ctx := context.Background()
	var log logtest.Buffer
	s, err := store.Open(ctx, url, store.Options{MaxConns: 2, Log: log.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if drift, err := owner.CheckPrivileges(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("after Migrate: %v, %v; want no drift", lines(drift), err)
	}
	if !strings.Contains(log.String(), strings.Join(want, "; ")) {
		t.Errorf("Migrate's log does not name what it repaired:\n%s", log.String())
	}
}
