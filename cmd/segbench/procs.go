package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/connlimit"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// clockTicks is the kernel's USER_HZ, the unit of CPU times in /proc: 100 on Linux.
const clockTicks = 100

// cpuTime returns the CPU time a process used, user and system, with its reaped
// children's.
func cpuTime(pid int) time.Duration {
	return statTicks(pid, 11, 12, 13, 14) // utime stime cutime cstime (fields 14-17)
}

// statTicks sums fields of /proc/PID/stat that count clock ticks, numbered from
// the state field (field 3) as 0, as a duration.
func statTicks(pid int, fields ...int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range fields {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// processCPU returns the CPU time a process of any number of threads used, to the
// nanosecond, with its reaped children's (in ticks): the server processes', ours and
// Node's. It reads the process's CPU-time clock (clock_getcpuclockid(3): the
// scheduler's runtime of all its threads, those that have exited included), where
// the sum of the living threads' /proc/PID/task/*/schedstat would lose an exited
// thread's time, and cpuTime counts clock ticks of 10 ms: a fixed run of W8 (ten
// requests) moved in steps of 1 ms a request, and PostGraphile's read 0.000 ms.
// cpuTime where the clock cannot be read.
func processCPU(pid int) time.Duration {
	var ts unix.Timespec
	// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) of the kernel's posix-timers.h.
	if err := unix.ClockGettime((^int32(pid))<<3|2, &ts); err != nil {
		return cpuTime(pid)
	}
	return time.Duration(ts.Nano()) + reapedCPU(pid)
}

// parentOf returns a process's parent.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// singleThreadedCPU is cpuTime for a process of one thread, such as PostgreSQL's:
// its own time to the nanosecond (/proc/PID/schedstat, the time the scheduler ran
// it), its reaped children's in ticks. In ticks alone, the eight backends of a 5-s
// run at 100/s measured ±0.2 ms of CPU per request.
func singleThreadedCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return cpuTime(pid)
	}
	f := strings.Fields(string(b))
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return cpuTime(pid)
	}
	return time.Duration(ns) + reapedCPU(pid)
}

// reapedCPU returns the CPU time of a process's reaped children, user and system.
func reapedCPU(pid int) time.Duration {
	return statTicks(pid, 13, 14) // cutime cstime (fields 16-17)
}

// treeCPU returns the CPU time of a process and all its descendants, living or
// reaped: PostgreSQL's postmaster and its backends, each of one thread.
//
// A backend that is reaped while the tree is read moves from the living, where the
// scan may not have reached it yet, into its parent's reaped time, which was read
// already: read once, the tree lost all of that backend's CPU (a connection that
// closed during a sample took its seconds with it, and a workload's PostgreSQL CPU
// came out below zero). So the tree is read again until the root's reaped time is
// the same after the scan as before it.
func treeCPU(root int) time.Duration {
	if root == 0 {
		return 0
	}
	var total time.Duration
	for range 10 {
		before := reapedCPU(root)
		total = singleThreadedCPU(root) + descendantsCPU(root)
		if reapedCPU(root) == before {
			break
		}
	}
	return total
}

// descendantsCPU returns the CPU time of the descendants of root that are living
// (zombies included), each with its own reaped children's.
func descendantsCPU(root int) time.Duration {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Read once: a process that exits in between reads as a child of 0, and
		// reading twice once mixed that list (PID 1 among it) into a real parent's,
		// making a cycle (a stack overflow in a benchmark run).
		if parent := parentOf(pid); parent != 0 {
			children[parent] = append(children[parent], pid)
		}
	}
	var total time.Duration
	seen := map[int]bool{root: true}
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			if seen[c] {
				continue
			}
			seen[c] = true
			total += singleThreadedCPU(c)
			walk(c)
		}
	}
	walk(root)
	return total
}

// rss returns a process's resident set and its peak, in MiB.
func rss(pid int) (cur, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			cur = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return cur, peak
}

// resetPeakRSS sets a process's peak resident set (VmHWM) to what it holds now
// (Linux's clear_refs, 5), so that a later rss reads the peak since the reset: each
// workload's own, where VmHWM alone is the highest since the process started.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// postmasterPID reads the PID of the server whose data directory is pgdata.
func postmasterPID(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// proc is a server process the benchmark started.
type proc struct {
	name string
	cmd  *exec.Cmd
	url  string // its GraphQL endpoint
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process (by its PID) and waits for it.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startProc starts a server process and waits until its GraphQL endpoint answers.
func startProc(ctx context.Context, name string, cmd *exec.Cmd, url string, logPath string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, url: url, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := http.Post(url, "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
		if err == nil {
			res.Body.Close()
			if res.StatusCode < 500 {
				return p, nil
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited at start:\n%s", name, b)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not come up; see %s", name, logPath)
		}
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// benchRateCapacity is the rate-limit bucket of our benchmark server: as large as no
// run's requests drain, at serve's restore rate (benchRateRestore), so that every
// request is charged, as by a default serve, and none is throttled. A run's most,
// W1 at 10,000 requests a second of at most --max-cost's 1,000 points for hours,
// spends under a tenth of it.
const (
	benchRateCapacity = 1_000_000_000_000
	benchRateRestore  = 500 // serve's --rate-limit-restore-rate
)

// rateLimitEnv turns the rate limit of our benchmark server off when "off"
// (segbench --rate-limit=false). An environment variable, not an argument, so that
// the _serve-ours of a --base build from before it still starts (without a limiter).
const rateLimitEnv = "SEGBENCH_RATE_LIMIT"

// serveOurs is the child process that serves our API for the benchmark: the same
// handler, role, settings and connection cap as "segments serve" (oursHandler),
// with the benchmark's pool size, which serve does not expose.
func serveOurs(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: segbench _serve-ours DATABASE_URL ADDR POOL")
	}
	pool, _ := strconv.Atoi(args[2])
	ctx := context.Background()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(server.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		server.SetMemoryLimit()
	}
	// To profile our server under a workload's load: SEGBENCH_PPROF=127.0.0.1:6061,
	// then go tool pprof http://127.0.0.1:6061/debug/pprof/profile?seconds=20 while
	// the workload runs. Its own listener, as serve's --debug-addr, so the API's
	// handler is as serve's.
	if addr := os.Getenv("SEGBENCH_PPROF"); addr != "" {
		if err := telemetry.LoopbackAddr(addr); err != nil {
			return fmt.Errorf("SEGBENCH_PPROF: %w", err)
		}
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, telemetry.ProfilingHandler())) }()
	}
	// As serve does: requests run as the application's role, under row-level security.
	url, err := store.AppURL(ctx, args[0])
	if err != nil {
		return err
	}
	// Named for segbench (appNameEnv) as the parent says, or as serve names its own.
	s, err := store.Open(ctx, url, store.Options{MaxConns: pool, AppName: cmpOr(os.Getenv(appNameEnv), serveAppName),
		StatementTimeout: 15 * time.Second, IdleInTransactionTimeout: 15 * time.Second, ClientCheckInterval: store.ClientCheckInterval, SerialPlans: true, NoJIT: true,
		Tenant: func(ctx context.Context) (int64, bool) {
			ws, ok := auth.WorkspaceFrom(ctx)
			return ws.ID, ok
		}})
	if err != nil {
		return err
	}
	defer s.Close()
	h, err := oursHandler(s, pool, os.Getenv(rateLimitEnv) != "off")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", args[1])
	if err != nil {
		return err
	}
	// serve's cap on client connections, at its default for the admission's limits
	// (oursHandler: twice the pool running, serve's default waiting), and its
	// bookkeeping on every connection and request.
	conns := connlimit.New(ln, connlimit.Options{
		Max: connlimit.Choose(0, 2*pool+server.DefaultMaxWaiting, slog.New(slog.DiscardHandler))})
	srv := &http.Server{
		Handler:           conns.Handler(h),
		ConnContext:       conns.ConnContext,
		ConnState:         conns.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return srv.Serve(conns)
}

// oursHandler is our API's handler on s as the benchmark serves it: serve's (1 ms
// batch wait, 10 s request deadline, GC target, one access-log line per request,
// discarded), rate-limited as serve is by default unless rateLimit is false.
//
// The rate limiter charges each request to its API key's bucket in PostgreSQL, one
// statement on connections of its own, as serve's default does: without it our
// server was measured without a statement it sends on every request (W1 at 100/s:
// PostgreSQL's CPU 0.28-0.30 ms a request against 0.61-0.69, the p50 1.18-1.33 ms
// against 1.72-1.87). Its bucket is too large for any run to drain
// (benchRateCapacity), so it charges and never throttles: the workloads drive one
// key at thousands of points a second, far past serve's default budget of 500.
// For the same reason there is no bound per caller or workspace (serve
// --max-running-per-caller -1 --max-running-per-workspace -1): the one key of the
// one workspace has as many requests in flight as the offered load makes. The other
// settings are serve's defaults (the key cache: --key-cache-ttl 2s; admission: twice
// the pool running, as serve's 40 for its pool of 20).
func oursHandler(s *store.Store, pool int, rateLimit bool) (http.Handler, error) {
	cfg := server.Config{BatchWait: time.Millisecond, RequestTimeout: 10 * time.Second,
		KeyCacheTTL: 2 * time.Second, MaxRunning: 2 * pool,
		MaxRunningPerCaller: -1, MaxRunningPerWorkspace: -1}
	if rateLimit {
		l, err := store.NewRateLimiter(s, store.RateLimiterOptions{Capacity: benchRateCapacity, RestoreRate: benchRateRestore,
			Workspace: func(ctx context.Context) (int64, bool) {
				ws, ok := auth.WorkspaceFrom(ctx)
				return ws.ID, ok
			}})
		if err != nil {
			return nil, err
		}
		cfg.Throttle = l
	}
	return server.Handler(s, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg), nil
}
