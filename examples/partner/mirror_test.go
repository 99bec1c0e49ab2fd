package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/auth"
)

// mirrorEnv is a mirror's two files on a test's server.
type mirrorEnv struct {
	*env
	key        auth.Key
	state, out string
}

func newMirrorEnv(t *testing.T) *mirrorEnv {
	e := newEnv(t)
	dir := t.TempDir()
	return &mirrorEnv{env: e, key: e.readOnlyKey(t), state: filepath.Join(dir, "mirror.state"), out: filepath.Join(dir, "contacts.jsonl")}
}

// poll runs mirror once, which must succeed, and returns its output.
func (m *mirrorEnv) poll(t *testing.T) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := m.run(t, m.key, "mirror", m.state, m.out)
	if code != 0 {
		t.Fatalf("mirror: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	return stdout, stderr
}

// contents returns the mirror as "phone=name" items, in the file's order.
func (m *mirrorEnv) contents(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(m.out)
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	for line := range strings.Lines(string(b)) {
		var ct contact
		if err := json.Unmarshal([]byte(line), &ct); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if ct.ID == "" || ct.UpdatedAt.IsZero() {
			t.Errorf("a contact without its ID or updatedAt: %s", line)
		}
		items = append(items, ct.Phone+"="+deref(ct.Name))
	}
	return strings.Join(items, " ")
}

func (m *mirrorEnv) check(t *testing.T, what, stdout, wantStdout, want string) {
	t.Helper()
	if stdout != wantStdout {
		t.Errorf("%s: stdout %q, want %q", what, stdout, wantStdout)
	}
	if got := m.contents(t); got != want {
		t.Errorf("%s: the mirror holds %s, want %s", what, got, want)
	}
}

// TestMirror keeps a mirror through an initial sync (behind a 503), changes and a
// deletion, a poll applied again as after a crash, a contact that commits late, and a
// resync from a cursor the API refuses as too old.
func TestMirror(t *testing.T) {
	m := newMirrorEnv(t)
	ctx := context.Background()
	const a, b, c, d, late, after = "+919800000001", "+919800000002", "+919800000003", "+919800000004", "+919800000005", "+919800000006"
	ids, err := m.upsert([]string{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	waitForHorizon(t, m.env)
	m.proxy.mu.Lock()
	m.proxy.unavailable = map[int]bool{m.proxy.n + 1: true}
	m.proxy.mu.Unlock()
	stdout, stderr := m.poll(t)
	m.check(t, "the initial sync", stdout, "mirror: 3 changed, 0 deleted, 3 contacts\n",
		a+"=Contact "+a+" "+b+"=Contact "+b+" "+c+"=Contact "+c)
	if !strings.Contains(stderr, "HTTP 503") {
		t.Errorf("no retry after the 503: %s", stderr)
	}

	// An update, a deletion and a new contact.
	saved, err := os.ReadFile(m.state)
	if err != nil || len(saved) < 10 {
		t.Fatalf("the state file: %q, %v", saved, err)
	}
	if _, err := m.upsert([]string{b}, "Bee"); err != nil {
		t.Fatal(err)
	}
	m.deleteContacts(t, ids[2])
	if _, err := m.upsert([]string{d}); err != nil {
		t.Fatal(err)
	}
	waitForHorizon(t, m.env)
	want := a + "=Contact " + a + " " + b + "=Bee " + d + "=Contact " + d
	stdout, _ = m.poll(t)
	m.check(t, "changes", stdout, "mirror: 2 changed, 1 deleted, 3 contacts\n", want)

	// A crash after the mirror was written, before the cursor: the next poll applies
	// the same changes again, to the same mirror.
	if err := os.WriteFile(m.state, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _ = m.poll(t)
	m.check(t, "the same changes again", stdout, "mirror: 2 changed, 0 deleted, 3 contacts\n", want)
	stdout, _ = m.poll(t)
	m.check(t, "no changes", stdout, "mirror: 0 changed, 0 deleted, 3 contacts\n", want)

	// A contact whose upsert waits for a's row lock, while another is created and
	// committed: the poll meanwhile lists neither (the feed lists only changes of
	// transactions that ended before every one still running began), the next one
	// after the commit both.
	tx, err := m.s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT 1 FROM contacts WHERE workspace_id = $1 AND phone = $2 FOR UPDATE", m.ws.ID, a); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.upsert([]string{late, a}, "Late", "Ay")
		done <- err
	}()
	waitForLockWait(t, m.env)
	if _, err := m.upsert([]string{after}); err != nil {
		t.Fatal(err)
	}
	stdout, _ = m.poll(t)
	m.check(t, "during the late upsert", stdout, "mirror: 0 changed, 0 deleted, 3 contacts\n", want)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitForHorizon(t, m.env)
	want = a + "=Ay " + b + "=Bee " + d + "=Contact " + d + " " + late + "=Late " + after + "=Contact " + after
	stdout, _ = m.poll(t)
	m.check(t, "after the late upsert", stdout, "mirror: 3 changed, 0 deleted, 5 contacts\n", want)

	// A cursor 40 days old is refused with RESYNC_REQUIRED: the mirror is built
	// again from the start, without what it held (a contact whose deletion the API
	// no longer lists).
	if err := os.WriteFile(m.state, []byte(agedCursor(t, m.state, 40*24*time.Hour)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.out, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"id":"C_gone","phone":"+919899999999","name":"Gone","updatedAt":"2026-01-01T00:00:00Z"}` + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	stdout, stderr = m.poll(t)
	m.check(t, "a resync", stdout, "mirror: 5 changed, 0 deleted, 5 contacts\n", want)
	if !strings.Contains(stderr, "RESYNC_REQUIRED") || !strings.Contains(stderr, "syncing again from the start") {
		t.Errorf("stderr: %s", stderr)
	}
	stdout, stderr = m.poll(t)
	m.check(t, "after the resync", stdout, "mirror: 0 changed, 0 deleted, 5 contacts\n", want)
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}
}

// agedCursor returns the cursor stored in path, made age older: a cursor of the
// change feed is JSON in base64 whose "t" is when it was made (internal/store's
// tests build the same).
func agedCursor(t *testing.T, path string, age time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var c map[string]any
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	made, err := time.Parse(time.RFC3339Nano, c["t"].(string))
	if err != nil {
		t.Fatal(err)
	}
	c["t"] = made.Add(-age).Format(time.RFC3339Nano)
	raw, err = json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// TestMirrorInterval polls at an interval until interrupted, and stops at once on a
// failure a retry cannot change.
func TestMirrorInterval(t *testing.T) {
	m := newMirrorEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		code           int
		stdout, stderr string
	}
	res := make(chan result, 1)
	go func() {
		code, stdout, stderr := m.runCtx(ctx, m.key, "-interval", "20ms", "mirror", m.state, m.out)
		res <- result{code, stdout, stderr}
	}()
	const phone = "+919800000001"
	if _, err := m.upsert([]string{phone}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(m.out); bytes.Contains(b, []byte(phone)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mirror never listed the new contact")
		}
	}
	cancel()
	r := <-res
	if r.code != 0 || !strings.Contains(r.stdout, "mirror: 1 changed, 0 deleted, 1 contacts") {
		t.Errorf("interrupted: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	wrong, _ := auth.NewKey()
	code, _, stderr := m.run(t, wrong, "-interval", "20ms", "mirror", m.state, m.out)
	if code != 1 || !strings.Contains(stderr, "UNAUTHENTICATED") || strings.Contains(stderr, "retry") {
		t.Errorf("wrong key: exit %d, %s; want 1 and UNAUTHENTICATED without retries", code, stderr)
	}
}
