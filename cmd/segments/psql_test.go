package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

// TestPsql: segments psql runs psql against the embedded PostgreSQL of the data
// directory, which it starts and stops again (there was no way to reach it: its
// superuser, password and port were the README's reader's to find, and migrate
// stopped it as it ended), as the superuser on the database segments, the password in
// PGPASSWORD, not on the command line; it passes the arguments after "--" on and
// exits with psql's exit status; the database segments can be dropped and made again
// from it (the restore recipe's step); --exec runs another client (pg_restore); with
// DATABASE_URL, it connects there.
func TestPsql(t *testing.T) {
	dir := storetest.ServerDir(t)
	getenv := env(map[string]string{"SEGMENTS_DATA_DIR": dir})
	stdout, stderr, err := cli(getenv, "psql", "--", "-tAc", "SELECT current_user || ' ' || current_database() || ' ' || inet_server_addr()")
	if err != nil || stdout != "segments segments 127.0.0.1/32\n" {
		t.Fatalf("psql: %v, stdout %q\n%s", err, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("the embedded PostgreSQL runs on after psql: %v", err)
	}
	script := filepath.Join(t.TempDir(), "fails.sql")
	if err := os.WriteFile(script, []byte("SELECT nope;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cli(getenv, "psql", "--", "-v", "ON_ERROR_STOP=1", "-f", script); exitCode(err) != 3 || !strings.Contains(stderr, `column "nope" does not exist`) {
		t.Errorf("a script that fails with ON_ERROR_STOP: %v (exit status %d), want psql's 3\n%s", err, exitCode(err), stderr)
	}
	if stdout, stderr, err := cli(getenv, "psql", "--", "-d", "postgres", "-c", "DROP DATABASE segments", "-c", "CREATE DATABASE segments"); err != nil || stdout != "DROP DATABASE\nCREATE DATABASE\n" {
		t.Errorf("drop and create the database segments: %v, %q\n%s", err, stdout, stderr)
	}
	if stdout, stderr, err := cli(getenv, "psql", "--exec", "pg_restore", "--", "--version"); err != nil || !strings.HasPrefix(stdout, "pg_restore (PostgreSQL) ") {
		t.Errorf("--exec pg_restore: %v, %q\n%s", err, stdout, stderr)
	}

	// What the program is given: no password among its arguments.
	show := filepath.Join(t.TempDir(), "show")
	if err := os.WriteFile(show, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" \"PGPASSWORD=$PGPASSWORD\" \"PGHOST=$PGHOST\" \"PGUSER=$PGUSER\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	password, err := os.ReadFile(filepath.Join(dir, "password"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = cli(getenv, "psql", "--exec", show, "--", "-c", "x")
	if want := "-c\nx\nPGPASSWORD=" + strings.TrimSpace(string(password)) + "\nPGHOST=127.0.0.1\nPGUSER=segments\n"; err != nil || stdout != want {
		t.Errorf("embedded: %v, the program got\n%s\nwant\n%s\n%s", err, stdout, want, stderr)
	}
	url := storetest.Database(t)
	withURL := env(map[string]string{"DATABASE_URL": url})
	if stdout, stderr, err := cli(withURL, "psql", "--", "-tAc", "SELECT 1"); err != nil || stdout != "1\n" {
		t.Errorf("DATABASE_URL: %v, %q\n%s", err, stdout, stderr)
	}
	stdout, _, err = cli(withURL, "psql", "--exec", show)
	_, wantPassword, _ := withoutPassword(url)
	if err != nil || wantPassword == "" || !strings.HasPrefix(stdout, "-d\npostgres") || !strings.Contains(stdout, "PGPASSWORD="+wantPassword+"\n") ||
		strings.Count(stdout, wantPassword) != 1 {
		t.Errorf("DATABASE_URL: %v, the program got\n%s", err, stdout)
	}
	for _, c := range []struct{ dsn, rest, password string }{
		{"postgres://u:s%40cret@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable", "s@cret"},
		{"host=h user=u password='it\\'s x' dbname=db", "host=h user=u dbname=db", "it's x"},
		{"host=h password=pw dbname=db", "host=h dbname=db", "pw"},
	} {
		rest, password, err := withoutPassword(c.dsn)
		if err != nil || strings.Join(strings.Fields(rest), " ") != c.rest || password != c.password {
			t.Errorf("withoutPassword(%q) = %q, %q, %v; want %q, %q", c.dsn, rest, password, err, c.rest, c.password)
		}
	}
}
