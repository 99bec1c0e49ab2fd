package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/pgserver"
)

// psqlHelp describes the psql command for "segments help psql".
const psqlHelp = `segments psql [--exec PROGRAM] [flags] [-- ARGS...] runs psql, or PROGRAM (another
PostgreSQL client: pg_restore, pg_dump...), connected to the database the other
commands use, with ARGS after "--", and exits with its exit status.

Without DATABASE_URL, it starts the embedded PostgreSQL of --data-dir, or joins the
one running there, and keeps it running while the program runs (when the last
command using it ends, it stops). The program connects over TCP to 127.0.0.1 (the
port in DATA_DIR/port) as the superuser segments, whose password is in
DATA_DIR/password, to the database segments: PGHOST, PGPORT, PGUSER, PGDATABASE and
PGPASSWORD are set, the password never on the command line; -d NAME in ARGS picks
another database. The program is looked up among the embedded PostgreSQL's binaries
(its version's), then on $PATH.

With DATABASE_URL, the program gets it as its first -d, without its password, which
is in PGPASSWORD; a -d in ARGS replaces it.

  --exec PROGRAM   run PROGRAM instead of psql, e.g. --exec pg_restore

Examples:
  segments psql                                   an interactive psql
  segments psql -- -tAc 'SELECT count(*) FROM contacts'
  segments psql --exec pg_restore -- -d segments --data-only segments.dump

`

// childExit is the exit status of a program a command ran, which the command exits
// with.
type childExit struct {
	program string
	status  int
}

func (e childExit) Error() string {
	return fmt.Sprintf("%s exited with status %d", e.program, e.status)
}

func psql(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	program := "psql"
	cfg, rest, err := parse("psql", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		fs.StringVar(&program, "exec", "psql", "")
	})
	if err != nil {
		return err
	}
	if strings.TrimSpace(program) == "" {
		return fmt.Errorf("%w: --exec needs a program, such as pg_restore", errUsage)
	}
	defer func() {
		if err != nil {
			err = inLogFormat{err, cfg.logFormat}
		}
	}()
	log := newLogger(stderr, cfg.logFormat)
	env := os.Environ()
	var binDirs []string // where the program is looked for before $PATH
	if cfg.databaseURL != "" {
		dsn, password, err := withoutPassword(cfg.databaseURL)
		if err != nil {
			return err
		}
		rest = append([]string{"-d", dsn}, rest...)
		if password != "" {
			env = append(env, "PGPASSWORD="+password)
		}
	} else {
		pg, err := pgserver.Start(ctx, pgserver.Options{Dir: cfg.dataDir, Shared: true, BinDir: cfg.pgBinDir})
		if err != nil {
			return err
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop embedded PostgreSQL", "err", err)
			}
		}()
		if pg.Owned() {
			log.Info("embedded PostgreSQL started", "data_dir", cfg.dataDir, "port", pg.Port())
		} else {
			log.Info("embedded PostgreSQL already running, joined it", "data_dir", cfg.dataDir, "port", pg.Port())
		}
		env = append(env, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(pg.Port()), "PGUSER="+pgserver.Superuser,
			"PGDATABASE=segments", "PGSSLMODE=disable", "PGPASSWORD="+pg.Password())
		binDirs = append(binDirs, pg.BinDir())
	}
	path, err := lookProgram(program, binDirs)
	if err != nil {
		return err
	}
	return runChild(path, program, rest, env, stdout, stderr)
}

// lookProgram finds program: a path as it is, a name in dirs, then on $PATH.
func lookProgram(program string, dirs []string) (string, error) {
	if strings.ContainsRune(program, filepath.Separator) {
		return program, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, program)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(program)
	if err != nil {
		return "", fmt.Errorf("%s: not among the PostgreSQL binaries %v nor on $PATH: install PostgreSQL's client programs: %w", program, dirs, err)
	}
	return p, nil
}

// runChild runs the program at path with args and env, on the process's stdin and
// the command's stdout and stderr, and returns its exit status as a childExit (nil
// for 0). While it runs, a Ctrl-C is the program's: the terminal sends it to the
// program too (psql cancels its query and goes on), so this process neither stops
// nor stops PostgreSQL under it; a SIGTERM is passed on to it.
func runChild(path, program string, args, env []string, stdout, stderr io.Writer) error {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGTERM {
				_ = cmd.Process.Signal(sig)
			}
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				status := exit.ExitCode()
				if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					status = 128 + int(ws.Signal()) // as a shell says it
				}
				return childExit{program, status}
			}
			return err
		}
	}
}

// passwordWord matches the password of a keyword/value connection string: a word,
// or a quoted value with its escapes.
var passwordWord = regexp.MustCompile(`(^|\s)password\s*=\s*('(\\.|[^'\\])*'|\S+)`)

// withoutPassword splits the password off a DATABASE_URL, a URL or a keyword/value
// string, so that it can go in PGPASSWORD rather than on a command line, which ps
// shows to every user of the machine.
func withoutPassword(dsn string) (rest, password string, err error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", "", fmt.Errorf("DATABASE_URL: %w", err)
		}
		if u.User != nil && u.User.Username() != "" {
			u.User = url.User(u.User.Username())
		} else {
			u.User = nil
		}
		return u.String(), cfg.Password, nil
	}
	return strings.TrimSpace(passwordWord.ReplaceAllString(dsn, "$1")), cfg.Password, nil
}
