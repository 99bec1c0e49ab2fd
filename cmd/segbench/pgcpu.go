package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The application_name (pg_stat_activity) of each contender's connections, by
// which segbench tells the backends serving a contender from PostgreSQL's other
// processes: its background processes (autovacuum, the checkpointer, the WAL
// writer), the other contenders' connections (idle, pinged, or finishing the run
// before) and segbench's own ("segbench", b.s).
const (
	oursAppName    = "segbench-ours"         // our server (_serve-ours, appNameEnv)
	baseAppName    = "segbench-base"         // --base's server, when its build reads appNameEnv
	pglAppName     = "segbench-postgraphile" // PostGraphile (node-postgres reads PGAPPNAME)
	pgbenchAppName = "segbench-pgbench"      // the floor's pgbench (PGAPPNAME)
	floorAppName   = "segbench-sql"          // the floors segbench replays itself (W6, W7, W11)
	// serveAppName is serve's own, which a --base build from before appNameEnv gives
	// its connections: in the benchmark's database, only base's server connects so.
	serveAppName = "segments"
)

// appNameEnv gives the application_name of the connections of _serve-ours: an
// environment variable, as rateLimitEnv, so that a --base build from before it
// still starts (its connections then say serve's "segments").
const appNameEnv = "SEGBENCH_APP_NAME"

// appNamesOf returns the application_names of contender c's connections.
func appNamesOf(c string) []string {
	switch c {
	case ours:
		return []string{oursAppName}
	case base:
		return []string{baseAppName, serveAppName}
	case pgl:
		return []string{pglAppName}
	case flr, flrOurs:
		return []string{pgbenchAppName, floorAppName}
	}
	return nil
}

// pgUse is PostgreSQL's CPU over a measured run, by whose process spent it.
type pgUse struct {
	// Own is the CPU of the client backends serving the contender's connections: those
	// open when the run started, from then, and those opened during it, whole.
	Own time.Duration
	// All is every PostgreSQL process's (treeCPU): Own, the other connections'
	// backends, the background processes, the postmaster and the children it reaped.
	All time.Duration
	// Backends are the contender's backends seen during the run; Ended, those of them
	// that ended during it, whose CPU after the watch's last sample of them (at most
	// pgWatchEvery before) is lost from Own (it is in All, with the postmaster's
	// reaped children's).
	Backends, Ended int
}

// pgWatchEvery is how often a pgWatch samples the backends: a backend that ends
// loses from Own at most what it ran since the sample before, and the sample costs
// PostgreSQL nothing (/proc) unless a new process has to be told (pg_stat_activity).
const pgWatchEvery = 100 * time.Millisecond

// pgWatch measures PostgreSQL's CPU over a run, by whose process spent it (pgUse).
// It follows the postmaster's children (each backend is one) from /proc, and asks
// pg_stat_activity, on segbench's own connection, whose each new one is: a client
// backend with one of the contender's application_names is its own.
type pgWatch struct {
	pm    int
	db    *sql.DB
	names []string
	// bootTicks is when the watch started, in clock ticks since the machine booted
	// (the unit of a process's start time in /proc/PID/stat).
	bootTicks int64
	all0      time.Duration

	mu    sync.Mutex
	kids  map[int]*pgKid // the postmaster's children seen, by PID
	ended int
	stopc chan struct{}
	done  chan struct{}
}

// pgKid is a child of the postmaster that a pgWatch has seen.
type pgKid struct {
	class      pgClass
	tries      int           // lookups in pg_stat_activity that could not tell it yet
	from, last time.Duration // its CPU when the run started (0 if born since) and at the last sample
	gone       bool
}

type pgClass int

const (
	pgUnknown pgClass = iota // not told yet
	pgOwn                    // a client backend of the contender's
	pgOther                  // anything else
)

// pgMaxTries is how many samples a child of the postmaster stays unknown, not found
// in pg_stat_activity or found without an application_name (a backend still
// authenticating shows in neither), before the watch counts it as another's.
const pgMaxTries = 20

// watchPG starts a pgWatch of PostgreSQL's processes (postmaster pm) for the
// backends of the connections named names. With pm 0 (PostgreSQL not ours to
// watch) it watches nothing, and stop returns a zero pgUse.
func watchPG(ctx context.Context, db *sql.DB, pm int, names []string) *pgWatch {
	w := &pgWatch{pm: pm, db: db, names: names, kids: map[int]*pgKid{}, stopc: make(chan struct{}), done: make(chan struct{})}
	if pm == 0 {
		close(w.done)
		return w
	}
	w.bootTicks = uptimeTicks()
	// The children first, their CPU as the run starts, then the whole tree's.
	for _, pid := range childrenOf(pm) {
		cpu, _ := backendCPU(pid)
		w.kids[pid] = &pgKid{from: cpu, last: cpu}
	}
	w.all0 = treeCPU(pm)
	w.classify(ctx)
	go func() {
		defer close(w.done)
		t := time.NewTicker(pgWatchEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-t.C:
				w.sample(ctx)
			}
		}
	}()
	return w
}

// stop ends the watch and returns what PostgreSQL's processes used since it began.
func (w *pgWatch) stop(ctx context.Context) pgUse {
	if w.pm == 0 {
		return pgUse{}
	}
	close(w.stopc)
	<-w.done
	w.sample(ctx)
	u := pgUse{All: treeCPU(w.pm) - w.all0}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range w.kids {
		if k.class == pgOwn {
			u.Own += k.last - k.from
			u.Backends++
		}
	}
	u.Ended = w.ended
	return u
}

// sample reads the postmaster's children: it adds those born since the last
// sample, tells the unknown ones (pg_stat_activity), and reads the CPU of the
// contender's and the unknown ones.
func (w *pgWatch) sample(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, pid := range childrenOf(w.pm) {
		if w.kids[pid] != nil {
			// A PID is not reused within a run: Linux hands them out in turn, up to
			// pid_max (32,768 at least) before it wraps.
			continue
		}
		k := &pgKid{}
		// The kernel's list of children may miss one while others exit: a child
		// found now that started before the watch was running when the run began,
		// and its CPU until now is not the run's (from is now's, a sample's worth
		// lost at most).
		if start := startTicks(pid); start > 0 && start < w.bootTicks {
			k.from, _ = backendCPU(pid)
		}
		w.kids[pid] = k
	}
	unknown := false
	for _, k := range w.kids {
		unknown = unknown || (k.class == pgUnknown && !k.gone)
	}
	if unknown {
		w.classifyLocked(ctx)
	}
	for pid, k := range w.kids {
		if k.gone || k.class == pgOther {
			continue
		}
		// Read until the process is gone (reaped: its CPU moves into the
		// postmaster's reaped children's, all of theirs together).
		cpu, ok := backendCPU(pid)
		if !ok {
			k.gone = true
			if k.class == pgOwn {
				w.ended++
			}
			continue
		}
		k.last = cpu
	}
}

func (w *pgWatch) classify(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.classifyLocked(ctx)
}

// classifyLocked tells the unknown children from pg_stat_activity, read on
// segbench's own connection (whose backend is left out: it is segbench's, never a
// contender's).
func (w *pgWatch) classifyLocked(ctx context.Context) {
	type activity struct{ backendType, appName string }
	seen := map[int]activity{}
	rows, err := w.db.QueryContext(ctx, `SELECT pid, coalesce(backend_type, ''), coalesce(application_name, '')
		FROM pg_stat_activity WHERE pid <> pg_backend_pid()`)
	if err == nil {
		for rows.Next() {
			var pid int
			var a activity
			if rows.Scan(&pid, &a.backendType, &a.appName) == nil {
				seen[pid] = a
			}
		}
		rows.Close()
	}
	for pid, k := range w.kids {
		if k.class != pgUnknown {
			continue
		}
		a, ok := seen[pid]
		switch {
		case ok && a.backendType == "client backend" && slices.Contains(w.names, a.appName):
			k.class = pgOwn
		case ok && a.backendType != "client backend", ok && a.appName != "":
			k.class = pgOther
		default:
			if k.tries++; k.tries >= pgMaxTries {
				k.class = pgOther
			}
		}
	}
}

// childrenOf returns the PIDs of a process's children: from the kernel's list
// (/proc/PID/task/PID/children, the process's main thread's, which for
// PostgreSQL's single-threaded postmaster is all of them), else by reading every
// process's parent.
func childrenOf(pid int) []int {
	var out []int
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
		return out
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if c, err := strconv.Atoi(e.Name()); err == nil && parentOf(c) == pid {
			out = append(out, c)
		}
	}
	return out
}

// backendCPU is singleThreadedCPU of a PostgreSQL process, and false once it is
// gone (reaped).
func backendCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ns) + reapedCPU(pid), true
}

// startTicks is when a process started, in clock ticks since the machine booted
// (/proc/PID/stat's field 22); 0 when it cannot be read.
func startTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseInt(f[19], 10, 64) // from the state field (3) as 0
	return n
}

// uptimeTicks is the time since the machine booted in clock ticks (/proc/uptime).
func uptimeTicks() int64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	secs, _ := strconv.ParseFloat(f[0], 64)
	return int64(secs * clockTicks)
}

// watchPG starts watching PostgreSQL's CPU for contender c's run (pgWatch): none
// where PostgreSQL is not segbench's own (DATABASE_URL), whose stop says zero.
func (b *bench) watchPG(ctx context.Context, c string) *pgWatch {
	return watchPG(ctx, b.db, b.pm, appNamesOf(c))
}

// setPG sets a run's PostgreSQL CPU from u, per request of n.
func (r *repResult) setPG(u pgUse, n int) {
	r.PGCPUms, r.PGAllCPUms = ms(u.Own)/float64(n), ms(u.All)/float64(n)
	r.PGBackends, r.PGBackendsEnded = u.Backends, u.Ended
}

// pgText describes a run's PostgreSQL CPU beyond its own backends', for its log line.
func (r repResult) pgText() string {
	return fmt.Sprintf("its %d backends, %d ended; %.3f ms all processes", r.PGBackends, r.PGBackendsEnded, r.PGAllCPUms)
}

// checkBackends warns when a run of contender c that PostgreSQL's CPU was measured
// for found none of its backends: its connections were not named as appNamesOf
// says, and its PostgreSQL CPU reads 0.
func (b *bench) checkBackends(c string, r repResult) {
	if b.pm != 0 && r.PGAllCPUms > 0 && r.PGBackends == 0 {
		b.log("  WARNING: none of %s's backends was found (application_name %s): its PostgreSQL CPU reads 0, all processes' %.3f ms",
			c, strings.Join(appNamesOf(c), " or "), r.PGAllCPUms)
	}
}
