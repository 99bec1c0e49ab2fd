// Package pgserver runs a private PostgreSQL server from the binaries installed on the
// machine, so that the service and its tests need no database set up beforehand.
//
// The server keeps its files in one directory, listens on 127.0.0.1 only, and requires
// a password that is generated on first start and kept next to the data. A second
// process pointed at the same directory while the server runs attaches to it instead
// of starting another. By default the server lives as long as the process that
// started it: the child is stopped on Stop, and the kernel stops it if that process
// dies (tests). A Shared server lives as long as any process uses it: the last one to
// Stop stops it, whichever started it, unless programs that know nothing of sharing
// (segments before it) still use it.
//
// PostgreSQL refuses to run as root; when the caller is root, the server runs as the
// "postgres" OS user and its data belongs to that user.
package pgserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the name of the role initdb creates.
const Superuser = "segments"

// TempFileLimit is the server's default temp_file_limit: the most temporary file
// space (sorts, hashes) one session may hold. PostgreSQL sets no limit, and a single
// misplanned statement once filled a 60 GB disk in minutes; the largest temporary
// files of a full benchmark run stay far below this. Options.Settings can override it.
const TempFileLimit = "4GB"

// Options configure Start.
type Options struct {
	// Dir holds the cluster (Dir/pgdata), its password and its log. It is created when
	// missing and reused when it already holds a cluster.
	Dir string
	// Database is created on first start when missing. Empty means "segments".
	Database string
	// Ephemeral trades durability for speed (no fsync): for tests whose data is thrown
	// away.
	Ephemeral bool
	// Port is the TCP port to listen on; 0 picks a free one. A fixed port lets a
	// restarted server keep its address.
	Port int
	// BinDir holds initdb and postgres. Empty means: $SEGMENTS_PG_BINDIR, else
	// /usr/lib/postgresql/N/bin of the major version N of the cluster in Dir (its
	// PG_VERSION), or the newest there for a new cluster, else initdb's on $PATH.
	BinDir string
	// Settings are further server settings, each "name=value" (postgres -c), such as
	// "shared_buffers=2GB"; they override this package's defaults (TempFileLimit, and
	// what the server logs: logSettings).
	// They apply when this process starts the server, not when it attaches to one
	// already running.
	Settings []string
	// Shared keeps the server running while other processes that started or joined it
	// Shared use it, when the process that started it stops or exits: the last of
	// them to Stop stops it. The command line's processes share one server this way
	// (a server joins the one a command started, and must not lose it when that
	// command ends). A process that dies without Stop leaves the server running, for
	// the next Start to join. Stop leaves alone a server that no Shared Start started
	// (a segments before Shared started its server as a child, which it stops
	// itself), and one that a program of ours that holds no lock is connected to.
	Shared bool
}

// Server is a running PostgreSQL server.
type Server struct {
	dir      string
	port     int
	password string
	cmd      *exec.Cmd // nil when attached to a server another process started
	exited   chan error
	// users is the lock file of a Shared server's users, on which this process holds
	// a shared lock while it uses the server; nil when not Shared.
	users *os.File
	// How Start found or started the server, for Keep to start it again the same way.
	bin   string
	runAs *user.User
	opts  Options
}

// The lock files of a Shared server, in its directory. Every user of the server holds
// a shared lock on usersLock; starting, joining and stopping take controlLock
// exclusively, so that a process stops the server only when no other holds
// usersLock, and none can join while it does.
const (
	usersLock   = "users.lock"
	controlLock = "control.lock"
)

// Start starts a server in opts.Dir, or attaches to the one already running there.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Database == "" {
		opts.Database = "segments"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	bin, err := binDir(opts.BinDir, dir)
	if err != nil {
		return nil, err
	}
	runAs, err := osUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Server{dir: dir, bin: bin, runAs: runAs, opts: opts}
	if opts.Shared {
		control, err := lock(ctx, filepath.Join(dir, controlLock), syscall.LOCK_EX)
		if err != nil {
			return nil, err
		}
		defer control.Close() // lets the next process start, join or stop
		if s.users, err = lock(ctx, filepath.Join(dir, usersLock), syscall.LOCK_SH); err != nil {
			return nil, err
		}
	}
	if s.password, err = ensureCluster(ctx, bin, dir, runAs); err != nil {
		s.abandon()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if pid, port, ok := postmaster(s.pgdata()); ok {
			s.port = port
			err = s.waitReady(ctx, pid)
		} else if err = waitReaped(ctx, s.pgdata()); err != nil {
			break // another attempt would wait as long again
		} else if err = s.start(bin, runAs, opts); err == nil {
			err = s.waitReady(ctx, 0)
		}
		// Another process may have started a server in the meantime, the port we
		// picked was taken before postgres bound it, or the server we joined died (it
		// is started again, as one stopped from outside): look again.
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		s.abandon()
		return nil, err
	}
	if err := s.ensureDatabase(ctx, opts.Database); err != nil {
		s.abandon()
		return nil, err
	}
	return s, nil
}

// URL returns the connection URL of database db for the superuser.
func (s *Server) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(Superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Password returns the password of the superuser (Superuser).
func (s *Server) Password() string { return s.password }

// BinDir returns the directory of the PostgreSQL binaries the server runs, where
// the client programs of its version are too (psql, pg_restore).
func (s *Server) BinDir() string { return s.bin }

// Owned reports whether this process started the server.
func (s *Server) Owned() bool { return s.cmd != nil }

// Stop stops the server with PostgreSQL's fast shutdown (open transactions roll back,
// committed data stays): if this process started it, or, Shared, if no other process
// uses it any more, whichever started it. Shared, it also leaves running a server
// that no Shared Start started, and one to which programs of ours (programNames)
// other than this process are still connected, after waiting up to clientGrace for
// them to go: the caller closes its own connections first.
func (s *Server) Stop() error {
	if s.users == nil {
		return s.stopChild()
	}
	control, err := lock(context.Background(), filepath.Join(s.dir, controlLock), syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer control.Close()
	users := s.users
	s.users = nil
	defer users.Close()
	// Trading this process's shared lock for an exclusive one succeeds only when no
	// other process holds one; none can take one meanwhile (that needs controlLock).
	if err := syscall.Flock(int(users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			s.cmd = nil // in use: its last user stops it (and a second Stop must not)
			return nil
		}
		return fmt.Errorf("pgserver: %w", err)
	}
	// Programs that know nothing of usersLock may use the server all the same: a
	// segments of a version before it (a rolling upgrade's older servers) started
	// its server as a child that it stops itself, or joined this one and holds only
	// its connections. Stopped here, such a server stayed 503 for good.
	if pid, _, ok := postmaster(s.pgdata()); ok {
		if !s.startedShared(pid) {
			return s.stopChild() // another program's: it stops it itself
		}
		if s.programsConnected() {
			s.cmd = nil // left to the next Shared process's Stop once they have gone
			return nil
		}
	}
	if err := s.stopChild(); err != nil {
		return err
	}
	// Also the server another process started when this one's had gone (stopped
	// from outside while this process used it): it would outlive every user.
	return stopPostmaster(s.pgdata())
}

// sharedSetting is the setting a Shared Start starts the server with, so that Stop
// tells a server started so from one another program started and stops itself: one
// of a segments before usersLock (its child, which dies with it), or an operator's.
// PostgreSQL records the running server's arguments in postmaster.opts; a name with a
// dot is a setting of no meaning to it.
const sharedSetting = "segments.shared=on"

// startedShared reports whether the server whose postmaster is pid was started by a
// Shared Start (of this process or of another).
func (s *Server) startedShared(pid int) bool {
	if s.cmd != nil && s.cmd.Process.Pid == pid {
		return true
	}
	opts, err := os.ReadFile(filepath.Join(s.pgdata(), "postmaster.opts"))
	return err == nil && bytes.Contains(opts, []byte(strconv.Quote(sharedSetting)))
}

// programNames matches the application_name (pg_stat_activity) of the connections of
// this module's programs: cmd/segments's ("segments", "segments-cli", and so on) and
// cmd/segbench's. A Shared server is not stopped while any is connected.
const programNames = "^seg(ments|bench)"

// clientGrace is how long Stop waits for the connections of programs of ours to
// close before it leaves the server running for them: the backends of those this
// process closed just before exit within milliseconds.
const clientGrace = time.Second

// programsConnected reports whether programs of ours (programNames) other than this
// process remain connected to the server: a process that holds no lock on usersLock
// and uses it all the same, as a segments before usersLock did. An operator's psql,
// say, does not count: a forgotten session would keep the server for ever. The
// caller has closed its own connections, whose backends may take a moment to exit.
func (s *Server) programsConnected() bool {
	cfg, err := pgx.ParseConfig(s.URL("postgres"))
	if err != nil {
		return false
	}
	cfg.RuntimeParams["application_name"] = "pgserver"
	ctx, cancel := context.WithTimeout(context.Background(), connectAttempt)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// Every connection slot taken is a server in use; one that does not answer
		// (starting, in recovery, broken) is stopped as before.
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == "53300" // too_many_connections
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(clientGrace); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), connectAttempt)
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name ~ $1`,
			programNames).Scan(&n)
		cancel()
		if err != nil || n == 0 {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
	}
}

// keepEvery is how often Keep looks whether the server still runs, and the first
// wait before it tries again after a start that failed (doubling up to keepBackoff).
const (
	keepEvery   = time.Second
	keepBackoff = 30 * time.Second
)

// Keep starts the server again, on its port, whenever it stops while ctx lives (its
// postmaster killed, crashed or stopped from outside), until ctx ends: without it, a
// process that used a server no other process would start again (a lone serve) failed
// every request until restarted itself. A server another process started again in
// the meantime is joined instead. After each try, report gets its error, nil when the
// server runs again; after a failed try, the next waits 1 s, doubling up to 30 s.
// Keep must have returned before Stop is called.
func (s *Server) Keep(ctx context.Context, report func(err error)) {
	wait := keepEvery
	moved := false // reported that the server runs on another port
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if _, port, ok := postmaster(s.pgdata()); ok {
			if port != s.port && !moved {
				// Started again elsewhere by a process that did not know of this
				// one: its connections name a port no server listens on.
				report(fmt.Errorf("pgserver: the server runs again on port %d, and this process's connections name port %d: restart it", port, s.port))
			}
			moved = port != s.port
			wait = keepEvery
			continue
		}
		err := s.restart(ctx)
		if ctx.Err() != nil {
			return
		}
		report(err)
		if err == nil {
			wait = keepEvery
		} else {
			wait = min(2*wait, keepBackoff)
		}
	}
}

// restart starts the server again, on its port (which the connection URLs that
// processes hold name), or joins the one another process started there meanwhile.
func (s *Server) restart(ctx context.Context) error {
	if s.users != nil {
		control, err := lock(ctx, filepath.Join(s.dir, controlLock), syscall.LOCK_EX)
		if err != nil {
			return err
		}
		defer control.Close()
	}
	if pid, port, ok := postmaster(s.pgdata()); ok {
		if port != s.port {
			return fmt.Errorf("pgserver: another process started the server again on port %d, and this one's connections name port %d: restart it", port, s.port)
		}
		return s.waitReady(ctx, pid)
	}
	if err := waitReaped(ctx, s.pgdata()); err != nil {
		return err
	}
	opts := s.opts
	opts.Port = s.port
	if err := s.start(s.bin, s.runAs, opts); err != nil {
		return err
	}
	return s.waitReady(ctx, 0)
}

// abandon undoes a Start that failed: it stops the server if it started it (no other
// process can have joined it: Start holds controlLock) and lets go of usersLock.
func (s *Server) abandon() {
	_ = s.stopChild()
	if s.users != nil {
		s.users.Close()
		s.users = nil
	}
}

// portFile, in a Shared server's directory, holds the port it last listened on.
const portFile = "port"

// lastPort is the port the Shared server last listened on (0 when none is known), and
// whether it is free now.
func (s *Server) lastPort() (port int, free bool) {
	b, err := os.ReadFile(filepath.Join(s.dir, portFile))
	if err != nil {
		return 0, false
	}
	port, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port <= 0 || port > 65535 {
		return 0, false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return port, false // taken
	}
	l.Close()
	return port, true
}

// othersUse reports whether processes other than this one use the Shared server. The
// caller holds controlLock, so that none joins or leaves meanwhile: this process's
// shared lock on usersLock becomes exclusive only when no other holds one, and
// shared again at once.
func (s *Server) othersUse() bool {
	if s.users == nil {
		return false
	}
	fd := int(s.users.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(fd, syscall.LOCK_SH)
	return false
}

// stopChild stops the server this process started, if it did.
func (s *Server) stopChild() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return nil
}

// stopPostmaster stops the server of pgdata that another process started, as
// stopChild does, and waits until it is gone.
func stopPostmaster(pgdata string) error {
	pid, _, ok := postmaster(pgdata)
	if !ok {
		return nil // not running
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("pgserver: stop postgres (pid %d): %w", pid, err)
	}
	// Fast shutdown for 30 s, then an immediate one (as stopChild's Kill of a child)
	// for 10 s more; a process that outlives both is reported, not waited for for ever
	// with controlLock held, which every later command would wait for.
	start := time.Now()
	signal := syscall.SIGINT
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		switch waited := time.Since(start); {
		case waited > 40*time.Second:
			return fmt.Errorf("pgserver: postgres (pid %d) did not stop", pid)
		case waited > 30*time.Second && signal == syscall.SIGINT:
			signal = syscall.SIGQUIT
			_ = syscall.Kill(pid, signal)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lock opens (creating) the file at path and takes a flock of kind on it, waiting
// for it until ctx ends. Closing the file releases it, as does the process's end.
func lock(ctx context.Context, path string, kind int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), kind|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("pgserver: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("pgserver: waiting for %s: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) pgdata() string { return filepath.Join(s.dir, "pgdata") }

func (s *Server) start(bin string, runAs *user.User, opts Options) error {
	var err error
	port := opts.Port
	if port == 0 && opts.Shared {
		last, free := s.lastPort()
		if last != 0 && !free && s.othersUse() {
			// Moved to another port, the server would be out of reach of the
			// processes using it, whose connections name the old one, for good.
			return fmt.Errorf("pgserver: port %d, where the other processes using %s reach its PostgreSQL, is taken by another program: free it", last, s.dir)
		}
		if free {
			port = last
		}
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	if opts.Shared {
		// The next start takes the same port when it is free: processes that use the
		// server reconnect to one started again (after it was stopped from outside).
		if err := os.WriteFile(filepath.Join(s.dir, portFile), []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	logFile, err := openLog(s.dir, runAs)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	args := []string{
		"-D", s.pgdata(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		"-c", "temp_file_limit=" + TempFileLimit,
	}
	// Given at every start, these apply to a cluster an older build made as well.
	args = append(args, logSettings...)
	if opts.Shared {
		args = append(args, "-c", sharedSetting)
	}
	if opts.Ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, setting := range opts.Settings {
		args = append(args, "-c", setting)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: credential(runAs),
		Setpgid:    true, // a Ctrl-C in the terminal is for us, not for postgres
	}
	if !opts.Shared {
		// The server goes when the process that started it goes, even on a crash.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgserver: start postgres: %w", err)
	}
	exited := make(chan error, 1) // this child's: Keep may start another
	s.cmd, s.exited = cmd, exited
	if s.port != port {
		s.port = port // not written when Keep starts it again, on the port others read
	}
	go func() { exited <- cmd.Wait() }()
	return nil
}

// LogFile, in the server's directory, receives what the server writes to its stderr.
const LogFile = "postgres.log"

// LogRotateSize is the size over which Start renames LogFile to LogFile+".1",
// replacing the previous one, before the server writes a new one. With logSettings
// the server writes little (about two lines a checkpoint, a few a start or stop), so
// a check at each start bounds the log. PostgreSQL's logging_collector would rotate
// it while the server runs too, at the price of another process and of files it names
// in its log_directory, where docs/operations.md and our errors no longer point.
const LogRotateSize = 10 << 20

// logSettings keep client statements, and the values our SQL carries in its text
// (bun interpolates them), out of the server's log: with PostgreSQL's defaults a
// duplicate segment name logged the statement whole (STATEMENT) and the conflicting
// key (DETAIL), a cancelled 1,000-contact upsert every phone number, and a client
// that failed statements on purpose grew the log at 1.7 MB/s. Such failures are
// the API's to answer (TAKEN, a retry, UNAVAILABLE) and our own log's to report.
//   - log_min_messages=log: in the server log's order (… WARNING, ERROR, LOG,
//     FATAL, PANIC) LOG ranks above ERROR, so statements' errors and warnings are
//     not logged, while the server's own LOG lines (start, stop, checkpoints, a
//     backend's crash), FATAL and PANIC are.
//   - log_min_error_statement=panic: no statement text even with a FATAL (a
//     backend terminated mid-statement, as at shutdown, logged its statement).
//   - log_error_verbosity=terse: no DETAIL, HINT, QUERY or CONTEXT, which quote
//     values or statements (a crashed backend's DETAIL is the statement it ran).
//
// Options.Settings come after them and win.
var logSettings = []string{
	"-c", "log_min_messages=log",
	"-c", "log_min_error_statement=panic",
	"-c", "log_error_verbosity=terse",
}

// openLog opens dir's LogFile for the server to append to, made 0600 (an older
// build made it 0644) and owned by runAs (nil: this process's user), after renaming
// it LogFile+".1" when it is over LogRotateSize.
func openLog(dir string, runAs *user.User) (*os.File, error) {
	path := filepath.Join(dir, LogFile)
	if fi, err := os.Stat(path); err == nil {
		// Before the rename, so that the old log keeps no mode that lets anyone read
		// it either.
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		if err := chown(runAs, path); err != nil {
			return nil, err
		}
		if fi.Size() > LogRotateSize {
			if err := os.Rename(path, path+".1"); err != nil {
				return nil, fmt.Errorf("pgserver: %w", err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if err := chown(runAs, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// waitReady waits until the server accepts connections: the one this process started,
// or, when joined is not 0, the postmaster of that process ID that another started.
func (s *Server) waitReady(ctx context.Context, joined int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		// Each attempt is short: a program that took the port and never answers
		// (another server's, not PostgreSQL) held a connection for the whole 60 s,
		// and the start's failure went unseen as long, the locks held.
		attempt, cancelAttempt := context.WithTimeout(ctx, connectAttempt)
		conn, err := pgx.Connect(attempt, s.URL("postgres"))
		cancelAttempt()
		if err == nil {
			return conn.Close(ctx)
		}
		// A postmaster that dies before it answers never will: one killed hard was
		// waited for the full 60 s.
		if joined != 0 && !isPostmaster(joined) {
			return fmt.Errorf("pgserver: postgres (pid %d) exited before it was ready", joined)
		}
		select {
		case <-s.exited:
			s.cmd = nil
			return fmt.Errorf("pgserver: postgres exited at start; see %s", filepath.Join(s.dir, LogFile))
		case <-ctx.Done():
			return fmt.Errorf("pgserver: postgres not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) ensureDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "42P04" { // created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgserver: create database %s: %w", db, err)
	}
	return nil
}

// ensureCluster runs initdb unless dir already holds a cluster, and returns the
// superuser's password.
func ensureCluster(ctx context.Context, bin, dir string, runAs *user.User) (string, error) {
	pgdata := filepath.Join(dir, "pgdata")
	pwPath := filepath.Join(dir, "password")
	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(pwPath)
		if err != nil {
			return "", fmt.Errorf("pgserver: %s holds a cluster but its password is unreadable: %w", dir, err)
		}
		return strings.TrimSpace(string(pw)), nil
	}
	// The cluster is made in a directory of its own and renamed pgdata once it is
	// complete, its password written: a start cut short (a Ctrl-C, a kill) leaves no
	// pgdata, and the next start makes it again. (Made in place, a cluster cut short
	// had no password, and broke the directory for good.) A complete cluster is never
	// removed. What starts cut short left is removed as far as it can be: an initdb
	// that outlived its process may still be writing in its own directory.
	leftovers, _ := filepath.Glob(filepath.Join(dir, initdbPrefix+"*"))
	for _, l := range leftovers {
		_ = os.RemoveAll(l)
	}
	if err := os.RemoveAll(pgdata); err != nil { // a partial one, without PG_VERSION
		return "", fmt.Errorf("pgserver: %w", err)
	}
	made, err := os.MkdirTemp(dir, initdbPrefix)
	if err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	defer os.RemoveAll(made) // renamed when all went well
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	password := hex.EncodeToString(secret)
	// initdb reads the password from a file it must be able to open as runAs.
	pwFile := filepath.Join(made, "initdb.pw")
	cluster := filepath.Join(made, "pgdata")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	if err := os.Mkdir(cluster, 0o700); err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	if err := chown(runAs, made, cluster, pwFile); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", cluster, "-U", Superuser, "--pwfile", pwFile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential(runAs)}
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if runAs != nil && ctx.Err() == nil && !errors.Is(err, fs.ErrNotExist) {
			hint = fmt.Sprintf(" (the postgres OS user must be able to reach %s)", dir)
		}
		return "", fmt.Errorf("pgserver: initdb failed%s: %w\n%s", hint, err, out)
	}
	if err := os.WriteFile(pwPath, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	if err := os.Rename(cluster, pgdata); err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	return password, nil
}

// initdbPrefix names the directories clusters are made in before they become pgdata.
const initdbPrefix = "initdb-"

// postmaster reads the process ID and port of a live server from its postmaster.pid.
func postmaster(pgdata string) (pid, port int, ok bool) {
	pid, port, ok = readPostmasterPID(pgdata)
	if !ok || !isPostmaster(pid) {
		return 0, 0, false
	}
	return pid, port, true
}

// readPostmasterPID reads the process ID and port that pgdata's postmaster.pid names,
// whether that process runs or not.
func readPostmasterPID(pgdata string) (pid, port int, ok bool) {
	f, err := os.Open(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 4 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, port, true
}

// isPostmaster reports whether process pid runs and is a postgres.
func isPostmaster(pid int) bool {
	if !running(pid) {
		return false
	}
	// A postmaster killed hard leaves its file behind, and its process ID may belong
	// to another program since: one that is not postgres is none of ours to join, nor
	// to signal.
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) != "postgres" {
		return false
	}
	return true
}

// running reports whether process pid exists and has not exited. One that has exited
// stays, a zombie, until its parent reaps it, and signal 0 still reaches it: the next
// command joined a postmaster killed hard, whose parent took seconds to reap it.
func running(pid int) bool {
	// Signal 0 checks existence; EPERM means it exists but belongs to another user.
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state := procState(pid)
	return state != 'Z' && state != 'X' // zombie, dead
}

// procState returns the state of process pid (R, S, Z and so on) from /proc, or 0 when
// it cannot be read.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ...", where comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// connectAttempt bounds each attempt of waitReady to connect.
const connectAttempt = 2 * time.Second

// reapTimeout bounds how long Start waits for a postmaster that has exited to be reaped.
const reapTimeout = 30 * time.Second

// waitReaped waits until the process that pgdata's postmaster.pid names is gone, when
// it has exited but is still there, a zombie. PostgreSQL does not start while the
// process ID in that file exists ("lock file already exists"), so a server started
// before the parent of the one that died reaps it exits at once.
func waitReaped(ctx context.Context, pgdata string) error {
	pid, _, ok := readPostmasterPID(pgdata)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, reapTimeout)
	defer cancel()
	for {
		// ESRCH: gone; EPERM: another user's, which PostgreSQL lets be. A process
		// that runs is another program's since: PostgreSQL decides.
		if err := syscall.Kill(pid, 0); err != nil || running(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: postgres (pid %d) has exited, but its parent has not reaped it, and PostgreSQL does not start before it has: %w", pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// installed is where Debian and Ubuntu install PostgreSQL's server binaries, one
// directory per major version (/usr/lib/postgresql/15/bin).
const installed = "/usr/lib/postgresql"

// binDir picks the directory of the PostgreSQL binaries for the cluster in dir
// (chooseBinDir): explicit (Options.BinDir), else $SEGMENTS_PG_BINDIR, else the
// installed ones.
func binDir(explicit, dir string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv("SEGMENTS_PG_BINDIR")
	}
	return chooseBinDir(explicit, dir, installed, exec.LookPath)
}

// chooseBinDir picks the binaries for the cluster in dir: explicit when set
// (SEGMENTS_PG_BINDIR), which must hold postgres; else, for a
// cluster that exists, the major version its PG_VERSION names under root
// (root/15/bin), and for a new one the newest there; else initdb's directory on
// $PATH (lookPath), whose version PostgreSQL checks itself. Picking the newest for an
// existing cluster made a cluster of 15 fail to start once 16 was installed beside.
func chooseBinDir(explicit, dir, root string, lookPath func(string) (string, error)) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(filepath.Join(explicit, "postgres")); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("pgserver: the PostgreSQL binaries' directory %s (SEGMENTS_PG_BINDIR) holds no server: %s does not exist", explicit, filepath.Join(explicit, "postgres"))
			}
			return "", fmt.Errorf("pgserver: the PostgreSQL binaries' directory %s (SEGMENTS_PG_BINDIR): %w", explicit, err)
		}
		return explicit, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	if v, err := os.ReadFile(filepath.Join(dir, "pgdata", "PG_VERSION")); err == nil {
		major := strings.TrimSpace(string(v))
		want := filepath.Join(root, major, "bin")
		if _, err := os.Stat(filepath.Join(want, "postgres")); err == nil {
			return want, nil
		}
		if len(dirs) > 0 {
			return "", fmt.Errorf("pgserver: the cluster in %s was made by PostgreSQL %s, whose server binaries are not installed (no %s): install them (Debian, Ubuntu: apt-get install postgresql-%s), or set SEGMENTS_PG_BINDIR to their directory",
				dir, major, filepath.Join(want, "postgres"), major)
		}
	} else {
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	if p, err := lookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("pgserver: no PostgreSQL binaries found (install PostgreSQL, set SEGMENTS_PG_BINDIR, or set DATABASE_URL)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// osUser returns the user to run PostgreSQL as: nil for the current user, or the
// postgres OS user when the current user is root.
func osUser() (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root needs the postgres OS user: %w", err)
	}
	return u, nil
}

func credential(u *user.User) *syscall.Credential {
	if u == nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

func chown(u *user.User, paths ...string) error {
	if u == nil {
		return nil
	}
	c := credential(u)
	for _, p := range paths {
		if err := os.Chown(p, int(c.Uid), int(c.Gid)); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
