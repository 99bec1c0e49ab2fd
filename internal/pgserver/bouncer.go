package pgserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bouncer is a PgBouncer in front of a Server, pooling in transaction mode: the mode
// that shares server connections the most and keeps no session state between
// transactions, so the one an application has to be proven against.
type Bouncer struct {
	server *Server
	port   int
	cmd    *exec.Cmd
	exited chan error
}

// Login is a role and its password.
type Login struct{ User, Password string }

// StartBouncer starts PgBouncer (found on $PATH or in /usr/sbin) with its files in
// dir, in front of s. Its auth file knows the superuser and the logins given (such as
// the application's role). It stops when Stop is called or this process ends.
func (s *Server) StartBouncer(ctx context.Context, dir string, logins ...Login) (*Bouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/pgbouncer"); statErr != nil {
			return nil, fmt.Errorf("pgserver: pgbouncer not installed (Debian: apt-get install pgbouncer): %w", err)
		}
		bin = "/usr/sbin/pgbouncer"
	}
	runAs, err := osUser() // like postgres, pgbouncer refuses to run as root
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	users := filepath.Join(dir, "userlist.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	userlist := fmt.Sprintf("%q %q\n", Superuser, s.password)
	for _, l := range logins {
		userlist += fmt.Sprintf("%q %q\n", l.User, l.Password)
	}
	files := map[string]string{
		users: userlist,
		ini: fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
logfile = %s
pidfile = %s
`, s.port, port, users, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid")),
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
	}
	if err := chown(runAs, dir, users, ini); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, ini)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential(runAs), Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgserver: start pgbouncer: %w", err)
	}
	b := &Bouncer{server: s, port: port, cmd: cmd, exited: make(chan error, 1)}
	go func() { b.exited <- cmd.Wait() }()
	if err := b.waitReady(ctx); err != nil {
		b.Stop()
		return nil, fmt.Errorf("%w; see %s", err, filepath.Join(dir, "pgbouncer.log"))
	}
	return b, nil
}

// URL returns the connection URL of database db through the bouncer.
func (b *Bouncer) URL(db string) string {
	u, _ := url.Parse(b.server.URL(db))
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	return u.String()
}

// Stop stops the bouncer; connections through it end.
func (b *Bouncer) Stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	b.cmd = nil
}

func (b *Bouncer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, b.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case err := <-b.exited:
			b.cmd = nil
			return fmt.Errorf("pgserver: pgbouncer exited at start: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("pgserver: pgbouncer not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
