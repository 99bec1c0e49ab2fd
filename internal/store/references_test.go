package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// The memberships' references are checked by statement-level triggers, not foreign
// keys (migration 20261201000001_membership_references). These tests write SQL by
// hand, beneath the store, since the store itself validates every ID before it
// writes: what they prove is that the database still refuses what the foreign keys
// refused, and still cascades what they cascaded.

// TestMembershipReferencesChecked inserts and updates memberships that name a contact
// or segment that does not exist or belongs to another workspace, as the owner
// (beneath row-level security) and as the server's role: each statement fails with
// SQLSTATE 23503, as a foreign key violation did, and leaves nothing behind.
func TestMembershipReferencesChecked(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	f := newFixture(t, owner, 41_000, map[string]int{"Alpha": 2})
	other := newFixture(t, owner, 41_100, map[string]int{"Beta": 1})
	seg, contact := f.segments["Alpha"], f.contacts[5]
	before := ownerCounts(t, owner, f.ws.ID) + ownerCounts(t, owner, other.ws.ID)

	refused := []struct {
		name, sql, want string
	}{
		{"unknown contact", fmt.Sprintf("INSERT INTO memberships VALUES (%d, %d, %d)", f.ws.ID, seg, 1<<40),
			fmt.Sprintf("contact %d", int64(1)<<40)},
		{"another workspace's contact", fmt.Sprintf("INSERT INTO memberships VALUES (%d, %d, %d)", f.ws.ID, seg, other.contacts[0]),
			fmt.Sprintf("contact %d", other.contacts[0])},
		{"unknown segment", fmt.Sprintf("INSERT INTO memberships VALUES (%d, %d, %d)", f.ws.ID, 1<<40, contact),
			fmt.Sprintf("segment %d", int64(1)<<40)},
		{"another workspace's segment", fmt.Sprintf("INSERT INTO memberships VALUES (%d, %d, %d)", f.ws.ID, other.segments["Beta"], contact),
			fmt.Sprintf("segment %d", other.segments["Beta"])},
		{"one bad row among good ones", fmt.Sprintf("INSERT INTO memberships SELECT %d, %d, c FROM unnest('{%d,%d,%d}'::bigint[]) c",
			f.ws.ID, seg, f.contacts[6], other.contacts[1], f.contacts[7]), fmt.Sprintf("contact %d", other.contacts[1])},
		{"a membership moved to an unknown contact", fmt.Sprintf("UPDATE memberships SET contact_id = %d WHERE workspace_id = %d AND segment_id = %d AND contact_id = %d",
			1<<41, f.ws.ID, seg, f.contacts[0]), fmt.Sprintf("contact %d", int64(1)<<41)},
	}
	for _, as := range []struct {
		name string
		db   *sql.DB
		ctx  context.Context
	}{{"owner", owner.DB(), ctx}, {"app role", app.DB(), store.WithWorkspace(ctx, f.ws.ID)}} {
		for _, tc := range refused {
			_, err := as.db.ExecContext(as.ctx, tc.sql)
			if sqlState(err) != "23503" || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s, %s: %v (SQLSTATE %q), want a foreign key violation naming %s", as.name, tc.name, err, sqlState(err), tc.want)
			}
		}
	}
	// A contact's or a segment's key no longer changes once memberships may refer to it.
	for _, q := range []string{
		fmt.Sprintf("UPDATE contacts SET workspace_id = %d WHERE workspace_id = %d AND id = %d", other.ws.ID, f.ws.ID, f.contacts[0]),
		fmt.Sprintf("UPDATE segments SET workspace_id = %d WHERE workspace_id = %d AND id = %d", other.ws.ID, f.ws.ID, seg),
		fmt.Sprintf("UPDATE contacts SET id = DEFAULT WHERE workspace_id = %d AND id = %d", f.ws.ID, f.contacts[0]),
	} {
		if _, err := owner.DB().ExecContext(ctx, q); sqlState(err) != "23503" {
			t.Errorf("%s: %v (SQLSTATE %q), want a foreign key violation", q, err, sqlState(err))
		}
	}
	if after := ownerCounts(t, owner, f.ws.ID) + ownerCounts(t, owner, other.ws.ID); after != before {
		t.Errorf("refused statements changed rows:\n before %s\n after  %s", before, after)
	}

	// What the store writes passes, and so does a good row written by hand.
	if _, err := app.DB().ExecContext(store.WithWorkspace(ctx, f.ws.ID),
		fmt.Sprintf("INSERT INTO memberships VALUES (%d, %d, %d)", f.ws.ID, seg, contact)); err != nil {
		t.Fatal(err)
	}
	checkDerived(t, owner, f.ws.ID)
}

// TestMembershipsFollowDeletions deletes contacts, a segment and a whole workspace
// with SQL of their own: their memberships go with them, as the foreign keys'
// cascades took them, and every counter and bitmap follows.
func TestMembershipsFollowDeletions(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	f := newFixture(t, owner, 41_200, map[string]int{"Alpha": 6, "Beta": 4, "Gamma": 10})
	other := newFixture(t, owner, 41_300, map[string]int{"Alpha": 3})
	memberships := func(ws int64, where string) int {
		return count(t, owner.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM memberships WHERE workspace_id = %d AND %s", ws, where))
	}

	// Two contacts, in one statement, through the server's role.
	asF := store.WithWorkspace(ctx, f.ws.ID)
	gone := fmt.Sprintf("contact_id IN (%d, %d)", f.contacts[1], f.contacts[2])
	if n := memberships(f.ws.ID, gone); n != 6 {
		t.Fatalf("%d memberships of the two contacts before, want 6", n)
	}
	if _, err := app.DB().ExecContext(asF, fmt.Sprintf("DELETE FROM contacts WHERE id IN (%d, %d)", f.contacts[1], f.contacts[2])); err != nil {
		t.Fatal(err)
	}
	if n := memberships(f.ws.ID, gone); n != 0 {
		t.Errorf("%d memberships of deleted contacts remain", n)
	}
	checkDerived(t, owner, f.ws.ID)

	// A segment.
	beta := fmt.Sprintf("segment_id = %d", f.segments["Beta"])
	if _, err := app.DB().ExecContext(asF, "DELETE FROM segments WHERE "+strings.Replace(beta, "segment_id", "id", 1)); err != nil {
		t.Fatal(err)
	}
	if n := memberships(f.ws.ID, beta); n != 0 {
		t.Errorf("%d memberships of a deleted segment remain", n)
	}
	if n := count(t, owner.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM segment_bitmaps WHERE workspace_id = %d AND %s", f.ws.ID, beta)); n != 0 {
		t.Errorf("%d bitmap chunks of a deleted segment remain", n)
	}
	checkDerived(t, owner, f.ws.ID)
	if n := memberships(f.ws.ID, "true"); n != 6-2+10-2 {
		t.Errorf("%d memberships left in the workspace, want Alpha's 4 and Gamma's 8", n)
	}

	// The whole workspace, as an operator would (the owner; workspaces cascade to
	// contacts and segments by foreign keys, and those to memberships by the triggers).
	if _, err := owner.DB().ExecContext(ctx, "DELETE FROM workspaces WHERE id = $1", f.ws.ID); err != nil {
		t.Fatal(err)
	}
	if n := memberships(f.ws.ID, "true"); n != 0 {
		t.Errorf("%d memberships of a deleted workspace remain", n)
	}
	// The other workspace kept everything.
	if n := memberships(other.ws.ID, "true"); n != 3 {
		t.Errorf("the other workspace has %d memberships, want 3", n)
	}
	checkDerived(t, owner, other.ws.ID)
}

// TestMembershipInsertRacingDeletion runs an insert of memberships, written by hand
// without the store's locks, against the deletion of their contact, both ways round,
// as the foreign keys' row locks made them safe: no membership outlives its contact.
func TestMembershipInsertRacingDeletion(t *testing.T) {
	ctx := context.Background()
	owner := storetest.Store(t)
	f := newFixture(t, owner, 41_400, map[string]int{"Alpha": 0})
	seg := f.segments["Alpha"]
	insert := func(tx *sql.Tx, contact int64) error {
		_, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO memberships VALUES (%d, %d, %d)", f.ws.ID, seg, contact))
		return err
	}
	deleteContact := func(tx *sql.Tx, contact int64) error {
		_, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM contacts WHERE workspace_id = %d AND id = %d", f.ws.ID, contact))
		return err
	}
	begin := func() *sql.Tx {
		tx, err := owner.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback() })
		return tx
	}
	// inTx runs change in a transaction of its own on another goroutine and sends
	// the outcome, its commit's included, on the channel it returns.
	inTx := func(change func(*sql.Tx, int64) error, contact int64) <-chan error {
		done := make(chan error, 1)
		go func() {
			tx, err := owner.DB().BeginTx(ctx, nil)
			if err == nil {
				if err = change(tx, contact); err == nil {
					err = tx.Commit()
				} else {
					tx.Rollback()
				}
			}
			done <- err
		}()
		return done
	}

	// The deletion first: the insert's check waits for it, then finds the contact gone.
	victim := f.contacts[0]
	del := begin()
	if err := deleteContact(del, victim); err != nil {
		t.Fatal(err)
	}
	done := inTx(insert, victim)
	waitForLock(t, owner.DB(), "INSERT INTO memberships", done)
	if err := del.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; sqlState(err) != "23503" {
		t.Errorf("insert after a deletion of its contact: %v, want a foreign key violation", err)
	}

	// The insert first: the deletion waits for its lock, then deletes what it committed.
	victim = f.contacts[1]
	ins := begin()
	if err := insert(ins, victim); err != nil {
		t.Fatal(err)
	}
	done = inTx(deleteContact, victim)
	waitForLock(t, owner.DB(), "DELETE FROM contacts", done)
	if err := ins.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("deletion after an insert: %v", err)
	}
	if n := count(t, owner.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM memberships WHERE workspace_id = %d", f.ws.ID)); n != 0 {
		t.Errorf("%d memberships outlived their contacts", n)
	}
	checkDerived(t, owner, f.ws.ID)
}

// checkDerived fails unless every segment of the workspace counts its memberships in
// contact_count and has exactly their bits set in its bitmaps.
func checkDerived(t *testing.T, s *store.Store, ws int64) {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), `
		SELECT s.name, s.contact_count,
		       (SELECT count(*) FROM memberships m WHERE m.workspace_id = s.workspace_id AND m.segment_id = s.id),
		       (SELECT coalesce(sum(bit_count(b.bits)), 0) FROM segment_bitmaps b WHERE b.workspace_id = s.workspace_id AND b.segment_id = s.id)
		FROM segments s WHERE s.workspace_id = $1 ORDER BY s.id`, ws)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var stored, members, bits int64
		if err := rows.Scan(&name, &stored, &members, &bits); err != nil {
			t.Fatal(err)
		}
		if stored != members || bits != members {
			t.Errorf("segment %s: contact_count %d, bits %d, memberships %d", name, stored, bits, members)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestMembershipReferencesCheckedByKey proves that the check of an insert's
// references reads the contacts and segments the insert names, not its workspace's,
// in every plan PostgreSQL may keep for it (migration 20261203000003). The check's
// plans turn generic after five calls, and a generic plan expects the average
// workspace: beside 300 businesses of 3 contacts in one segment, the one here of
// 5,000 contacts in 2,000 segments had all of them read to check an insert of 10
// contacts into 2 segments.
func TestMembershipReferencesCheckedByKey(t *testing.T) {
	ctx := context.Background()
	pg := storetest.Server(t, "autovacuum=off")
	owner, app := storetest.MigratedStores(t, pg.URL("segments"), store.Options{MaxConns: 2})
	large, _ := storetest.Workspace(t, owner)
	fillWorkspace(t, owner, large.ID, 5_000, 2_000, 1<<40) // no memberships
	fillSmallWorkspaces(t, owner, 300, 3, 1, 1)
	storetest.Exec(t, owner.DB(), "VACUUM ANALYZE memberships, contacts, segments")
	contacts := storetest.Column[int64](t, owner.DB(), `SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id LIMIT 70`, large.ID)
	segments := storetest.Column[int64](t, owner.DB(), `SELECT id FROM segments WHERE workspace_id = $1 ORDER BY id LIMIT 2`, large.ID)
	insert := func(contacts []int64) string {
		return fmt.Sprintf("INSERT INTO memberships (workspace_id, segment_id, contact_id) SELECT %d, s, c FROM unnest('%s'::bigint[]) s, unnest('%s'::bigint[]) c",
			large.ID, pgArray(segments), pgArray(contacts))
	}

	wctx := store.WithWorkspace(ctx, large.ID)
	// rowsRead returns the rows of contacts and of segments that an insert of 10
	// contacts into 2 segments read (the transaction's own statistics), after six
	// others in the same session, with the check's plans made as planCacheMode says.
	// The inserts are rolled back.
	rowsRead := func(planCacheMode string) (contactRows, segmentRows int64) {
		t.Helper()
		tx, err := app.DB().BeginTx(wctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		read := func() (c, s int64) {
			t.Helper()
			err := tx.QueryRowContext(wctx, `SELECT
				(SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'contacts'),
				(SELECT idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'segments')`).Scan(&c, &s)
			if err != nil {
				t.Fatal(err)
			}
			return c, s
		}
		if _, err := tx.ExecContext(wctx, "SET LOCAL plan_cache_mode = "+planCacheMode); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 6; i++ {
			if _, err := tx.ExecContext(wctx, insert(contacts[10*i:10*i+10])); err != nil {
				t.Fatal(err)
			}
		}
		c, s := read()
		if _, err := tx.ExecContext(wctx, insert(contacts[:10])); err != nil {
			t.Fatal(err)
		}
		contactRows, segmentRows = read()
		return contactRows - c, segmentRows - s
	}
	for _, mode := range []string{"force_custom_plan", "auto", "force_generic_plan"} {
		c, s := rowsRead(mode)
		t.Logf("plan_cache_mode %s: %d rows of contacts and %d of segments read to check 10 contacts and 2 segments", mode, c, s)
		// The check and the triggers after it read the segments again, by key: 3 rows
		// a segment, 4 since the counter locks them in id order before it adds to
		// them (migration 20261205000003).
		if c > 10 || s > 4*2 {
			t.Errorf("plan_cache_mode %s: the check of 10 contacts and 2 segments read %d contacts and %d segments", mode, c, s)
		}
	}
}
