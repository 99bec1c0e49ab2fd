package server

import (
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

// TestCgroupMemoryLimit reads a container's memory limit as cgroup v2 and v1 write it,
// and finds none where there is none.
func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	for _, tc := range []struct {
		name string
		root fstest.MapFS
		self string
		want int64
	}{
		{"v2", fstest.MapFS{"system.slice/app.service/memory.max": file("536870912")}, "0::/system.slice/app.service\n", 512 << 20},
		{"v2 without a limit", fstest.MapFS{"system.slice/app.service/memory.max": file("max")}, "0::/system.slice/app.service\n", 0},
		// A container with its own cgroup namespace sees "/" and its cgroup as the root;
		// without one, its host's path, which its mount does not hold.
		{"v2 container", fstest.MapFS{"memory.max": file("268435456")}, "0::/kubepods/burstable/pod1/abc\n", 256 << 20},
		{"v2 at the root", fstest.MapFS{"memory.max": file("268435456")}, "0::/\n", 256 << 20},
		{"v1", fstest.MapFS{"memory/docker/abc/memory.limit_in_bytes": file("1073741824")},
			"12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n", 1 << 30},
		{"v1 without a limit", fstest.MapFS{"memory/process_api/x/memory.limit_in_bytes": file("9223372036854771712")},
			"4:memory:/process_api/x\n0::/\n", 0},
		{"v1 container", fstest.MapFS{"memory/memory.limit_in_bytes": file("134217728")}, "5:cpuacct,memory:/docker/abc\n", 128 << 20},
		{"hybrid: v1's memory controller", fstest.MapFS{"memory/a/memory.limit_in_bytes": file("134217728"), "unified/a/memory.max": file("max")},
			"4:memory:/a\n0::/a\n", 128 << 20},
		// The kernel holds a cgroup to its ancestors' limits: a systemd slice's
		// MemoryMax=, a container whose init moved into a child cgroup.
		{"v2 parent's limit", fstest.MapFS{"a/memory.max": file("268435456"), "a/b/memory.max": file("max")}, "0::/a/b\n", 256 << 20},
		{"v2 the smaller of two", fstest.MapFS{"a/memory.max": file("268435456"), "a/b/memory.max": file("536870912")}, "0::/a/b\n", 256 << 20},
		{"v2 container's child cgroup", fstest.MapFS{"memory.max": file("134217728"), "init.scope/memory.max": file("max")}, "0::/init.scope\n", 128 << 20},
		{"v1 parent's limit", fstest.MapFS{"memory/a/memory.limit_in_bytes": file("134217728"), "memory/a/b/memory.limit_in_bytes": file("9223372036854771712")},
			"4:memory:/a/b\n", 128 << 20},
		{"unreadable", fstest.MapFS{"memory.max": file("lots")}, "0::/\n", 0},
		{"no cgroup", fstest.MapFS{}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CgroupMemoryLimit(tc.root, tc.self); got != tc.want {
				t.Errorf("CgroupMemoryLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSetMemoryLimitFromCgroup: the runtime's soft limit becomes MemoryLimitPercent of
// the container's, and stays as it was without one.
func TestSetMemoryLimitFromCgroup(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(math.MaxInt64)

	if got := setMemoryLimit(fstest.MapFS{"memory.max": &fstest.MapFile{Data: []byte("max\n")}}, "0::/\n"); got != 0 {
		t.Errorf("without a limit: set %d", got)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("without a limit: the runtime's limit is %d, want none", l)
	}
	got := setMemoryLimit(fstest.MapFS{"memory.max": &fstest.MapFile{Data: []byte("1000000000\n")}}, "0::/\n")
	if want := int64(1000000000 / 100 * MemoryLimitPercent); got != want {
		t.Errorf("set %d, want %d", got, want)
	}
	if l := debug.SetMemoryLimit(-1); l != got {
		t.Errorf("the runtime's limit is %d, want %d", l, got)
	}
}
