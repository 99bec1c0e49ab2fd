package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// bigSeed gives workspace ws 40 contacts in 4 segments (70 memberships) and 5
// recorded deletions, beside seedWorkspace's rows.
func bigSeed(t *testing.T, s *store.Store, ws int64, phoneBase int) {
	t.Helper()
	ctx := context.Background()
	seedWorkspace(t, s, ws, phoneBase)
	var in []crm.ContactInput
	for i := range 45 {
		in = append(in, crm.ContactInput{Phone: fmt.Sprintf("+9197%08d", phoneBase+i)})
	}
	up, err := s.UpsertContacts(ctx, ws, in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, c := range up.Contacts {
		ids = append(ids, c.ID)
	}
	for i := range 4 {
		seg, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: fmt.Sprintf("Big %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AssignContactsToSegments(ctx, ws, ids[:10+5*i], []int64{seg.ID}, store.WithoutSegments); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteContacts(ctx, ws, ids[40:], store.WithoutSegments); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteWorkspaceInBatches: DeleteWorkspace cuts the workspace off before it
// deletes anything (its keys and the server's role find no workspace), deletes its
// rows in batches that each leave the counters and bitmaps exact, and, stopped
// midway, leaves the workspace cut off for a second run to finish; another workspace
// keeps every row. A single DELETE of the workspace's row, its rows cascading, ran
// past the roles' statement_timeout at 1M contacts (DeleteWorkspace's comment).
func TestDeleteWorkspaceInBatches(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.Store(t), storetest.AppStore(t)
	gone, goneKey := storetest.Workspace(t, owner)
	kept, keptKey := storetest.Workspace(t, owner)
	bigSeed(t, owner, gone.ID, 810_000)
	bigSeed(t, owner, kept.ID, 820_000)
	keptBefore := ownerCounts(t, owner, kept.ID)
	sum, err := owner.WorkspaceSummary(ctx, gone.ID)
	if err != nil {
		t.Fatal(err)
	}
	// seedWorkspace's 3 contacts and 2 segments (3 members), and 40 of 45 contacts in 4 more.
	if sum.Contacts != 43 || sum.Segments != 6 || sum.Memberships != 3+10+15+20+25 || sum.ActiveKeys != 1 || sum.DeletingSince != nil {
		t.Fatalf("summary %+v", sum)
	}
	defer store.SetWorkspaceBatchRows(7)()

	// Stopped in its contacts, after the memberships and segments are gone.
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen []store.WorkspaceDeletionProgress
	err = owner.DeleteWorkspace(stop, gone.ID, func(p store.WorkspaceDeletionProgress) {
		seen = append(seen, p)
		if p.Table == "contacts" && p.Rows >= 14 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped deletion: %v, want context.Canceled", err)
	}
	// 73 memberships in 11 batches, 6 segments in 1, then 2 of contacts.
	if len(seen) != 14 || seen[0] != (store.WorkspaceDeletionProgress{Table: "memberships", Rows: 7}) ||
		seen[10] != (store.WorkspaceDeletionProgress{Table: "memberships", Rows: 73, Done: true}) {
		t.Errorf("reported %v, want batches of 7 from the memberships on", seen)
	}
	sum, err = owner.WorkspaceSummary(ctx, gone.ID)
	if err != nil || sum.DeletingSince == nil || sum.Contacts != 43-14 || sum.Segments != 0 || sum.Memberships != 0 {
		t.Fatalf("after the stop: %+v, %v; want it cut off, 29 contacts and nothing else left", sum, err)
	}
	// Cut off: its key finds no workspace, and the server's role sees none (a session).
	if _, _, err := app.AuthenticateKey(ctx, goneKey.Hash()); !isNotFound(err) {
		t.Errorf("the key of a workspace being deleted: %v, want NOT_FOUND", err)
	}
	if _, err := app.Workspace(ctx, gone.ID); !isNotFound(err) {
		t.Errorf("the server's role reads a workspace being deleted: %v, want NOT_FOUND", err)
	}
	if _, _, err := app.AuthenticateKey(ctx, keptKey.Hash()); err != nil {
		t.Errorf("the other workspace's key: %v", err)
	}
	if _, err := app.Workspace(ctx, kept.ID); err != nil {
		t.Errorf("the other workspace: %v", err)
	}
	// What is left is consistent: segments check finds nothing in these workspaces
	// (tests running beside this one leave drift in theirs on purpose).
	ours := func(ws int64) bool { return ws == gone.ID || ws == kept.ID }
	if d, err := owner.CheckCounts(ctx); err != nil || slices.ContainsFunc(d, func(d store.CountDrift) bool { return ours(d.WorkspaceID) }) {
		t.Errorf("counts drift midway: %v %v", d, err)
	}
	if d, err := owner.CheckContactCounts(ctx); err != nil || slices.ContainsFunc(d, func(d store.ContactCountDrift) bool { return ours(d.WorkspaceID) }) {
		t.Errorf("contact counts drift midway: %v %v", d, err)
	}
	if d, err := owner.CheckBitmaps(ctx); err != nil || slices.ContainsFunc(d, func(d store.BitmapDrift) bool { return ours(d.WorkspaceID) }) {
		t.Errorf("bitmaps drift midway: %v %v", d, err)
	}

	// A second run finishes.
	if err := owner.DeleteWorkspace(ctx, gone.ID, nil); err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, table := range append(tenantTables, "api_keys", "segment_bitmaps", "contact_counts", "segment_catalog_versions", "workspace_deletions") {
		if n := count(t, owner.DB(), ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE workspace_id = %d", table, gone.ID)); n != 0 {
			t.Errorf("%d rows of the deleted workspace left in %s", n, table)
		}
	}
	if _, err := owner.Workspace(ctx, gone.ID); !isNotFound(err) {
		t.Errorf("the deleted workspace: %v, want NOT_FOUND", err)
	}
	if err := owner.DeleteWorkspace(ctx, gone.ID, nil); !isNotFound(err) {
		t.Errorf("deleting it again: %v, want NOT_FOUND", err)
	}
	if got := ownerCounts(t, owner, kept.ID); got != keptBefore {
		t.Errorf("the other workspace changed:\n%s\nwant\n%s", got, keptBefore)
	}
	wss, err := owner.WorkspaceSummaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range wss {
		if ws.ID == gone.ID {
			t.Errorf("WorkspaceSummaries lists the deleted workspace")
		}
		if ws.ID == kept.ID && (ws.Contacts != 43 || ws.Segments != 6 || ws.ActiveKeys != 1) {
			t.Errorf("the other workspace's summary: %+v", ws)
		}
	}
}

func isNotFound(err error) bool {
	var e *crm.Error
	return errors.As(err, &e) && e.Code == crm.CodeNotFound
}

// TestCutOffWorkspaceNotFound: a workspace being deleted is not found by Workspace,
// the lookup of a dashboard session's workspace, whatever the role's row-level
// security does (a role given BYPASSRLS, as the owner is, saw it, and its sessions
// worked), while the commands' lookup still finds it to finish the deletion.
func TestCutOffWorkspaceNotFound(t *testing.T) {
	owner := storetest.Store(t)
	ctx := context.Background()
	ws, _ := storetest.Workspace(t, owner)
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := owner.DeleteWorkspace(stop, ws.ID, func(store.WorkspaceDeletionProgress) { cancel() }); err == nil {
		t.Fatal("the deletion was not stopped midway")
	}
	if _, err := owner.Workspace(ctx, ws.ID); !isNotFound(err) {
		t.Errorf("Workspace of a workspace being deleted, as a role without row-level security: %v, want NOT_FOUND", err)
	}
	if got, err := owner.WorkspaceEvenDeleting(ctx, ws.ID); err != nil || got.ID != ws.ID {
		t.Errorf("WorkspaceEvenDeleting: %+v, %v", got, err)
	}
	if err := owner.DeleteWorkspace(ctx, ws.ID, nil); err != nil {
		t.Fatal(err)
	}
}
