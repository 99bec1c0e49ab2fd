package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
	for range 2 { // the check changes nothing
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
	ctx := context.Background()
	url := storetest.Database(t)
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	want := restoreDamage(t, owner)

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
