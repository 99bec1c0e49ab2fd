package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestCaptureSeesPreparedStatementsAsSent: a statement our server sends again is
// prepared and pipelined after its settings, bound (store/prepared.go); the capture
// records it as it recorded the simple protocol's message, settings first, once per
// request, so that the statements per request and the floor's SQL do not change
// with it. The floor's script for it runs under pgbench -M prepared.
func TestCaptureSeesPreparedStatementsAsSent(t *testing.T) {
	ctx := context.Background()
	url := storetest.Database(t)
	s := storetest.MigratedStore(t, url, store.Options{MaxConns: 2})
	ws, _ := storetest.Workspace(t, s)
	if _, err := s.CreateSegment(store.WithWorkspace(ctx, ws.ID), ws.ID, crm.NewSegment{Name: "Captured"}); err != nil {
		t.Fatal(err)
	}
	recorded, proxy := recordedStore(t, url)
	defer recorded.Close()
	if !recorded.Prepares() {
		t.Skip("the store does not reach PostgreSQL itself (a pooler): it prepares nothing")
	}
	wctx := store.WithWorkspace(ctx, ws.ID)
	first := 10
	var sent [][]string
	for _, search := range []string{"", "", "", "captured", "captured", "captured"} {
		proxy.take()
		page, err := recorded.Segments(wctx, ws.ID, crm.SegmentQuery{Search: search, Order: crm.DefaultSegmentOrder}, crm.PageArgs{First: &first})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("the page: %+v, %v", page.Items, err)
		}
		sent = append(sent, steadyState(proxy.take()))
	}
	for i, st := range sent {
		if len(st) != 1 || !slices.Equal(st, sent[i/3*3]) {
			t.Fatalf("request %d sent %q; the first of its kind %q", i, st, sent[i/3*3])
		}
	}
	if settings, _, ok := store.CutTenantPrefix(sent[5][0]); !ok || len(settings) != 2 {
		t.Errorf("the search's statement as captured: %q, want its two settings first", sent[5][0])
	}

	script, ok := pgbenchPrepared(sent[5])
	if !ok || !strings.HasPrefix(script, "\\startpipeline\nSELECT set_config('app.workspace_id', ") ||
		!strings.Contains(script, "SELECT set_config('enable_seqscan', 'off', true);\n") || !strings.HasSuffix(script, ";\n\\endpipeline\n") {
		t.Fatalf("pgbenchPrepared: %v\n%s", ok, script)
	}
	if _, ok := pgbenchPrepared([]string{"BEGIN; SET LOCAL app.workspace_id = '1'; SELECT 1", "COMMIT"}); ok {
		t.Errorf("a transaction's statements made a prepared script")
	}
	pgbench := findPgbench()
	if _, err := exec.LookPath(pgbench); err != nil {
		t.Skipf("no pgbench: %v", err)
	}
	f := filepath.Join(t.TempDir(), "w.sql")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pgbench, "-n", "-M", "prepared", "-t", "3", "-f", f, appURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
		t.Errorf("pgbench -M prepared: %v\n%s", err, out)
	}
}
