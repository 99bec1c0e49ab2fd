package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/benchdata"
)

// TestProbeSpeedOnPostgreSQL runs the probe on a real PostgreSQL: both measures
// taken, and the connection it used handed back to the pool as it found it, since
// the contenders' floors and segbench's own statements run on the same pool after
// it (a connection left without JIT or parallel workers would run them otherwise
// than the contenders' do).
func TestProbeSpeedOnPostgreSQL(t *testing.T) {
	db := openDatabase(t)
	db.SetMaxOpenConns(1) // the probe's connection is the one asked after it
	ctx := context.Background()
	var jit, workers string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')").Scan(&jit, &workers); err != nil {
		t.Fatal(err)
	}
	sp, err := probeSpeed(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// About 170 and 100 ms on the 2-core VM; well above any clock's resolution,
	// and far below a second unless the probe does more than it says.
	if sp.PostgresMs < 20 || sp.PostgresMs > 10_000 || sp.GoMs < 5 || sp.GoMs > 10_000 {
		t.Errorf("probe measured %+v", sp)
	}
	var jitAfter, workersAfter string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')").Scan(&jitAfter, &workersAfter); err != nil {
		t.Fatal(err)
	}
	if jitAfter != jit || workersAfter != workers {
		t.Errorf("after the probe the pool's connection has jit %s, max_parallel_workers_per_gather %s; before it %s, %s", jitAfter, workersAfter, jit, workers)
	}
}

// TestMedianOfTakesTheMiddleRun: a probe's one slow run (a pause of the machine)
// or fast one does not move its measure.
func TestMedianOfTakesTheMiddleRun(t *testing.T) {
	sleeps := []time.Duration{10 * time.Millisecond, 300 * time.Millisecond, 60 * time.Millisecond}
	i := 0
	got, err := medianOf(func() error {
		time.Sleep(sleeps[i])
		i++
		return nil
	})
	if err != nil || i != speedRuns {
		t.Fatalf("ran %d times, error %v", i, err)
	}
	if got < 60 || got >= 300 {
		t.Errorf("median of runs of 10, 300 and 60 ms: %.1f ms", got)
	}
}

// TestSpeedStatementWritesNothing: the probe's statement measures the CPU, not the
// disk. Its first form kept its series in a tuplestore that spilled 14 MB to a
// temporary file, and took 160-290 ms by the disk's state.
func TestSpeedStatementWritesNothing(t *testing.T) {
	db := openDatabase(t)
	var plan string
	if err := db.QueryRowContext(context.Background(), "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+speedStatement).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		Plan map[string]any
	}
	if err := json.Unmarshal([]byte(plan), &nodes); err != nil || len(nodes) != 1 {
		t.Fatalf("plan %s: %v", plan, err)
	}
	var temp func(n map[string]any) float64
	temp = func(n map[string]any) float64 {
		w, _ := n["Temp Written Blocks"].(float64)
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			w += temp(c.(map[string]any))
		}
		return w
	}
	if w := temp(nodes[0].Plan); w > 0 {
		t.Errorf("the probe's statement wrote %.0f temporary blocks: %s", w, plan)
	}
}

// TestReportShowsTheMachinesSpeed: the report states the machine's speed over the
// run and per workload and contender, so that a slow quarter of an hour for one
// contender shows beside its numbers; a run without probes says nothing of it.
func TestReportShowsTheMachinesSpeed(t *testing.T) {
	r := newReport(config{pool: 8, reps: 1, slo: 50 * time.Millisecond}, benchdata.Options{})
	w1 := r.workload("W1")
	w1.add(ours, repResult{Speed: &speed{PostgresMs: 110, GoMs: 100}})
	w1.add(ours, repResult{Speed: &speed{PostgresMs: 170, GoMs: 130}})
	w1.add(ours, repResult{Speed: &speed{PostgresMs: 120, GoMs: 90}})
	w1.add(pgl, repResult{Speed: &speed{PostgresMs: 150, GoMs: 95}})
	w1.add(flr, repResult{}) // a run from before the probe
	w1.summarize()
	reportSays(t, r,
		"PostgreSQL's fixed statement 135 (110–170) ms, Go's fixed sort 97.5 (90.0–130) ms.",
		"| workload | ours | postgraphile | sql |",
		"| W1 | 120 (110–170) / 100 (90.0–130) | 150 (150–150) / 95.0 (95.0–95.0) | – |")
	if md := newReport(config{pool: 8, reps: 1, slo: 50 * time.Millisecond}, benchdata.Options{}).markdown(); strings.Contains(md, "speed") {
		t.Error("a report without probes speaks of the machine's speed")
	}
}
