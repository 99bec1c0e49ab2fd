package store

import (
	"regexp"
	"testing"
)

// storable must say yes exactly where the contacts table's check does (migration
// 20261128000001_init: phone ~ '^\+[1-9][0-9]{6,14}$'): a phone it refuses is never
// looked up among the known ones.
func TestStorableIsTheTableCheck(t *testing.T) {
	check := regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	for _, p := range []string{
		"", "+", "+9", "+912345", "+9123456", "+91234567", "+919876543210", "+123456789012345", "+1234567890123456",
		"+0123456789", "919876543210", "+91 98765 43210", "+91-9876543210", "0091987654321", "+９１９８７６５４３２１０",
		"+91987654321a", " +919876543210", "+919876543210 ", "++919876543210",
	} {
		if got, want := storable(p), check.MatchString(p); got != want {
			t.Errorf("storable(%q) = %v, the table's check says %v", p, got, want)
		}
	}
}
