package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store/storetest"
)

// workspaceRows runs workspace list and returns its rows by name, each its columns.
func workspaceRows(t *testing.T, getenv func(string) string) map[string][]string {
	t.Helper()
	stdout, stderr, err := cli(getenv, "workspace", "list")
	if err != nil {
		t.Fatalf("workspace list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if want := "ID\tNAME\tCREATED\tCONTACTS\tSEGMENTS\tMEMBERSHIPS\tKEYS\tDELETING"; lines[0] != want {
		t.Fatalf("header %q, want %q", lines[0], want)
	}
	rows := map[string][]string{}
	for _, line := range lines[1:] {
		cols := strings.Split(line, "\t")
		if len(cols) != 8 {
			t.Fatalf("row %q: %d columns", line, len(cols))
		}
		rows[cols[1]] = cols
	}
	return rows
}

// TestWorkspaceCommands proves workspace list, rename and delete end to end against a
// running server: the list's counts and keys, rename by ID and by name, a name several
// workspaces share refused, delete refused without --confirm (exit status 2, saying
// what it would delete, nothing deleted) or with a --confirm naming another; deleted,
// the workspace's key and a session naming it get 401, another workspace keeps its
// data, and segments check passes. A deletion that stopped midway shows in the list
// and is finished by running delete again. A name typed decomposed names the
// workspace stored composed, to each command and to --confirm.
func TestWorkspaceCommands(t *testing.T) {
	secret := "a shared secret of at least 32 bytes, for the test"
	dbURL := storetest.Database(t)
	getenv := env(map[string]string{
		"DATABASE_URL": dbURL, "SEGMENTS_KEY_CACHE_TTL": "0",
		"SEGMENTS_JWT_ISSUER": "https://login.example.com/", "SEGMENTS_JWT_AUDIENCE": "segments-api",
		"SEGMENTS_JWT_HS256_SECRET": secret,
	})
	acme := newWorkspace(t, getenv, "Acme Retail")
	other := newWorkspace(t, getenv, "Other Shop")
	url := start(t, getenv)
	const addContacts = `mutation { upsertContacts(input: {contacts: [{phone: "+919800000001"}, {phone: "+919800000002"}]}) { contacts { id } } }`
	for _, key := range []string{acme, other} {
		if status, code, _ := gqlCode(t, url, key, addContacts); status != 200 || code != "" {
			t.Fatalf("upsertContacts: %d %s", status, code)
		}
		if status, code, _ := gqlCode(t, url, key, writeQuery); status != 200 || code != "" {
			t.Fatalf("createSegment: %d %s", status, code)
		}
	}
	printedKey(t, getenv, "keys", "create", "Acme Retail")

	rows := workspaceRows(t, getenv)
	a := rows["Acme Retail"]
	if a == nil || !strings.HasPrefix(a[0], "W_") || a[3] != "2" || a[4] != "1" || a[5] != "0" || a[6] != "2" || a[7] != "-" {
		t.Fatalf("workspace list: Acme Retail is %q, want its ID, 2 contacts, 1 segment, 0 memberships, 2 keys, not deleting", a)
	}
	if _, err := time.Parse(time.RFC3339, a[2]); err != nil {
		t.Errorf("created %q: %v", a[2], err)
	}
	acmeID, otherID := a[0], rows["Other Shop"][0]
	var acmeKeyID string // one of its keys', for keys rotate
	for id := range listRows(t, getenv, acmeID) {
		acmeKeyID = id
	}

	// Rename, by name then by ID.
	if _, stderr, err := cli(getenv, "workspace", "rename", "Acme Retail", "Acme Stores"); err != nil {
		t.Fatalf("rename by name: %v\n%s", err, stderr)
	}
	if _, stderr, err := cli(getenv, "workspace", "rename", acmeID, "Acme Shops"); err != nil {
		t.Fatalf("rename by ID: %v\n%s", err, stderr)
	}
	if rows := workspaceRows(t, getenv); rows["Acme Shops"] == nil || rows["Acme Shops"][0] != acmeID || rows["Acme Stores"] != nil {
		t.Errorf("after the renames: %q", rows)
	}
	// A name typed decomposed ("e" and U+0301, as some keyboards and pasted text write
	// it) is the name, composed, that create and rename store: the commands found no
	// workspace by it, and --confirm took it for another.
	cafe := newWorkspace(t, getenv, "Cafe\u0301 Ltd")
	cafeID := workspaceRows(t, getenv)["Café Ltd"][0]
	if _, stderr, err := cli(getenv, "workspace", "rename", "Cafe\u0301 Ltd", "Cafe\u0301 Limited"); err != nil {
		t.Errorf("rename by a decomposed name: %v\n%s", err, stderr)
	}
	if stdout, stderr, err := cli(getenv, "keys", "list", " Cafe\u0301 Limited\u200b"); err != nil || strings.Count(stdout, "\n") != 2 {
		t.Errorf("keys list by a decomposed name: %v, %q\n%s", err, stdout, stderr)
	}
	if _, _, err := cli(getenv, "workspace", "delete", "Cafe\u0301 Limited", "--confirm", "Other Shop"); exitCode(err) != 2 || !strings.Contains(err.Error(), "names neither") {
		t.Errorf("delete by a decomposed name with another's --confirm: %v, want it found and refused", err)
	}
	if _, stderr, err := cli(getenv, "workspace", "delete", cafeID, "--confirm", "Cafe\u0301 Limited"); err != nil {
		t.Errorf("delete --confirm by a decomposed name: %v\n%s", err, stderr)
	}
	if status, code, _ := gqlCode(t, url, cafe, readQuery); status != 401 || code != "UNAUTHENTICATED" || workspaceRows(t, getenv)["Café Limited"] != nil {
		t.Errorf("after deleting it by its decomposed name: %d %s", status, code)
	}

	for _, args := range [][]string{
		{"workspace", "rename", acmeID, "two\nlines"},
		{"workspace", "rename", acmeID, otherID}, // spelled as an ID
		{"workspace", "rename", acmeID},
		{"workspace", "rename", acmeID, "New", "Name"},
		{"workspace", "list", "extra"},
		{"workspace", "delete"},
		{"workspace", "frobnicate"},
	} {
		if _, _, err := cli(getenv, args...); exitCode(err) != 2 {
			t.Errorf("%q: %v, want exit status 2", args, err)
		}
	}
	// A name two workspaces share is refused, by rename and delete alike.
	if _, stderr, err := cli(getenv, "workspace", "rename", otherID, "Acme Shops"); err != nil || !strings.Contains(stderr, "another workspace has this name") {
		t.Errorf("rename to a name another has: %v, want done with a warning\n%s", err, stderr)
	}
	for _, args := range [][]string{{"workspace", "rename", "Acme Shops", "X"}, {"workspace", "delete", "Acme Shops", "--confirm", "Acme Shops"}} {
		if _, _, err := cli(getenv, args...); err == nil || !strings.Contains(err.Error(), "several workspaces are named") {
			t.Errorf("%q: %v, want it refused as ambiguous", args, err)
		}
	}
	if _, stderr, err := cli(getenv, "workspace", "rename", otherID, "Other Shop"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}

	// Refused without confirmation, saying what would go; nothing deleted.
	_, _, err := cli(getenv, "workspace", "delete", "Acme Shops")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "2 contacts, 1 segments (0 memberships), 2 API keys") || !strings.Contains(err.Error(), "--confirm "+acmeID) {
		t.Errorf("delete without --confirm: %v, want exit status 2 saying what it would delete", err)
	}
	if _, _, err := cli(getenv, "workspace", "delete", "Acme Shops", "--confirm", "Other Shop"); exitCode(err) != 2 {
		t.Errorf("delete with another workspace's --confirm: %v, want exit status 2", err)
	}
	if status, code, _ := gqlCode(t, url, acme, readQuery); status != 200 || code != "" || workspaceRows(t, getenv)["Acme Shops"] == nil {
		t.Fatalf("refused deletions deleted something: %d %s", status, code)
	}

	// A deletion stopped right after its cut-off, as by Ctrl-C: listed as deleting,
	// its key and its sessions refused.
	conn := storetest.Conn(t, dbURL)
	n, err := globalid.DecodeAs(globalid.Workspace, acmeID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `INSERT INTO workspace_deletions (workspace_id) VALUES ($1)`, n); err != nil {
		t.Fatal(err)
	}
	if d := workspaceRows(t, getenv)["Acme Shops"][7]; d == "-" {
		t.Errorf("a workspace being deleted is listed as not deleting")
	}
	session := func(ws string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "https://login.example.com/", "aud": "segments-api", "exp": time.Now().Add(time.Minute).Unix(),
			"workspace": ws, "scope": "read_write",
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if status, code, _ := gqlCode(t, url, session(otherID), readQuery); status != 200 || code != "" {
		t.Fatalf("a session of the other workspace: %d %s", status, code)
	}
	refused := func(when string) {
		t.Helper()
		for name, credential := range map[string]string{"key": acme, "session": session(acmeID)} {
			if status, code, _ := gqlCode(t, url, credential, readQuery); status != 401 || code != "UNAUTHENTICATED" {
				t.Errorf("%s, its %s: %d %s, want 401 UNAUTHENTICATED", when, name, status, code)
			}
		}
	}
	refused("being deleted")
	if _, _, err := cli(getenv, "workspace", "rename", acmeID, "Back"); err == nil {
		t.Errorf("renamed a workspace being deleted")
	}
	if out, _, err := cli(getenv, "keys", "create", acmeID); err == nil || strings.Contains(out, "seg_") {
		t.Errorf("made a key of a workspace being deleted, which could never work: %q", out)
	}
	if out, _, err := cli(getenv, "keys", "rotate", acmeKeyID); err == nil || strings.Contains(out, "seg_") {
		t.Errorf("rotated a key of a workspace being deleted, which could never work: %q", out)
	}

	// Run again, by name, it finishes.
	if _, stderr, err := cli(getenv, "workspace", "delete", "Acme Shops", "--confirm", "Acme Shops"); err != nil || !strings.Contains(stderr, "workspace deleted") {
		t.Fatalf("delete: %v\n%s", err, stderr)
	}
	refused("deleted")
	rows = workspaceRows(t, getenv)
	if rows["Acme Shops"] != nil || rows["Other Shop"] == nil || rows["Other Shop"][3] != "2" || rows["Other Shop"][4] != "1" {
		t.Errorf("after the deletion: %q", rows)
	}
	if status, code, data := gqlCode(t, url, other, `{ contacts(first: 10) { nodes { phone } } contactChanges { nodes { contactId } } }`); status != 200 || code != "" ||
		strings.Count(string(data), "+9198000000") != 2 || strings.Count(string(data), "contactId") != 2 {
		t.Errorf("the other workspace after the deletion: %d %s %s", status, code, data)
	}
	if _, _, err := cli(getenv, "workspace", "delete", acmeID, "--confirm", acmeID); err == nil || !strings.Contains(err.Error(), "no workspace") {
		t.Errorf("deleting it again: %v, want no workspace", err)
	}
	if stdout, stderr, err := cli(getenv, "check"); err != nil {
		t.Errorf("check after the deletion: %v\n%s%s", err, stdout, stderr)
	}
}
