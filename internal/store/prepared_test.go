package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// preparingStore returns storetest.AppStore, skipping the test where it prepares
// nothing (through a pooler).
func preparingStore(tb testing.TB) *store.Store {
	tb.Helper()
	s := storetest.AppStore(tb)
	skipUnlessPreparing(tb, s)
	return s
}

func skipUnlessPreparing(tb testing.TB, s *store.Store) {
	tb.Helper()
	if !s.Prepares() {
		tb.Skip("the store does not reach PostgreSQL itself (a pooler): it prepares nothing")
	}
}

// pinned returns one connection of s's pool, for the test's life: prepared
// statements belong to a connection.
func pinned(t testing.TB, s interface{ DB() *sql.DB }) *sql.Conn {
	t.Helper()
	conn, err := s.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// preparedOn returns the statements prepared on conn, as PostgreSQL lists them.
func preparedOn(t testing.TB, conn *sql.Conn) map[string]string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), "SELECT name, statement FROM pg_prepared_statements")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, stmt string
		if err := rows.Scan(&name, &stmt); err != nil {
			t.Fatal(err)
		}
		out[name] = stmt
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// strings1 runs query on conn in ctx and returns its one column's values.
func strings1(ctx context.Context, conn *sql.Conn, query string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v.String)
	}
	return out, rows.Err()
}

func preparedCount(prepared map[string]string) int {
	n := 0
	for name := range prepared {
		if name != store.PreparedName {
			n++
		}
	}
	return n
}

// TestPreparedStatementsKeepTenants: a statement a connection sends again is
// prepared there (pg_prepared_statements lists it) and answers as it did when sent
// the simple way; the workspace is bound at every run, so the same prepared
// statement answers each workspace with its own rows and never another's.
func TestPreparedStatementsKeepTenants(t *testing.T) {
	s := preparingStore(t)
	owner := storetest.Store(t)
	ctx := context.Background()
	names := map[int64][]string{}
	var wss []int64
	for i := range 2 {
		ws, _ := storetest.Workspace(t, owner)
		wss = append(wss, ws.ID)
		for k := range 3 {
			name := fmt.Sprintf("Prepared %d.%d", i, k)
			if _, err := owner.CreateSegment(store.WithWorkspace(ctx, ws.ID), ws.ID, crm.NewSegment{Name: name}); err != nil {
				t.Fatal(err)
			}
			names[ws.ID] = append(names[ws.ID], name)
		}
	}
	conn := pinned(t, s)
	// No workspace in the text: only the bound setting tells the workspaces apart.
	const query = "SELECT name FROM segments ORDER BY name"
	for round := range 4 {
		for _, ws := range wss {
			got, err := strings1(store.WithWorkspace(ctx, ws), conn, query)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, names[ws]) {
				t.Fatalf("round %d, workspace %d: %q, want its own segments %q", round, ws, got, names[ws])
			}
		}
	}
	prepared := preparedOn(t, conn)
	var found bool
	for name, stmt := range prepared {
		if stmt == query {
			found = true
			if !strings.HasPrefix(name, "segments_") {
				t.Errorf("prepared as %q", name)
			}
		}
	}
	if !found || prepared[store.PreparedName] == "" {
		t.Errorf("prepared on the connection: %q; want %q and the settings' statement", prepared, query)
	}

	// Sent once, a text is not prepared.
	// Unique to the run: a connection of the shared pool keeps what earlier runs sent.
	once := fmt.Sprintf("SELECT name FROM segments WHERE name <> 'sent once %d' ORDER BY name", wss[0])
	if _, err := strings1(store.WithWorkspace(ctx, wss[0]), conn, once); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range preparedOn(t, conn) {
		if stmt == once {
			t.Errorf("a statement sent once was prepared")
		}
	}
}

// TestPreparedStatementsKeepSearchSettings: a search's statement is planned and run
// with sequential scans off, another with them on, also when the two texts are the
// same, prepared or not.
func TestPreparedStatementsKeepSearchSettings(t *testing.T) {
	s := storetest.AppStore(t)
	ws, _ := storetest.Workspace(t, storetest.Store(t))
	conn := pinned(t, s)
	ctx := store.WithWorkspace(context.Background(), ws.ID)
	const query = "SELECT current_setting('enable_seqscan') || ' ' || current_setting('app.workspace_id')"
	want := map[bool]string{false: "on " + strconv.FormatInt(ws.ID, 10), true: "off " + strconv.FormatInt(ws.ID, 10)}
	for round := range 4 {
		for _, search := range []bool{false, true, false} {
			c := ctx
			if search {
				c = store.ForSearch(ctx, "buyers")
			}
			got, err := strings1(c, conn, query)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != want[search] {
				t.Fatalf("round %d, search %v: %q, want %q", round, search, got, want[search])
			}
		}
	}
	// The settings hold for the statement only.
	got, err := strings1(context.Background(), conn, "SELECT current_setting('enable_seqscan') || ' ' || coalesce(current_setting('app.workspace_id', true), '')")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "on " {
		t.Errorf("after the statements, the session's settings are %q, want them as they were", got)
	}
	if !s.Prepares() {
		return
	}
	n := 0
	for _, stmt := range preparedOn(t, conn) {
		if stmt == query {
			n++
		}
	}
	if n != 2 {
		t.Errorf("prepared: %q, want the text twice, once per setting", preparedOn(t, conn))
	}
}

// TestPreparedStatementsAfterTheirTablesChange: a prepared statement whose table a
// migration changes (a column added: PostgreSQL refuses its cached plan), or which
// PostgreSQL no longer has (DEALLOCATE ALL), is sent the simple way and prepared
// again: the statement answers every time.
func TestPreparedStatementsAfterTheirTablesChange(t *testing.T) {
	owner, app := storetest.NewStores(t, store.Options{})
	skipUnlessPreparing(t, app)
	ctx := context.Background()
	ws, _ := storetest.Workspace(t, owner)
	if _, err := owner.CreateSegment(store.WithWorkspace(ctx, ws.ID), ws.ID, crm.NewSegment{Name: "Changing"}); err != nil {
		t.Fatal(err)
	}
	conn := pinned(t, app)
	wctx := store.WithWorkspace(ctx, ws.ID)
	const query = "SELECT s.* FROM segments s"
	columns := func() []string {
		t.Helper()
		rows, err := conn.QueryContext(wctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d rows, want the workspace's one segment", n)
		}
		return cols
	}
	for range 3 {
		columns()
	}
	if preparedCount(preparedOn(t, conn)) != 1 {
		t.Fatalf("prepared: %q", preparedOn(t, conn))
	}
	base := 1
	storetest.Exec(t, owner.DB(), "ALTER TABLE segments ADD COLUMN prepared_test_extra int")
	// Refused once, the statement is closed with the connection's next pipeline (here
	// another statement's), not left in PostgreSQL.
	if cols := columns(); !slices.Contains(cols, "prepared_test_extra") {
		t.Fatalf("after the column was added: columns %q", cols)
	}
	for range 2 {
		if _, err := strings1(wctx, conn, "SELECT 'another'"); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range preparedOn(t, conn) {
		if stmt == query {
			t.Errorf("the statement PostgreSQL refused is still prepared: %q", preparedOn(t, conn))
		}
	}
	for i := range 3 {
		if cols := columns(); !slices.Contains(cols, "prepared_test_extra") {
			t.Fatalf("after the column was added, run %d: columns %q", i, cols)
		}
	}
	if _, err := conn.ExecContext(ctx, "DEALLOCATE ALL"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		columns()
	}
	if prepared := preparedOn(t, conn); preparedCount(prepared) != base || prepared[store.PreparedName] == "" {
		t.Errorf("after DEALLOCATE ALL, prepared: %q, want the statement and the settings' again", prepared)
	}
	// One statement deallocated: the connection forgets them all, and prepares the
	// settings' statement again although PostgreSQL still has it.
	for name, stmt := range preparedOn(t, conn) {
		if stmt == query {
			if _, err := conn.ExecContext(ctx, "DEALLOCATE "+name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		columns()
	}
	if prepared := preparedOn(t, conn); preparedCount(prepared) != base || prepared[store.PreparedName] == "" {
		t.Errorf("after one DEALLOCATE, prepared: %q, want the statement and the settings' again", prepared)
	}
}

// TestPreparedStatementsErrorsAndLimits: a prepared statement's error is the
// statement's, every time, and leaves the connection usable; a text PostgreSQL
// cannot prepare (two statements) is sent as before; a statement inside a
// transaction is never prepared; and a connection keeps at most maxPrepared.
func TestPreparedStatementsErrorsAndLimits(t *testing.T) {
	s := preparingStore(t)
	ws, _ := storetest.Workspace(t, storetest.Store(t))
	ctx := store.WithWorkspace(context.Background(), ws.ID)
	conn := pinned(t, s)
	for i := range 4 {
		_, err := strings1(ctx, conn, "SELECT (1 / (random() * 0)::int)::text")
		if err == nil || !strings.Contains(err.Error(), "22012") {
			t.Fatalf("run %d: %v, want division_by_zero", i, err)
		}
		if got, err := strings1(ctx, conn, "SELECT 'usable'"); err != nil || len(got) != 1 || got[0] != "usable" {
			t.Fatalf("after the error, run %d: %q, %v", i, got, err)
		}
	}
	for i := range 4 {
		got, err := strings1(ctx, conn, "SELECT 'first'; SELECT 'second'")
		if err != nil || len(got) != 1 {
			t.Fatalf("two statements, run %d: %q, %v", i, got, err)
		}
	}
	before := preparedCount(preparedOn(t, conn))
	for range 3 {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := tx.QueryRowContext(ctx, "SELECT 'in a transaction'").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if after := preparedCount(preparedOn(t, conn)); after != before {
		t.Errorf("statements in transactions prepared: %d before, %d after", before, after)
	}

	restore := store.SetMaxPrepared(3)
	defer restore()
	fresh := pinned(t, s) // a connection that has prepared nothing
	for i := range 8 {
		q := fmt.Sprintf("SELECT 'limit %d'", i)
		for range 2 {
			if got, err := strings1(ctx, fresh, q); err != nil || len(got) != 1 || got[0] != fmt.Sprintf("limit %d", i) {
				t.Fatalf("%s: %q, %v", q, got, err)
			}
		}
	}
	if n := preparedCount(preparedOn(t, fresh)); n != 3 {
		t.Errorf("%d statements prepared, want at most 3 (the most recent): %q", n, preparedOn(t, fresh))
	}
}

// TestPreparedStatementCancelled: a prepared statement whose context ends while it
// runs fails with that, and the connection (the same backend) answers the next
// statement, another workspace's, with that workspace's setting: no cancel arrives
// late, no setting stays.
func TestPreparedStatementCancelled(t *testing.T) {
	s := preparingStore(t)
	owner := storetest.Store(t)
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	conn := pinned(t, s)
	var pid int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	const slow = "SELECT pg_sleep(0.2)::text"
	actx := store.WithWorkspace(context.Background(), a.ID)
	for range 2 {
		if _, err := strings1(actx, conn, slow); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(actx, 50*time.Millisecond)
		_, err := strings1(ctx, conn, slow)
		cancel()
		if err == nil {
			t.Fatalf("run %d: the cancelled statement answered", i)
		}
		for range 3 {
			got, err := strings1(store.WithWorkspace(context.Background(), b.ID), conn, "SELECT current_setting('app.workspace_id')")
			if err != nil || len(got) != 1 || got[0] != strconv.FormatInt(b.ID, 10) {
				t.Fatalf("after the cancel %d: %q, %v; want workspace %d's setting", i, got, err, b.ID)
			}
		}
	}
	var after int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&after); err != nil || after != pid {
		t.Errorf("backend %d after the cancels (%v), was %d: the connection was closed", after, err, pid)
	}
	found := false
	for _, stmt := range preparedOn(t, conn) {
		found = found || stmt == slow
	}
	if !found {
		t.Errorf("the cancelled statement is no longer prepared: %q", preparedOn(t, conn))
	}
}

// TestPreparesOnlyOnPostgreSQLsOwnConnections: through a pooler (PgBouncer in
// transaction mode hands each transaction another server connection), nothing is
// prepared.
func TestPreparesOnlyOnPostgreSQLsOwnConnections(t *testing.T) {
	s := storetest.AppStore(t)
	if s.Prepares() == storetest.ThroughPgBouncer() {
		t.Errorf("prepares: %v, through PgBouncer: %v", s.Prepares(), storetest.ThroughPgBouncer())
	}
}

// BenchmarkPreparedStatement is W1's statement (the segment list's first page, as
// the server's role), sent the simple way and prepared, on one connection each:
// PostgreSQL's CPU per statement (its backend's, from /proc) and this process's.
func BenchmarkPreparedStatement(b *testing.B) {
	s := preparingStore(b)
	owner := storetest.Store(b)
	ws, _ := storetest.Workspace(b, owner)
	ctx := store.WithWorkspace(context.Background(), ws.ID)
	for i := range 60 {
		if _, err := owner.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: fmt.Sprintf("Bench %02d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	query := fmt.Sprintf(`SELECT s.*, false AS probe FROM "segments" AS "s" WHERE (s.workspace_id = %d) ORDER BY s.created_at DESC, s.id DESC LIMIT 51`, ws.ID)
	simple := s.SimpleDB()
	defer simple.Close()
	for _, c := range []struct {
		name string
		db   *sql.DB
	}{{"simple", simple}, {"prepared", s.DB()}} {
		b.Run(c.name, func(b *testing.B) {
			conn := pinned(b, storeDB{c.db})
			var pid int
			if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				b.Fatal(err)
			}
			run := func() {
				rows, err := conn.QueryContext(ctx, query)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Close(); err != nil || n != 51 {
					b.Fatalf("%d rows, %v", n, err)
				}
			}
			run()
			run()
			pg, own := backendCPU(b, pid), selfCPU()
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64((backendCPU(b, pid)-pg).Nanoseconds())/float64(b.N), "pg-cpu-ns/op")
			b.ReportMetric(float64((selfCPU()-own).Nanoseconds())/float64(b.N), "go-cpu-ns/op")
		})
	}
}

// storeDB adapts a *sql.DB to pinned's argument.
type storeDB struct{ db *sql.DB }

func (d storeDB) DB() *sql.DB { return d.db }

// backendCPU is the CPU time PostgreSQL's backend pid has used (user and system).
func backendCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("PostgreSQL's backend is not on this machine: %v", err)
	}
	// The fields after the command's ")": state is the 3rd of the line, utime the 14th.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // clock ticks: 100 Hz on Linux
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
