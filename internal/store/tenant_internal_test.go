package store

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestCutTenantPrefix checks that CutTenantPrefix takes apart what tenantPrefix puts
// together, for a statement and for a search, each also as a transaction's first with
// its BEGIN, and leaves a statement sent without a workspace alone.
func TestCutTenantPrefix(t *testing.T) {
	const stmt = "SELECT 1; SELECT 2"
	for _, c := range []struct {
		ctx  context.Context
		want []string
	}{
		{context.Background(), []string{"SET LOCAL app.workspace_id = '42'"}},
		{forSearch(context.Background(), "buyers"), []string{"SET LOCAL app.workspace_id = '42'", "SET LOCAL enable_seqscan = off"}},
		{context.Background(), []string{"BEGIN", "SET LOCAL app.workspace_id = '42'"}},
		{forSearch(context.Background(), "buyers"), []string{"BEGIN ISOLATION LEVEL SERIALIZABLE", "SET LOCAL app.workspace_id = '42'", "SET LOCAL enable_seqscan = off"}},
	} {
		prefix, n := tenantPrefix(c.ctx, 42)
		if begin := c.want[0]; strings.HasPrefix(begin, "BEGIN") {
			// A transaction's first statement (tenantConn.takeBegin).
			prefix, n = begin+"; "+prefix, n+1
		}
		settings, got, ok := CutTenantPrefix(prefix + stmt)
		if !ok || !slices.Equal(settings, c.want) || got != stmt || n != len(c.want) {
			t.Errorf("CutTenantPrefix(prefixed) = %q, %q, %v (%d settings sent); want %q", settings, got, ok, n, c.want)
		}
		if strings.Join(append(settings, got), "; ") != prefix+stmt {
			t.Errorf("settings and statement do not make the statement sent again")
		}
	}
	for _, sent := range []string{stmt, "BEGIN; " + stmt, "BEGIN"} {
		if settings, got, ok := CutTenantPrefix(sent); ok || settings != nil || got != sent {
			t.Errorf("CutTenantPrefix(%q) = %q, %q, %v; want it unprefixed", sent, settings, got, ok)
		}
	}
}
