package main

import (
	"os"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

// TestMain stops the PostgreSQL that the tests needing one start (storetest).
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
