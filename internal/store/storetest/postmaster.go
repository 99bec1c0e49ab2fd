package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// PausableServer starts a PostgreSQL of the test's own, whose postmaster the test
// may stop (StopPostmaster), and returns its database's URL and the postmaster's
// process ID. Through PgBouncer the test is skipped: a cancelled statement's
// connection is closed there, whenever the cancel arrives.
func PausableServer(tb testing.TB) (url string, postmaster int) {
	tb.Helper()
	if ThroughPgBouncer() {
		tb.Skip("through PgBouncer a cancelled statement's connection is closed")
	}
	url = Server(tb).URL("segments")
	return url, Postmaster(tb, url)
}

// Postmaster returns the process ID of the postmaster of the server at url, which
// runs on this machine: the parent of a backend.
func Postmaster(tb testing.TB, url string) int {
	tb.Helper()
	conn := Conn(tb, url)
	var backend int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		tb.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
	if err != nil {
		tb.Skipf("the server's processes cannot be seen: %v", err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, not ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		tb.Fatal(err)
	}
	return ppid
}

// StopPostmaster stops the postmaster pid, which forks a process for each cancel
// request and each new connection, as a loaded machine delays it: the returned
// function lets it go on (also when the test ends).
func StopPostmaster(tb testing.TB, pid int) (resume func()) {
	tb.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		tb.Skipf("the postmaster cannot be stopped: %v", err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	tb.Cleanup(resume)
	return resume
}
