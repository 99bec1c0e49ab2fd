package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// TestShouldPingAfterRestart: the pools ping a connection before reuse when it was
// idle for more than a second (pgx's rule), and any connection within
// restartPingWindow of NoteRestart, whose connections the ended server left dead.
func TestShouldPingAfterRestart(t *testing.T) {
	defer restartedAt.Store(restartedAt.Load())
	ctx := context.Background()
	fresh, idle := stdlib.ShouldPingParams{IdleDuration: 10 * time.Millisecond}, stdlib.ShouldPingParams{IdleDuration: 2 * time.Second}
	restartedAt.Store(0)
	if shouldPing(ctx, fresh) || !shouldPing(ctx, idle) {
		t.Errorf("without a restart: pinged fresh %v, idle %v; want false, true", shouldPing(ctx, fresh), shouldPing(ctx, idle))
	}
	NoteRestart()
	if !shouldPing(ctx, fresh) {
		t.Error("a connection reused just after NoteRestart is not pinged")
	}
	restartedAt.Store(time.Now().Add(-restartPingWindow - time.Second).UnixNano())
	if shouldPing(ctx, fresh) {
		t.Error("a connection reused after the restart's window is still pinged")
	}
}
