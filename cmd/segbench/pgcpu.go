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
// PostgreSQL nothing (/proc) unless a new process has to be told (pg_stat_activity),
// a lookup the next sample waits for: a slow one stretches that bound.
const pgWatchEvery = 100 * time.Millisecond

// pgWatch measures PostgreSQL's CPU over a run, by whose process spent it (pgUse).
// It follows the postmaster's children (each backend is one) from /proc, and asks
// pg_stat_activity, on segbench's own connection, whose each new one is: a client
// backend with one of the contender's application_names is its own.
type pgWatch struct {
	pm       int
	db       *sql.DB
	names    []string
	children func(pid int) []int  // childrenOf, but in tests
	logf     func(string, ...any) // where the first failed lookup is said; nil: nowhere
	// started is when the watch started, as the time since the machine booted (the
	// clock of a process's start time in /proc/PID/stat).
	started time.Duration
	all0    time.Duration

	mu     sync.Mutex
	kids   map[pgKey]*pgKid // the postmaster's children seen
	ended  int
	failed bool // a lookup in pg_stat_activity failed (said once)
	stopc  chan struct{}
	done   chan struct{}
}

// pgKey tells a child of the postmaster: its PID with its start time, since Linux
// hands a PID out again once it wraps at pid_max (32,768 by default), which other
// processes' forks reach within a run; a child whose PID reads another start time
// is another process, the one before it gone.
type pgKey struct {
	pid   int
	start time.Duration // since the machine booted, in clock ticks (/proc/PID/stat)
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

// pgMaxTries is how many lookups in pg_stat_activity a child of the postmaster
// stays unknown, not found there or found without an application_name (a backend
// still authenticating shows in neither), before the watch counts it as another's.
// A lookup that failed is not one.
const pgMaxTries = 20

// pgReading is one sample's reading of a living child of the postmaster: its
// start time, and its CPU (singleThreadedCPU) unless the child is known as
// another's (noCPU), whose CPU the watch does not need.
type pgReading struct {
	start, cpu time.Duration
	noCPU      bool
}

// pgActivity is what pg_stat_activity says of a process.
type pgActivity struct{ backendType, appName string }

// watchPG starts a pgWatch of PostgreSQL's processes (postmaster pm) for the
// backends of the connections named names, saying a failed lookup in
// pg_stat_activity with logf (nil: not said). With pm 0 (PostgreSQL not ours to
// watch) it watches nothing, and stop returns a zero pgUse.
func watchPG(ctx context.Context, db *sql.DB, pm int, names []string, logf func(string, ...any)) *pgWatch {
	w := newPGWatch(pm, names)
	w.db, w.logf = db, logf
	if pm == 0 {
		close(w.done)
		return w
	}
	w.started = uptime()
	// The children first, their CPU as the run starts, then the whole tree's.
	w.observe(w.read(), true)
	w.all0 = treeCPU(pm)
	w.lookup(ctx)
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

func newPGWatch(pm int, names []string) *pgWatch {
	return &pgWatch{pm: pm, names: names, children: childrenOf, kids: map[pgKey]*pgKid{}, stopc: make(chan struct{}), done: make(chan struct{})}
}

// stop ends the watch and returns what PostgreSQL's processes used since it began.
func (w *pgWatch) stop(ctx context.Context) pgUse {
	if w.pm == 0 {
		return pgUse{}
	}
	close(w.stopc)
	<-w.done
	w.sample(ctx)
	u := w.use()
	u.All = treeCPU(w.pm) - w.all0
	return u
}

// use sums the contender's backends' CPU as last read.
func (w *pgWatch) use() pgUse {
	w.mu.Lock()
	defer w.mu.Unlock()
	var u pgUse
	for _, k := range w.kids {
		if k.class == pgOwn {
			u.Own += k.last - k.from
			u.Backends++
		}
	}
	u.Ended = w.ended
	return u
}

// sample reads the postmaster's children (observe), then tells the unknown ones
// from pg_stat_activity (lookup).
func (w *pgWatch) sample(ctx context.Context) {
	w.observe(w.read(), false)
	w.lookup(ctx)
}

// read reads the postmaster's living children from /proc: the CPU of those not
// known as another's. A child that ends, or whose PID is handed to another process,
// while it is read is left out (gone).
func (w *pgWatch) read() map[int]pgReading {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[int]pgReading{}
	readKid := func(pid int, start time.Duration) {
		r := pgReading{start: start}
		if k := w.kids[pgKey{pid, r.start}]; k != nil && (k.class == pgOther || k.gone) {
			r.noCPU = true
		} else if r.cpu = singleThreadedCPU(pid); procStart(pid) != r.start {
			return
		}
		out[pid] = r
	}
	for _, pid := range w.children(w.pm) {
		if start := procStart(pid); start != 0 {
			readKid(pid, start)
		}
	}
	// The kernel's list of children may miss one while others exit (proc(5)): a
	// child known and not gone that the list missed is read by its PID, gone only
	// if that PID ended or started another process. Marked gone, a backend missed
	// once was lost for the rest of the run, its CPU with it.
	for key, k := range w.kids {
		if _, listed := out[key.pid]; !listed && !k.gone && procStart(key.pid) == key.start {
			readKid(key.pid, key.start)
		}
	}
	return out
}

// observe takes one sample's readings of the postmaster's living children (by
// PID): it adds those not seen before (a PID with another start time is a new
// child, the one before it gone), marks gone those no longer living, and keeps the
// CPU of the others. first says the readings are from when the run started: the
// CPU of every child then is not the run's.
func (w *pgWatch) observe(readings map[int]pgReading, first bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for pid, r := range readings {
		key := pgKey{pid, r.start}
		k := w.kids[key]
		if k == nil {
			k = &pgKid{}
			// The kernel's list of children may miss one while others exit: a child
			// found later that started before the watch was running when the run
			// began, and its CPU until now is not the run's (a sample's worth lost
			// at most).
			if first || r.start < w.started {
				k.from = r.cpu
			}
			w.kids[key] = k
		}
		if !r.noCPU {
			k.last = r.cpu
		}
	}
	for key, k := range w.kids {
		if r, ok := readings[key.pid]; !k.gone && (!ok || r.start != key.start) {
			// Reaped: its CPU moved into the postmaster's reaped children's, all of
			// theirs together; what it ran since the last sample is lost from Own.
			k.gone = true
			if k.class == pgOwn {
				w.ended++
			}
		}
	}
}

// lookup tells the unknown living children from pg_stat_activity, read on
// segbench's own connection (whose backend is left out: it is segbench's, never a
// contender's), without holding the watch's lock across the query.
func (w *pgWatch) lookup(ctx context.Context) {
	w.mu.Lock()
	unknown := false
	for _, k := range w.kids {
		unknown = unknown || (k.class == pgUnknown && !k.gone)
	}
	w.mu.Unlock()
	if !unknown {
		return
	}
	seen, err := w.activity(ctx)
	w.tell(seen, err)
}

// activity reads pg_stat_activity, by PID.
func (w *pgWatch) activity(ctx context.Context) (map[int]pgActivity, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT pid, coalesce(backend_type, ''), coalesce(application_name, '')
		FROM pg_stat_activity WHERE pid <> pg_backend_pid()`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := map[int]pgActivity{}
	for rows.Next() {
		var pid int
		var a pgActivity
		if err := rows.Scan(&pid, &a.backendType, &a.appName); err != nil {
			return nil, err
		}
		seen[pid] = a
	}
	return seen, rows.Err()
}

// tell classes the unknown children by a lookup's result, seen (pg_stat_activity by
// PID); a lookup that failed (err) tells nothing and counts no try, and the first
// failure is said (logf).
func (w *pgWatch) tell(seen map[int]pgActivity, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if !w.failed && w.logf != nil {
			w.logf("  WARNING: reading pg_stat_activity to tell the contender's backends failed (its new backends stay unknown until it works): %v", err)
		}
		w.failed = true
		return
	}
	for key, k := range w.kids {
		if k.class != pgUnknown {
			continue
		}
		a, ok := seen[key.pid]
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

// procStart is when a process started, as the time since the machine booted
// (/proc/PID/stat's field 22, in clock ticks); 0 when it is gone.
func procStart(pid int) time.Duration {
	return statTicks(pid, 19) // starttime (field 22)
}

// uptime is the time since the machine booted (/proc/uptime), to the clock tick.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	secs, _ := strconv.ParseFloat(f[0], 64)
	return time.Duration(secs*clockTicks) * time.Second / clockTicks
}

// watchPG starts watching PostgreSQL's CPU for contender c's run (pgWatch): none
// where PostgreSQL is not segbench's own (DATABASE_URL), whose stop says zero.
func (b *bench) watchPG(ctx context.Context, c string) *pgWatch {
	return watchPG(ctx, b.db, b.pm, appNamesOf(c), b.log)
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
