package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

const keysHelp = `Partner API keys of a workspace:

  segments keys list WORKSPACE
      every key of the workspace: ID, name, prefix, scope, created, expires, last used
      (to within a minute), revoked
  segments keys create WORKSPACE [--scope read|read_write] [--expires-in DURATION] [--name TEXT]
      a new key, printed alone on stdout and shown only once; --scope defaults to read
      (queries only), --expires-in to never; --name is one line of at most 200
      characters without control characters (line breaks, tabs, escapes, bidi
      overrides). keys list shows a name that is not plain printable text (an
      invisible character, one stored before) quoted, with Go's escapes (\n, \u200b)
  segments keys rotate KEY_ID [--grace DURATION]
      a new key (printed alone on stdout) with the old key's name and scope, and as
      long a lifetime; the old key keeps working for --grace (default 24h) and can
      then be left to expire
  segments keys revoke KEY_ID
      the database refuses the key from now on

A running server remembers a key it accepted for its --key-cache-ttl (2s by
default) without asking the database: a revoked key, or a rotated one whose grace
(even 0) is over, may still work on it until that has passed.

WORKSPACE is the workspace's ID as the API shows it (W_...) or its name, one
argument (quote a name of several words: "Acme Retail"); a name that several
workspaces share is refused (use the ID), and so is an ID that another workspace
has as its name (stored before such names were refused). KEY_ID is the
number in the ID column of "keys list". DURATION is Go's (90m, 36h) or a number of
days (90d), at most 100 years (36500d, 876000h); --expires-in is at least 1m, and
an empty one is refused (leave it out for a key that never expires). Times are
shown in UTC.

`

func init() {
	for _, c := range []string{"keys", "keys list", "keys create", "keys rotate", "keys revoke"} {
		commandHelp[c] = keysHelp
	}
}

// DefaultRotationGrace is how long a rotated key keeps working by default.
const DefaultRotationGrace = 24 * time.Hour

// MinKeyLifetime is the shortest --expires-in of keys create.
const MinKeyLifetime = time.Minute

// maxDays is the longest DURATION the keys commands take, in days: 100 years,
// whether written in days (36500d) or in hours (876000h). A longer one is a mistake
// (a key that should live that long should not expire), and time.Duration ends
// at 292 years.
const maxDays = 100 * 365

func keys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		return help([]string{"keys"}, stdout, stderr)
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage, "\n", keysHelp)
		return fmt.Errorf("%w: keys needs a subcommand: list, create, rotate or revoke", errUsage)
	}
	switch args[0] {
	case "list":
		return listKeys(ctx, args[1:], getenv, stdout, stderr)
	case "create":
		return createKey(ctx, args[1:], getenv, stdout, stderr)
	case "rotate":
		return rotateKey(ctx, args[1:], getenv, stdout, stderr)
	case "revoke":
		return revokeKey(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprint(stderr, usage, "\n", keysHelp)
	return fmt.Errorf("%w: unknown keys subcommand %q", errUsage, args[0])
}

func listKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parse("keys list", args, getenv, stderr, false)
	if err != nil {
		return err
	}
	name, err := oneWorkspace("keys list", rest)
	if err != nil {
		return err
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		ws, err := findWorkspace(ctx, s, name)
		if err != nil {
			return err
		}
		ks, err := s.APIKeys(ctx, ws.ID)
		if err != nil {
			return err
		}
		log.Info("API keys", "workspace", ws.Name, "id", globalid.Encode(globalid.Workspace, ws.ID), "keys", len(ks))
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPE\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
		for _, k := range ks {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, listedName(k.Name), k.Prefix, k.Scope,
				showTime(&k.CreatedAt), showTime(k.ExpiresAt), showTime(k.LastUsedAt), showTime(k.RevokedAt))
		}
		return tw.Flush()
	})
}

func createKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var scope, expiresIn, name string
	expires := false // --expires-in given, even empty: an empty value meant never
	cfg, rest, err := parse("keys create", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		fs.StringVar(&scope, "scope", string(crm.ScopeRead), "")
		fs.Func("expires-in", "", func(s string) error { expiresIn, expires = s, true; return nil })
		fs.StringVar(&name, "name", "", "")
	})
	if err != nil {
		return err
	}
	wsName, err := oneWorkspace("keys create", rest)
	if err != nil {
		return err
	}
	sc, ok := crm.ParseScope(scope)
	if !ok {
		return fmt.Errorf("%w: --scope must be read or read_write, not %q", errUsage, scope)
	}
	var lifetime time.Duration
	if expires {
		lifetime, err = parseDays(expiresIn)
		switch {
		case expiresIn == "":
			return fmt.Errorf("%w: --expires-in needs a duration such as 90d or 12h (leave it out for a key that never expires)", errUsage)
		case err != nil:
			return fmt.Errorf("%w: --expires-in must be a duration such as 90d or 12h, of at most 100 years, not %q", errUsage, expiresIn)
		case lifetime < MinKeyLifetime:
			// The key would expire before it could be used, or as it was handed on:
			// made, printed and dead, with the command's success.
			return fmt.Errorf("%w: --expires-in must be at least a minute (1m), not %q: the key would expire before it is used", errUsage, expiresIn)
		}
	}
	if name, err = crm.NormalizeKeyName(name); err != nil {
		return fmt.Errorf("%w: --name: %v", errUsage, err)
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		ws, err := findWorkspace(ctx, s, wsName)
		if err != nil {
			return err
		}
		if err := notBeingDeleted(ctx, s, ws, "keys create"); err != nil {
			return err // a key of it could never work
		}
		key, err := auth.NewKey()
		if err != nil {
			return err
		}
		k, err := s.CreateAPIKey(ctx, ws.ID, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix(), Name: name, Scope: sc, ExpiresIn: lifetime})
		if err != nil {
			return err
		}
		log.Info("API key created; it is on stdout and is shown only once",
			"workspace", ws.Name, "key_id", k.ID, "scope", k.Scope, "expires", showTime(k.ExpiresAt))
		fmt.Fprintln(stdout, key)
		return nil
	})
}

func rotateKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var grace string
	cfg, rest, err := parse("keys rotate", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		fs.StringVar(&grace, "grace", DefaultRotationGrace.String(), "")
	})
	if err != nil {
		return err
	}
	id, err := keyID("keys rotate", rest)
	if err != nil {
		return err
	}
	g, err := parseDays(grace)
	if err != nil || g < 0 {
		return fmt.Errorf("%w: --grace must be a duration such as 24h, 7d or 0, of at most 100 years, not %q", errUsage, grace)
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		key, err := auth.NewKey()
		if err != nil {
			return err
		}
		old, added, err := s.RotateAPIKey(ctx, id, g, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix()})
		if err != nil {
			return err
		}
		log.Info("API key rotated; the new key is on stdout and is shown only once",
			"old_key_id", old.ID, "old_key_works_until", showTime(old.ExpiresAt),
			"new_key_id", added.ID, "scope", added.Scope, "expires", showTime(added.ExpiresAt))
		fmt.Fprintln(stdout, key)
		return nil
	})
}

func revokeKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parse("keys revoke", args, getenv, stderr, false)
	if err != nil {
		return err
	}
	id, err := keyID("keys revoke", rest)
	if err != nil {
		return err
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		k, err := s.RevokeAPIKey(ctx, id)
		if err != nil {
			return err
		}
		log.Info("API key revoked: running servers refuse it within their --key-cache-ttl", "key_id", k.ID, "prefix", k.Prefix, "revoked", showTime(k.RevokedAt))
		return nil
	})
}

// oneWorkspace returns the WORKSPACE argument, one argument: a name of several words
// is quoted. Only "workspace create" joins its words into a name; here "keys list
// W_AQ extra" looked for a workspace named "W_AQ extra" instead of refusing the
// extra argument as every command does.
func oneWorkspace(command string, rest []string) (string, error) {
	if len(rest) > 1 {
		return "", fmt.Errorf("%w: %s takes one WORKSPACE, got %q (quote a name of several words)", errUsage, command, rest)
	}
	name := ""
	if len(rest) == 1 {
		name = strings.TrimSpace(rest[0])
	}
	if name == "" {
		return "", fmt.Errorf("%w: %s needs a WORKSPACE (its W_... ID or its name)", errUsage, command)
	}
	return name, nil
}

func keyID(command string, rest []string) (int64, error) {
	if len(rest) != 1 {
		return 0, fmt.Errorf("%w: %s needs one KEY_ID (the ID column of keys list)", errUsage, command)
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: KEY_ID must be a key's number from keys list, not %q", errUsage, rest[0])
	}
	return id, nil
}

// findWorkspace finds a workspace by its global ID (W_...) or by its name, which
// must be unambiguous. An argument that is one workspace's ID and another's name (a
// name stored before workspace create refused names spelled as IDs) is refused too:
// read as the ID, a key was made for the workspace the operator did not mean. The
// name is read as names are kept (crm.WorkspaceNameText: "Cafe\u0301 Ltd" is "Café
// Ltd", which it did not find), or else as typed, as a name stored before names were
// composed may be.
func findWorkspace(ctx context.Context, s *store.Store, arg string) (crm.Workspace, error) {
	typed := arg
	arg = crm.WorkspaceNameText(arg)
	var byID *crm.Workspace
	if id, err := globalid.DecodeAs(globalid.Workspace, arg); err == nil {
		ws, err := s.WorkspaceEvenDeleting(ctx, id)
		var e *crm.Error
		switch {
		case err == nil:
			byID = &ws
		case !errors.As(err, &e) || e.Code != crm.CodeNotFound:
			return ws, err
		}
	}
	wss, err := s.WorkspacesByName(ctx, arg, 3)
	if err == nil && len(wss) == 0 && typed != arg {
		wss, err = s.WorkspacesByName(ctx, typed, 3)
	}
	if err != nil {
		return crm.Workspace{}, err
	}
	if byID != nil {
		named := slices.DeleteFunc(wss, func(ws crm.Workspace) bool { return ws.ID == byID.ID })
		if len(named) == 0 {
			return *byID, nil // the workspace's name, if it is arg, is its own ID
		}
		hint := fmt.Sprintf(" and the name %q for the former", byID.Name)
		if byID.Name == arg {
			hint = "; the former, named so too, can be named once one of them is renamed"
		}
		return crm.Workspace{}, fmt.Errorf("%q is both the ID of the workspace named %q and the name of workspace %s: use the ID for the latter%s",
			arg, byID.Name, workspaceIDs(named), hint)
	}
	switch len(wss) {
	case 0:
		return crm.Workspace{}, fmt.Errorf("no workspace has the ID or the name %q", arg)
	case 1:
		return wss[0], nil
	}
	return crm.Workspace{}, fmt.Errorf("several workspaces are named %q (%s...): name one by its ID", arg, workspaceIDs(wss))
}

// workspaceIDs lists the IDs of wss, as the API shows them, separated by commas.
func workspaceIDs(wss []crm.Workspace) string {
	ids := make([]string, len(wss))
	for i, ws := range wss {
		ids[i] = globalid.Encode(globalid.Workspace, ws.ID)
	}
	return strings.Join(ids, ", ")
}

// parseDays parses a Go duration, or a whole number of days such as "90d", of at
// most maxDays either way (and no less than -maxDays).
func parseDays(s string) (time.Duration, error) {
	const most = maxDays * 24 * time.Hour
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days > maxDays || days < -maxDays {
			return 0, fmt.Errorf("bad number of days %q: at most %d", s, maxDays)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d > most || d < -most {
		return 0, fmt.Errorf("duration %q is longer than %d days", s, maxDays)
	}
	return d, nil
}

// listedName is a key's name as keys list shows it: "-" for none; as it is when it
// is printable text; else quoted with Go's escapes, so that a name stored before
// names were checked (crm.NormalizeKeyName) cannot break the table: a line break
// faked a row, a tab shifted the columns, an escape sequence acted on the
// operator's terminal. A name that would read as quoted, or as none, is quoted too.
func listedName(name string) string {
	if name == "" {
		return "-"
	}
	if name == "-" || strings.HasPrefix(name, `"`) || !utf8.ValidString(name) {
		return strconv.Quote(name)
	}
	for _, r := range name {
		if !strconv.IsPrint(r) { // all but letters, marks, numbers, punctuation, symbols and ' '
			return strconv.Quote(name)
		}
	}
	return name
}

func showTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
