package main

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/segments/segments/internal/store/storetest"
)

// TestExecLongOutlastsTheRoleTimeout checks that the benchmark's maintenance
// statements run past the statement timeout that segments commands give the owner's
// role (here 100 ms, in a database of the test's own), and that the connection has
// its timeout again afterwards.
func TestExecLongOutlastsTheRoleTimeout(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", storetest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
