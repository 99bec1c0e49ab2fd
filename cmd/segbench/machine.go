package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// machineWatch watches this machine, while the contenders run, for stalls that hold
// every process alike, so that a step's log and the report can tell them from a
// contender's own. A lab on this 2-core VM (W6's statements at 40 requests a
// second for a minute, three times, 2026-12-05) found two kinds behind the p99s of
// 100-400 ms that W6's steps met at rates far below saturation, for every contender:
//
//   - The whole machine paused: for 2.2 s no process ran, neither the lab's
//     sampler nor a program that wrote and synced 8 kB every 10 ms, and 86
//     requests fell due at once when it resumed. A goroutine that sleeps a few
//     milliseconds at a time wakes that late.
//   - The disk stalled: for a few hundred milliseconds its writes took 25 ms each
//     where they take 0.3 to 1, and every commit waited for its WAL flush
//     (wait event WALSync) while the requests piled up; they then drained at the
//     CPU's pace, 2 cores for 20 ms a request, over the next second.
//
// The watch measures both: how late its wake-ups were at worst, and the disk's
// worst mean time per write (or cache flush) over any 100 ms, read from
// /proc/diskstats for the disk of PostgreSQL's data directory. A wake-up is also
// late by the CPU's queue: past saturation, by 20-100 ms (see paused). Idle, the
// machine paused for 153 and 195 ms in five minutes. In a W6-only run of seven, 14
// of W6's 138 failed steps met either (bench/README.md says what failed the others).
type machineWatch struct {
	mu      sync.Mutex
	pause   time.Duration // the most a wake-up came late since the last take
	diskMs  float64       // the worst 100 ms since the last take
	device  string        // major:minor of the data directory's disk; "" not watched
	last    diskCounters
	lastSet bool
}

// watchInterval is how long the watch sleeps at a time; diskWindow how often it reads
// the disk's counters.
const (
	watchInterval = 5 * time.Millisecond
	diskWindow    = 100 * time.Millisecond
)

// watchMachine starts a watch that runs until ctx ends. dir is a directory on the
// disk to watch (PostgreSQL's data directory), "" for none.
func watchMachine(ctx context.Context, dir string) *machineWatch {
	m := &machineWatch{device: deviceOf(dir)}
	go func() {
		t := time.NewTimer(watchInterval)
		defer t.Stop()
		lastDisk := time.Now()
		for {
			asleep := time.Now()
			t.Reset(watchInterval)
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.woke(time.Since(asleep) - watchInterval)
				if now.Sub(lastDisk) >= diskWindow {
					lastDisk = now
					m.readDisk()
				}
			}
		}
	}()
	return m
}

// woke records a wake-up late by late.
func (m *machineWatch) woke(late time.Duration) {
	m.mu.Lock()
	m.pause = max(m.pause, late)
	m.mu.Unlock()
}

func (m *machineWatch) readDisk() {
	if m.device == "" {
		return
	}
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return
	}
	c, ok := parseDiskstats(string(b), m.device)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastSet {
		m.diskMs = max(m.diskMs, c.msPerWrite(m.last))
	}
	m.last, m.lastSet = c, true
}

// take returns the longest pause and the disk's worst 100 ms since the last take,
// and starts over.
func (m *machineWatch) take() (pause time.Duration, diskMsPerWrite float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pause, diskMsPerWrite = m.pause, m.diskMs
	m.pause, m.diskMs = 0, 0
	return pause, diskMsPerWrite
}

// watched records, in each step its runner runs, the machine's stalls meanwhile.
type watched struct {
	runner
	m *machineWatch
}

func (w watched) run(ctx context.Context, rate float64, d time.Duration) (step, error) {
	w.m.take()
	s, err := w.runner.run(ctx, rate, d)
	pause, disk := w.m.take()
	s.PauseMs, s.DiskMsPerWrite = ms(pause), disk
	return s, err
}

// diskCounters are a disk's cumulative counts of completed writes and cache flushes,
// and the milliseconds they took (/proc/diskstats).
type diskCounters struct {
	writes, writeMs, flushes, flushMs int64
}

// msPerWrite is the mean time of the writes and flushes that completed since prev.
func (c diskCounters) msPerWrite(prev diskCounters) float64 {
	n := c.writes - prev.writes + c.flushes - prev.flushes
	if n <= 0 {
		return 0
	}
	return float64(c.writeMs-prev.writeMs+c.flushMs-prev.flushMs) / float64(n)
}

// parseDiskstats reads device's counters (major:minor) from /proc/diskstats' text:
// major, minor, name, then reads (4 fields), writes (4: completed, merged, sectors,
// ms), I/O (3), discards (4) and, since Linux 5.5, flushes (2).
func parseDiskstats(text, device string) (diskCounters, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 14 || f[0]+":"+f[1] != device {
			continue
		}
		n := func(i int) int64 {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseInt(f[i], 10, 64)
			return v
		}
		return diskCounters{writes: n(7), writeMs: n(10), flushes: n(18), flushMs: n(19)}, true
	}
	return diskCounters{}, false
}

// deviceOf returns the major:minor of the disk that holds dir, "" if unknown.
func deviceOf(dir string) string {
	var st unix.Stat_t
	if dir == "" || unix.Stat(dir, &st) != nil {
		return ""
	}
	if unix.Major(st.Dev) == 0 { // tmpfs, overlay: no disk of its own
		return ""
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}
