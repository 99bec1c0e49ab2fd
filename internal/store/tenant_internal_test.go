package store

import "testing"

// TestCutTenantPrefix checks that CutTenantPrefix takes apart what tenantPrefix puts
// together, and leaves a statement sent without a workspace alone.
func TestCutTenantPrefix(t *testing.T) {
	const stmt = "SELECT 1; SELECT 2"
	setting, got, ok := CutTenantPrefix(tenantPrefix(42) + stmt)
	if !ok || setting != "SET LOCAL app.workspace_id = '42'" || got != stmt {
		t.Errorf("CutTenantPrefix(prefixed) = %q, %q, %v", setting, got, ok)
	}
	if setting+"; "+got != tenantPrefix(42)+stmt {
		t.Errorf("setting and statement do not make the statement sent again")
	}
	if setting, got, ok := CutTenantPrefix(stmt); ok || setting != "" || got != stmt {
		t.Errorf("CutTenantPrefix(unprefixed) = %q, %q, %v", setting, got, ok)
	}
}
