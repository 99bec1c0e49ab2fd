package main

import (
	"os/exec"
	"testing"
	"time"
)

// TestTreeCPUKeepsExitingChildren samples the CPU time of a process tree whose
// children keep exiting, as a PostgreSQL's backends do when connections close: a
// shell that runs one short busy child after another. Every child's time must stay
// counted once it is reaped, so no sample may fall below an earlier one by more
// than the rounding of a reaped child's time to clock ticks. Read once per sample,
// the tree lost a child that was reaped while it was read (its CPU was in neither
// the living children nor the parent's reaped time), and samples fell by a child's
// whole time.
func TestTreeCPUKeepsExitingChildren(t *testing.T) {
	// Each child counts to 100,000 in the shell (about 0.1 s of CPU) and exits.
	cmd := exec.Command("sh", "-c", `while :; do sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	root := cmd.Process.Pid

	// The reaped time is in clock ticks where a living child's is in nanoseconds:
	// a child's reaping may lower the total by up to a tick each of user and system.
	const rounding = 2 * time.Second / clockTicks
	first := treeCPU(root)
	highest, samples, drops := first, 0, 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); samples++ {
		cpu := treeCPU(root)
		if cpu < highest-rounding {
			drops++
			t.Errorf("sample %d: %v, below an earlier %v", samples, cpu, highest)
		}
		highest = max(highest, cpu)
		if drops >= 5 {
			break
		}
	}
	// The tree did work, and its reaped children's time counts (about a core for 3 s
	// when idle; far less is enough to tell it from none).
	if got := highest - first; got < 300*time.Millisecond {
		t.Errorf("the tree used %v of CPU in 3 s, want at least 0.3 s", got)
	}
	t.Logf("%d samples, %v of CPU", samples, highest-first)
}
