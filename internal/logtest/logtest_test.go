package logtest_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/segments/segments/internal/logtest"
)

// TestBufferTakesConcurrentWrites: records written from many goroutines while the
// test reads arrive whole (go test -race proves the reads and writes do not race).
func TestBufferTakesConcurrentWrites(t *testing.T) {
	var b logtest.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				log.Info("written", "goroutine", i, "record", j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	lines := b.JSONLines(t)
	if len(lines) != 400 {
		t.Fatalf("%d records, want 400", len(lines))
	}
	for _, l := range lines {
		if l["msg"] != "written" {
			t.Fatalf("a record reads %v", l)
		}
	}
	b.Reset()
	b.Logger().Warn("text", "n", 1)
	if got := b.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `level=WARN msg=text n=1`) {
		t.Errorf("after Reset the buffer holds %q, want the one text record", got)
	}
}
