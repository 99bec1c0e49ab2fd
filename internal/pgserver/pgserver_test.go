package pgserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/pgserver"
	"github.com/segments/segments/internal/store/storetest"
)

func TestStartReuseAttachStop(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	first, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Database: "app", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop() })
	if !first.Owned() {
		t.Fatal("the first Start should own the server it started")
	}
	write(t, first.URL("app"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")

	// A second process (here: a second Start) attaches to the running server.
	second, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Database: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Owned() || second.Port() != first.Port() {
		t.Fatalf("second Start should attach to port %d, got port %d owned=%v", first.Port(), second.Port(), second.Owned())
	}
	if err := second.Stop(); err != nil { // a no-op for a server it does not own
		t.Fatal(err)
	}
	if got := queryOne[int](t, first.URL("app"), "SELECT v FROM kept"); got != 42 {
		t.Fatalf("got %d, want 42", got)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	refusesConnections(t, first.URL("app"), "after Stop")

	// Starting again reuses the cluster and its data.
	again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Database: "app", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if got := queryOne[int](t, again.URL("app"), "SELECT v FROM kept"); got != 42 {
		t.Fatalf("after restart got %d, want 42", got)
	}
}

// TestSharedServerOutlivesItsStarter: a Shared server keeps running for the process
// that joined it when the process that started it stops and exits, and the last one
// to Stop stops it. It was stopped under the joined process: a command that started
// it ended, and the server that had joined it lost its database for good.
func TestSharedServerOutlivesItsStarter(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	starter := exec.Command(os.Args[0], "-test.run=^TestSharedStarterProcess$")
	starter.Env = append(os.Environ(), "PGSERVER_TEST_STARTER_DIR="+dir)
	stdin, _ := starter.StdinPipe()
	stdout, _ := starter.StdoutPipe()
	starter.Stderr = os.Stderr
	if err := starter.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = starter.Process.Kill(); _ = starter.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "started") {
		t.Fatalf("the starter process: %q, %v", line, err)
	}

	joined, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = joined.Stop() })
	if joined.Owned() {
		t.Fatal("the second process started a server of its own")
	}
	stdin.Close() // the starter stops its server and exits
	if err := starter.Wait(); err != nil {
		t.Fatalf("the starter process: %v", err)
	}
	if got := queryOne[int](t, joined.URL("segments"), "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}

	if err := joined.Stop(); err != nil {
		t.Fatal(err)
	}
	refusesConnections(t, joined.URL("segments"), "after the last process stopped")
}

// TestSharedStopLeavesAnOlderServer: a segments before users.lock started its server as
// a child of its own, which it stops itself, and holds no lock. A Shared process that
// joined it took the lock at once on Stop, and stopped the server under it: every
// older server of a rolling upgrade stayed 503 for good once a new command ended.
func TestSharedStopLeavesAnOlderServer(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	older, err := pgserver.Start(ctx, pgserver.Options{Dir: dir}) // as such a version did
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = older.Stop() })
	joined, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if joined.Owned() {
		t.Fatal("the Shared process started a server of its own")
	}
	if err := joined.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := queryOne[int](t, older.URL("segments"), "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
	if err := older.Stop(); err != nil {
		t.Fatal(err)
	}
	refusesConnections(t, older.URL("segments"), "after the process that started it stopped")
}

// TestSharedStopLeavesConnectedPrograms: a segments before users.lock that joined a
// Shared server holds no lock either, only its connections: the last Shared process
// to Stop stopped the server under it. A program of ours still connected keeps the
// server running; an operator's psql does not, lest a forgotten session keep it for
// ever. Once the older program has gone, the next Shared process's Stop stops it.
func TestSharedStopLeavesConnectedPrograms(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	first, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	url := first.URL("segments")
	older := connectAs(t, url, "segments") // an older serve's pool
	operator := connectAs(t, url, "psql")
	second, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*pgserver.Server{first, second} {
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	var one int
	if err := older.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("the older program's connection, after the last Shared process stopped: %v", err)
	}
	older.Close(ctx)

	third, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if third.Owned() {
		t.Fatal("the server left running was started again")
	}
	if err := third.Stop(); err != nil {
		t.Fatal(err)
	}
	refusesConnections(t, url, "after the older program and the last Shared process had gone (psql still connected)")
	if err := operator.Ping(ctx); err == nil {
		t.Fatal("the operator's session survived the server")
	}
}

// TestSharedServerStartedAgain: a Shared server stopped from outside while processes
// use it, and started again by another, listens where it did, so that they reconnect;
// and the last user stops it, though it started another. Users kept a port nothing
// listened on (a server's /readyz stayed 503), and the server started again outlived
// them all.
func TestSharedServerStartedAgain(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	first, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	user, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	stopFromOutside(t, dir)
	again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Owned() || again.Port() != first.Port() {
		t.Fatalf("started again on port %d (owned %v), want %d", again.Port(), again.Owned(), first.Port())
	}
	if got := queryOne[int](t, user.URL("segments"), "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
	for _, s := range []*pgserver.Server{again, user, first} { // the first, last
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	refusesConnections(t, user.URL("segments"), "after the last user stopped (the server started again)")
}

// TestStaleProcessIDIsNoPostmaster: a postmaster killed hard leaves postmaster.pid
// behind, and its process ID may be another program's since. The last user's Stop
// signalled whatever process had it, and could wait for it for ever with the lock
// every later command waits for.
func TestStaleProcessIDIsNoPostmaster(t *testing.T) {
	dir := storetest.ServerDir(t)
	s, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	// The postmaster dies hard, and another program gets its process ID.
	pidFile := dir + "/pgdata/postmaster.pid"
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 2)
	pid, _ := strconv.Atoi(lines[0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)+"\n"+lines[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("Stop signalled a process that is no postmaster: %v", err)
	}
}

// TestDeadPostmasterIsStartedAgain: a postmaster killed hard stays a zombie until its
// parent reaps it (for about 2 s in a tester's run), and signal 0 still reaches it. The
// next command joined it and waited 60 s for a server that would never answer; one
// that joined a postmaster that died then waited as long. Both must start the server
// again, on its port, as for one stopped from outside.
func TestDeadPostmasterIsStartedAgain(t *testing.T) {
	for _, c := range []struct {
		name string
		// seconds the fake postmaster runs: 0 for one that is a zombie when Start
		// looks, more for one that Start joins and that dies while it waits.
		seconds string
	}{
		{"a zombie", "0"},
		{"dies while joined", "2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := storetest.ServerDir(t)
			first, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Shared: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = first.Stop() })
			pidFile := dir + "/pgdata/postmaster.pid"
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			stopFromOutside(t, dir)
			// The server is gone, its postmaster.pid names a process called postgres
			// that has exited (or soon will) and that its parent reaps a second later.
			fake := fakePostmaster(t, filepath.Dir(dir), c.seconds)
			reaped := make(chan struct{})
			if c.seconds == "0" {
				for !strings.Contains(readFile(t, fmt.Sprintf("/proc/%d/stat", fake.Process.Pid)), ") Z ") {
					time.Sleep(time.Millisecond)
				}
				time.AfterFunc(time.Second, func() { _ = fake.Wait(); close(reaped) })
			} else {
				go func() { _ = fake.Wait(); close(reaped) }()
			}
			t.Cleanup(func() { <-reaped })
			lines := strings.SplitN(string(b), "\n", 2)
			if err := os.WriteFile(pidFile, []byte(strconv.Itoa(fake.Process.Pid)+"\n"+lines[1]), 0o600); err != nil {
				t.Fatal(err)
			}
			owner := fi.Sys().(*syscall.Stat_t) // the server's OS user must be able to replace it
			if err := os.Chown(pidFile, int(owner.Uid), int(owner.Gid)); err != nil {
				t.Fatal(err)
			}

			// Bounded well below waitReady's 60 s, so that a Start that joined the dead
			// postmaster fails here rather than hanging.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Shared: true})
			if err != nil {
				t.Fatalf("the start after the postmaster died: %v", err)
			}
			t.Cleanup(func() { _ = again.Stop() })
			if !again.Owned() || again.Port() != first.Port() {
				t.Fatalf("started again on port %d (owned %v), want %d", again.Port(), again.Owned(), first.Port())
			}
			if got := queryOne[int](t, first.URL("segments"), "SELECT 1"); got != 1 {
				t.Fatalf("SELECT 1 = %d", got)
			}
		})
	}
}

// TestKeepStartsTheServerAgain: a lone serve whose embedded PostgreSQL died (killed,
// crashed, stopped by an operator) failed every request until it was restarted itself,
// while /livez said it was well. Keep starts the server again on its port, with its
// data.
func TestKeepStartsTheServerAgain(t *testing.T) {
	for _, c := range []struct {
		name string
		stop func(t *testing.T, dir string)
	}{
		{"killed", killPostmaster},
		{"stopped from outside", stopFromOutside},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := storetest.ServerDir(t)
			s, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Shared: true})
			if err != nil {
				t.Fatal(err)
			}
			url := s.URL("segments")
			write(t, url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
			ctx, cancel := context.WithCancel(context.Background())
			reports := make(chan error, 10)
			kept := make(chan struct{})
			go func() { s.Keep(ctx, func(err error) { reports <- err }); close(kept) }()
			t.Cleanup(func() {
				cancel()
				<-kept // Keep returns before Stop, as its doc asks
				if err := s.Stop(); err != nil {
					t.Error(err)
				}
			})

			c.stop(t, dir)
			select {
			case err := <-reports:
				if err != nil {
					t.Fatalf("Keep could not start the server again: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("Keep did not start the server again within 60 s")
			}
			if got := queryOne[int](t, url, "SELECT n FROM kept"); got != 42 {
				t.Fatalf("after the restart, kept holds %d, want 42", got)
			}
			if !s.Owned() {
				t.Fatal("the server started again is not this process's to stop")
			}
		})
	}
}

// TestPortKeptForItsUsers: a server killed while another program took its port was
// started by the next command on another port, where the processes using it, whose
// connections name the old one, never found it: a server stayed 503 for good. The
// port is kept while others use the server: the command fails, saying why, until the
// port is free. And a start that finds its port held by a program that never answers
// fails within seconds: waitReady's one connection waited 60 s, the locks held.
func TestPortKeptForItsUsers(t *testing.T) {
	dir := storetest.ServerDir(t)
	first, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	port, url := first.Port(), first.URL("segments")
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan error, 10)
	kept := make(chan struct{})
	go func() { first.Keep(ctx, func(err error) { reports <- err }); close(kept) }()
	t.Cleanup(func() {
		cancel()
		<-kept
		_ = first.Stop()
	})

	killPostmaster(t, dir)
	// Another program takes the port, and never answers on it.
	squatter, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("take the port: %v", err)
	}
	defer squatter.Close()
	go func() {
		for {
			c, err := squatter.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	began := time.Now()
	select {
	case err := <-reports:
		if err == nil {
			t.Fatal("Keep reports the server started on a port another program holds")
		}
		if took := time.Since(began); took > 15*time.Second {
			t.Errorf("the failed start was reported after %v", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Keep reported nothing within 30 s of a start that failed")
	}

	// Another command: refused, not moved to another port.
	startCtx, cancelStart := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStart()
	if other, err := pgserver.Start(startCtx, pgserver.Options{Dir: dir, Shared: true}); err == nil {
		other.Stop()
		t.Fatalf("a command started the server on port %d while its users reach it on %d", other.Port(), port)
	} else if !strings.Contains(err.Error(), "is taken by another program") {
		t.Errorf("the command's error: %v", err)
	}

	squatter.Close()
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case err := <-reports:
			if err != nil {
				continue // a try before the port was free
			}
		case <-time.After(time.Until(deadline)):
			t.Fatal("Keep did not start the server again once its port was free")
		}
		break
	}
	if got := queryOne[int](t, url, "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
}

// killPostmaster kills the postmaster of dir's server with SIGKILL, as the OOM killer
// would, and waits until it is gone.
func killPostmaster(t *testing.T, dir string) {
	t.Helper()
	signalPostmaster(t, dir, syscall.SIGKILL)
}

// fakePostmaster starts a program named postgres (a copy of sleep, run for seconds) in
// dir, as the OS user a server runs as (PostgreSQL's own check of postmaster.pid tells
// its user's processes from others').
func fakePostmaster(t *testing.T, dir, seconds string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "postgres")
	if err := os.WriteFile(fake, []byte(readFile(t, sleep)), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake, seconds)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// connectAs connects to url as application app, as a program reports itself to
// PostgreSQL (pg_stat_activity.application_name); the test closes the connection.
func connectAs(t *testing.T, url, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// refusesConnections fails the test unless the server of url is gone (when says
// after what).
func refusesConnections(t *testing.T, url, when string) {
	t.Helper()
	if conn, err := pgx.Connect(context.Background(), url); err == nil {
		conn.Close(context.Background())
		t.Fatalf("the server still accepts connections %s", when)
	}
}

// stopFromOutside stops the server of dir as an operator would (pg_ctl stop -m fast),
// and waits until it is gone.
func stopFromOutside(t *testing.T, dir string) {
	t.Helper()
	signalPostmaster(t, dir, syscall.SIGINT)
}

// signalPostmaster sends sig to the postmaster of dir's server and waits until it is
// gone.
func signalPostmaster(t *testing.T, dir string, sig syscall.Signal) {
	t.Helper()
	b, err := os.ReadFile(dir + "/pgdata/postmaster.pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedStarterProcess is the starter process of TestSharedServerOutlivesItsStarter:
// it starts a Shared server, says so, and stops it and exits when its input closes.
func TestSharedStarterProcess(t *testing.T) {
	dir := os.Getenv("PGSERVER_TEST_STARTER_DIR")
	if dir == "" {
		t.Skip("run by TestSharedServerOutlivesItsStarter")
	}
	s, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Owned() {
		t.Fatal("the starter joined a server it should have started")
	}
	fmt.Println("started", s.Port())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTempFileLimit checks that a started server limits each session's temporary
// files by default, and that a limit the caller sets wins and stops a statement.
func TestTempFileLimit(t *testing.T) {
	ctx := context.Background()
	byDefault := storetest.Server(t)
	if got := queryOne[string](t, byDefault.URL("segments"), "SHOW temp_file_limit"); got != pgserver.TempFileLimit {
		t.Fatalf("temp_file_limit = %s, want %s", got, pgserver.TempFileLimit)
	}

	// A setting given by the caller wins, and the limit stops a statement whose
	// temporary files outgrow it (a sort of 1M rows needs about 30 MB).
	limited := storetest.Server(t, "temp_file_limit=1MB")
	conn, err := pgx.Connect(ctx, limited.URL("segments"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT count(*) FROM (SELECT g FROM generate_series(1, 1000000) g ORDER BY random()) s")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53400" {
		t.Fatalf("a sort beyond temp_file_limit: got %v, want SQLSTATE 53400 (configuration_limit_exceeded)", err)
	}
}

func write(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// queryOne returns the single value that sql selects.
func queryOne[T any](t *testing.T, url, sql string) T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(context.Background(), sql).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestInitCutShortIsMadeAgain: a first start cut short while initdb runs (a Ctrl-C)
// leaves a partial cluster without its password; the next start makes the cluster
// again. Every later command failed ("holds a cluster but its password is
// unreadable"), until the directory was removed by hand.
func TestInitCutShortIsMadeAgain(t *testing.T) {
	dir := storetest.ServerDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cut it short once initdb has begun to write the cluster
		defer cancel()
		for deadline := time.Now().Add(time.Minute); ctx.Err() == nil && time.Now().Before(deadline); {
			if found, _ := filepath.Glob(dir + "/initdb-*/pgdata/PG_VERSION"); len(found) > 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if s, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Ephemeral: true}); err == nil {
		s.Stop()
		t.Skip("initdb finished before it could be cut short")
	}
	// What a start killed outright leaves behind is cleared too.
	if err := os.MkdirAll(dir+"/initdb-killed/pgdata", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/initdb-killed/pgdata/PG_VERSION", []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatalf("the start after one cut short: %v", err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if got := queryOne[int](t, again.URL("segments"), "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
	if left, _ := filepath.Glob(dir + "/initdb-*"); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	// A complete cluster whose password is gone is left alone: its data may matter.
	if err := again.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir + "/password"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgserver.Start(context.Background(), pgserver.Options{Dir: dir, Ephemeral: true}); err == nil || !strings.Contains(err.Error(), "password is unreadable") {
		t.Errorf("a complete cluster without its password: %v, want it refused, not made again", err)
	}
}

// TestLogKeepsNoClientData: statements that fail, are cancelled or are cut short by
// their connection's end leave what they carried nowhere in postgres.log, which is
// 0600 and belongs to the user the server runs as. PostgreSQL's defaults logged each
// such statement whole (STATEMENT) with the conflicting key (DETAIL): a duplicate
// segment name wrote its name and description there, a cancelled upsert every phone
// number, in a file anyone on the machine could read.
func TestLogKeepsNoClientData(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	pg, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	const secret = "secret-value-7f3a9"
	url := pg.URL("segments")
	write(t, url, "CREATE TABLE named (name text UNIQUE); INSERT INTO named VALUES ('"+secret+"-taken')")

	conn := connectAs(t, url, "test")
	var pgErr *pgconn.PgError
	// A unique violation: the refusal our API answers TAKEN.
	_, err = conn.Exec(ctx, "INSERT INTO named VALUES ('"+secret+"-taken')")
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("a duplicate: got %v, want SQLSTATE 23505", err)
	}
	// A cancellation: a request's timeout.
	_, err = conn.Exec(ctx, "SET statement_timeout = '20ms'; SELECT pg_sleep(5), '"+secret+"-cancelled'")
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("a statement past its timeout: got %v, want SQLSTATE 57014", err)
	}
	// A statement whose connection is terminated (FATAL) under it: the server's shutdown.
	victim := connectAs(t, url, "victim")
	var pid int
	if err := victim.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := victim.Exec(ctx, "SELECT pg_sleep(5), '"+secret+"-terminated'")
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep')", pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the victim's statement never started")
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the terminated statement succeeded")
	}
	conn.Close(ctx)
	if err := pg.Stop(); err != nil { // every backend has written what it would
		t.Fatal(err)
	}

	path := filepath.Join(dir, "postgres.log")
	logIsPrivate(t, path)
	log := readFile(t, path)
	if strings.Contains(log, secret) {
		t.Fatalf("postgres.log holds the statements' values:\n%s", log)
	}
	if !strings.Contains(log, "database system is ready to accept connections") || !strings.Contains(log, "database system is shut down") {
		t.Fatalf("postgres.log lacks the server's start and stop:\n%s", log)
	}
}

// TestLogRotatedAtStart: a postgres.log over pgserver.LogRotateSize is renamed
// postgres.log.1 at start, and the server writes a new one; both, and a log an older
// build made world-readable, are 0600. It grew without bound before: a client that
// failed statements on purpose added 520 KB in 0.3 s.
func TestLogRotatedAtStart(t *testing.T) {
	ctx := context.Background()
	dir := storetest.ServerDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "postgres.log")
	if err := os.WriteFile(path, []byte("an older build's log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, pgserver.LogRotateSize+1); err != nil { // sparse: fast
		t.Fatal(err)
	}
	pg, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })

	old, err := os.Stat(path + ".1")
	if err != nil || old.Size() != pgserver.LogRotateSize+1 {
		t.Fatalf("postgres.log.1: %v, %v; want the old log of %d bytes", old, err, pgserver.LogRotateSize+1)
	}
	logIsPrivate(t, path+".1")
	if log := readFile(t, path); strings.Contains(log, "an older build's log") || !strings.Contains(log, "database system is ready") {
		t.Fatalf("postgres.log after rotation:\n%.500s", log)
	}
	logIsPrivate(t, path)

	// One under the limit is kept, and appended to, when the server starts again.
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if log := readFile(t, path); !strings.HasPrefix(log, before) || len(log) == len(before) {
		t.Fatalf("postgres.log under the limit was not appended to:\n%.500s", log)
	}
	logIsPrivate(t, path)
}

// logIsPrivate fails the test unless the file at path is 0600 and, as root, belongs
// to the postgres OS user, whom the server runs as.
func logIsPrivate(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s: mode %#o, want 0600", filepath.Base(path), mode)
	}
	if os.Geteuid() != 0 {
		return
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != pgUser.Uid {
		t.Errorf("%s: owner uid %s, want postgres (%s)", filepath.Base(path), uid, pgUser.Uid)
	}
}
