package server

import (
	"bufio"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// MemoryLimitPercent is the share of its container's memory (the cgroup's limit) that
// the server's binaries give the Go runtime as its soft memory limit
// (debug.SetMemoryLimit) unless GOMEMLIMIT is set, so that the collector runs more
// often as the process nears the limit rather than letting GCPercent's heap grow
// past it. GCPercent lets the heap grow to five times what is live, goroutine stacks
// counted as live: under overload, 1,000 requests waiting for admission (each a
// connection's goroutine and its reader's, 22 MB of stacks in all) took the process
// from 65 to 205-216 MB, 109-115 at GOGC=100 (W1's request on 8 connections, 2026-12-07).
// The rest of the container's memory is for what the runtime does not count: the
// binary, and the kernel's socket buffers of thousands of connections.
const MemoryLimitPercent = 90

// SetMemoryLimit sets the runtime's soft memory limit to MemoryLimitPercent of the
// memory limit of the cgroup the process runs in (CgroupMemoryLimit), and returns
// it; where there is none (or it cannot be read) it changes nothing and returns 0.
// The server's binaries call it unless GOMEMLIMIT is set.
func SetMemoryLimit() int64 {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	return setMemoryLimit(os.DirFS("/sys/fs/cgroup"), string(self))
}

// setMemoryLimit is SetMemoryLimit on the cgroup filesystem root and the
// /proc/self/cgroup self.
func setMemoryLimit(root fs.FS, self string) int64 {
	limit := CgroupMemoryLimit(root, self)
	if limit <= 0 {
		return 0
	}
	limit = limit / 100 * MemoryLimitPercent
	debug.SetMemoryLimit(limit)
	return limit
}

// CgroupMemoryLimit returns the memory limit, in bytes, of the cgroup that self (the
// content of /proc/self/cgroup) names, read in root (the cgroup filesystem,
// /sys/fs/cgroup): cgroup v2's memory.max, or v1's memory.limit_in_bytes of its
// memory controller. 0 when it has none ("max", or v1's page-rounded MaxInt64) or
// it cannot be read. The limit is the smallest of the cgroup's and its ancestors'
// (smallestLimit). A container's own cgroup is often mounted as the root itself
// while /proc/self/cgroup names its path on the host, so the root's file is read
// too.
func CgroupMemoryLimit(root fs.FS, self string) int64 {
	sc := bufio.NewScanner(strings.NewReader(self))
	var v1, v2 string
	hasV2 := false
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, hasV2 = parts[2], true
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c == "memory" {
				v1 = parts[2]
			}
		}
	}
	if v1 != "" {
		if n := smallestLimit(root, "memory", v1, "memory.limit_in_bytes"); n > 0 {
			return n
		}
	}
	if hasV2 {
		return smallestLimit(root, "", v2, "memory.max")
	}
	return 0
}

// smallestLimit returns the smallest limit that file holds in the cgroup named,
// under the hierarchy mounted at mount in root, and in each of its ancestors up to
// the mount itself, which is the process's own cgroup where a container has a
// cgroup namespace (and its host's path is missing): the kernel holds a cgroup to
// its ancestors' limits as well, and a service's limit is often its slice's
// (systemd's MemoryMax= on a slice) or a container's whose init runs in a child
// cgroup. 0 when none holds one ("max", v1's "no limit", unreadable).
func smallestLimit(root fs.FS, mount, cgroup, file string) int64 {
	var smallest int64
	dir := strings.Trim(cgroup, "/")
	for {
		if n := readLimit(root, path.Join(mount, dir, file)); n > 0 && (smallest == 0 || n < smallest) {
			smallest = n
		}
		if dir == "" {
			return smallest
		}
		if i := strings.LastIndex(dir, "/"); i >= 0 {
			dir = dir[:i]
		} else {
			dir = ""
		}
	}
}

// readLimit reads a memory limit file: 0 for none ("max", or v1's page-rounded
// MaxInt64), or when it is missing or unreadable.
func readLimit(root fs.FS, name string) int64 {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	// v1 writes "no limit" as MaxInt64 rounded down to a page.
	if err != nil || n <= 0 || n > math.MaxInt64/2 {
		return 0
	}
	return n
}
