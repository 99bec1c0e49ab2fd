package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/segments/segments/internal/demo"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestSeedCutShortIsNoDemo: a seed cut short (Ctrl-C while it fills) leaves no
// workspace named Demo, and the next seed makes the whole demo. It left a Demo of
// 1,000 contacts and no segment, which every later seed took as the demo.
func TestSeedCutShortIsNoDemo(t *testing.T) {
	s := storetest.Store(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cut the fill short once its workspace exists, under whichever name.
	go func() {
		for ctx.Err() == nil {
			var n int
			_ = s.DB().QueryRowContext(ctx, `SELECT count(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id
				WHERE w.name LIKE 'Demo%'`).Scan(&n)
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// A workspace of a user's, named as the demo was while it loaded: no seed's.
	users, _ := storetest.Workspace(t, s)
	if err := s.RenameWorkspace(context.Background(), users.ID, "Demo (loading)"); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Seed(ctx, s); err == nil {
		t.Fatal("the seed finished before it could be cut short")
	}
	if ws, err := s.WorkspaceByName(context.Background(), demo.WorkspaceName); err == nil {
		contacts, segments := size(t, s, ws.ID)
		t.Fatalf("a seed cut short left a workspace named Demo, of %d contacts and %d segments", contacts, segments)
	}

	if _, err := demo.Seed(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	all, err := s.WorkspacesByName(context.Background(), demo.WorkspaceName, 10)
	if err != nil || len(all) != 1 {
		t.Fatalf("workspaces named Demo: %v, %v", all, err)
	}
	if contacts, segments := size(t, s, all[0].ID); contacts != demo.Contacts || segments != 10 {
		t.Errorf("the demo holds %d contacts and %d segments, want %d and 10", contacts, segments, demo.Contacts)
	}
	var others string
	if err := s.DB().QueryRow(`SELECT coalesce(string_agg(name, ', ' ORDER BY id), '') FROM workspaces WHERE id <> $1`, all[0].ID).Scan(&others); err != nil ||
		others != "Demo (loading)" {
		t.Errorf("the other workspaces are %q (%v), want only the user's: the one cut short was kept, or the user's deleted", others, err)
	}
	// Seeding again finds it, and makes another key for it.
	if _, err := demo.Seed(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.WorkspacesByName(context.Background(), demo.WorkspaceName, 10); len(again) != 1 {
		t.Errorf("a second seed made another demo: %v", again)
	}
	// Its keys are named, and expire: each start of serve --demo makes one, and they
	// were kept working for good.
	keys, err := s.APIKeys(context.Background(), all[0].ID)
	if err != nil || len(keys) != 2 {
		t.Fatalf("the demo's keys: %v, %v; want 2", keys, err)
	}
	for _, k := range keys {
		if k.Name != demo.KeyName || k.ExpiresAt == nil || k.ExpiresAt.Sub(k.CreatedAt).Round(time.Hour) != demo.KeyLifetime {
			t.Errorf("a demo key named %q, made %v, expiring %v; want %q, expiring %v after", k.Name, k.CreatedAt, k.ExpiresAt, demo.KeyName, demo.KeyLifetime)
		}
	}
}

// size counts a workspace's contacts and segments.
func size(t *testing.T, s *store.Store, ws int64) (contacts, segments int) {
	t.Helper()
	err := s.DB().QueryRow(`SELECT (SELECT count(*) FROM contacts WHERE workspace_id = $1),
		(SELECT count(*) FROM segments WHERE workspace_id = $1)`, ws).Scan(&contacts, &segments)
	if err != nil {
		t.Fatal(err)
	}
	return contacts, segments
}

// TestSeedsAtOnce: seeds that run at once (two servers started with --demo) make one
// demo. Each deleted the other's workspace still loading: one failed (a contact of a
// workspace that no longer existed) or two demos were made.
func TestSeedsAtOnce(t *testing.T) {
	s := storetest.Store(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := demo.Seed(context.Background(), s)
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("a seed beside others: %v", err)
		}
	}
	all, err := s.WorkspacesByName(context.Background(), demo.WorkspaceName, 10)
	if err != nil || len(all) != 1 {
		t.Fatalf("workspaces named Demo: %v, %v; want one", all, err)
	}
	if contacts, segments := size(t, s, all[0].ID); contacts != demo.Contacts || segments != 10 {
		t.Errorf("the demo holds %d contacts and %d segments", contacts, segments)
	}
}

// TestSeedFinishesADeletionStoppedMidway: a Demo workspace whose deletion stopped
// midway is cut off, and the next seed finishes deleting it and makes another, whose
// key works. The seed added its key to the cut-off workspace and printed a key that
// never worked.
func TestSeedFinishesADeletionStoppedMidway(t *testing.T) {
	s := storetest.Store(t)
	ctx := context.Background()
	if _, err := demo.Seed(ctx, s); err != nil {
		t.Fatal(err)
	}
	old, err := s.WorkspaceByName(ctx, demo.WorkspaceName)
	if err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.DeleteWorkspace(stop, old.ID, func(store.WorkspaceDeletionProgress) { cancel() }); err == nil {
		t.Fatal("the deletion was not stopped midway")
	}
	key, err := demo.Seed(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := s.AuthenticateKey(ctx, key.Hash())
	if err != nil || ws.ID == old.ID {
		t.Fatalf("the new demo key: workspace %d (%v); want a working key of a workspace other than %d", ws.ID, err, old.ID)
	}
	if _, err := s.WorkspaceSummary(ctx, old.ID); err == nil {
		t.Errorf("the cut-off demo workspace %d is still there", old.ID)
	}
}
