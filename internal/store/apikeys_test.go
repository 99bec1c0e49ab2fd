package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestKeyExpiryBelowAMicrosecond: an ExpiresIn below the database's unit, a
// microsecond, makes a key that expires (at once), not one that never does. (keys
// create no longer asks for one, its shortest --expires-in being a minute; this was
// its test.)
func TestKeyExpiryBelowAMicrosecond(t *testing.T) {
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateAPIKey(context.Background(), ws.ID, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix(), ExpiresIn: 999 * time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if k.ExpiresAt == nil {
		t.Errorf("ExpiresIn 999ns made a key that never expires")
	}
}
