package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/store/storetest"
)

// TestBenchDataCommand runs bench-data with small sizes and neighbours: the dataset's
// workspace, its key on stdout, and the neighbours beside it; a negative number of
// neighbours is a usage error that loads nothing.
func TestBenchDataCommand(t *testing.T) {
	ctx := context.Background()
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	var stdout, stderr bytes.Buffer
	small := []string{"bench-data", "--workspace", "Small bench", "--contacts", "200", "--segments", "5", "--memberships", "250", "--big-segments", "1", "--big-size", "100"}
	err := run(ctx, append(small, "--neighbours", "-1"), getenv, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--neighbours") {
		t.Fatalf("--neighbours -1: %v, want a usage error naming it", err)
	}
	if err := run(ctx, append(small, "--neighbours", "3"), getenv, &stdout, &stderr); err != nil {
		t.Fatalf("bench-data: %v\n%s", err, stderr.String())
	}
	if _, err := auth.ParseKey(strings.TrimSuffix(stdout.String(), "\n")); err != nil {
		t.Fatalf("stdout: %q, want the workspace's key alone (%v)", stdout.String(), err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var bench, neighbours, contacts int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE name = 'Small bench'), count(*) FILTER (WHERE starts_with(name, $1)),
		(SELECT count(*) FROM contacts) FROM workspaces`, benchdata.NeighbourPrefix).Scan(&bench, &neighbours, &contacts); err != nil {
		t.Fatal(err)
	}
	if want := 200 + 3*benchdata.Neighbour.Contacts; bench != 1 || neighbours != 3 || contacts != want {
		t.Errorf("%d datasets, %d neighbours, %d contacts; want 1, 3 and %d", bench, neighbours, contacts, want)
	}
}

// TestBenchDataZeros proves that a size set to 0 is 0, not the default it stood for
// (--contacts 0 loaded a million contacts, --big-segments 0 made ten): 0 is refused
// where a dataset needs one, and makes none where it may.
func TestBenchDataZeros(t *testing.T) {
	bad := env(map[string]string{"DATABASE_URL": unreachableDB})
	for _, args := range [][]string{
		{"--contacts", "0"},
		{"--segments", "0"},
		{"--seed", "0"},
		{"--workspace", ""},
		{"--contacts", "200", "--memberships", "0"}, // the big segments need members
	} {
		_, _, err := cli(bad, append([]string{"bench-data"}, args...)...)
		if !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	ctx := context.Background()
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{"DATABASE_URL": dbURL})
	printedKey(t, getenv, "bench-data", "--workspace", "Zeros", "--contacts", "200", "--segments", "5", "--memberships", "0", "--big-segments", "0")
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var contacts, segments, memberships int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM segments),
		(SELECT count(*) FROM memberships)`).Scan(&contacts, &segments, &memberships); err != nil {
		t.Fatal(err)
	}
	if contacts != 200 || segments != 5 || memberships != 0 {
		t.Errorf("%d contacts, %d segments, %d memberships; want 200, 5 and 0", contacts, segments, memberships)
	}
}
