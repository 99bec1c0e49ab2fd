package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/globalid"
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

// check compares the first line of mirror's output, the contacts', with wantStdout
// and the mirror's contacts with want.
func (m *mirrorEnv) check(t *testing.T, what, stdout, wantStdout, want string) {
	t.Helper()
	if first, _, _ := strings.Cut(stdout, "\n"); first+"\n" != wantStdout {
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

// agedCursor returns the cursors stored in path, a line each, made age older: a
// cursor of either feed is JSON in base64 whose "t" is when it was made
// (internal/store's tests build the same).
func agedCursor(t *testing.T, path string, age time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Fields(string(b)) {
		lines = append(lines, agedLine(t, line, age))
	}
	return strings.Join(lines, "\n")
}

func agedLine(t *testing.T, cursor string, age time.Duration) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
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

// serverMembers returns the workspace's memberships as mirror writes them: each
// segment with members by ID, its members' IDs sorted, read by SQL.
func (m *mirrorEnv) serverMembers(t *testing.T) map[string][]string {
	t.Helper()
	rows, err := m.s.DB().QueryContext(context.Background(),
		"SELECT segment_id, contact_id FROM memberships WHERE workspace_id = $1", m.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var seg, ct int64
		if err := rows.Scan(&seg, &ct); err != nil {
			t.Fatal(err)
		}
		id := globalid.Encode(globalid.Segment, seg)
		out[id] = append(out[id], globalid.Encode(globalid.Contact, ct))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// checkMembers compares the mirror's members file, and the segmentIds of the
// contacts in its contacts file, with the server's memberships.
func (m *mirrorEnv) checkMembers(t *testing.T, what string) {
	t.Helper()
	want := m.serverMembers(t)
	sets, err := readMembers(membersPath(m.out))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got := map[string][]string{}
	for id, set := range sets {
		got[id] = slices.Sorted(maps.Keys(set))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: the mirror's members %v, the server's %v", what, got, want)
	}
	contacts, err := readMirror(m.out)
	if err != nil {
		t.Fatal(err)
	}
	for id, ct := range contacts {
		var segs []string
		for seg, ids := range want {
			if slices.Contains(ids, id) {
				segs = append(segs, seg)
			}
		}
		slices.Sort(segs)
		if !slices.Equal(ct.SegmentIDs, segs) {
			t.Errorf("%s: contact %s lists segments %v, is in %v", what, ct.Phone, ct.SegmentIDs, segs)
		}
	}
}

// mutate runs a mutation with the workspace's read_write key, failing the test on
// an error or userErrors.
func (m *mirrorEnv) mutate(t *testing.T, field, mutation string, input map[string]any) {
	t.Helper()
	var out map[string]struct {
		UserErrors payloadError `json:"userErrors"`
	}
	err := m.client().Mutate(context.Background(), mutation, map[string]any{"input": input}, &out)
	if err == nil && len(out[field].UserErrors) > 0 {
		err = out[field].UserErrors
	}
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
}

// TestMirrorMemberships keeps each segment's members exact through assignments,
// removals, an assignment of every contact (contactsMatching), a createSegment with
// contacts, a deleteSegment and a deleteContacts: after each poll the mirror's
// members and its contacts' segmentIds are the server's. A later poll reads on from
// the stored cursor, listing only the entries since; a refused cursor of the
// memberships rebuilds them from the start, dropping what the mirror held.
func TestMirrorMemberships(t *testing.T) {
	m := newMirrorEnv(t)
	phones := []string{"+919800000001", "+919800000002", "+919800000003", "+919800000004", "+919800000005", "+919800000006"}
	ids, err := m.upsert(phones)
	if err != nil {
		t.Fatal(err)
	}
	one, two := m.createSegment(t, "One"), m.createSegment(t, "Two")
	m.assign(t, ids[:4], one)
	m.assign(t, ids[2:], two)
	waitForHorizon(t, m.env)
	stdout, _ := m.poll(t)
	if want := "mirror: 2 membership entries, 2 segments, 8 memberships\n"; !strings.HasSuffix(stdout, want) {
		t.Errorf("the initial sync: %q, want it to end %q", stdout, want)
	}
	m.checkMembers(t, "the initial sync")

	const remove = `mutation Remove($input: RemoveContactsFromSegmentsInput!) {
  removeContactsFromSegments(input: $input) { removedCount userErrors { field message code } }
}`
	m.mutate(t, "removeContactsFromSegments", remove, map[string]any{"contactIds": ids[:2], "segmentIds": []string{one}})
	m.mutate(t, "assignContactsToSegments", assignMutation, map[string]any{"contactsMatching": map[string]any{}, "segmentIds": []string{one}})
	m.mutate(t, "createSegment", createSegmentMutation, map[string]any{"name": "Three", "contactIds": ids[1:3]})
	m.mutate(t, "deleteSegment", `mutation Delete($input: DeleteSegmentInput!) {
  deleteSegment(input: $input) { deletedSegmentId userErrors { field message code } }
}`, map[string]any{"id": two})
	m.deleteContacts(t, ids[5])
	waitForHorizon(t, m.env)

	state, err := os.ReadFile(m.state)
	if err != nil {
		t.Fatal(err)
	}
	cursors := strings.Fields(string(state))
	if len(cursors) != 2 {
		t.Fatalf("the state file holds %q, want two cursors", state)
	}
	var afters []any
	m.proxy.before = func(body []byte) {
		var req struct {
			Query     string         `json:"query"`
			Variables map[string]any `json:"variables"`
		}
		if json.Unmarshal(body, &req) == nil && strings.Contains(req.Query, "membershipChanges") {
			afters = append(afters, req.Variables["after"])
		}
	}
	stdout, _ = m.poll(t)
	m.proxy.before = nil
	// One entry per change: the removal, the select-all (the contacts One lacked),
	// createSegment's, deleteSegment's (Two's members REMOVED), deleteContacts'
	// (the contact's membership of One). From the start, the feed would list the
	// members again instead: One's and Three's.
	if want := "mirror: 5 membership entries, 2 segments, 7 memberships\n"; !strings.HasSuffix(stdout, want) {
		t.Errorf("the changes: %q, want it to end %q", stdout, want)
	}
	if len(afters) != 1 || afters[0] != cursors[1] {
		t.Errorf("the poll read membershipChanges after %v, want once after the stored cursor %q", afters, cursors[1])
	}
	m.checkMembers(t, "the changes")
	stdout, _ = m.poll(t)
	if want := "mirror: 0 membership entries, 2 segments, 7 memberships\n"; !strings.HasSuffix(stdout, want) {
		t.Errorf("no changes: %q, want it to end %q", stdout, want)
	}

	// The memberships' cursor 40 days old, the contacts' as it is, and a member the
	// server has no more in the mirror: the members are synced again from the start,
	// without it.
	if state, err = os.ReadFile(m.state); err != nil {
		t.Fatal(err)
	}
	cursors = strings.Fields(string(state))
	aged := cursors[0] + "\n" + agedLine(t, cursors[1], 40*24*time.Hour) + "\n"
	if err := os.WriteFile(m.state, []byte(aged), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(membersPath(m.out), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"segmentId":"` + two + `","contactIds":["` + ids[5] + `"]}` + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	stdout, stderr := m.poll(t)
	if want := "mirror: 0 changed, 0 deleted, 5 contacts\nmirror: 2 membership entries, 2 segments, 7 memberships\n"; stdout != want {
		t.Errorf("a resync: %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, "RESYNC_REQUIRED") || !strings.Contains(stderr, "syncing them again from the start") {
		t.Errorf("stderr: %s", stderr)
	}
	m.checkMembers(t, "a resync")
}

// TestMirrorMembershipsAfterSync: a sync puts the contacts in their segments in the
// upserts themselves (addToSegmentIds), and a mirror polled after it, and after a
// second sync that adds known contacts to more segments, holds the server's members:
// the feed of memberships lists the upserts' additions as it lists an assignment's.
func TestMirrorMembershipsAfterSync(t *testing.T) {
	m := newMirrorEnv(t)
	if code, stdout, stderr := m.run(t, m.env.key, "sync", "contacts.csv"); code != 0 || !strings.Contains(stdout, "memberships: 4 added\n") {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	waitForHorizon(t, m.env)
	if stdout, _ := m.poll(t); !strings.HasSuffix(stdout, "2 segments, 4 memberships\n") {
		t.Errorf("after the sync: %q", stdout)
	}
	m.checkMembers(t, "after the sync")

	more := filepath.Join(t.TempDir(), "more.csv")
	if err := os.WriteFile(more, []byte("phone,name,email,city,segments\n"+
		"+919812345678,Vikram Iyer,,Chennai,Festival Buyers;VIP Users;Chennai\n"+
		"+14155550123,Sam Lee,sam@example.com,San Francisco,Chennai\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := m.run(t, m.env.key, "sync", more); code != 0 || !strings.Contains(stdout, "memberships: 3 added\n") {
		t.Fatalf("second sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	waitForHorizon(t, m.env)
	if stdout, _ := m.poll(t); !strings.HasSuffix(stdout, "3 segments, 7 memberships\n") {
		t.Errorf("after the second sync: %q", stdout)
	}
	m.checkMembers(t, "after the second sync")
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
