package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestAppRoleIsHeldBackByRLS proves what row-level security needs of the server's
// role: it is no superuser, cannot bypass RLS and owns no table; the owner's store,
// which is all three, is refused by the same check.
func TestAppRoleIsHeldBackByRLS(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	if err := owner.CheckAppRole(ctx); err == nil {
		t.Fatal("the owner's role passes CheckAppRole")
	}
	var user string
	var super, bypass bool
	var owned int
	err := app.DB().QueryRowContext(ctx, `SELECT current_user, r.rolsuper, r.rolbypassrls,
		(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &super, &bypass, &owned)
	if err != nil {
		t.Fatal(err)
	}
	if user != store.AppRole || super || bypass || owned != 0 {
		t.Fatalf("app role %s: superuser %v, bypassrls %v, owns %d relations", user, super, bypass, owned)
	}
	if err := app.CheckAppRole(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEveryTenantTableHasRLS lists the tables holding tenant rows (a workspace_id
// column, and workspaces) without row-level security or without a policy: none.
func TestEveryTenantTableHasRLS(t *testing.T) {
	var missing []string
	rows, err := storetest.Store(t).DB().QueryContext(context.Background(), `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
		  AND (c.relname = 'workspaces' OR EXISTS (SELECT FROM pg_attribute a
		       WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped))
		  AND (NOT c.relrowsecurity OR NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid))
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		missing = append(missing, name)
	}
	if len(missing) > 0 {
		t.Fatalf("tenant tables without row-level security: %v", missing)
	}
}

// tenantTables are the tables with workspace rows the server's role may read.
var tenantTables = []string{"segments", "contacts", "memberships", "idempotency_keys", "idempotency_budgets", "rate_limit_buckets", "deleted_contacts", "membership_changes"}

// TestRLSHoldsStatementsToTheirWorkspace proves the backstop below the store's own
// scoping, with raw SQL that forgets every workspace condition: as the server's role,
// a statement acting for A reads, changes and deletes only A's rows, cannot write a
// row of B, and a statement acting for nobody sees no tenant row at all; the setting
// ends with the statement's transaction and never stays on a pooled connection.
func TestRLSHoldsStatementsToTheirWorkspace(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	for i, ws := range []crm.Workspace{a, b} {
		seedWorkspace(t, owner, ws.ID, 700_000+i*10)
	}
	bBefore := ownerCounts(t, owner, b.ID)
	asA := store.WithWorkspace(ctx, a.ID)
	db := app.DB()

	// Nobody: no tenant row, in any table; the workspaces too.
	for _, table := range append(tenantTables, "workspaces") {
		if n := count(t, db, ctx, "SELECT count(*) FROM "+table); n != 0 {
			t.Errorf("without a workspace, %s shows %d rows", table, n)
		}
	}
	// Credentials are not the API's to read at all.
	_, err := db.ExecContext(asA, "SELECT * FROM api_keys")
	if code := sqlState(err); code != "42501" {
		t.Errorf("reading api_keys: %v (SQLSTATE %s), want permission denied", err, code)
	}

	// A: only A's rows, also when asking for B's by name.
	for _, table := range tenantTables {
		if n := count(t, db, asA, fmt.Sprintf("SELECT count(*) FROM %s WHERE workspace_id <> %d", table, a.ID)); n != 0 {
			t.Errorf("acting for A, %s shows %d rows of other workspaces", table, n)
		}
	}
	if n := count(t, db, asA, "SELECT count(*) FROM workspaces"); n != 1 {
		t.Errorf("acting for A, %d workspaces are visible", n)
	}
	if n := count(t, db, asA, "SELECT count(*) FROM contacts"); n != 3 {
		t.Errorf("acting for A, %d contacts are visible, want A's 3", n)
	}

	// The store's functions run as the caller, under the same policies: the
	// segments of B's contacts, asked for by B's IDs, are not A's to see.
	var bContacts string
	if err := owner.DB().QueryRowContext(ctx, "SELECT array_agg(id)::text FROM contacts WHERE workspace_id = $1", b.ID).Scan(&bContacts); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, asA, fmt.Sprintf("SELECT count(*) FROM segments_of_contacts(%d, '%s')", b.ID, bContacts)); n != 0 {
		t.Errorf("acting for A, segments_of_contacts shows %d segments of B's contacts", n)
	}
	if n := count(t, db, asA, fmt.Sprintf("SELECT count(*) FROM segments_of_contacts(%d, (SELECT array_agg(id) FROM contacts))", a.ID)); n != 2 {
		t.Errorf("acting for A, segments_of_contacts shows %d segments of A's contacts, want 2", n)
	}

	// Writes: B's rows cannot be changed, deleted or added to.
	res, err := db.ExecContext(asA, fmt.Sprintf("UPDATE contacts SET name = 'taken' WHERE workspace_id = %d", b.ID))
	if n, _ := rowsAffected(res, err); n != 0 || err != nil {
		t.Errorf("acting for A, updating B's contacts: %d rows, %v", n, err)
	}
	res, err = db.ExecContext(asA, "DELETE FROM memberships")
	if n, _ := rowsAffected(res, err); n != 3 || err != nil { // A's own 3
		t.Errorf("acting for A, deleting every membership: %d rows, %v; want A's 3", n, err)
	}
	_, err = db.ExecContext(asA, fmt.Sprintf("INSERT INTO segments (workspace_id, name) VALUES (%d, 'planted')", b.ID))
	if code := sqlState(err); code != "42501" {
		t.Errorf("acting for A, inserting a segment of B: %v (SQLSTATE %s), want a policy violation", err, code)
	}
	_, err = db.ExecContext(asA, fmt.Sprintf("UPDATE segments SET workspace_id = %d", b.ID))
	if code := sqlState(err); code != "42501" {
		t.Errorf("acting for A, moving A's segments to B: %v (SQLSTATE %s), want a policy violation", err, code)
	}
	if after := ownerCounts(t, owner, b.ID); after != bBefore {
		t.Errorf("B's rows changed: %s, then %s", bBefore, after)
	}

	// The setting lasts for the statement's transaction only: on the same
	// connection, the next statement acting for nobody sees nothing.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(asA, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 3 {
		t.Fatalf("acting for A on one connection: %d contacts, %v", n, err)
	}
	var setting sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT current_setting('app.workspace_id', true)").Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if setting.String != "" {
		t.Errorf("after the statement, app.workspace_id is still %q", setting.String)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 0 {
		t.Errorf("next statement for nobody on the same connection: %d contacts, %v", n, err)
	}

	// In an explicit transaction every statement is scoped, the first one too.
	tx, err := db.BeginTx(asA, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(asA, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 3 {
		t.Errorf("in a transaction for A: %d contacts, %v", n, err)
	}
	if err := tx.QueryRowContext(asA, fmt.Sprintf("SELECT count(*) FROM contacts WHERE workspace_id = %d", b.ID)).Scan(&n); err != nil || n != 0 {
		t.Errorf("in a transaction for A: %d of B's contacts, %v", n, err)
	}

	// Driver arguments cannot carry a workspace prefix: refused rather than sent
	// unscoped.
	if _, err := db.ExecContext(asA, "SELECT $1::int", 1); err == nil {
		t.Error("a statement with a workspace and driver arguments ran")
	}
}

// TestSearchSettingLastsOneStatement checks that the statement of a search by
// trigrams (a term of three characters or more) is planned without sequential scans
// (store.forSearch), and that the setting ends with it: the next statement on the
// same connection is planned as usual.
func TestSearchSettingLastsOneStatement(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	asWS := store.WithWorkspace(ctx, ws.ID)
	conn, err := app.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range []struct {
		what string
		ctx  context.Context
		want string
	}{
		{"a search", store.ForSearch(asWS, "buyers"), "off"},
		{"the next statement", asWS, "on"},
		{"a search of two characters", store.ForSearch(asWS, "bü"), "on"},
		{"a search of three", store.ForSearch(asWS, "büy"), "off"},
	} {
		var seqscan, workspace string
		err := conn.QueryRowContext(c.ctx, "SELECT current_setting('enable_seqscan'), current_setting('app.workspace_id')").Scan(&seqscan, &workspace)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if seqscan != c.want || workspace != strconv.FormatInt(ws.ID, 10) {
			t.Errorf("%s: enable_seqscan %s, app.workspace_id %s; want %s, %d", c.what, seqscan, workspace, c.want, ws.ID)
		}
	}
	// Through Exec too (database/sql's path for statements without rows).
	if _, err := conn.ExecContext(store.ForSearch(asWS, "buyers"), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var seqscan string
	if err := conn.QueryRowContext(asWS, "SELECT current_setting('enable_seqscan')").Scan(&seqscan); err != nil || seqscan != "on" {
		t.Errorf("after a search's Exec: enable_seqscan %s, %v; want on", seqscan, err)
	}
}

// TestAppRoleAuthenticatesAndSweeps proves the two statements that cross workspaces
// on purpose work as the server's role, through their SECURITY DEFINER functions:
// finding a key by its hash, and sweeping expired idempotency keys of all workspaces,
// which keeps every key younger than the 24 hours the server keeps them whatever age
// it is asked for: the role, or SQL run as it, swept every workspace's keys with a
// negative age (keys of 2 hours went, asked for 1 hour or -100,000 s), so that
// retries of their mutations would run them twice.
func TestAppRoleAuthenticatesAndSweeps(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	a, key := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	if _, _, err := app.AuthenticateKey(ctx, []byte("no such hash")); !isCode(err, crm.CodeNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	ws, k, err := app.AuthenticateKey(ctx, key.Hash())
	if err != nil || ws.ID != a.ID || ws.Name != a.Name || k.WorkspaceID != a.ID {
		t.Fatalf("authenticate as the app role: %+v %+v %v", ws, k, err)
	}
	if got, err := app.Workspace(ctx, b.ID); err != nil || got.Name != b.Name {
		t.Fatalf("a session's workspace, looked up as the app role: %+v %v", got, err)
	}

	for _, ws := range []int64{a.ID, b.ID} {
		if _, err := owner.DB().ExecContext(ctx, `INSERT INTO idempotency_keys
			(workspace_id, key, request_hash, status, content_type, body, created_at)
			VALUES ($1, 'old', '\x00', 200, 'application/json', '{}', now() - interval '25 hours'),
			       ($1, 'young', '\x00', 200, 'application/json', '{}', now() - interval '2 hours')`, ws); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.DeleteExpiredIdempotencyKeys(ctx, time.Hour, 1000); err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, app.DB(), "SELECT segments_delete_expired_idempotency_keys(-100000000000, 1000)")
	left := storetest.Column[string](t, owner.DB(), "SELECT key FROM idempotency_keys WHERE workspace_id IN ($1, $2) ORDER BY key", a.ID, b.ID)
	if !slices.Equal(left, []string{"young", "young"}) {
		t.Fatalf("keys left after the sweeps: %q, want the two younger than 24 hours", left)
	}
}

// seedWorkspace gives ws 3 contacts, 2 segments and 3 memberships, an idempotency
// key and a rate-limit bucket.
func seedWorkspace(t *testing.T, s *store.Store, ws int64, phoneBase int) {
	t.Helper()
	ctx := context.Background()
	var in []crm.ContactInput
	for i := range 3 {
		in = append(in, crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", phoneBase+i)})
	}
	up, err := s.UpsertContacts(ctx, ws, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		seg, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: fmt.Sprintf("Segment %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, c := range up.Contacts[:i+1] {
			ids = append(ids, c.ID)
		}
		if _, err := s.AssignContactsToSegments(ctx, ws, ids, []int64{seg.ID}, store.WithSegments); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ClaimIdempotencyKey(ctx, ws, "seed", []byte{1}, time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO rate_limit_buckets (workspace_id, bucket, tokens, updated_at, granted)
		VALUES ($1, 'seed', 1, now(), true)`, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO idempotency_budgets (workspace_id, bytes) VALUES ($1, 1)`, ws); err != nil {
		t.Fatal(err)
	}
}

// ownerCounts summarizes ws's rows as the owner sees them.
func ownerCounts(t *testing.T, s *store.Store, ws int64) string {
	t.Helper()
	out := ""
	for _, table := range tenantTables {
		var sum string
		err := s.DB().QueryRowContext(context.Background(), fmt.Sprintf(
			"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM %s t WHERE workspace_id = $1", table), ws).Scan(&sum)
		if err != nil {
			t.Fatal(err)
		}
		out += table + "=" + sum + " "
	}
	return out
}

func count(t *testing.T, db *sql.DB, ctx context.Context, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return -1, err
	}
	return res.RowsAffected()
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func isCode(err error, code crm.Code) bool {
	var e *crm.Error
	return errors.As(err, &e) && e.Code == code
}

// TestRLSKeepsConditionsOnTheirIndexes proves that, as the server's role, searches,
// the NAME order of contacts and attribute conditions are still answered from their
// indexes. Under row-level security PostgreSQL may use a query's condition in an
// index only when its functions are leakproof (and coalesce never is): a search, or
// an attribute's condition (jsonb_contains, jsonb_exists, migration 20261219000002),
// would otherwise read every contact of the workspace.
func TestRLSKeepsConditionsOnTheirIndexes(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{MaxConns: 4})
	var leaky int
	if err := owner.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_proc WHERE NOT proleakproof AND oid IN
		('textcat(text,text)'::regprocedure, 'texticlike(text,text)'::regprocedure, 'textlike(text,text)'::regprocedure, 'lower(text)'::regprocedure)`).Scan(&leaky); err != nil {
		t.Fatal(err)
	}
	if leaky > 0 {
		t.Skip("the database's owner is not a superuser: the functions could not be declared leakproof (see migrations 20261129000001_rls, 20261219000002)")
	}
	ws, _ := storetest.Workspace(t, owner)
	// Enough rows that an index is worth more than reading the workspace.
	if _, err := owner.DB().ExecContext(ctx, fmt.Sprintf(`
		INSERT INTO contacts (workspace_id, phone, name, email)
		SELECT %[1]d, '+9197' || lpad(g::text, 8, '0'), 'Name ' || md5(g::text), md5(g::text) || '@example.com' FROM generate_series(1, 5000) g;
		INSERT INTO segments (workspace_id, name, description) SELECT %[1]d, 'Segment ' || md5(g::text), 'about ' || g FROM generate_series(1, 3000) g;
		ANALYZE contacts; ANALYZE segments`, ws.ID)); err != nil {
		t.Fatal(err)
	}
	// The statement of the second page of 5, descending, in an order.
	pageAfter := func(field crm.ContactOrderField) string {
		cq, five := crm.ContactQuery{Order: crm.ContactOrder{Field: field, Direction: crm.Desc}}, 5
		p, err := app.Contacts(store.WithWorkspace(ctx, ws.ID), ws.ID, cq, crm.PageArgs{First: &five})
		if err != nil {
			t.Fatal(err)
		}
		after := p.Cursor(4)
		sql, err := store.ContactsPageSQL(app, ws.ID, cq, crm.PageArgs{First: &five, After: &after})
		if err != nil {
			t.Fatal(err)
		}
		return sql
	}
	for _, c := range []struct{ name, query, index string }{
		{"contact search", fmt.Sprintf(`SELECT c.id FROM contacts c WHERE c.workspace_id = %d AND %s LIKE segments_search_pattern('ZQ9X')`, ws.ID, store.ContactSearchExpr), "contacts_search"},
		{"contact search, folded", fmt.Sprintf(`SELECT c.id FROM contacts c WHERE c.workspace_id = %d AND %s LIKE segments_search_pattern('ＺＱ９Ｘé')`, ws.ID, store.ContactSearchExpr), "contacts_search"},
		{"segment search", fmt.Sprintf(`SELECT s.id FROM segments s WHERE s.workspace_id = %d AND %s LIKE segments_search_pattern('zq9x')`, ws.ID, store.SegmentSearchExpr), "segments_search"},
		{"segment search, folded", fmt.Sprintf(`SELECT s.id FROM segments s WHERE s.workspace_id = %d AND %s LIKE segments_search_pattern('ＺＱ９Ｘé')`, ws.ID, store.SegmentSearchExpr), "segments_search"},
		{"contacts by name", fmt.Sprintf(`SELECT c.id FROM contacts c WHERE c.workspace_id = %d AND ((c.name IS NULL), %s, c.id) > (false, 'abc', 0)
			ORDER BY (c.name IS NULL), %[2]s, c.id LIMIT 5`, ws.ID, fmt.Sprintf(store.ContactNameOrderExpr, "c.name")), "contacts_name"},
		{"contacts by email", pageAfter(crm.ContactsByEmail), "contacts_email"},
		{"contacts by attribute", fmt.Sprintf(`SELECT c.id FROM contacts c WHERE c.workspace_id = %d AND c.attributes @> '{"city": "ZQ9X"}'`, ws.ID), "contacts_attributes"},
		{"contacts with a key", fmt.Sprintf(`SELECT c.id FROM contacts c WHERE c.workspace_id = %d AND c.attributes ? 'zq9x'`, ws.ID), "contacts_attributes"},
		{"contacts by phone", pageAfter(crm.ContactsByPhone), "contacts_workspace_id_phone_key"},
	} {
		// Small tables are read whole when allowed: forbid that, and make filtering
		// rows dear, so that the plan shows which conditions an index can take.
		cond, plan := indexCond(t, store.WithWorkspace(ctx, ws.ID), app.DB(),
			"SET LOCAL enable_seqscan = off; SET LOCAL cpu_operator_cost = 1", c.query, c.index)
		if !strings.Contains(cond, "~~") && !strings.Contains(cond, "ROW(") && !strings.Contains(cond, "phone <") && // LIKE or ILIKE, a cursor
			!strings.Contains(cond, "@>") && !strings.Contains(cond, "?") { // an attribute's containment, its key
			t.Errorf("%s: as the app role the condition is not on %s:\n%s", c.name, c.index, plan)
		}
		// The orders' pages, as the store writes them, are the index's order: they
		// sort nothing.
		if strings.HasPrefix(c.name, "contacts by") && strings.Contains(plan, "Sort") {
			t.Errorf("%s: the page sorts:\n%s", c.name, plan)
		}
	}
}

// TestClosedConnectionLeavesThePool: a connection that pgx closed under its statement
// is dropped as it goes back to the pool, not kept for the next request to find dead.
// pgx closes it when the statement's context ends through PgBouncer (where the store
// does not cancel by request, cancelByRequest) or when a cancel goes unanswered, and
// when its backend ends: here, through PgBouncer, its context's 100 ms; directly,
// where a cancelled statement keeps its connection, pg_terminate_backend.
func TestClosedConnectionLeavesThePool(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	db := storetest.MigratedStore(t, url, store.Options{}).DB()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	open := db.Stats().OpenConnections
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if !storetest.ThroughPgBouncer() {
		var pid int
		if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		other := storetest.Conn(t, url)
		// The callback may still be reading its answer when the statement fails: wait
		// for it before the test's cleanup closes other under it (a race -race saw).
		terminated := make(chan struct{})
		terminate := time.AfterFunc(100*time.Millisecond, func() {
			defer close(terminated)
			_, _ = other.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		})
		defer func() {
			if !terminate.Stop() {
				<-terminated
			}
		}()
		short = ctx
	}
	_, err = conn.ExecContext(short, "SELECT pg_sleep(5)")
	if err == nil {
		t.Fatal("a 5 s statement finished within 100 ms")
	}
	var closed bool
	if err := conn.Raw(func(dc any) error {
		closed = dc.(interface{ Conn() *pgx.Conn }).Conn().IsClosed()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Fatalf("pgx kept the connection under a statement that failed (%v): the test proves nothing", err)
	}
	conn.Close()
	if got := db.Stats().OpenConnections; got != open-1 {
		t.Errorf("%d connections open after the closed one went back, want %d: the pool kept it", got, open-1)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Errorf("the next use of the pool: %v", err)
	}
}

// TestTransactionBeginsWithItsFirstStatement: a transaction's BEGIN reaches
// PostgreSQL in the message of its first statement, not in a round trip of its own
// (tenant.go), and the transaction is as whole as with a BEGIN of its own: its
// statements share one transaction, COMMIT keeps what they wrote and ROLLBACK does
// not, a failed first statement fails the transaction, its isolation and access mode
// are those asked for, and a transaction that sends no statement sends nothing.
// current_query() is the text of the message a statement came in.
func TestTransactionBeginsWithItsFirstStatement(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, owner)
	asWS := store.WithWorkspace(ctx, ws.ID)
	db := app.DB()
	prefix := fmt.Sprintf("SET LOCAL app.workspace_id = '%d'; ", ws.ID)
	segments := func(t *testing.T, name string) int {
		return count(t, db, asWS, fmt.Sprintf("SELECT count(*) FROM segments WHERE name = '%s'", name))
	}
	// sent runs a statement in tx and returns the message it came in, and its transaction.
	sent := func(t *testing.T, tx *sql.Tx, statement string) (message string, txid int64) {
		t.Helper()
		if err := tx.QueryRowContext(asWS, statement).Scan(&message, &txid); err != nil {
			t.Fatalf("%s: %v", statement, err)
		}
		return message, txid
	}

	t.Run("commit", func(t *testing.T) {
		tx, err := db.BeginTx(asWS, nil)
		if err != nil {
			t.Fatal(err)
		}
		const first = "SELECT current_query(), txid_current()"
		msg, txid := sent(t, tx, first)
		if want := "BEGIN; " + prefix + first; msg != want {
			t.Errorf("the first statement came in %q; want %q", msg, want)
		}
		insert := fmt.Sprintf("INSERT INTO segments (workspace_id, name) VALUES (%d, 'committed') RETURNING current_query(), txid_current()", ws.ID)
		msg, txid2 := sent(t, tx, insert)
		if msg != prefix+insert || txid2 != txid {
			t.Errorf("the second statement came in %q, in transaction %d; want %q, in %d", msg, txid2, prefix+insert, txid)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := segments(t, "committed"); n != 1 {
			t.Errorf("%d segments after COMMIT; want 1", n)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		tx, err := db.BeginTx(asWS, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(asWS, fmt.Sprintf("INSERT INTO segments (workspace_id, name) VALUES (%d, 'rolled back')", ws.ID)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := segments(t, "rolled back"); n != 0 {
			t.Errorf("%d segments after ROLLBACK; want 0", n)
		}
	})

	t.Run("a failed first statement", func(t *testing.T) {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tx, err := conn.BeginTx(asWS, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(asWS, "SELECT 1/0"); sqlState(err) != "22012" {
			t.Fatalf("SELECT 1/0: %v; want division_by_zero", err)
		}
		// PostgreSQL refuses the transaction's next statement: BEGIN did run.
		if _, err := tx.ExecContext(asWS, "SELECT 1"); sqlState(err) != "25P02" {
			t.Errorf("the statement after the failed one: %v; want in_failed_sql_transaction", err)
		}
		if err := tx.Commit(); !errors.Is(err, pgx.ErrTxCommitRollback) {
			t.Errorf("COMMIT of the failed transaction: %v; want %v", err, pgx.ErrTxCommitRollback)
		}
		// The connection is left outside any transaction: a statement's transaction
		// starts with it.
		var status string
		if err := conn.QueryRowContext(asWS, "SELECT CASE WHEN now() = statement_timestamp() THEN 'outside' ELSE 'inside' END").Scan(&status); err != nil || status != "outside" {
			t.Errorf("a statement after the failed transaction ran %s a transaction (%v)", status, err)
		}
	})

	t.Run("isolation and access mode", func(t *testing.T) {
		tx, err := db.BeginTx(asWS, &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var msg, isolation, readOnly string
		err = tx.QueryRowContext(asWS, "SELECT current_query(), current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&msg, &isolation, &readOnly)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(msg, "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; "+prefix) || isolation != "serializable" || readOnly != "on" {
			t.Errorf("came in %q, isolation %s, read only %s; want serializable, on", msg, isolation, readOnly)
		}
		if _, err := db.BeginTx(asWS, &sql.TxOptions{Isolation: sql.LevelLinearizable}); err == nil {
			t.Error("a linearizable transaction began; PostgreSQL has none")
		}
	})

	t.Run("a first statement with arguments", func(t *testing.T) {
		// Only statements without a workspace take driver arguments: BEGIN goes first,
		// in a message of its own.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var msg string
		var txid, txid2 int64
		if err := tx.QueryRowContext(ctx, "SELECT current_query(), txid_current() WHERE $1::int = 1", 1).Scan(&msg, &txid); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(msg, "BEGIN") {
			t.Errorf("a statement with arguments came in %q", msg)
		}
		if err := tx.QueryRowContext(ctx, "SELECT txid_current()").Scan(&txid2); err != nil || txid2 != txid {
			t.Errorf("the next statement ran in transaction %d (%v); want %d", txid2, err, txid)
		}
	})

	t.Run("no statement", func(t *testing.T) {
		if storetest.ThroughPgBouncer() {
			t.Skip("PgBouncer may give the connection's next statement another backend")
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var pid int
		if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		for _, end := range []func(*sql.Tx) error{(*sql.Tx).Commit, (*sql.Tx).Rollback} {
			tx, err := conn.BeginTx(asWS, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := end(tx); err != nil {
				t.Fatal(err)
			}
		}
		// The backend's last message is still the one before the two transactions.
		var last string
		if err := owner.DB().QueryRowContext(ctx, "SELECT query FROM pg_stat_activity WHERE pid = $1", pid).Scan(&last); err != nil {
			t.Fatal(err)
		}
		if last != "SELECT pg_backend_pid()" {
			t.Errorf("the backend's last message was %q after two empty transactions; want none sent", last)
		}
	})
}

// TestRefusedUpsertOfTheOwnerChangesNothing: a transaction without a workspace (the
// owner's: the demo's seed, the tools) whose first statement reads through pgx
// directly (an upsert with attributes locks its contacts so) begins with it too. Its
// BEGIN was never sent: each statement committed on its own, and an upsert refused
// for the attributes it would merge left its contacts behind, one of them over the
// limit the refusal enforced.
func TestRefusedUpsertOfTheOwnerChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	attrs := func(k string, size int) crm.ContactDetails {
		return crm.ContactDetails{Attributes: crm.Some(map[string]any{k: strings.Repeat("x", size)})}
	}
	_, err := s.UpsertContacts(ctx, ws.ID, []crm.ContactInput{
		{Phone: "+919800000001", ContactDetails: attrs("a", 10_000)},
		{Phone: "+919800000001", ContactDetails: attrs("b", 10_000)}, // 20 kB once merged
		{Phone: "+919800000002", ContactDetails: attrs("c", 1)},
	})
	if errs := crm.UserErrors(err); len(errs) != 1 || errs[0].Code != crm.CodeTooLong {
		t.Fatalf("the upsert: %v; want TOO_LONG", err)
	}
	if n := count(t, s.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM contacts WHERE workspace_id = %d", ws.ID)); n != 0 {
		t.Errorf("the refused upsert left %d contacts", n)
	}
}

// TestTransactionOnABrokenConnectionRunsAgain: a pooled connection whose socket broke
// without pgx noticing fails its transaction's first statement before anything
// reaches the server, BEGIN included (it goes with that statement); the store runs
// the transaction again on another connection. (With BEGIN in a message of its own,
// pgx's BeginTx failed with a plain error there, which database/sql does not retry.)
func TestTransactionOnABrokenConnectionRunsAgain(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	// A pool of one connection: the broken one is the one the transaction gets.
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 1})
	asWS := store.WithWorkspace(ctx, 1)
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Raw(func(dc any) error {
		return dc.(interface{ Conn() *pgx.Conn }).Conn().PgConn().Conn().Close()
	}); err != nil {
		t.Fatal(err)
	}
	conn.Close() // back to the pool, which cannot tell
	attempts := 0
	err = store.InTx(s, asWS, func(tx bun.Tx) error {
		attempts++
		var workspace string
		return tx.QueryRowContext(asWS, "SELECT current_setting('app.workspace_id')").Scan(&workspace)
	})
	if err != nil || attempts != 2 {
		t.Errorf("the transaction ran %d times and returned %v; want twice, the second on a new connection, and no error", attempts, err)
	}
}

// TestPolicyChecksNewRowsOncePerStatement inserts contacts, a segment and
// memberships as the server's role and reads the plans: the policies' check of new
// rows reads the workspace setting once per statement (an InitPlan run once), not
// once per row, which cost 0.15 µs a row (150-190 ms of a 1M-row insert; W7 writes
// 1M memberships). The check still refuses another workspace's rows, and every row
// of a statement acting for nobody.
func TestPolicyChecksNewRowsOncePerStatement(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	seedWorkspace(t, owner, b.ID, 720_000)
	asA := store.WithWorkspace(ctx, a.ID)
	tx, err := app.DB().BeginTx(asA, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, insert := range []struct {
		table string
		rows  float64
		sql   string
	}{
		{"contacts", 1000, `INSERT INTO contacts (workspace_id, phone) SELECT %d, '+9197' || lpad(g::text, 8, '0') FROM generate_series(1, 1000) g`},
		{"segments", 10, `INSERT INTO segments (workspace_id, name) SELECT %d, 'Checked ' || g FROM generate_series(1, 10) g`},
		{"memberships", 10_000, `INSERT INTO memberships (workspace_id, segment_id, contact_id) SELECT s.workspace_id, s.id, c.id FROM segments s JOIN contacts c USING (workspace_id) WHERE s.workspace_id = %d`},
	} {
		modify, raw := explainAnalyze(t, asA, tx, fmt.Sprintf(insert.sql, a.ID))
		checks, inserted := 0, 0.0
		for _, c := range children(modify) {
			switch c["Parent Relationship"] {
			case "InitPlan":
				if c["Actual Loops"] == 1.0 {
					checks++
				}
			case "Outer":
				inserted, _ = c["Actual Rows"].(float64)
			}
		}
		if inserted != insert.rows || checks != 1 {
			t.Errorf("inserting %.0f %s (want %.0f): %d checks of the workspace run once (want 1):\n%s", inserted, insert.table, insert.rows, checks, raw)
		}
	}

	segB := count(t, owner.DB(), ctx, fmt.Sprintf("SELECT min(id) FROM segments WHERE workspace_id = %d", b.ID))
	contactB := count(t, owner.DB(), ctx, fmt.Sprintf("SELECT min(id) FROM contacts WHERE workspace_id = %d", b.ID))
	for _, refused := range []struct {
		who string
		ctx context.Context
		sql string
	}{
		{"A, a contact of B", asA, fmt.Sprintf("INSERT INTO contacts (workspace_id, phone) VALUES (%d, '+919700000001')", b.ID)},
		{"A, a membership of B", asA, fmt.Sprintf("INSERT INTO memberships (workspace_id, segment_id, contact_id) VALUES (%d, %d, %d)", b.ID, segB, contactB)},
		{"nobody, a contact of A", ctx, fmt.Sprintf("INSERT INTO contacts (workspace_id, phone) VALUES (%d, '+919700000002')", a.ID)},
		{"nobody, a segment of A", ctx, fmt.Sprintf("INSERT INTO segments (workspace_id, name) VALUES (%d, 'planted')", a.ID)},
	} {
		_, err := app.DB().ExecContext(refused.ctx, refused.sql)
		if code := sqlState(err); code != "42501" {
			t.Errorf("acting for %s: %v (SQLSTATE %s), want a policy violation", refused.who, err, code)
		}
	}
}

// TestCommitOutlivesItsContext: a change whose context ends while its COMMIT runs (its
// client left, its deadline passed) is committed and reported made. Cancelled
// halfway, the COMMIT's outcome was unknown and reported as a failure, so a change
// PostgreSQL may have made counted as not made, and its Idempotency-Key's retry made it
// again. A deferred trigger makes the COMMIT take half a second; the context ends as
// soon as PostgreSQL shows the COMMIT running.
func TestCommitOutlivesItsContext(t *testing.T) {
	s := storetest.NewStore(t, store.Options{})
	ws, _ := storetest.Workspace(t, s)
	storetest.Exec(t, s.DB(), `CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql
		AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$`)
	storetest.Exec(t, s.DB(), `CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON segments
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	committing := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			var n int
			err := s.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'active' AND query = 'COMMIT'`).Scan(&n)
			if err != nil || n > 0 {
				cancel()
				committing <- err
				return
			}
		}
		committing <- errors.New("no COMMIT seen running in 10 s")
	}()
	seg, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Festival Buyers"})
	if err := <-committing; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("CreateSegment whose context ended during its COMMIT: %v, want the segment (committed)", err)
	}
	if ctx.Err() == nil {
		t.Fatal("the context did not end during the COMMIT")
	}
	if n := storetest.Column[int64](t, s.DB(), "SELECT count(*) FROM segments WHERE id = $1", seg.ID); n[0] != 1 {
		t.Errorf("segment %d: %d rows, want it committed", seg.ID, n[0])
	}
}
