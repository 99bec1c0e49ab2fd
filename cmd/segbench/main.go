// Command segbench is the benchmark of issue #5 (make bench): in one run, on one
// dataset in one PostgreSQL, it drives each workload against
//
//   - ours: the segments API (its HTTP handler in a child process, as "segments
//     serve" runs it),
//   - postgraphile: PostGraphile 5 serving the same tables (bench/postgraphile),
//   - sql: pgbench running the exact SQL our server sends for the same requests (the
//     floor), captured by a recording proxy between our server and PostgreSQL,
//
// with the same pool size, warmed up, in alternating order, several times, and writes
// the medians (with min and max) to bench/results as JSON, Markdown and an SVG chart.
//
// It is a development tool, not part of the product (only cmd/segments is). Load is
// open-model (vegeta as a library; pgbench --rate): requests start on schedule, so
// latency near saturation is not understated, and arrive on a Poisson timeline for
// every contender (poissonArrivals).
package main

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/pgserver"
	"github.com/segments/segments/internal/store"
)

type config struct {
	dataDir, out, node, pgbench, setupSQL, note, only string
	base                                              string // --base: another build's segbench
	sharedBuffers                                     string
	contacts, neighbours                              int
	seed                                              uint64
	pool, reps, w6Reps, maxSteps                      int
	clientShare                                       float64
	stepDur, warmup, fixedDur, slo                    time.Duration
	fresh                                             bool
	rateLimit                                         bool // --rate-limit: our server charges each request, as serve does
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "_serve-ours" {
		if err := serveOurs(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "embedded PostgreSQL of the benchmark (unless DATABASE_URL is set)")
	flag.StringVar(&c.out, "out", "bench/results", "where the results go")
	flag.StringVar(&c.node, "node", "bench/postgraphile/node_modules/.bin/node", "Node.js ≥ 22 (installed by npm ci in bench/postgraphile)")
	flag.StringVar(&c.pgbench, "pgbench", findPgbench(), "pgbench")
	flag.StringVar(&c.setupSQL, "postgraphile-sql", "bench/sql/postgraphile-setup.sql", "what PostGraphile needs beyond the tables")
	flag.StringVar(&c.note, "note", "", "a note for the report, such as that the machine was shared")
	flag.StringVar(&c.sharedBuffers, "shared-buffers", "2GB", "shared_buffers of the embedded PostgreSQL: large enough for the whole dataset, which is prewarmed into it")
	flag.StringVar(&c.only, "workloads", "W1,W2,W3,W4,W5,W6,W7,W8,W9,W10,W11", "workloads to run")
	flag.IntVar(&c.contacts, "contacts", 1_000_000, "dataset size (segments 1,000; memberships 5 per contact; 10 big segments of contacts/10)")
	flag.Uint64Var(&c.seed, "seed", 1, "dataset and request seed")
	flag.IntVar(&c.neighbours, "neighbours", 0, "small workspaces beside the dataset's (150 contacts, 10 segments, 300 memberships each), as a service of many businesses holds them: loaded once, kept by later runs (0: none are added); not with W8")
	flag.StringVar(&c.base, "base", "", "a segbench binary built from another commit (git worktree add, go build ./cmd/segbench): "+
		"its server is one more contender, \"base\", on this run's dataset and migrations, for an A/B of two builds of ours in one run")
	flag.BoolVar(&c.fresh, "fresh", false, "load a new dataset even if one of this size exists (times the load)")
	flag.BoolVar(&c.rateLimit, "rate-limit", true, "our server charges each request to its API key's rate-limit bucket, as a default `segments serve` does, "+
		"at a capacity no run drains (it never throttles); false leaves the limiter out, for an A/B of what it costs")
	flag.IntVar(&c.pool, "pool", 8, "database connections of each contender (pgbench clients at most)")
	flag.Float64Var(&c.clientShare, "client-share", 0.05, "share of its time a pgbench client may be busy at the offered rate: pgbench uses as many clients as that takes, up to -pool (0: always -pool)")
	flag.IntVar(&c.reps, "reps", 3, "alternating repetitions of each workload")
	flag.IntVar(&c.w6Reps, "w6-reps", 7, "repetitions of W6, whose CPU per request is judged against PostGraphile's and spreads by ±15% for every contender "+
		"from minute to minute, so that three repetitions flipped the verdict from run to run (0: as --reps)")
	flag.IntVar(&c.maxSteps, "max-steps", 10, "rate steps of one SLO search")
	flag.DurationVar(&c.stepDur, "step", 3*time.Second, "duration of one rate step")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up before each contender's runs")
	flag.DurationVar(&c.fixedDur, "fixed", 5*time.Second, "duration of the fixed-rate run")
	flag.DurationVar(&c.slo, "slo", 50*time.Millisecond, "p99 latency of the SLO")
	flag.Parse()

	for _, p := range []*string{&c.node, &c.setupSQL, &c.out} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "segbench:", err)
		os.Exit(1)
	}
}

func defaultDataDir() string {
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		return "/var/lib/segments-bench"
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "segments-bench")
}

func findPgbench() string {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(dirs) > 0 {
		return dirs[len(dirs)-1]
	}
	return "pgbench"
}

// The contenders.
const (
	ours = "ours"
	pgl  = "postgraphile"
	flr  = "sql"
)

// base is our server as the binary of --base serves it: another build of ours.
const base = "base"

// contenders returns the contenders of a run: ours, PostGraphile and the SQL floor,
// and base with --base. An A/B of two builds on this machine has to be run this way,
// in one run, their repetitions alternating: two runs minutes apart differed by more
// (the floor's W3 2,428 and 1,588 req/s in one run) than most changes make.
func (c config) contenders() []string {
	if c.base == "" {
		return []string{ours, pgl, flr}
	}
	return []string{ours, pgl, flr, base}
}

// fixedRates is the rate of each workload's fixed-rate run (p50/p99, CPU per
// request): 100/s where every contender can serve it, lower for the heavy ones (an
// audience count reads 300,000 memberships at full size).
var fixedRates = map[string]float64{"W1": 100, "W2": 100, "W3": 100, "W4": 100, "W5": 100, "W6": 20, "W8": 2, "W9": 100, "W10": 100}

type bench struct {
	c      config
	log    func(string, ...any)
	url    string
	appURL string // the database as our server's role (row-level security), for pgbench
	// floorPool is the same, a pool of the benchmark's size for W6's floor (poolRunner).
	floorPool *sql.DB
	pgdata    string
	pm        int // postmaster PID, 0 when PostgreSQL is not ours to watch
	s         *store.Store
	db        *sql.DB
	d         *dataset
	key       auth.Key
	tmp       string
	servers   map[string]*proc

	scripts map[string][]string // pgbench scripts of each read workload
	// floorPrepared are the read workloads whose scripts the floor runs prepared
	// (pgbenchPrepared).
	floorPrepared map[string]bool
	// w6Statements are the statements of one W6 request, its ID arrays made pgbench
	// variables: :c0 to :c99 and :s0 to :s9.
	w6Statements []string
	// w11Statements are the statements of each of W11's requests, in order.
	w11Statements [][]string
	sqlOf         map[string]string // one request's SQL per workload, for the report
	stmts         map[string]map[string]float64
	stmtsByPage   map[string]map[int]float64 // ours, per read workload (statementsByPageSize)
	rep           *report
	machine       *machineWatch // the machine's pauses and disk stalls, for the steps' logs
}

// repsOf returns how many repetitions workload w runs: W6 more (--w6-reps), as its
// CPU per request varies from minute to minute by more than what tells the
// contenders apart (bench/README.md).
func (c config) repsOf(w string) int {
	if w == "W6" && c.w6Reps > 0 {
		return c.w6Reps
	}
	return c.reps
}

// check refuses settings that cannot give a result.
func (c config) check() error {
	switch {
	case c.neighbours < 0:
		return fmt.Errorf("--neighbours must be 0 or more, not %d", c.neighbours)
	case c.neighbours > 0 && slices.Contains(strings.Split(c.only, ","), "W8"):
		// PostGraphile has no statement timeout (server.mjs), so its count would hold
		// a core for the rest of the run.
		return errors.New("--neighbours with W8: PostGraphile's W8 count ran for over 12 minutes beside 2,000 neighbours " +
			"before it was cancelled (1.4 s in the dataset's database alone); leave W8 out (--workloads)")
	}
	// Said before the dataset is loaded and the servers start, not after: on a fresh
	// machine segbench run directly (not by make bench) met the missing Node.js only
	// when it started PostGraphile, a minute or more in.
	if st, err := os.Stat(c.node); err != nil || st.IsDir() {
		return fmt.Errorf("no Node.js at %s (--node): `make bench/postgraphile/node_modules/.installed` installs it and "+
			"PostGraphile (npm ci in bench/postgraphile), as `make bench` does", c.node)
	}
	if st, err := os.Stat(c.base); c.base != "" && (err != nil || st.IsDir()) {
		return fmt.Errorf("--base %s: no such program (a segbench binary of another build)", c.base)
	}
	return nil
}

func run(ctx context.Context, c config) error {
	if err := c.check(); err != nil {
		return err
	}
	start := time.Now()
	b := &bench{c: c, servers: map[string]*proc{}, scripts: map[string][]string{}, floorPrepared: map[string]bool{}, sqlOf: map[string]string{},
		stmts: map[string]map[string]float64{ours: {}, pgl: {}, flr: {}}, stmtsByPage: map[string]map[int]float64{}}
	b.log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }
	var err error
	if b.tmp, err = os.MkdirTemp("", "segbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	os.Chmod(b.tmp, 0o755)
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}

	// The database.
	b.url = os.Getenv("DATABASE_URL")
	if b.url == "" {
		if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
			return err
		}
		pg, err := pgserver.Start(ctx, pgserver.Options{Dir: c.dataDir, Settings: []string{"shared_buffers=" + c.sharedBuffers,
			// Checkpoints only where scratch asks for one, between contenders' runs:
			// otherwise whoever's write run met one paid for the others' WAL.
			"max_wal_size=16GB", "checkpoint_timeout=1h"}})
		if err != nil {
			return err
		}
		defer pg.Stop()
		b.url = pg.URL("segments")
		b.pgdata = filepath.Join(c.dataDir, "pgdata")
		b.pm = postmasterPID(b.pgdata)
		b.log("embedded PostgreSQL in %s (port %d, postmaster %d)", c.dataDir, pg.Port(), b.pm)
	} else {
		b.log("DATABASE_URL set: PostgreSQL CPU is not measured (not a local process of ours)")
	}
	b.machine = watchMachine(ctx, b.pgdata)
	if b.s, err = store.Open(ctx, b.url, store.Options{MaxConns: 4, AppName: "segbench"}); err != nil {
		return err
	}
	defer b.s.Close()
	b.db = b.s.DB()
	if b.pm != 0 {
		// A run stopped while W6 was measured left autovacuum paused (pauseAutovacuum).
		b.setAutovacuum(ctx, true)
	}
	if _, err := b.s.Migrate(ctx); err != nil {
		return err
	}

	// The dataset: loaded once per size, reused by later runs unless --fresh.
	o := benchdata.Options{Workspace: fmt.Sprintf("bench %d", c.contacts), Contacts: c.contacts, Seed: c.seed}.Fill()
	b.rep = newReport(c, o)
	info, err := benchdata.Find(ctx, b.db, o.Workspace)
	if c.fresh || errors.Is(err, sql.ErrNoRows) {
		b.log("loading the dataset: %d contacts, %d segments, %d memberships", o.Contacts, o.Segments, o.Memberships)
		res, err := benchdata.Load(ctx, b.s, o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			return err
		}
		b.rep.Dataset.LoadSeconds = res.Elapsed.Seconds()
		for _, p := range res.Phases {
			b.rep.Dataset.LoadPhases = append(b.rep.Dataset.LoadPhases, loadPhase{p.Name, p.Elapsed.Seconds()})
		}
		if info, err = benchdata.Find(ctx, b.db, o.Workspace); err != nil {
			return err
		}
	} else if err != nil {
		return err
	} else {
		// An interrupted run leaves its write workloads' scratch segments behind (W7's
		// with a million memberships), and W11's scratch contacts: the dataset is as
		// loaded only without them.
		// (The VACUUM ANALYZE below, before the contenders start, cleans up after it.)
		res, err := execLong(ctx, b.db, `DELETE FROM segments WHERE workspace_id = $1 AND starts_with(name, $2)`, info.WorkspaceID, scratchPrefix)
		if err != nil {
			return fmt.Errorf("delete scratch segments of an earlier run: %w", err)
		}
		n, _ := res.RowsAffected()
		nc, err := deleteUpsertScratch(ctx, b.db, info.WorkspaceID)
		if err != nil {
			return fmt.Errorf("delete scratch contacts of an earlier run: %w", err)
		}
		if n > 0 || nc > 0 {
			b.log("deleted %d scratch segments and %d scratch contacts an interrupted run left", n, nc)
			if info, err = benchdata.Find(ctx, b.db, o.Workspace); err != nil {
				return err
			}
		}
		b.log("reusing the dataset of workspace %d (%d contacts, %d memberships); --fresh reloads it", info.WorkspaceID, info.Contacts, info.Memberships)
		b.rep.Dataset.Reused = true
		took, err := rebuildWrittenIndexes(ctx, b.db)
		if err != nil {
			return err
		}
		b.rep.Dataset.ReindexSeconds = took.Seconds()
		b.log("rebuilt the indexes of the tables the write workloads bloat in %.1f s", took.Seconds())
	}
	// Measured only as loaded: a run on a dataset that a lab changed (100 segments
	// left on W1's page, 2026-12-05) described one database and measured another.
	if err := benchdata.Verify(ctx, b.db, info, o); err != nil {
		return fmt.Errorf("%w; segbench measures the dataset as bench-data loads it: undo the change, or load it again into an empty database (the embedded one: remove %s)", err, c.dataDir)
	}
	b.rep.Dataset.Contacts, b.rep.Dataset.Segments, b.rep.Dataset.Memberships = info.Contacts, info.Segments, info.Memberships
	if c.neighbours > 0 {
		loaded, err := benchdata.LoadNeighbours(ctx, b.s, c.neighbours, c.seed, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			return err
		}
		b.log("%d neighbour workspaces beside the dataset's (%d loaded now)", c.neighbours, loaded)
		b.rep.Dataset.Neighbours = c.neighbours
	}
	if b.rep.Dataset.OtherContacts, err = otherContacts(ctx, b.db, info.WorkspaceID); err != nil {
		return err
	} else if n := b.rep.Dataset.unexpectedContacts(); n > 0 {
		b.log("WARNING: the database also holds %d contacts of other workspaces (a dataset of `segments bench-data` in this data directory?): "+
			"every table and index is larger than the dataset's; the report says so", n)
	}
	if b.key, err = auth.NewKey(); err != nil {
		return err
	}
	if err := b.s.AddAPIKey(ctx, info.WorkspaceID, store.NewAPIKey{Hash: b.key.Hash(), Prefix: b.key.Prefix(), Name: "segbench"}); err != nil {
		return err
	}
	setup, err := os.ReadFile(c.setupSQL)
	if err != nil {
		return err
	}
	if _, err := b.db.ExecContext(ctx, string(setup)); err != nil {
		return fmt.Errorf("postgraphile setup: %w", err)
	}
	if _, err := execLong(ctx, b.db, "VACUUM ANALYZE segments, contacts, memberships, segment_bitmaps"); err != nil {
		return err
	}
	// Warm: every table and index in PostgreSQL's own buffers before any contender
	// runs. This machine's kernel reclaims page cache that has gone cold (DAMON), so
	// the first workload to touch a table after a few minutes otherwise read it from
	// disk, with stalls of a second that fell on whichever contender came first.
	// (In a schema of its own: PostGraphile would serve its functions from public.)
	_, err = b.db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS segbench_tools;
		CREATE EXTENSION IF NOT EXISTS pg_prewarm SCHEMA segbench_tools`)
	if err != nil {
		return fmt.Errorf("pg_prewarm (PostgreSQL's contrib): %w", err)
	}
	var blocks int64
	err = withoutTimeout(ctx, b.db, func(conn *sql.Conn) error {
		return conn.QueryRowContext(ctx, `
			SELECT sum(segbench_tools.pg_prewarm(c.oid)) FROM pg_class c
			WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')`).Scan(&blocks)
	})
	if err != nil {
		return fmt.Errorf("prewarm: %w", err)
	}
	b.log("prewarmed %d MiB of tables and indexes", blocks*8/1024)
	if b.d, err = loadDataset(ctx, b.db, info.WorkspaceID, c.seed); err != nil {
		return err
	}
	b.versions(ctx)

	// Capture: every request once through the recording proxy, which checks that
	// every contender answers it without errors, counts statements, and gives the
	// SQL floor its scripts.
	if err := b.capture(ctx); err != nil {
		return fmt.Errorf("capture: %w", err)
	}

	// The SQL floor runs as the role our server's requests run as, under the same
	// row-level security policies.
	if b.appURL, err = store.AppURL(ctx, b.url); err != nil {
		return err
	}
	if b.floorPool, err = floorPool(b.appURL, b.c.pool); err != nil {
		return err
	}
	defer b.floorPool.Close()
	// The measured servers, straight on the database.
	if err := b.startServers(ctx, b.url, b.url, "run"); err != nil {
		return err
	}
	defer b.stopServers()
	if err := b.startBase(ctx); err != nil {
		return err
	}

	for _, w := range strings.Split(c.only, ",") {
		w = strings.TrimSpace(w)
		var err error
		switch w {
		case "W7":
			err = b.bulk(ctx)
		case "W11":
			err = b.upserts(ctx)
		default:
			err = b.workload(ctx, w)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		if err := b.rep.write(c.out); err != nil { // after each workload: partial results survive
			return err
		}
	}
	b.rep.Meta.Seconds = time.Since(start).Seconds()
	if err := b.rep.write(c.out); err != nil {
		return err
	}
	b.log("done in %s: %s", time.Since(start).Round(time.Second), filepath.Join(c.out, "results.md"))
	return nil
}

// startServers starts our server and PostGraphile on database url.
func (b *bench) startServers(ctx context.Context, dbURL, pglURL, tag string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr := freeAddr()
	p, err := startProc(ctx, ours, b.oursCommand(self, dbURL, addr, oursAppName),
		"http://"+addr+"/graphql", filepath.Join(b.tmp, "ours-"+tag+".log"))
	if err != nil {
		return err
	}
	b.servers[ours] = p
	addr = freeAddr()
	_, port, _ := strings.Cut(addr, ":")
	node := exec.Command(b.c.node, "server.mjs")
	node.Dir = filepath.Dir(filepath.Dir(filepath.Dir(b.c.node))) // bench/postgraphile
	node.Env = append(os.Environ(), "DATABASE_URL="+pglURL, "PORT="+port, "POOL="+strconv.Itoa(b.c.pool), "NODE_ENV=production",
		"PGAPPNAME="+pglAppName) // node-postgres's application_name (appNamesOf)
	p, err = startProc(ctx, pgl, node, "http://"+addr+"/graphql", filepath.Join(b.tmp, "postgraphile-"+tag+".log"))
	if err != nil {
		b.stopServers()
		return err
	}
	b.servers[pgl] = p
	return nil
}

// startBase starts the server of --base, if any, on the database: its own binary's
// _serve-ours, whose arguments have not changed since the harness had it.
func (b *bench) startBase(ctx context.Context) error {
	if b.c.base == "" {
		return nil
	}
	addr := freeAddr()
	p, err := startProc(ctx, base, b.oursCommand(b.c.base, b.url, addr, baseAppName),
		"http://"+addr+"/graphql", filepath.Join(b.tmp, "base.log"))
	if err != nil {
		return err
	}
	b.servers[base] = p
	b.log("base: %s serves our API beside this build's (a build from before segbench's --rate-limit serves it without the rate limiter)", b.c.base)
	return nil
}

// oursCommand is the command of a segbench binary's child process that serves our API
// on dbURL at addr, with the pool and the rate limit of the run, its connections
// named appName (appNamesOf).
func (b *bench) oursCommand(bin, dbURL, addr, appName string) *exec.Cmd {
	cmd := exec.Command(bin, "_serve-ours", dbURL, addr, strconv.Itoa(b.c.pool))
	cmd.Env = append(os.Environ(), appNameEnv+"="+appName)
	if !b.c.rateLimit {
		cmd.Env = append(cmd.Env, rateLimitEnv+"=off")
	}
	return cmd
}

func (b *bench) stopServers() {
	for k, p := range b.servers {
		p.stop()
		delete(b.servers, k)
	}
}

// postClient sends post's requests. Its timeout is ten times the longest request
// posted (PostGraphile's W7, 10-13 s): a request that hangs fails the run with its
// workload's name instead of holding it without a word (PostGraphile's W8 count beside
// 2,000 neighbours ran for over 12 minutes).
var postClient = &http.Client{Timeout: 2 * time.Minute}

// post sends one GraphQL request to a server and returns its body; a response with
// errors is an error.
func (b *bench) post(c string, body []byte) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodPost, b.servers[c].url, bytes.NewReader(body))
	req.Header = b.header(c)
	res, err := postClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"errors"`)) || bytes.Contains(out, []byte(`"userErrors":[{`)) {
		return out, fmt.Errorf("%s answered %d: %.500s\nto %.300s", c, res.StatusCode, out, body)
	}
	return out, nil
}

func (b *bench) header(c string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if c == ours || c == base {
		h.Set("Authorization", "Bearer "+string(b.key))
	}
	return h
}

var readWorkloads = []string{"W1", "W2", "W3", "W4", "W5", "W8", "W9", "W10"}

// Statements our server sends only after a pause, not per request: the lookup of an
// API key, which it remembers for 2 s (serve's --key-cache-ttl), pgx's ping of a
// pooled connection idle for over a second, and the store's questions for its
// statistics (the rows planned for each workspace, the copy of the histogram of the
// contacts' search text and its trigrams, the workspaces' sizes by their counters),
// asked in the background once a minute at most (store/statistics.go), and its
// analyses of new workspaces (store/analyze.go), and its reading of a workspace's
// segment catalog, at a workspace's first page and once a minute after
// (store/catalog.go), and, once as it opens, its backend's process ID (whether it
// reaches PostgreSQL itself, store/store.go's cancelByRequest) and its
// statement_timeout where the store was given none (readStatementTimeout).
// Whether a captured request sends them depends only on when it came (in the
// measured runs, at 20 to thousands of requests a second, one request in 40 or
// fewer), so the captured SQL, and with it the statement counts and the floor's
// scripts, leaves them out.
const (
	keyLookup    = "SELECT * FROM segments_authenticate_key("
	idlePing     = "-- ping"
	rowsLookup   = "SELECT table_name, workspace_id, share, planned_rows, analyzed_at FROM segments_workspace_rows()"
	countsLookup = "SELECT table_name, workspace_id, counted FROM segments_workspace_counts("
	searchSample = "SELECT segments_sample_contact_search()"
	trigrams     = "SELECT analyzed_at, trigrams FROM segments_contact_search_trigrams("
	analysis     = "SELECT segments_analyze_workspaces("
	catalogRead  = "SELECT v.version, coalesce(g.id, 0), coalesce(g.name, ''), g.description"
	backendPID   = "SELECT pg_backend_pid()"
	timeoutRead  = "SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'"
)

// steadyState returns the statements of a captured request of ours without those
// it sent only because of a pause before it (keyLookup, idlePing, rowsLookup,
// countsLookup, searchSample, trigrams, catalogRead), in the background (analysis)
// or as the store opened (backendPID).
func steadyState(st []string) []string {
	return slices.DeleteFunc(st, func(s string) bool {
		return strings.HasPrefix(s, keyLookup) || s == idlePing || s == backendPID || s == timeoutRead || s == rowsLookup || strings.HasPrefix(s, countsLookup) ||
			s == searchSample || strings.HasPrefix(s, trigrams) || strings.HasPrefix(s, analysis) || strings.HasPrefix(tenantStatement(s), catalogRead)
	})
}

// rateCharge starts the rate limiter's charge of a bucket (store.RateLimiter's
// takeSQL), sent for the requests its instance's reserve cannot pay: one in 11 of a
// steady caller's, whichever page size they ask for.
const rateCharge = "INSERT INTO rate_limit_buckets"

// withoutCharges returns st without the rate limiter's charges, which come with a
// request when its bucket's reserve ran out, not because of its page size: counted,
// the first request at one page size sent 2 statements and the next 1 (W3's
// "1.00-2.00", a "no" for statements constant in page size). The averages and the
// floor's scripts keep them.
func withoutCharges(st []string) []string {
	return slices.DeleteFunc(st, func(s string) bool { return strings.HasPrefix(strings.TrimSpace(tenantStatement(s)), rateCharge) })
}

// tenantStatement returns a statement sent for a workspace without what goes before
// it in its message (store.CutTenantPrefix).
func tenantStatement(s string) string {
	if _, statement, ok := store.CutTenantPrefix(s); ok {
		return statement
	}
	return s
}

// statementsByPageSize sends a workload's request again at each of pageSizes, its
// "first: 50" made "first: N", and counts the statements that send says each one
// cost: the "statements per request constant in page size", measured where
// the benchmark measures the rest. Nil for a request with no page of 50 (W8).
func statementsByPageSize(request []byte, send func([]byte) ([]string, error)) (map[int]float64, error) {
	const page = "first: 50"
	if !bytes.Contains(request, []byte(page)) {
		return nil, nil
	}
	by := map[int]float64{}
	for _, n := range pageSizes {
		st, err := send(bytes.Replace(request, []byte(page), fmt.Appendf(nil, "first: %d", n), 1))
		if err != nil {
			return nil, fmt.Errorf("at first: %d: %w", n, err)
		}
		by[n] = float64(len(st))
	}
	return by, nil
}

func (b *bench) capture(ctx context.Context) error {
	u, err := url.Parse(b.url)
	if err != nil {
		return err
	}
	// One recording proxy per server, so that each statement is counted for its
	// sender.
	proxy, err := startProxy(u.Host)
	if err != nil {
		return err
	}
	defer proxy.close()
	pglProxy, err := startProxy(u.Host)
	if err != nil {
		return err
	}
	defer pglProxy.close()
	pu, gu := *u, *u
	pu.Host, gu.Host = proxy.addr(), pglProxy.addr()
	if err := b.startServers(ctx, pu.String(), gu.String(), "capture"); err != nil {
		return err
	}
	defer b.stopServers()
	// PostGraphile's cursors, to start its pages where ours start.
	out, err := b.post(pgl, gql(`query($ws: BigInt!) { allContacts(first: 1, condition: {workspaceId: $ws}, orderBy: [CREATED_AT_DESC]) { edges { cursor } } }`,
		map[string]any{"ws": strconv.FormatInt(b.d.ws, 10)}))
	if err != nil {
		return err
	}
	var cur struct {
		Data struct {
			AllContacts struct{ Edges []struct{ Cursor string } }
		}
	}
	json.Unmarshal(out, &cur)
	if len(cur.Data.AllContacts.Edges) == 0 {
		return fmt.Errorf("no PostGraphile cursor in %s", out)
	}
	raw, _ := base64.StdEncoding.DecodeString(cur.Data.AllContacts.Edges[0].Cursor)
	if err := json.Unmarshal(raw, &b.d.pglCursor); err != nil || len(b.d.pglCursor) != 4 {
		return fmt.Errorf("PostGraphile cursor %s is not [order, created_at, workspace, id]", raw)
	}
	proxy.take()
	pglProxy.take()

	for _, w := range readWorkloads {
		if !b.selected(w) {
			continue
		}
		dir := filepath.Join(b.tmp, "sql", w)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var nOurs, nPgl int
		vs := b.d.readVariants(w)
		// The floor sends the statements prepared, as our server does those it sent
		// before, unless one of a workload's requests has one it would not prepare.
		simple, prepared := make([]string, len(vs)), make([]string, len(vs))
		allPrepared := true
		for i, v := range vs {
			if _, err := b.post(ours, v.ours); err != nil {
				return err
			}
			st := steadyState(proxy.take())
			nOurs += len(st)
			simple[i] = pgbenchScript(st)
			var ok bool
			prepared[i], ok = pgbenchPrepared(st)
			allPrepared = allPrepared && ok
			if i == 0 {
				b.sqlOf[w] = simple[i]
			}
			if _, err := b.post(pgl, v.pgl); err != nil {
				return err
			}
			nPgl += len(pglProxy.take())
		}
		// Our server prepares a text the second time one connection sends it: a
		// workload of a few texts (W1's one page) runs prepared on every connection,
		// one of many (W3's cursors, W4's terms) mostly the simple way, and pgbench
		// -M prepared would prepare each script on each client at its first run,
		// which costs more than sending it simply once (W3's floor spent 2.32 ms of
		// PostgreSQL's CPU a request so, against our server's 1.41).
		scripts := simple
		if allPrepared && len(distinct(prepared)) <= b.c.pool {
			scripts = prepared
			b.floorPrepared[w] = true
		}
		for i, script := range scripts {
			f := filepath.Join(dir, fmt.Sprintf("%03d.sql", i))
			if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
				return err
			}
			b.scripts[w] = append(b.scripts[w], f)
		}
		b.stmts[ours][w] = float64(nOurs) / variants
		b.stmts[pgl][w] = float64(nPgl) / variants
		b.stmts[flr][w] = float64(nOurs) / variants
		b.log("capture %s: %.2f statements per request (ours), %.2f (PostGraphile)", w, b.stmts[ours][w], b.stmts[pgl][w])
		by, err := statementsByPageSize(vs[0].ours, func(body []byte) ([]string, error) {
			if _, err := b.post(ours, body); err != nil {
				return nil, err
			}
			return withoutCharges(steadyState(proxy.take())), nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		if by != nil {
			b.stmtsByPage[w] = by
			b.log("capture %s: statements per request at first: %s: %v", w, sizesText(by), by)
		}
	}

	if b.selected("W6") || b.selected("W7") {
		scratch, drop, err := b.scratch(ctx, w6Scratch)
		if err != nil {
			return err
		}
		defer drop()
		// W6: one request with known IDs, turned into a pgbench template.
		cs, ss := b.d.assignIDs(0, 0, scratch, w6Contacts, w6Segments)
		v := b.d.assignRequest(cs, ss)
		if _, err := b.post(ours, v.ours); err != nil {
			return err
		}
		st := steadyState(proxy.take())
		b.sqlOf["W6"] = pgbenchScript(st)
		b.w6Statements = st
		// Our server sends its arrays sorted; the template's variables c0.. and s0..
		// hold the IDs in ascending order (runnerFor).
		for _, a := range []struct {
			ids []int64
			v   string
		}{{cs, "c"}, {ss, "s"}} {
			lit, vars := sentLiteral(a.ids), arrayLiteral(a.ids, a.v)
			if !strings.Contains(b.sqlOf["W6"], lit) {
				return fmt.Errorf("W6: the captured SQL holds no array %s:\n%s", lit, b.sqlOf["W6"])
			}
			for i := range b.w6Statements {
				b.w6Statements[i] = strings.ReplaceAll(b.w6Statements[i], lit, vars)
			}
		}
		b.stmts[ours]["W6"], b.stmts[flr]["W6"] = float64(len(st)), float64(len(st))
		cs, ss = b.d.assignIDs(1, 1, scratch, w6Contacts, w6Segments)
		if _, err := b.post(pgl, b.d.assignRequest(cs, ss).pgl); err != nil {
			return err
		}
		b.stmts[pgl]["W6"] = float64(len(pglProxy.take()))
		b.log("capture W6: %.0f statements per request (ours), %.0f (PostGraphile)", b.stmts[ours]["W6"], b.stmts[pgl]["W6"])
		// W7: the SQL of one of our ten 1,000 × 100 requests.
		if b.selected("W7") && b.d.contacts >= 10_000 {
			cs, ss := b.d.assignIDs(2, 0, scratch, 1000, 100)
			if _, err := b.post(ours, b.d.assignRequest(cs, ss).ours); err != nil {
				return err
			}
			st := steadyState(proxy.take())
			b.stmts[ours]["W7"] = float64(len(st))
			b.sqlOf["W7"] = abbreviate(strings.Join(st, ";\n") + ";\n")
			cs, ss = b.d.assignIDs(3, 0, scratch, 1000, 100)
			if _, err := b.post(pgl, b.d.assignRequest(cs, ss).pgl); err != nil {
				return err
			}
			b.stmts[pgl]["W7"] = float64(len(pglProxy.take()))
		}
	}
	if b.selected("W11") {
		if err := b.captureUpserts(ctx, proxy.take, pglProxy.take); err != nil {
			return fmt.Errorf("W11: %w", err)
		}
	}
	// The SQL of each workload, beside the report that shows it.
	dir := filepath.Join(b.c.out, "sql")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for w, s := range b.sqlOf {
		if err := os.WriteFile(filepath.Join(dir, w+".sql"), []byte(sqlHeader(w)+s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func sqlHeader(w string) string {
	return fmt.Sprintf("-- %s: %s. The statements our server sent for one request, in order,\n"+
		"-- recorded by cmd/segbench (make bench) on its last run; pgbench replays them as the SQL floor.\n", w, workloadTitles[w])
}

// abbreviate shortens long ID arrays in SQL for the report.
func abbreviate(s string) string {
	var out strings.Builder
	for {
		i := strings.Index(s, "'{")
		if i < 0 {
			out.WriteString(s)
			return out.String()
		}
		j := strings.Index(s[i:], "}'")
		if j < 0 {
			out.WriteString(s)
			return out.String()
		}
		lit := s[i : i+j+2]
		if n := strings.Count(lit, ","); n > 20 {
			parts := strings.Split(lit[2:len(lit)-2], ",")
			lit = fmt.Sprintf("'{%s,%s,%s, … (%d in all) …,%s}'", parts[0], parts[1], parts[2], n+1, parts[n])
		}
		out.WriteString(s[:i] + lit)
		s = s[i+j+2:]
	}
}

// arrayLiteral is an ID array as Bun writes it into SQL, '{1,2,3}', or with pgbench
// variables instead of the IDs, '{:c0,:c1,:c2}'.
func arrayLiteral(ids []int64, v string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		if v == "" {
			parts[i] = strconv.FormatInt(id, 10)
		} else {
			parts[i] = ":" + v + strconv.Itoa(i)
		}
	}
	return "'{" + strings.Join(parts, ",") + "}'"
}

// sentLiteral is the array literal of ids as our server sends it in SQL: sorted, since
// the store locks and writes rows in ID order (store.sortedUnique).
func sentLiteral(ids []int64) string {
	return arrayLiteral(slices.Sorted(slices.Values(ids)), "")
}

func (b *bench) selected(w string) bool {
	for _, x := range strings.Split(b.c.only, ",") {
		if strings.TrimSpace(x) == w {
			return true
		}
	}
	return false
}

// scratchPrefix starts the names of the segments scratch makes.
const scratchPrefix = "segbench scratch "

// execLong runs one of the benchmark's own maintenance statements (deleting a run's
// scratch segments, VACUUM) without a statement timeout (withoutTimeout).
func execLong(ctx context.Context, db *sql.DB, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := withoutTimeout(ctx, db, func(conn *sql.Conn) (err error) {
		res, err = conn.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// writtenTables are the tables whose B-trees the write workloads of every run leave
// half empty: W6's and W7's memberships, inserted then deleted, and their scratch
// segments. After a few runs the memberships' two indexes held 391 and 302 MB
// against 194 each as loaded, and the segments' 4.8 MB for 1,000 rows (2026-12-07).
// The contacts' indexes, which W10 and W11 write, stayed within 10% of their size
// rebuilt, which takes 52 s: they are left as they are.
var writtenTables = []string{"memberships", "segments", "segment_bitmaps"}

// rebuildWrittenIndexes rebuilds the indexes of writtenTables (8 s at 1M contacts),
// so that a reused dataset starts each run with the indexes a load leaves: W6 and W7
// insert into B-trees that earlier runs' deletes left with room on every page, which
// split less the emptier they are. What it does not change much: the reads. After
// the VACUUM every run makes, W1's page reads 8 pages of a bloated segments' index
// against 5 rebuilt, and W3's SQL ran at the same rate in pgbench (1,566-1,922 and
// 1,946-1,951 a second) before and after a rebuild.
func rebuildWrittenIndexes(ctx context.Context, db *sql.DB) (time.Duration, error) {
	start := time.Now()
	for _, table := range writtenTables {
		if _, err := execLong(ctx, db, "REINDEX TABLE "+table); err != nil {
			return 0, fmt.Errorf("rebuild the indexes of %s: %w", table, err)
		}
	}
	return time.Since(start), nil
}

// withoutTimeout runs f on a connection without a statement timeout. Every segments
// command gives the owner's role one in the database (15 s by default:
// store.Options), and the benchmark's maintenance outlasts it: the scratch
// memberships of a fast W6 run (a million and more) take longer to delete, and the
// prewarm reads gigabytes from a cold disk. The connection gets its timeout back
// after f.
func withoutTimeout(ctx context.Context, db *sql.DB, f func(*sql.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET statement_timeout = 0"); err != nil {
		return err
	}
	err = f(conn)
	if _, resetErr := conn.ExecContext(context.WithoutCancel(ctx), "RESET statement_timeout"); resetErr != nil {
		// Not back in the pool with no timeout: closed instead.
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// scratch creates n empty segments with consecutive IDs for a write workload, and
// returns a function that deletes them with their memberships and vacuums, so that
// the dataset stays as loaded.
func (b *bench) scratch(ctx context.Context, n int) ([]int64, func(), error) {
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	rows, err := b.db.QueryContext(ctx, `INSERT INTO segments (workspace_id, name, description)
		SELECT $1, $2 || ' ' || g, 'made and deleted by segbench' FROM generate_series(1, $3) AS g
		RETURNING id`, b.d.ws, scratchPrefix+tag, n)
	if err != nil {
		return nil, nil, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	// The new segments analyzed now, not by autovacuum during the run (the segments'
	// threshold is 100 changed rows).
	if _, err := b.db.ExecContext(ctx, "ANALYZE segments"); err != nil {
		b.log("analyze: %v", err)
	}
	// Each contender's write run starts right after a checkpoint, so that none of them
	// pays for the flushing, or the full-page images, that another's run left due.
	b.checkpoint(ctx)
	drop := func() {
		if _, err := execLong(context.WithoutCancel(ctx), b.db, `DELETE FROM segments WHERE workspace_id = $1 AND id = ANY($2)`, b.d.ws, ids); err != nil {
			b.log("delete scratch segments: %v", err)
		}
		// Analyzed too: the deletion changes a million rows and more, past every
		// autoanalyze threshold (5,000 memberships), and autovacuum's analysis of the
		// 5M memberships (about a second of CPU) then fell, within its next minute,
		// into the next contender's run, whose PostgreSQL CPU per request it raised
		// by up to 10 ms.
		if _, err := execLong(context.WithoutCancel(ctx), b.db, `VACUUM ANALYZE segments, memberships, segment_bitmaps`); err != nil {
			b.log("vacuum: %v", err)
		}
	}
	slicesSort(ids)
	if len(ids) != n || ids[n-1]-ids[0] != int64(n-1) {
		drop()
		return nil, nil, fmt.Errorf("scratch segments are not consecutive: %d..%d", ids[0], ids[len(ids)-1])
	}
	return ids, drop, nil
}

// checkpoint makes PostgreSQL write a checkpoint now, so that a write run that
// follows neither meets one nor pays for what earlier runs left due.
func (b *bench) checkpoint(ctx context.Context) {
	if _, err := b.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		b.log("checkpoint: %v (write runs may meet one of PostgreSQL's own)", err)
	}
}

// afterCheckpoint runs each of its runner's runs right after a checkpoint: W6's
// search, so that every rate it tries meets the WAL as its warm-up and fixed-rate
// run do (they follow the scratch segments' checkpoint, 0 and 2 s after it).
//
// After a checkpoint, the first change to a page logs the whole page
// (full_page_writes), and a W6 request's 1,000 new memberships change pages all over
// the memberships' indexes. Its WAL per request fell from 0.95-1.05 MB in the first
// step after the fixed-rate run to 440-460 kB 30 s later (measured step by step),
// so a rate passed or failed by where in its search it came. Each search starts at
// the rate its contender's previous repetition found late in its search, with half
// the WAL per request: that first step failed in 44 of 54 repetitions over three
// runs (its p99 over 100 ms in 33), and the search, having halved the rate, ran out
// of steps climbing back. At 40 W6 requests a second, PostgreSQL's defaults
// (max_wal_size 1GB) would checkpoint about every 20 s, so the state right after a
// checkpoint is the usual one, not the worst.
type afterCheckpoint struct {
	runner
	b *bench
}

func (a afterCheckpoint) run(ctx context.Context, rate float64, d time.Duration) (step, error) {
	a.b.checkpoint(ctx)
	return a.runner.run(ctx, rate, d)
}

// runnerFor returns contender c's runner of workload w, and what to do after its runs.
func (b *bench) runnerFor(ctx context.Context, w, c string, rep int) (runner, func(), error) {
	rng := rand.New(rand.NewPCG(b.c.seed+uint64(rep), uint64(len(c))))
	if w != "W6" {
		done := func() {}
		if w == "W10" {
			// The same updates for every contender of a repetition.
			stop := startSync(ctx, b.db, b.d, b.c.seed+uint64(rep))
			done = func() { b.endSync(ctx, stop) }
		}
		if c == flr {
			return b.pgbench(ctx, b.scripts[w], b.floorPrepared[w]), done, nil
		}
		vs := b.d.readVariants(w)
		return &httpRunner{url: b.servers[c].url, header: b.header(c), next: func() []byte {
			v := vs[rng.IntN(len(vs))]
			if c == ours || c == base {
				return v.ours
			}
			return v.pgl
		}}, done, nil
	}
	scratch, drop, err := b.scratch(ctx, w6Scratch)
	if err != nil {
		return nil, nil, err
	}
	if c == flr {
		// Our statements for the same IDs as the servers', over a pool (poolRunner).
		return &poolRunner{db: b.floorPool, next: func() []string {
			cs, ss := b.d.assignIDs(rng.IntN(b.d.contacts), rng.IntN(w6Scratch), scratch, w6Contacts, w6Segments)
			return b.ourStatements(cs, ss)
		}}, drop, nil
	}
	return &httpRunner{url: b.servers[c].url, header: b.header(c), next: func() []byte {
		cs, ss := b.d.assignIDs(rng.IntN(b.d.contacts), rng.IntN(w6Scratch), scratch, w6Contacts, w6Segments)
		v := b.d.assignRequest(cs, ss)
		if c == ours || c == base {
			return v.ours
		}
		return v.pgl
	}}, drop, nil
}

// endSync stops W10's sync, logs what it did, and vacuums the contacts, so that the
// next contender starts, as this one did, with no dead rows and an empty pending list.
func (b *bench) endSync(ctx context.Context, stop func() (syncStats, error)) {
	st, err := stop()
	if err != nil {
		b.log("  sync: %v", err)
	}
	if st.Updates > 0 {
		b.log("  sync: %d contacts updated, %.1f ms per UPDATE of %d", st.Updates*syncBatch,
			ms(st.Busy)/float64(st.Updates), syncBatch)
	}
	if _, err := execLong(context.WithoutCancel(ctx), b.db, "VACUUM contacts"); err != nil {
		b.log("  vacuum: %v", err)
	}
}

func (b *bench) pgbench(ctx context.Context, scripts []string, prepared bool) runner {
	u, _ := url.Parse(b.appURL)
	pw, _ := u.User.Password()
	env := []string{"PGHOST=" + u.Hostname(), "PGPORT=" + u.Port(), "PGUSER=" + u.User.Username(), "PGPASSWORD=" + pw,
		"PGDATABASE=" + strings.TrimPrefix(u.Path, "/"), "PGSSLMODE=" + cmpOr(u.Query().Get("sslmode"), "prefer"), "PGAPPNAME=" + pgbenchAppName}
	r := &pgbenchRunner{bin: b.c.pgbench, env: env, clients: b.c.pool, share: b.c.clientShare, scripts: scripts, dir: b.tmp, mode: "simple"}
	if prepared {
		r.mode = "prepared"
	}
	if b.pm != 0 {
		r.watchPG = func() func() pgUse {
			w := b.watchPG(ctx, flr)
			return func() pgUse { return w.stop(ctx) }
		}
	}
	return r
}

// pgbenchScript turns the statements our server sent for one request into a pgbench
// script that sends them the same way: one query message each. pgbench ends a
// command at every semicolon, so the semicolons after the settings (row-level
// security's, a search's) that the server sends in the same message as its
// statement (store/tenant.go) are written \; (pgbench's "same message"). Split, a
// SET LOCAL ran alone, outside any transaction (a warning, written to the log, per
// statement) and cost the floor a round trip per statement.
func pgbenchScript(statements []string) string {
	var sb strings.Builder
	for _, st := range statements {
		if settings, stmt, ok := store.CutTenantPrefix(st); ok {
			st = strings.Join(append(settings, stmt), "\\; ")
		}
		sb.WriteString(st + ";\n")
	}
	return sb.String()
}

// pgbenchPrepared turns the statements our server sent for one request into a pgbench
// script for -M prepared that sends them as our server does once it has sent them
// before (store/prepared.go): each statement in a pipeline of its own, after its
// settings as set_config(..., true), all prepared. ok is false when a statement was
// sent inside a transaction or without a workspace, or is longer than
// store.MaxPreparedText, which our server never prepares (and pgbench cannot
// prepare "\;" commands): pgbenchScript's simple script is the floor then.
func pgbenchPrepared(statements []string) (script string, ok bool) {
	var sb strings.Builder
	for _, st := range statements {
		settings, stmt, ok := store.CutTenantPrefix(st)
		if !ok || strings.HasPrefix(settings[0], "BEGIN") || len(stmt) > store.MaxPreparedText {
			return "", false
		}
		sb.WriteString("\\startpipeline\n")
		for _, set := range settings {
			name, value, found := store.CutSetLocal(set)
			if !found {
				return "", false
			}
			sb.WriteString(fmt.Sprintf("SELECT set_config('%s', '%s', true);\n", name, value))
		}
		sb.WriteString(stmt + ";\n\\endpipeline\n")
	}
	return sb.String(), true
}

// distinct returns the distinct strings of ss.
func distinct(ss []string) map[string]bool {
	out := make(map[string]bool, len(ss))
	for _, s := range ss {
		out[s] = true
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// contenderOrder returns the order in which n contenders run in repetition rep (each
// index once): a Williams design, in which each contender runs first once every n
// repetitions, as in a rotation, and also follows each other contender equally often
// (once every n repetitions for an even n, twice every 2n for an odd n). A rotation
// kept who ran before whom: with ours, PostGraphile, the floor and base, base always
// followed the floor and ours followed base, so a contender's numbers carried what the
// one before it left (its autovacuum's work, its server's tail, counted as PostgreSQL
// CPU of every process), always the same one's: W1's CPU per request at 162eac0 read
// 1.28× base's in bench/results/w1-w3-1207b, where alternating the two evenly read
// 1.01× (bench/results/w1lab-1207).
func contenderOrder(n, rep int) []int {
	// The first row: 0, 1, n-1, 2, n-2, ...; row r adds r to each (mod n).
	first := make([]int, n)
	lo, hi := 1, n-1
	for i := 1; i < n; i++ {
		if i%2 == 1 {
			first[i], lo = lo, lo+1
		} else {
			first[i], hi = hi, hi-1
		}
	}
	cycle := n
	if n%2 == 1 {
		cycle = 2 * n // an odd n needs each row reversed too
	}
	r := rep % max(cycle, 1)
	out := make([]int, n)
	for i := range out {
		out[i] = (first[i] + r) % n
	}
	if r >= n {
		slices.Reverse(out)
	}
	return out
}

// workload runs one rate-driven workload: for each repetition, each contender in
// turn (in contenderOrder's order), a warm-up, a fixed-rate run (latency, CPU per request)
// and an SLO search (max throughput).
func (b *bench) workload(ctx context.Context, w string) error {
	fixed, ok := fixedRates[w]
	if !ok {
		return fmt.Errorf("unknown workload")
	}
	wr := b.rep.workload(w)
	wr.FixedRate = fixed
	wr.SQL = b.sqlOf[w]
	wr.StatementsByPageSize = b.stmtsByPage[w]
	start := map[string]float64{}
	contenders := b.c.contenders()
	for _, c := range contenders {
		start[c] = fixed
	}
	for rep := range b.c.repsOf(w) {
		for _, i := range contenderOrder(len(contenders), rep) {
			c := contenders[i]
			var rr repResult
			if err := b.probe(ctx, &rr); err != nil {
				return err
			}
			b.log("%s rep %d: %s (machine: %s)", w, rep+1, c, rr.Speed)
			r, done, err := b.runnerFor(ctx, w, c, rep)
			if err != nil {
				return err
			}
			r = watched{r, b.machine}
			b.resetPeakRSS(c)
			if _, err := r.run(ctx, fixed, b.c.warmup); err != nil {
				done()
				return err
			}
			resume := func() {}
			if w == "W6" {
				resume = b.pauseAutovacuum(ctx)
			}
			av0 := b.autovacuums(ctx)
			wal0 := b.walPosition(ctx)
			srv0, pw := b.serverCPU(c), b.watchPG(ctx, c)
			fx, err := r.run(ctx, fixed, b.c.fixedDur)
			srv1, pg := b.serverCPU(c), pw.stop(ctx)
			if p := b.servers[c]; p != nil && c != flr {
				_, rr.FixedPeakRSSMiB = rss(p.pid()) // since the reset before the warm-up
			}
			wal1 := b.walPosition(ctx)
			resume()
			if err != nil {
				done()
				return err
			}
			if av1 := b.autovacuums(ctx); av0 >= 0 && av1 > av0 {
				b.log("  autovacuum ended %d vacuums or analyses during the fixed-rate run: its CPU is in this run's PostgreSQL CPU", av1-av0)
			}
			rr.Fixed = fx
			if ok := fx.Requests - fx.Errors; ok > 0 {
				rr.ServerCPUms = ms(srv1-srv0) / float64(ok)
				if b.pm != 0 {
					rr.setPG(pg, ok)
					rr.WALkB = walWritten(wal0, wal1, ok)
				}
			}
			if fx.pgCPUFor > 0 { // measured by the runner, without its warm-up
				rr.setPG(fx.pg, fx.pgCPUFor)
			}
			b.checkBackends(c, rr)
			clients := ""
			if fx.Clients > 0 {
				clients = fmt.Sprintf(" (%d pgbench clients)", fx.Clients)
			}
			b.log("  fixed %.0f/s%s: p50 %.2f ms (%.2f from the send), p99 %.2f ms, %d errors, sent late p50 %.2f ms, p99 %.2f ms, CPU/request %.3f ms server + %.3f ms PostgreSQL (%s), WAL/request %.1f kB%s",
				fixed, clients, fx.P50, fx.SentP50, fx.P99, fx.Errors, fx.LagP50, fx.LagP99, rr.ServerCPUms, rr.PGCPUms, rr.pgText(), rr.WALkB, fx.stalls())
			searched := r
			if w == "W6" {
				searched = afterCheckpoint{r, b}
			}
			best, steps, err := search(ctx, searched, start[c], b.c.stepDur, b.c.slo, b.c.maxSteps, b.log)
			done()
			if err != nil {
				return err
			}
			rr.Max, rr.Steps = best, steps
			if best.Rate > 0 {
				start[c] = best.Rate
			}
			if p := b.servers[c]; p != nil && c != flr {
				rr.RSSMiB, rr.PeakRSSMiB = rss(p.pid())
			}
			b.log("  max within SLO: %.1f req/s offered (%.1f completed a second)", best.Rate, best.Throughput)
			wr.add(c, rr)
		}
	}
	for c, m := range b.stmts {
		if n, ok := m[w]; ok {
			wr.contender(c).Statements = n
		}
	}
	wr.summarize()
	return nil
}

// pauseAutovacuum keeps autovacuum from starting while W6's CPU per request is
// measured, waits (up to 30 s) for the vacuums and analyses running to end, and
// returns what lets it start again.
//
// Every contender's W6 writes as many memberships, past the 5,000 changed rows at
// which autovacuum analyzes them; an analysis of the 5M memberships costs about a
// second of CPU, and whichever contender's 5-s run it fell into spent up to 13 ms
// more of PostgreSQL's CPU a request (22.7 and 35.4 ms for the floor in two
// repetitions of one run, the second with five autovacuum runs ending in it).
// Autovacuum catches up in the SLO search that follows. Only for the embedded
// PostgreSQL: a server given by DATABASE_URL is not the benchmark's to reconfigure.
func (b *bench) pauseAutovacuum(ctx context.Context) (resume func()) {
	if b.pm == 0 {
		return func() {}
	}
	b.setAutovacuum(ctx, false)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var running int
		if err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`).Scan(&running); err != nil || running == 0 {
			break
		}
	}
	return func() { b.setAutovacuum(context.WithoutCancel(ctx), true) }
}

// setAutovacuum turns autovacuum off, or back to the server's setting, with ALTER
// SYSTEM (which runs alone, outside a transaction) and a reload.
func (b *bench) setAutovacuum(ctx context.Context, on bool) {
	stmt := "ALTER SYSTEM SET autovacuum = off"
	if on {
		stmt = "ALTER SYSTEM RESET autovacuum"
	}
	if _, err := b.db.ExecContext(ctx, stmt); err != nil {
		b.log("  %s: %v", stmt, err)
	} else if _, err := b.db.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
		b.log("  reload after %s: %v", stmt, err)
	}
}

// autovacuums returns how many vacuums and analyses autovacuum has ended, of every
// table (PostgreSQL counts one when it ends), for the log to say when one ended in a
// measured run; -1 when it cannot be read.
func (b *bench) autovacuums(ctx context.Context) int64 {
	var n int64
	if err := b.db.QueryRowContext(ctx, `SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// walPosition is how many bytes of WAL PostgreSQL has logged so far, exactly: its
// insert position, which moves as a statement logs (the write position waits for a
// commit's flush, and pg_stat_wal's counts come up to a second late, backend by
// backend); NaN when it cannot be read. Over a measured run, the WAL the run wrote,
// which the report gives per request where the PostgreSQL is segbench's own (b.pm),
// as its CPU. A write's WAL is most of its cost that is not CPU, and the same work
// written differently shows in it: W7's one INSERT ... ON CONFLICT wrote 413 MB, our
// ten requests 396 (medians of three; sampled from pg_stat_wal instead, the runs
// before read 460 and 370).
func (b *bench) walPosition(ctx context.Context) float64 {
	var pos float64
	if err := b.db.QueryRowContext(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::float8`).Scan(&pos); err != nil {
		return math.NaN()
	}
	return pos
}

// walWritten is the WAL between two positions in kB, divided by n, and 0 where
// either position was not read.
func walWritten(from, to float64, n int) float64 {
	if math.IsNaN(from) || math.IsNaN(to) {
		return 0
	}
	return (to - from) / 1024 / float64(n)
}

// resetPeakRSS resets contender c's server's peak resident set before its runs of a
// workload, so that the peak read after them is the workload's own. Where it cannot
// (not Linux, or clear_refs refused), the peaks are since the server started, and
// the report says so.
func (b *bench) resetPeakRSS(c string) {
	p := b.servers[c]
	if p == nil || c == flr {
		return
	}
	if err := resetPeakRSS(p.pid()); err != nil {
		if b.rep.Config["peak_rss_per_workload"] == true {
			b.log("peak RSS cannot be reset (%v): the report's peaks are since each server started", err)
		}
		b.rep.Config["peak_rss_per_workload"] = false
	}
}

// serverCPU is the CPU time contender c's server process has used so far, to the
// nanosecond (processCPU); 0 for the floor, which has none.
func (b *bench) serverCPU(c string) time.Duration {
	if p := b.servers[c]; p != nil && c != flr {
		return processCPU(p.pid())
	}
	return 0
}

// bulk runs W7: one assignment of 10,000 contacts to 100 segments (1M new pairs),
// into 100 new segments each time. Our API takes at most 1,000 × 100 per request, so
// ours sends ten such requests back to back; PostGraphile sends one request (its bulk
// function has no limit); the floor runs the same INSERT as one statement, and also
// the SQL of our ten requests, each as one transaction, over one connection.
func (b *bench) bulk(ctx context.Context) error {
	if b.d.contacts < 10_000 {
		return fmt.Errorf("needs at least 10,000 contacts")
	}
	wr := b.rep.workload("W7")
	wr.SQL = b.sqlOf["W7"]
	cfg, err := pgx.ParseConfig(b.url)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = floorAppName // its backend is the floors' (appNamesOf)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// The floors run as the owner, without the application role's defaults: no
	// statement timeout (the raw statement takes longer than ours allows), and, as our
	// server's role has them (store.Options SerialPlans and NoJIT), no parallel
	// workers and no JIT compilation.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0; SET max_parallel_workers_per_gather = 0; SET jit = off"); err != nil {
		return err
	}
	kinds := []string{ours, pgl, flr, flrOurs}
	if b.c.base != "" {
		kinds = append(kinds, base)
	}
	for rep := range b.c.reps {
		for j, i := range contenderOrder(len(kinds), rep) {
			k := kinds[i]
			scratch, drop, err := b.scratch(ctx, 100)
			if err != nil {
				return err
			}
			cs, _ := b.d.assignIDs(rep*7+j, 0, scratch, 10_000, 0)
			run := func() (err error) {
				switch k {
				case ours, base:
					for j := 0; j < 10 && err == nil; j++ {
						_, err = b.post(k, b.d.assignRequest(cs[j*1000:(j+1)*1000], scratch).ours)
					}
				case pgl:
					_, err = b.post(pgl, b.d.assignRequest(cs, scratch).pgl)
				case flr:
					_, err = conn.Exec(ctx, `INSERT INTO memberships (workspace_id, segment_id, contact_id)
					SELECT $1, s, c FROM unnest($2::bigint[]) AS s CROSS JOIN unnest($3::bigint[]) AS c
					ON CONFLICT DO NOTHING`, pgx.QueryExecModeSimpleProtocol, b.d.ws, scratch, cs)
				case flrOurs:
					for j := 0; j < 10 && err == nil; j++ {
						err = b.replayOurs(ctx, conn, cs[j*1000:(j+1)*1000], scratch)
					}
				}
				return err
			}
			check := func() error {
				var n int64
				if err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM memberships WHERE workspace_id = $1 AND segment_id = ANY($2)`, b.d.ws, scratch).Scan(&n); err != nil {
					return err
				}
				if n != 1_000_000 {
					return fmt.Errorf("made %d memberships, want 1,000,000", n)
				}
				return nil
			}
			if err := b.timedWhole(ctx, wr, k, rep, run, check, drop); err != nil {
				return err
			}
		}
	}
	b.setW7Statements(wr)
	wr.summarize()
	return nil
}

// timedWhole runs one contender's run of a workload timed whole (W7, W11): the
// machine's speed first (probe), then run, with the wall time, the server's and
// PostgreSQL's CPU and the WAL it took; then check, and cleanup whatever happened.
// It adds the result to wr.
func (b *bench) timedWhole(ctx context.Context, wr *wlRep, k string, rep int, run, check func() error, cleanup func()) error {
	var rr repResult
	if err := b.probe(ctx, &rr); err != nil {
		cleanup()
		return err
	}
	b.resetPeakRSS(k)
	wal0 := b.walPosition(ctx)
	srv0, pw := b.serverCPU(k), b.watchPG(ctx, k)
	t0 := time.Now()
	err := run()
	wall := time.Since(t0)
	srv1, pg := b.serverCPU(k), pw.stop(ctx)
	wal1 := b.walPosition(ctx)
	if err == nil {
		err = check()
	}
	cleanup()
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	rr.WallSeconds, rr.ServerCPUms = wall.Seconds(), ms(srv1-srv0)
	if b.pm != 0 {
		rr.setPG(pg, 1)
		rr.WALkB = walWritten(wal0, wal1, 1)
	}
	b.checkBackends(k, rr)
	if p := b.servers[k]; p != nil {
		rr.RSSMiB, rr.PeakRSSMiB = rss(p.pid())
	}
	b.log("%s rep %d: %s %.2f s (CPU: %.0f ms server, %.0f ms PostgreSQL (%s); WAL %.0f MB; machine: %s)",
		wr.ID, rep+1, k, wall.Seconds(), rr.ServerCPUms, rr.PGCPUms, rr.pgText(), rr.WALkB/1024, rr.Speed)
	wr.add(k, rr)
	return nil
}

// setStatements gives each contender of wr the statements per request the capture
// counted.
func (b *bench) setStatements(wr *wlRep) {
	for c, m := range b.stmts {
		if n, ok := m[wr.ID]; ok {
			wr.contender(c).Statements = n
		}
	}
}

// setW7Statements gives W7's contenders their statements per request: the
// capture's, the raw statement's one, and for the replay of our SQL what it replays,
// our steady state (ourStatements), whose API key lookup steadyState has already
// left out (it was subtracted a second time: 3 where the replay sends 4).
func (b *bench) setW7Statements(wr *wlRep) {
	b.setStatements(wr)
	wr.contender(flrOurs).Statements = b.stmts[ours]["W7"]
	wr.contender(flr).Statements = 1
}

// flrOurs is W7's second floor: the SQL of our ten requests, replayed.
const flrOurs = "sql (our 10 transactions)"

// floorPool opens a pool of at most n connections to dbURL that sends each statement
// as its own query message (the simple protocol), as our server does.
func floorPool(dbURL string, n int) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.RuntimeParams["application_name"] = floorAppName // its backends are the floor's (appNamesOf)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return db, nil
}

// replayOurs sends the SQL our server sends for one 1,000 × 100 assignment, with
// these IDs, over conn (simple protocol, as our server does).
func (b *bench) replayOurs(ctx context.Context, conn *pgx.Conn, cs, ss []int64) error {
	return replay(ctx, func(ctx context.Context, s string) error {
		_, err := conn.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol)
		return err
	}, b.ourStatements(cs, ss))
}

// ourStatements returns the statements our server sends to assign contacts cs to
// segments ss (those of W6's capture, with these arrays), without the request's API
// key lookup.
func (b *bench) ourStatements(cs, ss []int64) []string {
	var stmts []string
	for _, s := range b.w6Statements {
		if strings.Contains(s, "segments_authenticate_key") { // the API key lookup (store/apikeys.go)
			continue
		}
		s = strings.ReplaceAll(s, arrayLiteral(make([]int64, w6Contacts), "c"), sentLiteral(cs))
		s = strings.ReplaceAll(s, arrayLiteral(make([]int64, w6Segments), "s"), sentLiteral(ss))
		stmts = append(stmts, s)
	}
	return stmts
}

func (b *bench) versions(ctx context.Context) {
	m := &b.rep.Meta
	m.Go = runtime.Version()
	b.db.QueryRowContext(ctx, "SHOW server_version").Scan(&m.PostgreSQL)
	b.db.QueryRowContext(ctx, "SHOW shared_buffers").Scan(&m.SharedBuffers)
	if out, err := exec.Command(b.c.node, "--version").Output(); err == nil {
		m.Node = strings.TrimSpace(string(out))
	}
	if raw, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(b.c.node))), "node_modules/postgraphile/package.json")); err == nil {
		var p struct{ Version string }
		json.Unmarshal(raw, &p)
		m.PostGraphile = p.Version
	}
	if out, err := exec.Command(b.c.pgbench, "--version").Output(); err == nil {
		m.Pgbench = strings.TrimSpace(string(out))
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, m.CPU, _ = strings.Cut(l, ": ")
				break
			}
		}
	}
	m.Cores = runtime.NumCPU()
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvgAtStart = strings.Join(strings.Fields(string(raw))[:3], " ")
	}
}

// otherContacts counts the contacts of workspaces other than ws. The benchmark
// measures one workspace alone in its tables; a workspace of `segments bench-data`,
// which names its workspace otherwise, loaded into the same data directory doubles
// every table and index without any run noticing. It adds up the workspaces'
// contact_counts, which the contacts' triggers keep (a few rows a workspace), rather
// than counting a million contacts.
func otherContacts(ctx context.Context, db *sql.DB, ws int64) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id <> $1`, ws).Scan(&n)
	return n, err
}
