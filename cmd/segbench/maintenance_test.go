package main

import (
	"context"
	"database/sql"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestExecLongOutlastsTheRoleTimeout checks that the benchmark's maintenance
// statements run past the statement timeout that segments commands give the owner's
// role (here 100 ms, in a database of the test's own), and that the connection has
// its timeout again afterwards.
func TestExecLongOutlastsTheRoleTimeout(t *testing.T) {
	ctx := context.Background()
	db := openDatabase(t)
	if _, err := db.ExecContext(ctx, `DO $$ BEGIN
		EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = 100', current_user, current_database());
		END $$`); err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one session, so that SHOW below asks execLong's
	db.SetMaxIdleConns(0) // closes the session opened before the change
	db.SetMaxIdleConns(1)
	const slow = "SELECT pg_sleep(0.3)"
	if _, err := db.ExecContext(ctx, slow); err == nil {
		t.Fatal("a statement of 300 ms ran under a timeout of 100 ms: the test sets no timeout")
	}
	if _, err := execLong(ctx, db, slow); err != nil {
		t.Fatalf("execLong: %v", err)
	}
	var timeout string
	if err := db.QueryRowContext(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "100ms" {
		t.Errorf("statement_timeout after execLong: %s, want 100ms", timeout)
	}
}

// TestOtherContactsAreReported: a run finds the contacts of workspaces other than
// its dataset's in the tables it measures (a dataset `segments bench-data` loaded
// into the same data directory doubles them), and its report says so; of the small
// workspaces asked for (--neighbours) it says that they are there, and warns only of
// contacts beyond theirs.
func TestOtherContactsAreReported(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	bench, _ := storetest.Workspace(t, s)
	other, _ := storetest.Workspace(t, s)
	for ws, n := range map[int64]int{bench.ID: 30, other.ID: 20} {
		storetest.Exec(t, s.DB(), `INSERT INTO contacts (workspace_id, phone)
			SELECT $1, '+91' || $1 || lpad(g::text, 6, '0') FROM generate_series(1, $2) g`, ws, n)
	}
	for ws, want := range map[int64]int64{bench.ID: 20, other.ID: 30} {
		if n, err := otherContacts(ctx, s.DB(), ws); err != nil || n != want {
			t.Errorf("workspace %d: %d other contacts (%v), want %d", ws, n, err, want)
		}
	}
	const warning = "also holds 20 contacts of other workspaces"
	r := newReport(config{pool: 8, reps: 3}, benchdata.Options{})
	if md := r.markdown(); strings.Contains(md, "contacts of other workspaces") {
		t.Error("the report of a database of one workspace warns of others")
	}
	r.Dataset.OtherContacts = 20
	if md := r.markdown(); !strings.Contains(md, warning) {
		t.Errorf("the report does not say %q", warning)
	}
	// Neighbours asked for (--neighbours) are said, and only contacts beyond theirs
	// warned of.
	r.Dataset.Neighbours, r.Dataset.OtherContacts = 2, int64(2*benchdata.Neighbour.Contacts)
	if md := r.markdown(); strings.Contains(md, "contacts of other workspaces") || !strings.Contains(md, "Beside it, 2 small workspaces") {
		t.Errorf("the report of a database of the dataset and 2 neighbours:\n%s", md)
	}
	r.Dataset.OtherContacts += 20
	if md := r.markdown(); !strings.Contains(md, warning) {
		t.Errorf("the report does not say %q beside the neighbours", warning)
	}
}

// TestSettingsRefused: a run beside neighbours (--neighbours) refuses W8, whose
// PostGraphile count does not finish there, and a negative number of neighbours; a
// run without Node.js where --node says is refused before it starts.
func TestSettingsRefused(t *testing.T) {
	node := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(node, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c  config
		ok bool
	}{
		{config{only: "W1,W8,W9", node: node}, true},
		{config{only: "W1,W3,W4", neighbours: 2000, node: node}, true},
		{config{only: "W1,W8", neighbours: 2000, node: node}, false},
		{config{only: "W1", neighbours: -1, node: node}, false},
		{config{only: "W1", node: node + "-not-installed"}, false},
		{config{only: "W1", node: filepath.Dir(node)}, false},
	} {
		if err := tc.c.check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.c, err, tc.ok)
		}
	}
}

// TestWALPositionCountsWrites: the WAL a run wrote, by the difference of the
// database's WAL positions around it, holds what the run's writes logged (at least
// their rows' bytes) and nothing for a run that only reads.
func TestWALPositionCountsWrites(t *testing.T) {
	ctx := context.Background()
	db := openDatabase(t)
	b := &bench{db: db}
	if _, err := db.ExecContext(ctx, `CREATE TABLE wal_test (id int, filler text)`); err != nil {
		t.Fatal(err)
	}
	before := b.walPosition(ctx)
	if before <= 0 {
		t.Fatalf("WAL position %v: not read", before)
	}
	// 1,000 rows of 1 kB: at least 1 MB of WAL.
	if _, err := db.ExecContext(ctx, `INSERT INTO wal_test SELECT g, repeat('x', 1024) FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	written := b.walPosition(ctx)
	if written-before < 1000*1024 {
		t.Errorf("WAL written by 1 MB of rows: %.0f bytes; want at least 1,024,000", written-before)
	}
	// A read logs nothing (the first read of new rows may log their hint bits, with
	// checksums on: it is left out).
	if _, err := db.ExecContext(ctx, `SELECT count(*) FROM wal_test`); err != nil {
		t.Fatal(err)
	}
	written = b.walPosition(ctx)
	if _, err := db.ExecContext(ctx, `SELECT count(*) FROM wal_test`); err != nil {
		t.Fatal(err)
	}
	// A position that could not be read gives no WAL, not the distance from zero.
	if w := walWritten(math.NaN(), written, 1); w != 0 {
		t.Errorf("WAL from an unread position: %v kB; want 0", w)
	}
	if read := b.walPosition(ctx) - written; read > 8192 {
		t.Errorf("WAL written by a read: %.0f bytes; want next to none", read)
	}
}

// openDatabase opens a database of the test's own, as the owner, closed at the
// test's end.
func openDatabase(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", storetest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkpointRecorder is fakeRunner that also reads, at each run, where PostgreSQL's
// latest checkpoint is in the WAL. The position comes from the control file, which a
// checkpoint updates before CHECKPOINT returns (pg_stat_bgwriter's count of requested
// checkpoints may come a moment later), and a forced checkpoint writes a new record
// even with nothing to flush.
type checkpointRecorder struct {
	fakeRunner
	t    *testing.T
	db   *sql.DB
	lsns []float64
}

func (c *checkpointRecorder) run(ctx context.Context, rate float64, d time.Duration) (step, error) {
	var lsn float64
	if err := c.db.QueryRowContext(ctx, `SELECT (checkpoint_lsn - '0/0'::pg_lsn)::float8 FROM pg_control_checkpoint()`).Scan(&lsn); err != nil {
		c.t.Fatal(err)
	}
	c.lsns = append(c.lsns, lsn)
	return c.fakeRunner.run(ctx, rate, d)
}

// TestSearchStepsStartAfterACheckpoint: W6's search (afterCheckpoint) runs every
// step right after a checkpoint of its own, and a search without it makes none.
func TestSearchStepsStartAfterACheckpoint(t *testing.T) {
	ctx := context.Background()
	db := openDatabase(t)
	b := &bench{db: db, log: t.Logf}
	c := &checkpointRecorder{fakeRunner: fakeRunner{capacity: 30}, t: t, db: db}
	_, steps, err := search(ctx, afterCheckpoint{c, b}, 20, time.Second, 50*time.Millisecond, 5, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.lsns) != len(steps) || len(steps) < 5 {
		t.Fatalf("%d checkpoint positions read for %d steps, want one a step and at least 5", len(c.lsns), len(steps))
	}
	for i := 1; i < len(c.lsns); i++ {
		if c.lsns[i] <= c.lsns[i-1] {
			t.Errorf("step %d started without a checkpoint since step %d (latest checkpoints: %v)", i+1, i, c.lsns)
		}
	}

	c.lsns = nil
	if _, _, err := search(ctx, c, 20, time.Second, 50*time.Millisecond, 3, t.Logf); err != nil {
		t.Fatal(err)
	}
	if last := c.lsns[len(c.lsns)-1]; last != c.lsns[0] {
		t.Errorf("checkpoints during a plain search: latest at %v", c.lsns)
	}
}

// TestRebuildWrittenIndexes: the memberships' and segments' indexes that the write
// workloads leave half empty (rows inserted, then deleted and vacuumed away, as W6
// and W7 leave them) are back to the size of the same rows indexed anew.
func TestRebuildWrittenIndexes(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewStore(t, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, s)
	db := s.DB()
	storetest.Exec(t, db, `INSERT INTO contacts (workspace_id, phone)
		SELECT $1, '+91' || lpad(g::text, 8, '0') FROM generate_series(1, 2000) g`, ws.ID)
	storetest.Exec(t, db, `INSERT INTO segments (workspace_id, name)
		SELECT $1, 'segment ' || g FROM generate_series(1, 20) g`, ws.ID)
	size := func(index string) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT pg_relation_size($1::regclass)", index).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Every segment gets every contact, then all but a tenth of the pairs are deleted.
	storetest.Exec(t, db, `INSERT INTO memberships (workspace_id, segment_id, contact_id)
		SELECT $1, s.id, c.id FROM segments s, contacts c WHERE s.workspace_id = $1 AND c.workspace_id = $1`, ws.ID)
	storetest.Exec(t, db, `DELETE FROM memberships WHERE workspace_id = $1 AND contact_id % 10 <> 0`, ws.ID)
	if _, err := execLong(ctx, db, "VACUUM memberships"); err != nil {
		t.Fatal(err)
	}
	bloated := size("memberships_contact")
	took, err := rebuildWrittenIndexes(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if took <= 0 {
		t.Errorf("rebuildWrittenIndexes took %v", took)
	}
	rebuilt := size("memberships_contact")
	if rebuilt*3 > bloated {
		t.Errorf("memberships_contact: %d bytes rebuilt, %d before: want a third or less for a tenth of the rows", rebuilt, bloated)
	}
	// What a new index of the same rows takes.
	storetest.Exec(t, db, `CREATE INDEX memberships_contact_anew ON memberships (workspace_id, contact_id, segment_id)`)
	if anew := size("memberships_contact_anew"); rebuilt != anew {
		t.Errorf("memberships_contact: %d bytes rebuilt, a new index of the same rows %d", rebuilt, anew)
	}
}
