package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/demo"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/pgserver"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/migrations"
)

const usage = `segments serves the Contacts & Segments GraphQL API.

Usage:
  segments serve [flags]              serve /graphql and the playground at /
  segments workspace create NAME      create a workspace; prints its API key
  segments workspace list|rename|delete ...
                                      list, rename or delete workspaces (segments help workspace)
  segments keys list|create|rotate|revoke ...
                                      manage a workspace's API keys (segments help keys)
  segments seed                       create the demo workspace; prints an API key for it
  segments migrate [--status]         bring the database schema up to date (or list migrations)
  segments check [--repair]           find (and repair) drifted counts and bitmaps, uncomposed texts
  segments bench-data [flags]         create a workspace with the benchmark dataset; prints its API key
  segments psql [-- PSQL_ARGS...]     run psql (or --exec PROGRAM) connected to the database
  segments version                    print the version, VCS revision, Go version and schema version
  segments help [command]             show this help, or a command's settings

Flags may come before or after a command's arguments; after "--" everything is an
argument. Without DATABASE_URL, every command uses an embedded PostgreSQL started
from the installed binaries, with its data under --data-dir; a running server's
database is shared with the other commands.
`

// errUsage marks a mistake in the command line (exit code 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	if errors.Is(err, errDrift) {
		return 3
	}
	if exit, ok := errors.AsType[childExit](err); ok {
		return exit.status // psql's
	}
	return 1
}

// run is the whole program, with its environment passed in so that tests can run it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	defer func() {
		if errors.Is(err, flag.ErrHelp) {
			err = nil // "COMMAND --help" printed the command's settings: that is success
		}
	}()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "workspace":
		return workspace(ctx, rest, getenv, stdout, stderr) // workspaces.go
	case "keys":
		return keys(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return seed(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "check":
		return check(ctx, rest, getenv, stdout, stderr)
	case "bench-data":
		return benchData(ctx, rest, getenv, stdout, stderr)
	case "psql":
		return psql(ctx, rest, getenv, stdout, stderr) // psql.go
	case "version", "--version", "-version":
		return printVersion(rest, stdout, stderr) // version.go
	case "help", "-h", "--help":
		return help(rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// helpTopics are the commands "segments help COMMAND" describes, each named in full.
var helpTopics = []string{"serve", "workspace", "workspace create", "workspace list", "workspace rename", "workspace delete", "keys", "keys list", "keys create",
	"keys rotate", "keys revoke", "seed", "migrate", "check", "bench-data", "psql", "version"}

// help prints the usage and, for "help COMMAND", the command's help and settings. A
// command it does not know is a usage error: help used to print an empty list of
// settings for it, or, for a part of a name ("help e"), another command's.
func help(topic []string, stdout, stderr io.Writer) error {
	if len(topic) == 0 || len(topic) == 1 && topic[0] == "help" { // the usage lists "help [command]"
		fmt.Fprint(stdout, usage)
		return nil
	}
	name := strings.Join(topic, " ")
	if !slices.Contains(helpTopics, name) {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command %q to help with (commands: %s)", errUsage, name, strings.Join(helpTopics, ", "))
	}
	fmt.Fprint(stdout, usage)
	fmt.Fprintf(stdout, "\n%s", commandHelp[name])
	if name == "version" { // it reads no setting
		return nil
	}
	fmt.Fprintf(stdout, "Settings of %s:\n", name)
	printSettings(stdout, name)
	return nil
}

// isHelp reports whether arg asks for help, as "keys --help" does.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--h" || arg == "-help" || arg == "--help"
}

// commandHelp describes the commands whose help says more than their settings.
var commandHelp = map[string]string{"check": checkHelp, "migrate": migrateHelp, "version": versionHelp, "psql": psqlHelp}

// parse parses the flags of a command, before or after its arguments (interspersed),
// and returns the arguments; --help prints its settings. extra registers flags of
// the command's own, beyond the settings (such as check --repair).
func parse(command string, args []string, getenv func(string) string, stderr io.Writer, serve bool, extra ...func(*flag.FlagSet)) (*config, []string, error) {
	var cfg config
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.flags(fs, getenv, serve)
	if command == "check" { // the one server setting check reads: it warns as serve logs
		cfg.oldTransactionFlag(fs, getenv)
	}
	for _, f := range extra {
		f(fs)
	}
	err := fs.Parse(interspersed(fs, args))
	if err == nil {
		err = cfg.envErr
	}
	if err == nil && serve {
		err = cfg.checkTracing() // telemetry.go
	}
	if err == nil && strings.TrimSpace(cfg.dataDir) == "" {
		// Empty, the embedded PostgreSQL made its cluster in the working directory.
		err = errors.New("--data-dir (SEGMENTS_DATA_DIR) cannot be empty")
	}
	cfg.applyEnvironment()
	if err != nil {
		fmt.Fprintf(stderr, "Usage: segments %s [flags]\n\n%sSettings:\n", command, commandHelp[command])
		printSettings(stderr, command)
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return &cfg, fs.Args(), nil
}

// interspersed moves the flags of args before the other arguments, so that
// "workspace create Acme --data-dir d" parses like "workspace create --data-dir d
// Acme": Go's flag package stops at the first argument, and took the rest for the
// workspace's name. A flag takes the next argument as its value unless it is a
// boolean one (--repair, --demo), is written --flag=value, or is -h/--help; "--"
// ends the flags.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			if takesValue(fs, a) {
				if i+1 == len(args) || isFlag(fs, args[i+1]) {
					// Last, so that Parse says it needs a value: it took the next
					// flag, or the "--" below, for its value (--data-dir --help made
					// a cluster in ./--help).
					return flags
				}
				flags = append(flags, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(flags, "--"), rest...)
}

// isFlag reports whether arg is "--" or names a flag of fs (-name, --name=value, -h):
// no value of another flag, which "-1" or "-x" may be.
func isFlag(fs *flag.FlagSet, arg string) bool {
	if arg == "--" {
		return true
	}
	if len(arg) < 2 || arg[0] != '-' {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name == "h" || name == "help" || fs.Lookup(name) != nil
}

// takesValue reports whether the flag arg (-name or --name) of fs takes the next
// argument as its value.
func takesValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") || name == "h" || name == "help" {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false // unknown: Parse refuses it
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// noArgs refuses arguments given to a command that takes none, which it would
// otherwise ignore (a mistyped flag, a stray word).
func noArgs(command string, rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("%w: %s takes no arguments, got %q", errUsage, command, rest)
	}
	return nil
}

// openStore opens the database the command works on, migrated unless migrate is false
// (check and migrate --status, which only read): DATABASE_URL when set, else the
// embedded server in the data directory (started, or joined when another process of
// ours runs it). close releases both.
func openStore(ctx context.Context, cfg *config, log *slog.Logger, app string, migrate bool) (s *store.Store, close func(), err error) {
	url := cfg.databaseURL
	cfg.ownerURL = url
	stopDB := func() {}
	if url == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{Dir: cfg.dataDir, Shared: true, BinDir: cfg.pgBinDir})
		if err != nil {
			return nil, nil, err
		}
		url = pg.URL("segments")
		cfg.ownerURL = url // for openAppStore
		if pg.Owned() {
			log.Info("embedded PostgreSQL started", "data_dir", cfg.dataDir, "port", pg.Port())
		} else {
			log.Info("embedded PostgreSQL already running, joined it", "data_dir", cfg.dataDir, "port", pg.Port())
		}
		// Started again should it stop while the command runs: a lone serve would
		// otherwise fail every request until restarted itself.
		keep, stopKeeping := context.WithCancel(context.WithoutCancel(ctx))
		var keeping sync.WaitGroup
		keeping.Go(func() {
			pg.Keep(keep, func(err error) {
				if err != nil {
					log.Error("embedded PostgreSQL stopped, and could not be started again", "data_dir", cfg.dataDir, "err", err)
					return
				}
				store.NoteRestart() // the pools' connections to the server that ended are dropped
				log.Warn("embedded PostgreSQL had stopped; it runs again", "data_dir", cfg.dataDir, "port", pg.Port())
			})
		})
		stopDB = func() {
			stopKeeping()
			keeping.Wait()
			if err := pg.Stop(); err != nil {
				log.Error("stop embedded PostgreSQL", "err", err)
			}
		}
	}
	s, err = store.Open(ctx, url, store.Options{AppName: app, StatementTimeout: cfg.statement, IdleInTransactionTimeout: cfg.idleTransaction, Log: log})
	if err != nil {
		stopDB()
		return nil, nil, err
	}
	if !migrate {
		return s, func() { s.Close(); stopDB() }, nil
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		s.Close()
		stopDB()
		return nil, nil, err
	}
	// Named in full (ID_name), as migrate --status and docs/operations.md name them: Bun
	// gives the ID alone.
	names, _ := migrations.Names(migrations.FS) // embedded: cannot fail
	for _, id := range applied {
		name := id
		if i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, id+"_") }); i >= 0 {
			name = names[i]
		}
		log.Info("migration applied", "name", name)
	}
	return s, func() { s.Close(); stopDB() }, nil
}

// warnSettings logs the settings of PostgreSQL that leave it unsafe
// (store.SettingWarnings). The command goes on: they are the database operator's to
// change, and a superuser's.
func warnSettings(ctx context.Context, s *store.Store, log *slog.Logger) {
	warnings, err := s.SettingWarnings(ctx)
	if err != nil {
		log.Warn("could not read PostgreSQL's settings", "err", err)
		return
	}
	for _, w := range warnings {
		log.Warn("unsafe PostgreSQL setting", "name", w.Name, "value", w.Value, "why", w.Why, "fix", w.Fix)
	}
}

// withStore runs fn with the database (openStore, as application app, migrated) and a
// logger on stderr in the command's --log-format, and closes the database after it:
// the frame of every command but serve. Its error is written in that format too
// (exiting).
func withStore(ctx context.Context, cfg *config, stderr io.Writer, app string, fn func(s *store.Store, log *slog.Logger) error) error {
	return withDatabase(ctx, cfg, stderr, app, true, fn)
}

// withDatabase is withStore, migrating the database first only when migrate is true.
func withDatabase(ctx context.Context, cfg *config, stderr io.Writer, app string, migrate bool, fn func(s *store.Store, log *slog.Logger) error) (err error) {
	defer func() {
		if err != nil {
			err = inLogFormat{err, cfg.logFormat}
		}
	}()
	log := newLogger(stderr, cfg.logFormat)
	s, closeStore, err := openStore(ctx, cfg, log, app, migrate)
	if err != nil {
		return err
	}
	defer closeStore()
	return fn(s, log)
}

func createWorkspace(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parse("workspace create", args, getenv, stderr, false)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(strings.Join(rest, " "))
	if name == "" {
		return fmt.Errorf("%w: workspace create needs a NAME", errUsage)
	}
	// The store checks the name too; checked here, a bad one is the command line's
	// mistake, refused before the database is opened.
	if name, err = crm.NormalizeWorkspaceName(name); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		twins, err := s.WorkspacesByName(ctx, name, 3)
		if err != nil {
			return err
		}
		key, err := auth.NewKey()
		if err != nil {
			return err
		}
		ws, err := s.CreateWorkspace(ctx, name, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix()})
		if err != nil {
			return err
		}
		id := globalid.Encode(globalid.Workspace, ws.ID)
		log.Info("workspace created; its API key (read_write) is on stdout and is shown only once", "workspace", ws.Name, "id", id)
		if len(twins) > 0 {
			// Made all the same: names need not be unique (the store never required
			// it), but the key commands refuse a name several workspaces have.
			log.Warn("another workspace has this name: the keys commands refuse it as ambiguous, name this workspace by its ID",
				"workspace", ws.Name, "id", id, "others", workspaceIDs(twins))
		}
		fmt.Fprintln(stdout, key)
		return nil
	})
}

func seed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parse("seed", args, getenv, stderr, false)
	if err != nil {
		return err
	}
	if err := noArgs("seed", rest); err != nil {
		return err
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, _ *slog.Logger) error {
		key, err := demo.Seed(ctx, s)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, key)
		return nil
	})
}

// migrateHelp describes the migrate command for "segments help migrate".
const migrateHelp = `segments migrate applies the migrations the database lacks, and prints "schema
up to date". It refuses a database a newer version migrated further, unless each
migration it does not know declared that older servers may keep running (it then
warns, naming them).

  --status   change nothing: print every migration, one a line, as STATE NAME
             OLDER_SERVERS separated by tabs, in order: STATE is applied,
             pending (this binary has it, the database not yet) or unknown (the
             database has it, this binary not: a newer version applied it);
             OLDER_SERVERS is what it declares of servers older than it,
             keep-running or stop (undeclared: an unknown one whose binary
             recorded nothing, which counts as stop). Exit status 0

`

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var status bool
	cfg, rest, err := parse("migrate", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		fs.BoolVar(&status, "status", false, "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("migrate", rest); err != nil {
		return err
	}
	if status {
		return withDatabase(ctx, cfg, stderr, "segments-cli", false, func(s *store.Store, _ *slog.Logger) error {
			return printMigrations(ctx, s, stdout)
		})
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(*store.Store, *slog.Logger) error {
		fmt.Fprintln(stdout, "schema up to date")
		return nil
	})
}

// printMigrations prints the migrations of migrate --status.
func printMigrations(ctx context.Context, s *store.Store, stdout io.Writer) error {
	status, err := s.Migrations(ctx)
	if err != nil {
		return err
	}
	for _, m := range status {
		older := "stop"
		switch {
		case !m.Declared:
			older = "undeclared"
		case m.KeepRunning:
			older = "keep-running"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", m.State, m.Name, older)
	}
	return nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
