package store

// LeakproofFunctions returns the functions the store holds the migrations to
// declaring leakproof (leakproofFunctions), for the test that compares them with the
// migrations (leakproof_test.go).
func LeakproofFunctions() []Leakproof {
	return leakproofFunctions
}
