package pgserver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/pgserver"
)

func TestStartReuseAttachStop(t *testing.T) {
	ctx := context.Background()
	// Not t.TempDir: its parent is private to this user, and as root the server runs
	// as the postgres OS user, which must be able to reach the directory.
	base, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "db")
	first, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Database: "app", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop() })
	if !first.Owned() {
		t.Fatal("the first Start should own the server it started")
	}
	write(t, first.URL("app"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")

	// A second process (here: a second Start) attaches to the running server.
	second, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Database: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Owned() || second.Port() != first.Port() {
		t.Fatalf("second Start should attach to port %d, got port %d owned=%v", first.Port(), second.Port(), second.Owned())
	}
	if err := second.Stop(); err != nil { // a no-op for a server it does not own
		t.Fatal(err)
	}
	if got := readInt(t, first.URL("app"), "SELECT v FROM kept"); got != 42 {
		t.Fatalf("got %d, want 42", got)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, first.URL("app")); err == nil {
		t.Fatal("server still accepts connections after Stop")
	}

	// Starting again reuses the cluster and its data.
	again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Database: "app", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if got := readInt(t, again.URL("app"), "SELECT v FROM kept"); got != 42 {
		t.Fatalf("after restart got %d, want 42", got)
	}
}

func write(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

func readInt(t *testing.T, url, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(context.Background(), sql).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
