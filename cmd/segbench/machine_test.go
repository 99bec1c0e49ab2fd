package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/internal/benchdata"
)

// TestMachineWatchSeesAPause stops this whole process for 300 ms, as a host pausing
// the VM stops every process in it, and asks the watch to have seen it.
func TestMachineWatchSeesAPause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := watchMachine(ctx, "")
	time.Sleep(50 * time.Millisecond)
	m.take()
	pid := strconv.Itoa(os.Getpid())
	stop := exec.Command("sh", "-c", "kill -STOP "+pid+"; sleep 0.3; kill -CONT "+pid)
	if err := stop.Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the watch's next wake-up
	pause, _ := m.take()
	if pause < 250*time.Millisecond || pause > 2*time.Second {
		t.Errorf("the watch saw a pause of %v, want about 300 ms", pause)
	}
	if again, _ := m.take(); again >= pause {
		t.Errorf("take did not start over: %v after %v", again, pause)
	}
}

// TestDiskCountersMove reads the counters of the disk that holds a test directory
// before and after writing to it and syncing, so that a kernel whose /proc/diskstats
// put the fields elsewhere fails here rather than report no stalls.
func TestDiskCountersMove(t *testing.T) {
	dir := t.TempDir()
	dev := deviceOf(dir)
	if dev == "" {
		t.Skipf("%s is on no disk of its own (tmpfs?)", dir)
	}
	read := func() diskCounters {
		b, err := os.ReadFile("/proc/diskstats")
		if err != nil {
			t.Fatal(err)
		}
		c, ok := parseDiskstats(string(b), dev)
		if !ok {
			t.Fatalf("disk %s is not in /proc/diskstats", dev)
		}
		return c
	}
	before := read()
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 4 {
		if _, err := f.Write(make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	after := read()
	if after.writes < before.writes+4 {
		t.Errorf("disk %s: %d writes completed after 4 synced writes of 1 MB, want at least 4", dev, after.writes-before.writes)
	}
	if after.writeMs < before.writeMs || after.flushes < before.flushes {
		t.Errorf("disk %s: counters went back: %+v then %+v", dev, before, after)
	}
}

func TestParseDiskstats(t *testing.T) {
	// Linux 6 (with discards and flushes) and 4.19 (neither).
	text := ` 254       0 vda 690195 53993 23966954 261530 3738813 523694 313814920 1121093 0 292900 1561470 464045 32 82098904 74224 332242 104622
   8       1 sda1 100 0 800 50 2000 10 16000 3000 0 900 3050
`
	c, ok := parseDiskstats(text, "254:0")
	if want := (diskCounters{writes: 3738813, writeMs: 1121093, flushes: 332242, flushMs: 104622}); !ok || c != want {
		t.Errorf("vda: %+v, %v; want %+v", c, ok, want)
	}
	c, ok = parseDiskstats(text, "8:1")
	if want := (diskCounters{writes: 2000, writeMs: 3000}); !ok || c != want {
		t.Errorf("sda1: %+v, %v; want %+v", c, ok, want)
	}
	if _, ok := parseDiskstats(text, "8:0"); ok {
		t.Error("found a disk that is not there")
	}

	// 68 writes and a flush that took 1,727 ms in all: the lab's disk stall.
	prev := diskCounters{writes: 100, writeMs: 50, flushes: 10, flushMs: 5}
	cur := diskCounters{writes: 168, writeMs: 1727, flushes: 11, flushMs: 55}
	if got, want := cur.msPerWrite(prev), float64(1677+50)/69; got != want {
		t.Errorf("ms per write %.2f, want %.2f", got, want)
	}
	if got := prev.msPerWrite(prev); got != 0 {
		t.Errorf("ms per write with none completed: %.2f, want 0", got)
	}
}

// TestReportCountsTheMachinesStalls: the report says how many failed steps met a
// stall of the machine, and how many ran again after a pause.
func TestReportCountsTheMachinesStalls(t *testing.T) {
	r := newReport(config{pool: 8, reps: 1, slo: 50 * time.Millisecond}, benchdata.Options{})
	wr := r.workload("W6")
	wr.add(ours, repResult{Steps: []step{
		{Rate: 40, Requests: 120, P99: 2300, PauseMs: 2200},                // failed, paused: run again
		{Rate: 40, Requests: 120, P99: 30, PauseMs: 3},                     // its run again, passed
		{Rate: 80, Requests: 240, P99: 320, DiskMsPerWrite: 30},            // failed, the disk
		{Rate: 60, Requests: 180, P99: 70, DiskMsPerWrite: 2},              // failed, no stall
		{Rate: 50, Requests: 150, P99: 40, DiskMsPerWrite: 12},             // passed despite the disk
		{Rate: 200, Requests: 600, P50: 400, P99: 900, PauseMs: 97},        // saturated: neither counted nor run again
		{Rate: 45, Requests: 135, P99: 60, DiskMsPerWrite: 4, PauseMs: 15}, // failed, no stall
	}})
	wr.add(pgl, repResult{Steps: []step{{Rate: 40, Requests: 120, P99: 20}}})
	reportSays(t, r, "5 ms each: W6 2 of 4 (1 run again).")
	if md := newReport(config{pool: 8, reps: 1, slo: 50 * time.Millisecond}, benchdata.Options{}).markdown(); strings.Contains(md, "stalls") {
		t.Error("a report without steps speaks of stalls")
	}
}
