package main

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sync"
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

// TestServerCPUInNanoseconds samples the CPU time of a busy server process, as the
// fixed-rate runs do (bench.serverCPU), a few milliseconds apart: it must move by
// what the process ran, not in the clock ticks of /proc/PID/stat (10 ms), in which
// W8's ten requests of a fixed run moved in steps of 1 ms a request and
// PostGraphile's read 0.000 ms.
func TestServerCPUInNanoseconds(t *testing.T) {
	cmd := exec.Command("sh", "-c", `while :; do :; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	b := &bench{servers: map[string]*proc{ours: {name: ours, cmd: cmd}}}
	prev := b.serverCPU(ours)
	var offTick int
	for range 20 {
		time.Sleep(3 * time.Millisecond)
		cpu := b.serverCPU(ours)
		if cpu < prev {
			t.Errorf("server CPU fell from %v to %v", prev, cpu)
		}
		if (cpu-prev)%(time.Second/clockTicks) != 0 {
			offTick++
		}
		prev = cpu
	}
	if offTick == 0 {
		t.Errorf("every sample moved by whole clock ticks of %v (last %v): not read to the nanosecond", time.Second/clockTicks, prev)
	}
}

// TestProcessCPUCountsEveryThread: a process's CPU time is all its threads', as the
// ticks of /proc/PID/stat count it (a Go server runs on several): the test's own
// process, busy on four goroutines, reads the same by both within their rounding.
func TestProcessCPUCountsEveryThread(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
			}
		}()
	}
	wg.Wait()
	pid := os.Getpid()
	ns, ticks := processCPU(pid), cpuTime(pid)
	if d := ns - ticks; d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("CPU %v to the nanosecond, %v in ticks: want the same within 30 ms", ns, ticks)
	}
}

// TestResetPeakRSS: a process's peak resident set (VmHWM) goes back to what it holds
// now once reset, so that each workload's runs report their own peak rather than
// the highest since the server started. The test's own process touches 256 MiB,
// gives it back, and resets its peak.
func TestResetPeakRSS(t *testing.T) {
	pid := os.Getpid()
	big := make([]byte, 256<<20)
	for i := range big {
		if i%4096 == 0 {
			big[i] = 1
		}
	}
	runtime.KeepAlive(big)
	big = nil
	runtime.GC()
	debug.FreeOSMemory()
	cur, peak := rss(pid)
	if peak-cur < 200 {
		t.Skipf("RSS %.0f MiB, peak %.0f: the 256 MiB were not given back", cur, peak)
	}
	if err := resetPeakRSS(pid); err != nil {
		t.Fatal(err)
	}
	cur, after := rss(pid)
	if after > cur+50 {
		t.Errorf("peak %.0f MiB after the reset (RSS %.0f, peak %.0f before): not reset", after, cur, peak)
	}
}
