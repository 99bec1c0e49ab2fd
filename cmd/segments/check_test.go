package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCheck runs "segments check" on the demo workspace with two counters, one
// segment's bitmaps and the workspace's contact count corrupted by hand: it reports
// the counters with their stored and real counts, the bitmaps with the number of
// chunks that differ, and the contact count with its stored and real count, and exits 3,
// --repair repairs them and exits 0, and the next check is clean. A disabled counter trigger
// is reported, and fails the check even with --repair. Memberships left behind by a
// contact deleted with their cascade off are reported, and deleted by --repair.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	if out, err := runCheck(); err != nil || !strings.Contains(out, "no drift") {
		t.Fatalf("check of a fresh database: %v\n%s", err, out)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// The lines a check prints for the two segments corrupted below.
	var want []string
	for _, c := range []struct {
		name  string
		count string // the corrupted counter, from the real one n
	}{{"VIP Users", "n + 5"}, {"Beta Testers", "0"}} {
		var ws, id, n, stored int64
		err := conn.QueryRow(ctx, `
			UPDATE segments s SET contact_count = `+strings.ReplaceAll(c.count, "n", "s.contact_count")+`
			WHERE name = $1 RETURNING workspace_id, id, (SELECT count(*) FROM memberships m WHERE m.segment_id = s.id), contact_count`,
			c.name).Scan(&ws, &id, &n, &stored)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf(`workspace %d "Demo", segment %s %q: contact_count %d, memberships %d (%+d)`,
			ws, globalid.Encode(globalid.Segment, id), c.name, stored, n, stored-n))
	}

	// The bitmaps of "Festival Buyers" vanish.
	var ws, id, chunks int64
	err = conn.QueryRow(ctx, `
		WITH s AS (SELECT workspace_id, id FROM segments WHERE name = 'Festival Buyers'),
		     gone AS (DELETE FROM segment_bitmaps b USING s WHERE b.workspace_id = s.workspace_id AND b.segment_id = s.id RETURNING b.*)
		SELECT s.workspace_id, s.id, (SELECT count(*) FROM gone) FROM s`).Scan(&ws, &id, &chunks)
	if err != nil || chunks == 0 {
		t.Fatalf("corrupting bitmaps: %v, %d chunks", err, chunks)
	}
	want = append(want, fmt.Sprintf(`workspace %d "Demo", segment %s "Festival Buyers": %d bitmap chunk(s) differ from the memberships`,
		ws, globalid.Encode(globalid.Segment, id), chunks))

	// The workspace's contact count is 3 too many.
	var contacts int64
	if err := conn.QueryRow(ctx, `
		WITH bumped AS (INSERT INTO contact_counts AS c (workspace_id, slot, n) VALUES ($1, 7, 3)
		                ON CONFLICT (workspace_id, slot) DO UPDATE SET n = c.n + 3 RETURNING 1)
		SELECT count(*) FROM contacts, bumped WHERE workspace_id = $1`, ws).Scan(&contacts); err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf(`workspace %d "Demo": contact count %d, contacts %d (+3)`, ws, contacts+3, contacts))

	// Check: all reported, in segment order, nothing changed, exit code 3.
	for range 2 {
		out, err := runCheck()
		if !errors.Is(err, errDrift) || exitCode(err) != 3 {
			t.Fatalf("check with drift returned %v, want exit code 3", err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 5 || lines[0] != "drift: "+want[0] || lines[1] != "drift: "+want[1] || lines[2] != "drift: "+want[2] ||
			lines[3] != "drift: "+want[3] ||
			lines[4] != `2 segment counters, 1 segment's bitmaps and 1 workspace's contact count drifted; run "segments check --repair" to repair` {
			t.Fatalf("check printed:\n%s\nwant drift lines\n%s", out, strings.Join(want, "\n"))
		}
	}

	// Repair: the same four, exit code 0; then clean.
	out, err := runCheck("--repair")
	if err != nil {
		t.Fatalf("check --repair: %v\n%s", err, out)
	}
	if out != "repaired: "+want[0]+"\nrepaired: "+want[1]+"\nrepaired: "+want[2]+"\nrepaired: "+want[3]+
		"\n2 segment counters, 1 segment's bitmaps and 1 workspace's contact count repaired\n" {
		t.Fatalf("check --repair printed:\n%s", out)
	}
	if out, err := runCheck(); err != nil || out != "no drift: every segment's contact_count and bitmaps equal its memberships, every workspace's contact count its contacts; every membership's contact and segment exist; every name, description and email is composed (NFC)\n" {
		t.Fatalf("check after repair: %v\n%s", err, out)
	}
	if out, err := runCheck("--repair"); err != nil || out != "0 segment counters, 0 segments' bitmaps and 0 workspaces' contact counts repaired\n" {
		t.Fatalf("second repair: %v\n%s", err, out)
	}

	// A disabled trigger cannot be repaired by recounting: reported, exit code 3.
	exec("ALTER TABLE memberships DISABLE TRIGGER memberships_count_deleted")
	out, err = runCheck("--repair")
	if !errors.Is(err, errDrift) || !strings.Contains(out, "broken: trigger memberships_count_deleted on memberships is disabled") {
		t.Fatalf("check --repair with a disabled trigger: %v\n%s", err, out)
	}
	exec("ALTER TABLE memberships ENABLE TRIGGER memberships_count_deleted")
	if out, err := runCheck(); err != nil {
		t.Fatalf("check after enabling the trigger: %v\n%s", err, out)
	}

	// A contact deleted with the memberships' cascade off leaves its memberships
	// behind: reported by workspace, with the counters and bitmaps that still count
	// them; --repair deletes them and repairs those, and reports exactly what the
	// check reported; the next check is clean.
	var orphans int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM memberships WHERE contact_id = (SELECT min(contact_id) FROM memberships)`).Scan(&orphans); err != nil || orphans == 0 {
		t.Fatalf("memberships of the first contact: %d, %v", orphans, err)
	}
	rows, err := conn.Query(ctx, `SELECT s.id, s.name, s.contact_count FROM segments s
		WHERE s.id IN (SELECT segment_id FROM memberships WHERE contact_id = (SELECT min(contact_id) FROM memberships))
		ORDER BY s.id`)
	if err != nil {
		t.Fatal(err)
	}
	var counterLines, bitmapLines []string
	for rows.Next() {
		var id, n int64
		var name string
		if err := rows.Scan(&id, &name, &n); err != nil {
			t.Fatal(err)
		}
		seg := fmt.Sprintf(`workspace %d "Demo", segment %s %q: `, ws, globalid.Encode(globalid.Segment, id), name)
		counterLines = append(counterLines, seg+fmt.Sprintf("contact_count %d, memberships %d (+1)", n, n-1))
		bitmapLines = append(bitmapLines, seg+"1 bitmap chunk(s) differ from the memberships")
	}
	if rows.Err() != nil || len(counterLines) != int(orphans) {
		t.Fatalf("segments of the first contact: %d, %v", len(counterLines), rows.Err())
	}
	exec(`BEGIN;
		ALTER TABLE contacts DISABLE TRIGGER contacts_memberships_deleted;
		DELETE FROM contacts WHERE id = (SELECT min(contact_id) FROM memberships);
		ALTER TABLE contacts ENABLE TRIGGER contacts_memberships_deleted;
		COMMIT`)
	orphanLine := fmt.Sprintf(`workspace %d "Demo": %d membership(s) of a contact or segment that does not exist`, ws, orphans)
	lines := func(verb string) string {
		var b strings.Builder
		for _, l := range append(append([]string{orphanLine}, counterLines...), bitmapLines...) {
			b.WriteString(verb + ": " + l + "\n")
		}
		fmt.Fprintf(&b, "1 workspace's memberships of missing contacts or segments, %d segment counters, %d segments' bitmaps and 0 workspaces' contact counts",
			len(counterLines), len(bitmapLines))
		return b.String()
	}
	out, err = runCheck()
	if exitCode(err) != 3 || out != lines("drift")+" drifted; run \"segments check --repair\" to repair\n" {
		t.Fatalf("check with orphaned memberships: %v\n%s\nwant\n%s", err, out, lines("drift"))
	}
	if out, err := runCheck("--repair"); err != nil || out != lines("repaired")+" repaired\n" {
		t.Fatalf("check --repair with orphaned memberships: %v\n%s\nwant\n%s", err, out, lines("repaired"))
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after deleting the orphaned memberships: %v\n%s", err, out)
	}
}

// TestCheckRepairsUncountedOrphans runs "segments check" on memberships of a contact
// that does not exist, written with the triggers off (as a restore may), so never
// counted: in a segment counted 0, whose counter the memberships' delete trigger
// would take below zero, and two in a segment whose counter is right. The check
// reports them and no counter or bitmap (those are right), --repair deletes them
// and reports nothing else, without moving any segment's count or updated_at, and
// the next check is clean.
func TestCheckRepairsUncountedOrphans(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	conn := storetest.Conn(t, dbURL)
	var ws, empty int64
	if err := conn.QueryRow(ctx, `INSERT INTO segments (workspace_id, name) SELECT workspace_id, 'Empty' FROM segments
		WHERE name = 'Beta Testers' RETURNING workspace_id, id`).Scan(&ws, &empty); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		INSERT INTO memberships VALUES (`+fmt.Sprint(ws, ", ", empty)+`, 999999);
		INSERT INTO memberships SELECT workspace_id, id, c FROM segments, unnest('{999998, 999999}'::bigint[]) AS c WHERE name = 'Beta Testers';
		COMMIT`); err != nil {
		t.Fatal(err)
	}
	segments := func() string {
		t.Helper()
		var out string
		if err := conn.QueryRow(ctx, `SELECT json_agg(s ORDER BY id)::text FROM segments s`).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := segments()

	orphanLine := fmt.Sprintf(`workspace %d "Demo": 3 membership(s) of a contact or segment that does not exist`, ws)
	out, err := runCheck()
	if exitCode(err) != 3 || out != "drift: "+orphanLine+"\n1 workspace's memberships of missing contacts or segments, "+
		"0 segment counters, 0 segments' bitmaps and 0 workspaces' contact counts drifted; run \"segments check --repair\" to repair\n" {
		t.Errorf("check with uncounted orphans: %v\n%s", err, out)
	}
	out, err = runCheck("--repair")
	if err != nil || out != "repaired: "+orphanLine+"\n1 workspace's memberships of missing contacts or segments, "+
		"0 segment counters, 0 segments' bitmaps and 0 workspaces' contact counts repaired\n" {
		t.Fatalf("check --repair with uncounted orphans: %v\n%s", err, out)
	}
	if after := segments(); after != before {
		t.Errorf("the repair changed the segments:\nbefore %s\nafter  %s", before, after)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}
}

// TestCheckRepairsChangesAhead runs "segments check" on the demo workspace whose
// contacts carry transaction IDs ahead of the database's, as a dump restored into a
// new cluster leaves them: the check reports the workspace (exit 3); --repair stamps
// them again, reporting how many, and exits 0 (it repaired nothing, exit 3, before);
// the next check is clean.
func TestCheckRepairsChangesAhead(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	conn := storetest.Conn(t, dbURL)
	var ws, contacts int64
	if err := conn.QueryRow(ctx, `SELECT workspace_id, count(*) FROM contacts GROUP BY 1`).Scan(&ws, &contacts); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `BEGIN; ALTER TABLE contacts DISABLE TRIGGER contacts_change_xid;
		UPDATE contacts SET change_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000)::text::xid8;
		ALTER TABLE contacts ENABLE TRIGGER contacts_change_xid; COMMIT`); err != nil {
		t.Fatal(err)
	}
	out, err := runCheck()
	if exitCode(err) != 3 || !strings.Contains(out, fmt.Sprintf(`broken: workspace %d "Demo": contacts or memberships changed by transactions this database has not run`, ws)) {
		t.Errorf("check with changes ahead: %v\n%s", err, out)
	}
	out, err = runCheck("--repair")
	if err != nil || !strings.Contains(out, fmt.Sprintf(`repaired: workspace %d "Demo": %d contact(s), 0 deletion(s) and 0 membership change(s) changed by transactions this database has not run`, ws, contacts)) {
		t.Errorf("check --repair with changes ahead: %v\n%s", err, out)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}
}

// TestCheckTexts runs "segments check" on texts that are not composed (NFC), written
// straight into the tables as a server older than migration
// 20261206000003_compose_texts writes them during a rolling upgrade: a segment whose
// name composes to another's, one whose name and description are not composed, and a
// contact. The check reports them and exits 3; --repair composes all but the name
// taken, which it reports "not repaired", exiting 3; once that segment is renamed,
// --repair composes it and the next check is clean. A search finds the contact before
// the repair and after: it folds the searched text, composed or not (migration
// 20261216000005_search_folds_text).
func TestCheckTexts(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	conn := storetest.Conn(t, dbURL)
	var ws, cafe, cafe2, creme int64
	if err := conn.QueryRow(ctx, `
		WITH w AS (SELECT id FROM workspaces WHERE name = 'Demo'),
		     composed AS (INSERT INTO segments (workspace_id, name) SELECT id, 'Café' FROM w RETURNING id),
		     taken AS (INSERT INTO segments (workspace_id, name) SELECT id, e'Cafe\u0301' FROM w RETURNING id),
		     named AS (INSERT INTO segments (workspace_id, name, description) SELECT id, e'Cre\u0300me', e'Cre\u0300me bru\u0302le\u0301e' FROM w RETURNING id),
		     contact AS (INSERT INTO contacts (workspace_id, phone, name) SELECT id, '+919700000001', e'Jose\u0301 Garci\u0301a' FROM w)
		SELECT (SELECT id FROM w), (SELECT id FROM composed), (SELECT id FROM taken), (SELECT id FROM named)`).Scan(&ws, &cafe, &cafe2, &creme); err != nil {
		t.Fatal(err)
	}
	found := func() (n int) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE search_text LIKE segments_search_pattern('José García')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := found(); n != 1 {
		t.Errorf("the search José García matches %d uncomposed contacts, want 1", n)
	}
	seg := func(id int64, name string) string {
		return fmt.Sprintf(`workspace %d "Demo", segment %s %s: `, ws, globalid.Encode(globalid.Segment, id), name)
	}
	takenLine := seg(cafe2, `"Cafe\u0301"`) + `name not composed (Unicode NFC), and segment ` +
		globalid.Encode(globalid.Segment, cafe) + ` "Caf\u00e9" has its composed name: rename one of them`
	cremeLine := seg(creme, `"Cre\u0300me"`) + "name and description not composed (Unicode NFC)"
	contactLine := fmt.Sprintf(`workspace %d "Demo": 1 contact(s) whose name or email is not composed (Unicode NFC)`, ws)
	const counts = "0 segment counters, 0 segments' bitmaps and 0 workspaces' contact counts"

	want := "drift: " + takenLine + "\ndrift: " + cremeLine + "\ndrift: " + contactLine +
		"\nuncomposed texts of 2 segments and 1 contact, " + counts + " drifted; run \"segments check --repair\" to repair\n"
	for range 2 {
		if out, err := runCheck(); exitCode(err) != 3 || out != want {
			t.Fatalf("check of uncomposed texts: %v\n%s\nwant\n%s", err, out, want)
		}
	}
	want = "not repaired: " + takenLine + "\nrepaired: " + cremeLine + "\nrepaired: " + contactLine +
		"\nuncomposed texts of 2 segments and 1 contact, " + counts + " repaired, " +
		"but 1 segment name is not composed, as another segment has its composed name: rename one of each pair, then repair again\n"
	if out, err := runCheck("--repair"); exitCode(err) != 3 || out != want {
		t.Fatalf("check --repair of uncomposed texts: %v\n%s\nwant\n%s", err, out, want)
	}
	if n := found(); n != 1 {
		t.Errorf("the search José García matches %d contacts after the repair, want 1", n)
	}
	want = "drift: " + takenLine + "\nuncomposed texts of 1 segment, " + counts + " drifted; run \"segments check --repair\" to repair\n"
	if out, err := runCheck(); exitCode(err) != 3 || out != want {
		t.Fatalf("check after the repair: %v\n%s\nwant\n%s", err, out, want)
	}

	// Once one of the two is renamed, the other is composed.
	if _, err := conn.Exec(ctx, `UPDATE segments SET name = 'Café (old)' WHERE id = $1`, cafe); err != nil {
		t.Fatal(err)
	}
	want = "repaired: " + seg(cafe2, `"Cafe\u0301"`) + "name not composed (Unicode NFC)\nuncomposed texts of 1 segment, " + counts + " repaired\n"
	if out, err := runCheck("--repair"); err != nil || out != want {
		t.Fatalf("check --repair after the rename: %v\n%s\nwant\n%s", err, out, want)
	}
	var names string
	if err := conn.QueryRow(ctx, `SELECT string_agg(name, ', ' ORDER BY id) FROM segments WHERE id IN ($1, $2, $3)`, cafe, cafe2, creme).Scan(&names); err != nil || names != "Café (old), Café, Crème" {
		t.Errorf("names after the repairs: %+q, %v", names, err)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repairs: %v\n%s", err, out)
	}
}

// TestCheckRepairsPrivileges runs "segments check" after what pg_restore --clean
// into the database in use did to the server's role (restore probe): it could write
// workspaces and api_keys, so a compromised server could mint API keys. The check
// reports each table, one line each, exits 3 and changes nothing; --repair revokes
// what is extra, reports the same, and exits 0; then the role is refused the writes
// (permission denied) and the next check is clean. Before, the check found nothing.
func TestCheckRepairsPrivileges(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	conn := storetest.Conn(t, dbURL)
	if _, err := conn.Exec(ctx, "GRANT INSERT, UPDATE, DELETE ON workspaces, api_keys TO "+store.AppRole); err != nil {
		t.Fatal(err)
	}
	appURL, err := store.AppURL(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	app := storetest.Conn(t, appURL)
	var ws int64
	if err := conn.QueryRow(ctx, "SELECT id FROM workspaces WHERE name = 'Demo'").Scan(&ws); err != nil {
		t.Fatal(err)
	}
	mint := func() error {
		t.Helper()
		_, err := app.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL app.workspace_id = '%d';
			INSERT INTO api_keys (workspace_id, key_hash, prefix) VALUES (%[1]d, '\x00', 'seg_mint')`, ws))
		if _, rerr := app.Exec(ctx, "ROLLBACK"); rerr != nil {
			t.Fatal(rerr)
		}
		return err
	}
	if err := mint(); err != nil {
		t.Fatalf("the server's role could not insert into api_keys after the grant (%v): the test proves nothing", err)
	}

	found := []string{
		"table api_keys: segments_app holds INSERT, UPDATE, DELETE beyond what is declared (none)",
		"table workspaces: segments_app holds INSERT, UPDATE, DELETE beyond what is declared (SELECT)",
	}
	var want string
	for _, f := range found {
		want += "broken: " + f + "; \"segments check --repair\" (or migrate) repairs it\n"
	}
	for range 2 { // the check changes nothing
		out, err := runCheck()
		if exitCode(err) != 3 || !strings.HasPrefix(out, want) || !strings.Contains(out, "\nno drift") {
			t.Fatalf("check of the privileges: %v\n%s\nwant it to begin with\n%s", err, out, want)
		}
		// The error's one line says which kind of broken it found.
		if !strings.HasSuffix(err.Error(), ": broken: 2 privilege(s) of segments_app other than declared") {
			t.Fatalf("check of the privileges failed with %q; want it to name the 2 privileges, and nothing else", err)
		}
	}
	want = ""
	for _, f := range found {
		want += "repaired: " + f + "\n"
	}
	if out, err := runCheck("--repair"); err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("check --repair of the privileges: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	var pgErr *pgconn.PgError
	if err := mint(); !errors.As(err, &pgErr) || pgErr.Code != "42501" || pgErr.Message != "permission denied for table api_keys" {
		t.Errorf("the server's role inserting into api_keys after the repair: %v; want permission denied", err)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}
}

// TestCheckRepairsAnotherRolesGrant: a privilege another role than the tables' owner
// granted the server's role (grantor_x, given INSERT on api_keys with the grant
// option) is that role's grant alone: a superuser's REVOKE runs as the owner, and
// takes back nothing. On a PostgreSQL server of its own (roles are the whole
// server's): check as the superuser names the grantor and says --repair repairs it,
// which --repair as the superuser does, exiting 0. Run as a role that is no
// superuser nor a member of grantor_x, check says --repair leaves it, with the SQL
// that works; --repair says "repaired" only of what it changed (an UPDATE the owner
// granted), "not repaired" of grantor_x's grant, with that SQL, and exits 3; the SQL,
// run by the superuser, takes the grant back. Before, --repair printed "repaired" and
// "not repaired" for the grant, left it, and printed a REVOKE that left it too.
func TestCheckRepairsAnotherRolesGrant(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t)
	getenv := env(map[string]string{"DATABASE_URL": pg.URL("segments")})
	if _, stderr, err := cli(getenv, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	runCheck := checkCommand(t, getenv)
	super := storetest.Conn(t, pg.URL("segments"))
	exec := func(conn *pgx.Conn, sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	grant := func(conn *pgx.Conn) {
		t.Helper()
		exec(conn, "BEGIN; GRANT INSERT ON api_keys TO grantor_x WITH GRANT OPTION; SET LOCAL ROLE grantor_x; GRANT INSERT ON api_keys TO "+store.AppRole+"; COMMIT")
	}
	inserts := func(conn *pgx.Conn) bool {
		t.Helper()
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT has_table_privilege($1, 'api_keys', 'INSERT')", store.AppRole).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	exec(super, "CREATE ROLE grantor_x LOGIN")
	grant(super)
	const found = "table api_keys: segments_app holds INSERT beyond what is declared (none), granted by role grantor_x"
	want := "broken: " + found + "; \"segments check --repair\" (or migrate) repairs it\n"
	if out, err := runCheck(); exitCode(err) != 3 || !strings.HasPrefix(out, want) {
		t.Errorf("check as the superuser: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	want = "repaired: " + found + "\n"
	if out, err := runCheck("--repair"); err != nil || !strings.HasPrefix(out, want) {
		t.Errorf("check --repair as the superuser: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	if inserts(super) {
		t.Fatal("after check --repair as the superuser, the server's role may insert into api_keys")
	}

	// As a role that is no superuser, owning its database.
	exec(super, "CREATE ROLE lesser LOGIN CREATEROLE PASSWORD 'lesser'")
	exec(super, "CREATE DATABASE lesser OWNER lesser")
	var me string
	if err := super.QueryRow(ctx, "SELECT current_user").Scan(&me); err != nil {
		t.Fatal(err)
	}
	lesserEnv := env(map[string]string{"DATABASE_URL": strings.Replace(pg.URL("lesser"), me+":"+pg.Password(), "lesser:lesser", 1)})
	if _, stderr, err := cli(lesserEnv, "migrate"); err != nil {
		t.Fatalf("migrate as lesser: %v\n%s", err, stderr)
	}
	runCheck = checkCommand(t, lesserEnv)
	superLesser := storetest.Conn(t, pg.URL("lesser"))
	// Migrated by lesser, none of the functions the migrations declare leakproof is
	// (TestCheckLeakproofAsAnotherRole): a superuser's repair declares them, so that
	// check reports the privileges alone.
	if out, stderr, err := cli(env(map[string]string{"DATABASE_URL": pg.URL("lesser")}), "check", "--repair"); err != nil {
		t.Fatalf("check --repair of lesser's database as the superuser: %v\n%s\n%s", err, out, stderr)
	}
	grant(superLesser)
	exec(superLesser, "GRANT UPDATE ON workspaces TO "+store.AppRole) // recorded as the owner's
	const fix = "SET ROLE grantor_x; REVOKE INSERT ON TABLE public.api_keys FROM segments_app CASCADE; RESET ROLE"
	const workspaces = "table workspaces: segments_app holds UPDATE beyond what is declared (SELECT)"
	want = "broken: " + found + "; the role this runs as may not revoke as grantor_x, so \"segments check --repair\" (or migrate) leaves it: have a superuser, or a member of role grantor_x run: " + fix + "\n" +
		"broken: " + workspaces + "; \"segments check --repair\" (or migrate) repairs it\n"
	if out, err := runCheck(); exitCode(err) != 3 || !strings.HasPrefix(out, want) {
		t.Errorf("check as lesser: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	want = "repaired: " + workspaces + "\n" +
		"not repaired: " + found + ": the role this runs as may not change it; have a superuser, or a member of role grantor_x run: " + fix + "\n"
	out, err := runCheck("--repair")
	if exitCode(err) != 3 || !strings.HasPrefix(out, want) || !strings.HasSuffix(err.Error(), ": broken: 1 privilege(s) of segments_app other than declared") {
		t.Errorf("check --repair as lesser: %v\n%s\nwant exit status 3, and it to begin with\n%s", err, out, want)
	}
	var printed string // the SQL of the "not repaired" line
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "repaired: table api_keys") {
			t.Errorf("check --repair as lesser says it repaired what it left: %s", line)
		}
		if strings.HasPrefix(line, "not repaired: table api_keys") {
			_, printed, _ = strings.Cut(line, " run: ")
		}
	}
	if printed == "" {
		t.Fatalf("check --repair as lesser printed no SQL for what it left:\n%s", out)
	}
	exec(superLesser, printed) // as the superuser
	if inserts(superLesser) {
		t.Errorf("after the superuser ran %q, the server's role may insert into api_keys", printed)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Errorf("check as lesser after the fix: %v\n%s", err, out)
	}
}

// TestCheckGuardsAroundTheTables: "segments check" reports what the server's role
// holds around the tables and must not, as a GRANT by hand leaves it: CREATE on the
// schema (a table or function of its own where the owner's names resolve) and a grant
// option. It exits 3, naming them; --repair takes them back and exits 0, and the next
// check is clean. Before, the check found nothing.
func TestCheckGuardsAroundTheTables(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	conn := storetest.Conn(t, dbURL)
	if _, err := conn.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+store.AppRole+"; GRANT SELECT ON segments TO "+store.AppRole+" WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	found := []string{
		"table segments: segments_app holds SELECT with grant option, which is never declared",
		"schema public: segments_app holds CREATE beyond what is declared (USAGE)",
	}
	var want string
	for _, f := range found {
		want += "broken: " + f + "; \"segments check --repair\" (or migrate) repairs it\n"
	}
	out, err := runCheck()
	if exitCode(err) != 3 || !strings.HasPrefix(out, want) || !strings.HasSuffix(err.Error(), ": broken: 2 privilege(s) of segments_app other than declared") {
		t.Fatalf("check: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	want = ""
	for _, f := range found {
		want += "repaired: " + f + "\n"
	}
	if out, err := runCheck("--repair"); err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("check --repair: %v\n%s\nwant it to begin with\n%s", err, out, want)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check", "now"}, {"check", "--fix"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, env(nil), &stdout, &stderr)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"help", "check"}, env(nil), &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"segments check [--repair]", "--repair", "status 3", "DATABASE_URL"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help check does not mention %s:\n%s", want, stdout.String())
		}
	}
}

// TestWarnsOfUnlimitedTempFiles runs serve and check on a PostgreSQL whose
// temp_file_limit is PostgreSQL's default, unlimited: both warn, with the fix, and go
// on. With a limit, they do not warn.
func TestWarnsOfUnlimitedTempFiles(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t, "temp_file_limit=-1")
	getenv := env(map[string]string{"DATABASE_URL": pg.URL("segments")})
	const warning = `msg="unsafe PostgreSQL setting" name=temp_file_limit value=-1`

	if _, stderr, err := cli(getenv, "migrate"); err != nil { // check does not migrate
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	_, stderr, err := cli(getenv, "check")
	if err != nil || !strings.Contains(stderr, warning) {
		t.Fatalf("check with temp_file_limit unlimited: %v; want a warning on stderr:\n%s", err, stderr)
	}
	if _, log := startLogged(t, getenv); !strings.Contains(log.String(), warning) {
		t.Fatalf("serve with temp_file_limit unlimited logged no warning:\n%s", log.String())
	}

	if fix := "ALTER SYSTEM SET temp_file_limit = '4GB'; SELECT pg_reload_conf();"; !strings.Contains(stderr, fix) {
		t.Fatalf("the warning does not give the fix %q:\n%s", fix, stderr)
	}

	// With a limit, as a superuser sets it (the embedded server's owner is one). Not
	// with the warning's ALTER SYSTEM: this server has temp_file_limit on its command
	// line, which a database's setting overrides and the configuration files do not.
	conn, err := pgx.Connect(ctx, pg.URL("segments"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER DATABASE segments SET temp_file_limit = '4GB'"); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cli(getenv, "check"); err != nil || strings.Contains(stderr, "unsafe") {
		t.Fatalf("check with temp_file_limit set: %v\n%s", err, stderr)
	}
	if _, log := startLogged(t, getenv); strings.Contains(log.String(), "unsafe") {
		t.Fatalf("serve with temp_file_limit set warned:\n%s", log.String())
	}
}

// seededForCheck returns a new database holding the demo, and a function that runs
// "segments check" on it (checkCommand).
func seededForCheck(t *testing.T) (dbURL string, runCheck func(args ...string) (string, error)) {
	dbURL = storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"seed"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("seed: %v\n%s", err, stderr.String())
	}
	return dbURL, checkCommand(t, getenv)
}

// checkCommand returns a function that runs "segments check" with args and returns
// what it printed; it fails the test unless the command ends with no drift found or
// with drift reported (exit 3).
func checkCommand(t *testing.T, getenv func(string) string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"check"}, args...), getenv, &stdout, &stderr)
		if err != nil && exitCode(err) != 3 {
			t.Fatalf("check %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), err
	}
}

// TestCheckRepairsGoneWorkspaceChanges runs "segments check" on membership changes of
// a workspace that no longer exists, as a server older than the feed leaves them
// when it deletes a workspace: the check reports them (exit 3), --repair deletes
// them, reporting how many, and the next check is clean.
func TestCheckRepairsGoneWorkspaceChanges(t *testing.T) {
	ctx := context.Background()
	dbURL, runCheck := seededForCheck(t)
	conn := storetest.Conn(t, dbURL)
	var gone int64
	if err := conn.QueryRow(ctx, `INSERT INTO membership_changes (workspace_id, change_xid, segment_id, added, contact_ids, changed_at)
		SELECT max(id) + 1, pg_current_xact_id(), 1, true, ARRAY[i::bigint], now() FROM workspaces, generate_series(1, 3) i
		GROUP BY i RETURNING workspace_id`).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("workspace %d (deleted): 3 membership change(s) of a workspace that no longer exists (an older server deleted it)", gone)
	out, err := runCheck()
	if exitCode(err) != 3 || out != "drift: "+line+"\n1 deleted workspace's membership changes, "+
		"0 segment counters, 0 segments' bitmaps and 0 workspaces' contact counts drifted; run \"segments check --repair\" to repair\n" {
		t.Errorf("check with a gone workspace's changes: %v\n%s", err, out)
	}
	out, err = runCheck("--repair")
	if err != nil || out != "repaired: "+line+"\n1 deleted workspace's membership changes, "+
		"0 segment counters, 0 segments' bitmaps and 0 workspaces' contact counts repaired\n" {
		t.Fatalf("check --repair with a gone workspace's changes: %v\n%s", err, out)
	}
	if out, err := runCheck(); err != nil || !strings.HasPrefix(out, "no drift") {
		t.Fatalf("check after the repair: %v\n%s", err, out)
	}
}
