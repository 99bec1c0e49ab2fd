package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/segments/segments/internal/store/storetest"
)

// TestPGWatchChargesEachContenderItsOwnBackends: two contenders' connections to
// one PostgreSQL, told by their application_name, one burning CPU while the other
// idles. The burner is charged its backends' CPU, that of a connection it opens,
// burns on and closes during the run included; the idler about nothing; while
// every PostgreSQL process's CPU (treeCPU, what segbench charged each contender
// before) charges the idler with the burner's work.
func TestPGWatchChargesEachContenderItsOwnBackends(t *testing.T) {
	pg := storetest.Server(t)
	ctx := context.Background()
	url := pg.URL("postgres")
	connect := func(appName string) *pgx.Conn {
		t.Helper()
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["application_name"] = appName
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	backendPID := func(conn *pgx.Conn) int {
		t.Helper()
		var pid int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// segbench's own connection, which asks pg_stat_activity.
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "segbench"
	admin := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { admin.Close() })

	burner, burnerIdle := connect("test-burner"), connect("test-burner")
	idlers := []*pgx.Conn{connect("test-idler"), connect("test-idler")}
	pm := parentOf(backendPID(burner))
	if pm == 0 || childrenOf(pm) == nil {
		t.Fatalf("no postmaster found for backend %d", backendPID(burner))
	}
	burnPID := backendPID(burner)
	backendPID(burnerIdle)

	const burn = "SELECT count(*) FROM generate_series(1, 5e6)"
	burnerWatch := watchPG(ctx, admin, pm, []string{"test-burner"}, t.Logf)
	idlerWatch := watchPG(ctx, admin, pm, []string{"test-idler"}, t.Logf)
	before := singleThreadedCPU(burnPID)
	if _, err := burner.Exec(ctx, burn); err != nil {
		t.Fatal(err)
	}
	after := singleThreadedCPU(burnPID)
	oneBurn := after - before
	for _, c := range idlers {
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	// A connection the burner's pool opens during the run, burns on, and closes: its
	// CPU counts whole, although its backend is gone when the run ends.
	late := connect("test-burner")
	if _, err := late.Exec(ctx, burn); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * pgWatchEvery) // a sample after the burn, before it ends
	late.Close(ctx)
	time.Sleep(3 * pgWatchEvery)
	b, i := burnerWatch.stop(ctx), idlerWatch.stop(ctx)
	t.Logf("one burn %v; burner %+v; idler %+v", oneBurn, b, i)

	if oneBurn < 100*time.Millisecond {
		t.Fatalf("one burn took %v of CPU: too little to tell", oneBurn)
	}
	if b.Backends != 3 || b.Ended != 1 {
		t.Errorf("the burner had %d backends, %d ended; want 3, 1", b.Backends, b.Ended)
	}
	if i.Backends != 2 || i.Ended != 0 {
		t.Errorf("the idler had %d backends, %d ended; want 2, 0", i.Backends, i.Ended)
	}
	// Two burns, the one on the late connection included (whose start-up counts too).
	if b.Own < oneBurn*17/10 {
		t.Errorf("the burner was charged %v, want about two burns of %v", b.Own, oneBurn)
	}
	if b.Own > b.All {
		t.Errorf("the burner was charged %v, more than all processes' %v", b.Own, b.All)
	}
	if i.Own > 20*time.Millisecond {
		t.Errorf("the idler was charged %v for a few SELECT 1", i.Own)
	}
	// Every process's CPU, the old measure, charges the idler with the burner's work.
	if i.All < oneBurn*17/10 {
		t.Errorf("all processes used %v during the idler's run, want the two burns of %v at least", i.All, oneBurn)
	}
}

// TestPGWatchTellsAReusedPIDFromItsBackend: an own backend ends and its PID is
// handed to a new process before the next sample, and later again to a new
// backend of the contender's. Told by PID alone, the new process's CPU replaced
// the ended backend's last reading (Own fell below zero) and the later backend was
// never tracked; told by PID and start time, the first is gone with what it ran
// and each new process is a child of its own.
func TestPGWatchTellsAReusedPIDFromItsBackend(t *testing.T) {
	w := newPGWatch(1, []string{"mine"})
	w.started = 100 * time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	w.observe(map[int]pgReading{7: {start: 50 * time.Second, cpu: ms(400)}}, true)
	w.tell(map[int]pgActivity{7: {"client backend", "mine"}}, nil)
	w.observe(map[int]pgReading{7: {start: 50 * time.Second, cpu: ms(430)}}, false)
	// Reused by another process (autovacuum's worker) between samples.
	w.observe(map[int]pgReading{7: {start: 101 * time.Second, cpu: ms(5)}}, false)
	w.tell(map[int]pgActivity{7: {"autovacuum worker", ""}}, nil)
	w.observe(map[int]pgReading{}, false)
	// Reused again, by a new backend of the contender's.
	w.observe(map[int]pgReading{7: {start: 102 * time.Second, cpu: ms(3)}}, false)
	w.tell(map[int]pgActivity{7: {"client backend", "mine"}}, nil)
	w.observe(map[int]pgReading{7: {start: 102 * time.Second, cpu: ms(20)}}, false)
	u := w.use()
	if want := ms(30 + 20); u.Own != want || u.Backends != 2 || u.Ended != 1 {
		t.Errorf("got Own %v, %d backends, %d ended; want %v, 2, 1", u.Own, u.Backends, u.Ended, want)
	}
}

// TestPGWatchKeepsAChildTheKernelsListMissed: the kernel's list of a process's
// children may miss one while others exit; a backend missing from it for a sample
// is still the contender's, its CPU still counted, not ended. Marked gone, it was
// lost for the rest of the run (Own stopped at 30 ms of a backend that ran 900).
func TestPGWatchKeepsAChildTheKernelsListMissed(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to stand for a backend: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	listed := true
	w := newPGWatch(os.Getpid(), []string{"mine"})
	w.children = func(int) []int {
		if listed {
			return []int{pid}
		}
		return nil
	}
	w.started = uptime()
	w.observe(w.read(), true)
	w.tell(map[int]pgActivity{pid: {"client backend", "mine"}}, nil)
	listed = false
	w.observe(w.read(), false)
	listed = true
	w.observe(w.read(), false)
	if u := w.use(); u.Backends != 1 || u.Ended != 0 {
		t.Errorf("got %d backends, %d ended; want 1 living backend", u.Backends, u.Ended)
	}
	for key, k := range w.kids {
		if k.gone {
			t.Errorf("child %d, missed by the list once, marked gone", key.pid)
		}
	}
}

// TestPGWatchCountsOnlyLookupsThatWorked: while reading pg_stat_activity fails
// (segbench's pool busy or its connection lost), a new backend stays unknown, its
// CPU read, however many samples that lasts, and the failure is said once; counted
// as tries, 20 failures classed it another's for good and its CPU was lost.
func TestPGWatchCountsOnlyLookupsThatWorked(t *testing.T) {
	w := newPGWatch(1, []string{"mine"})
	said := 0
	w.logf = func(string, ...any) { said++ }
	w.started = 100 * time.Second
	w.observe(map[int]pgReading{}, true)
	for i := range 2 * pgMaxTries {
		w.observe(map[int]pgReading{9: {start: 101 * time.Second, cpu: time.Duration(i) * time.Millisecond}}, false)
		w.tell(nil, errors.New("pool timed out"))
	}
	w.tell(map[int]pgActivity{9: {"client backend", "mine"}}, nil)
	u := w.use()
	if want := time.Duration(2*pgMaxTries-1) * time.Millisecond; u.Own != want || u.Backends != 1 {
		t.Errorf("got Own %v, %d backends; want %v, 1", u.Own, u.Backends, want)
	}
	if said != 1 {
		t.Errorf("the failure was said %d times, want once", said)
	}
}
