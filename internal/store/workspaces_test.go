package store_test

import (
	"context"
	"testing"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestWorkspaceNamesChecked: the store keeps a workspace's name as
// crm.NormalizeWorkspaceName returns it, whoever creates or renames the workspace
// (workspace create, bench-data --workspace, the demo), and stores no other. A name
// with an escape sequence, or spelled as another workspace's ID, was stored.
func TestWorkspaceNamesChecked(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	newKey := func() store.NewAPIKey {
		key, err := auth.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix()}
	}
	ws, err := s.CreateWorkspace(ctx, " Cafe\u0301 Retail\n", newKey())
	if err != nil {
		t.Fatal(err)
	}
	if ws.Name != "Café Retail" {
		t.Errorf("created %q, want Café Retail", ws.Name)
	}
	if got, err := s.Workspace(ctx, ws.ID); err != nil || got.Name != "Café Retail" {
		t.Errorf("stored %q, %v", got.Name, err)
	}
	for _, name := range []string{"clear\x1b[2J", "two\nlines", globalid.Encode(globalid.Workspace, ws.ID), ""} {
		if _, err := s.CreateWorkspace(ctx, name, newKey()); len(crm.UserErrors(err)) != 1 {
			t.Errorf("CreateWorkspace(%q): %v, want an input error", name, err)
		}
		if err := s.RenameWorkspace(ctx, ws.ID, name); len(crm.UserErrors(err)) != 1 {
			t.Errorf("RenameWorkspace(%q): %v, want an input error", name, err)
		}
	}
	if err := s.RenameWorkspace(ctx, ws.ID, "Cre\u0300me"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Workspace(ctx, ws.ID); err != nil || got.Name != "Crème" {
		t.Errorf("renamed to %q, %v; want Crème", got.Name, err)
	}
}
